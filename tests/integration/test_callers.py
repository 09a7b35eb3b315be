#!/usr/bin/python3
"""Who may drive a login (DESIGN §5, issue 10 item 2), on a private bus that applies the shipped
D-Bus policy: StartLogin, AnswerPin, CancelLogin and Lock only for root and for a process of the
seat's active logind session; anyone else hears AccessDenied before the card is touched and
without a record. The status stays readable for everyone, as the policy says."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from terminal import AGENT, PATH, PIN, Terminal  # noqa: E402

NOBODY = 65534
ACCESS_DENIED = 'org.freedesktop.DBus.Error.AccessDenied'
WRONG = '654321'

# Runs a list of calls on ONE connection (a login goes on only with the client that started it)
# and prints what each answered: {"ok": value} or {"error": name, "message": text}.
CALLER = r"""
import json, sys, dbus
req = json.loads(sys.argv[1])
conn = dbus.bus.BusConnection(req['bus'])
obj = conn.get_object(req['name'], req['path'])
out = []
for iface, method, args in req['calls']:
    try:
        v = getattr(dbus.Interface(obj, iface), method)(*args)
        out.append({'ok': json.loads(json.dumps(v, default=str))})
    except dbus.exceptions.DBusException as e:
        out.append({'error': e.get_dbus_name(), 'message': e.get_dbus_message()})
print(json.dumps(out))
"""


def log_lines(t):
    """Every record line mamorid has written so far (all segments)."""
    d = os.path.join(t.tmp, 'agent-state', 'log')
    lines = []
    for name in sorted(os.listdir(d)):
        if name.startswith('seg-') and name.endswith('.log'):
            with open(os.path.join(d, name), encoding='utf-8') as f:
                lines += [line for line in f if line.strip()]
    return lines


def call_as(t, calls, uid=NOBODY, in_session=False, name=AGENT, path=PATH):
    """Runs calls [(interface, method, [args])] on one connection as uid (root when None), inside
    the mock logind's active session c1 or outside every session."""
    env = t.bus.client_env()
    env = bench.in_session_env(env) if in_session else bench.outside_session_env(env)
    prefix = [] if uid is None else ['setpriv', f'--reuid={uid}', f'--regid={uid}', '--clear-groups']
    req = {'bus': t.bus.address, 'name': name, 'path': path, 'calls': calls}
    p = subprocess.run(prefix + [bench.PYTHON, '-c', CALLER, json.dumps(req)], env=env, capture_output=True,
                       text=True, timeout=60, check=False)
    if p.returncode != 0:
        raise AssertionError(f'caller failed: {p.stderr}')
    return json.loads(p.stdout)


def login_calls(pin=PIN):
    return [(AGENT, 'StartLogin', ['counter']), (AGENT, 'AnswerPin', [pin])]


class CallersTest(unittest.TestCase):
    def terminal(self):
        t = Terminal(self)
        card = t.insert('OP0001')
        t.start_agent()
        t.wait_card_seen(card)
        os.chmod(t.tmp, 0o711)  # uid 65534 must reach the bus socket (not the state below it)
        time.sleep(0.5)  # the insertion's own reads are over
        return t

    def assertDenied(self, answer, what):
        self.assertEqual(answer.get('error'), ACCESS_DENIED, f'{what}: {answer}')

    def test_stranger_is_refused_without_card_exchange_or_record(self):
        t = self.terminal()
        apdus, records = t.vcard.apdu_count(), len(log_lines(t))
        out = call_as(t, login_calls() + [(AGENT, 'CancelLogin', []), (AGENT, 'Lock', [])])
        for answer, method in zip(out, ('StartLogin', 'AnswerPin', 'CancelLogin', 'Lock')):
            self.assertDenied(answer, method)
        self.assertIn("seat's active session", out[0]['message'])
        time.sleep(0.5)
        self.assertEqual(t.vcard.apdu_count(), apdus, 'the card was touched for a stranger')
        self.assertEqual(len(log_lines(t)), records, 'a stranger made mamorid write a record')
        self.assertEqual(t.prop('State'), 'locked')
        # The real login is not kept Busy by anything the stranger did.
        self.assertEqual(t.login(), 'OP0001')
        self.assertEqual(t.prop('State'), 'active')
        # While a session is active a stranger can neither lock it nor start a login.
        out = call_as(t, [(AGENT, 'Lock', []), (AGENT, 'StartLogin', ['counter'])])
        self.assertDenied(out[0], 'Lock while active')
        self.assertDenied(out[1], 'StartLogin while active')
        self.assertEqual(t.prop('State'), 'active')

    def test_stranger_cannot_touch_a_pending_login(self):
        t = self.terminal()
        t.iface().StartLogin('counter')  # root, e.g. the greeter's PAM stack
        self.assertEqual(t.prop('State'), 'authenticating')
        time.sleep(0.5)  # the card thread selects the card for the PIN to come
        apdus = t.vcard.apdu_count()
        out = call_as(t, [(AGENT, 'AnswerPin', [WRONG]), (AGENT, 'CancelLogin', []),
                          (AGENT, 'StartLogin', ['counter'])])
        for answer, method in zip(out, ('AnswerPin', 'CancelLogin', 'StartLogin')):
            self.assertDenied(answer, method)
        self.assertEqual(t.vcard.apdu_count(), apdus)
        self.assertEqual(t.prop('State'), 'authenticating')
        # The PIN tries are untouched: the starter's right PIN opens the session.
        self.assertEqual(str(t.iface().AnswerPin(PIN)), 'OP0001')

    def test_process_of_the_active_session_may_drive_a_login(self):
        t = self.terminal()
        out = call_as(t, login_calls(), in_session=True)
        self.assertEqual(out[0]['ok'][0], t.cards['OP0001'].card_id, out)
        self.assertEqual(out[1], {'ok': 'OP0001'})
        self.assertEqual(t.prop('State'), 'active')
        t.agent.wait_event('unlock', op='OP0001', after=0)
        # The same uid outside the session may not lock it; inside it may.
        self.assertDenied(call_as(t, [(AGENT, 'Lock', [])])[0], 'Lock from outside the session')
        self.assertEqual(t.prop('State'), 'active')
        self.assertEqual(call_as(t, [(AGENT, 'Lock', [])], in_session=True), [{'ok': None}])
        self.assertEqual(t.prop('State'), 'locked')
        t.agent.wait_event('session.end', reason='manual', after=0)
        # A login started in the session and cancelled there.
        out = call_as(t, [(AGENT, 'StartLogin', ['counter']), (AGENT, 'CancelLogin', [])], in_session=True)
        self.assertNotIn('error', out[0], out)
        self.assertEqual(out[1], {'ok': None})
        self.assertEqual(t.prop('State'), 'locked')

    def test_another_session_is_a_stranger(self):
        t = self.terminal()
        # A second session of the same seat that is not the active one (a background VT).
        dbus = t.dbus
        t.logind._iface(bench.LOGIND_PATH, bench.MOCK_IFACE).AddSession('c2', 'seat0', dbus.UInt32(1000),
                                                                       'counter', False)
        seat_path = f'{bench.LOGIND_PATH}/seat/seat0'
        # The mock makes every added session the active one; c1 stays in front.
        seat = t.logind._iface(seat_path, dbus.PROPERTIES_IFACE)
        seat.Set(bench.LOGIND_SEAT, 'ActiveSession',
                 dbus.Struct(('c1', dbus.ObjectPath(t.logind.session_path)), signature='so', variant_level=1))
        self.assertEqual(str(seat.Get(bench.LOGIND_SEAT, 'ActiveSession')[0]), 'c1')
        env_session = 'c2'
        env = bench.in_session_env(t.bus.client_env(), env_session)
        req = {'bus': t.bus.address, 'name': AGENT, 'path': PATH, 'calls': [(AGENT, 'StartLogin', ['counter'])]}
        p = subprocess.run(['setpriv', f'--reuid={NOBODY}', f'--regid={NOBODY}', '--clear-groups', bench.PYTHON,
                            '-c', CALLER, json.dumps(req)], env=env, capture_output=True, text=True, timeout=60)
        self.assertDenied(json.loads(p.stdout)[0], 'StartLogin from a session that is not active')
        self.assertEqual(t.prop('State'), 'locked')

    def test_root_may(self):
        t = self.terminal()
        out = call_as(t, login_calls() + [(AGENT, 'Lock', [])], uid=None)
        self.assertEqual(out[1], {'ok': 'OP0001'}, out)
        self.assertEqual(out[2], {'ok': None}, out)
        self.assertEqual(t.prop('State'), 'locked')

    def test_status_is_open_and_the_policy_applies(self):
        t = self.terminal()
        props = 'org.freedesktop.DBus.Properties'
        out = call_as(t, [(props, 'Get', [AGENT, 'State']), (props, 'GetAll', [AGENT]),
                          ('org.freedesktop.DBus.Introspectable', 'Introspect', []),
                          (AGENT, 'PinAgeDays', []),
                          (props, 'Set', [AGENT, 'State', 'active']), (props, 'Get', [AGENT, 'Sensors'])])
        self.assertEqual(out[0], {'ok': 'locked'})
        self.assertEqual(out[1]['ok']['State'], 'locked')
        self.assertIn('StartLogin', out[2]['ok'])
        # PinAgeDays is open to all, and answers only while a session is active.
        self.assertEqual(out[3]['error'], 'org.mamori.Agent1.Error.NotActive', out[3])
        # Set is not in the policy for anyone but root: the bus itself refuses it.
        self.assertDenied(out[4], 'Properties.Set')
        self.assertIn('Rejected send message', out[4]['message'])
        # Sensors, like every status property, is open to all: no sensor on this terminal.
        self.assertEqual(out[5], {'ok': []}, out[5])
        self.assertIn('Sensors', out[1]['ok'])
        # Nobody but root may own the name, and the bus denies by default (logind's name here).
        own = call_as(t, [('org.freedesktop.DBus', 'RequestName', [AGENT, 4])], name='org.freedesktop.DBus',
                      path='/org/freedesktop/DBus')
        self.assertDenied(own[0], 'RequestName org.mamori.Agent1')
        out = call_as(t, [(bench.LOGIND_MANAGER, 'ListSessions', [])], name=bench.LOGIND_BUS,
                      path=bench.LOGIND_PATH)
        self.assertDenied(out[0], 'a method the policy does not open')


if __name__ == '__main__':
    unittest.main(verbosity=2)
