# One counter terminal on the integration bench: bus, mock logind, pcscd, virtual cards, policy, mamorid.
"""Shared by the session tests and the benchmarks. ``test`` is a unittest.TestCase, or for a script
Cleanups below (addCleanup(fn, *args) and the asserts used here). BioTerminal adds a
biometric reader driven through a socket and logins run in client processes (CLIENT): the base of
test_finger.FingerTerminal and test_vein.VeinTerminal."""
import json
import os
import subprocess

import agentproc
import bench
import policytool

PIN = '123456'
AGENT = 'org.mamori.Agent1'
PATH = '/org/mamori/Agent1'
GROUP_CARD = 'G1'  # the key of Terminal(group=…)'s group card in Terminal.cards

# A D-Bus client in its own process, one connection for all its steps (a login belongs to the
# connection that started it); one JSON line per step. ["async", METHOD, ARGS…] sends a call without
# waiting (its answer is printed at the end), ["wait_step", STEP] waits until the agent's Step is STEP.
# GLib's main loop is loaded only for a client with an async step: the others start as fast as a bare
# dbus client (the finger benchmark times client start → Step finger).
CLIENT = r'''
import dbus, json, sys, time
steps = json.loads(sys.argv[2])
ctx = None
if any(step[0] == 'async' for step in steps):
    from dbus.mainloop.glib import DBusGMainLoop
    from gi.repository import GLib
    DBusGMainLoop(set_as_default=True)
    ctx = GLib.MainContext.default()
bus = dbus.bus.BusConnection(sys.argv[1])
obj = bus.get_object('org.mamori.Agent1', '/org/mamori/Agent1')
iface = dbus.Interface(obj, 'org.mamori.Agent1')
props = dbus.Interface(obj, dbus.PROPERTIES_IFACE)
pending = []

def pump(seconds):
    if ctx:
        ctx.iteration(False)
    time.sleep(seconds)

def plain(r):
    return json.loads(json.dumps(r, default=str))

def error(e):
    return {'error': e.get_dbus_name().rsplit('.', 1)[-1], 'message': e.get_dbus_message()}

for method, *args in steps:
    if method == 'async':
        box = {'method': args[0]}
        pending.append(box)
        getattr(iface, args[0])(*args[1:], timeout=120,
                                reply_handler=lambda *r, box=box: box.update(ok=plain(list(r) if len(r) != 1 else r[0])),
                                error_handler=lambda e, box=box: box.update(error(e)))
        continue
    if method == 'wait_step':
        deadline = time.monotonic() + 20
        while str(props.Get('org.mamori.Agent1', 'Step')) != args[0] and time.monotonic() < deadline:
            pump(0.02)
        print(json.dumps({'method': method, 'ok': str(props.Get('org.mamori.Agent1', 'Step'))}), flush=True)
        continue
    try:
        r = getattr(iface, method)(*args, timeout=120)
        out = {'method': method, 'ok': plain(r) if r is not None else None}
    except dbus.exceptions.DBusException as e:
        out = dict({'method': method}, **error(e))
    print(json.dumps(out), flush=True)
    if 'error' in out:
        break
deadline = time.monotonic() + 60
while any(len(b) == 1 for b in pending) and time.monotonic() < deadline:
    pump(0.01)
for b in pending:
    print(json.dumps(b), flush=True)
'''


def mamorictl():
    return os.path.join(bench.build_dir(), 'agent', 'mamorictl')


class Cleanups:
    """What a Terminal needs of a TestCase, for scripts (the benchmarks): addCleanup() (the callbacks run
    in reverse order on close()) and the asserts the Terminal makes, which raise AssertionError."""

    def __init__(self):
        self._callbacks = []

    def addCleanup(self, fn, *args):
        self._callbacks.append((fn, args))

    def assertEqual(self, first, second, msg=None):
        if first != second:
            raise AssertionError(f'{first!r} != {second!r}' + (f': {msg}' if msg else ''))

    def assertTrue(self, expr, msg=None):
        if not expr:
            raise AssertionError(msg or f'{expr!r} is not true')

    def close(self):
        while self._callbacks:
            fn, args = self._callbacks.pop()
            try:
                fn(*args)
            except Exception as e:  # keep cleaning up
                print(f'cleanup: {e}')


class Terminal:
    """One counter terminal on the bench: bus + logind + pcscd + card + signed policy + mamorid."""

    def __init__(self, test, desktop_locks=True, session=None, cards=('OP0001',), card_status=None, kind='p256',
                 group=None, extra_ops=()):
        """cards: the operators with a card here; group: (group id, [members]) adds a group card,
        GROUP_CARD; extra_ops: operators in the policy without a card here (a benchmark's gallery)."""
        import dbus
        self.dbus = dbus
        self.test = test
        self.group = group
        self.extra_ops = list(extra_ops)
        self.tmpdir = bench.TempDir()
        self.tmp = self.tmpdir.__enter__()
        test.addCleanup(self.tmpdir.__exit__, None, None, None)
        self.pki = bench.TestPKI(self.tmp)
        self.cards = {op: self.pki.issue(op, kind) for op in tuple(cards) + ((GROUP_CARD,) if group else ())}
        self.signer = policytool.Signer.generate(self.tmp)
        self.bus = self.enter(bench.SystemBus(self.tmp))
        self.logind = self.enter(bench.MockLogind(self.bus, desktop_locks=desktop_locks))
        self.port = bench.free_vpcd_port()
        self.pcscd = self.enter(bench.Pcscd(self.tmp, self.port, debug=False))
        self.vcard = None
        self.agent = None
        self.session_conf = {'IdleLockSec': '300', 'LockVerifySec': '1', 'CardLeftSec': '1h'}
        self.session_conf.update(session or {})
        self.agent_env = {}  # extra environment for mamorid (e.g. fake evdev devices)
        self.publish(serial=1, card_status=card_status or {})

    def enter(self, cm):
        obj = cm.__enter__()
        self.test.addCleanup(cm.__exit__, None, None, None)
        return obj

    def publish(self, serial, card_status=None, emergency=False, op_status=None, op_offices=None):
        card_status = card_status or {}
        op_status = op_status or {}
        op_offices = op_offices or {}
        ops = [op for op in self.cards if op != GROUP_CARD] + self.extra_ops
        cards = [policytool.card(c.card_id, op, card_status.get(op, 'active'))
                 for op, c in self.cards.items() if op != GROUP_CARD]
        groups = []
        if self.group:
            gid, members = self.group
            groups = [{'id': gid, 'offices': ['chuo'], 'members': members}]
            cards.append({'id': self.cards[GROUP_CARD].card_id, 'kind': 'group', 'group': gid,
                          'status': card_status.get(GROUP_CARD, 'active')})
        b = policytool.bundle(serial, 'chuo', 'T-0001',
                              [policytool.operator(op, op_offices.get(op, ['chuo']), op_status.get(op, 'active'))
                               for op in ops], cards, emergency=emergency,
                              offices=sorted({'chuo'}.union(*op_offices.values())), groups=groups)
        policytool.install(os.path.join(self.tmp, 'agent-state', 'policy'), self.signer.sign(b))

    def insert(self, op):
        """Puts op's card in the reader (the previous card is pulled first)."""
        if self.vcard:
            self.vcard.stop()
        card = self.cards[op]
        self.vcard = bench.VCard(self.port, card.key, card.cert, PIN, tries=3)
        self.vcard.start()
        self.test.addCleanup(self.vcard.stop)
        return card

    def agent_config(self):
        """mamorid.conf's sections for start_agent()."""
        return {'Session': self.session_conf}

    def start_agent(self):
        env = self.pcscd.client_env(self.bus.client_env())
        env.update(self.agent_env)
        self.agent = agentproc.Mamorid(self.tmp, env, self.agent_config())
        self.agent.start()
        self.test.addCleanup(self.agent.stop)
        self.conn = self.bus.connect()
        bench.wait_until(lambda: self.conn.name_has_owner(AGENT), timeout=10, what='mamorid on the bus')
        return self.agent

    def iface(self):
        return self.dbus.Interface(self.conn.get_object(AGENT, PATH), AGENT)

    def prop(self, name):
        props = self.dbus.Interface(self.conn.get_object(AGENT, PATH), self.dbus.PROPERTIES_IFACE)
        return props.Get(AGENT, name)

    def login(self, pin=PIN):
        card_id, _ = self.iface().StartLogin('counter')
        return str(self.iface().AnswerPin(pin))

    def wait_card_seen(self, card):
        self.agent.wait_event('card.inserted', card=card.card_id, timeout=20, after=0)
        bench.wait_until(lambda: bool(self.prop('CardPresent')), timeout=5, what='CardPresent')


class BioTerminal(Terminal):
    """A terminal with a biometric reader the test drives through the socket sock (the fingerprint
    sensor, the vein reader); templates under prints, passwords beside them. Logins run in client
    processes, one D-Bus connection each (client, results), mamorictl through ctl."""

    SENSOR_WHAT = 'the biometric reader open'  # what start_agent() waits for, in its timeout message

    def __init__(self, test, sock_name, **kw):
        super().__init__(test, **kw)
        self.sock = os.path.join(self.tmp, sock_name)
        self.prints = os.path.join(self.tmp, 'agent-state', 'prints')
        self.clients = []

    def agent_config(self):
        return dict(super().agent_config(), Finger={'PrintsDirectory': self.prints},
                    Secrets={'PasswordDirectory': os.path.join(self.tmp, 'agent-state', 'passwords')})

    def start_agent(self):
        agent = super().start_agent()
        bench.wait_until(lambda: os.path.exists(self.sock), timeout=20, what=self.SENSOR_WHAT)
        return agent

    def env(self):
        return self.bus.client_env()

    def client(self, *steps):
        """Runs the steps in a client process (CLIENT); returns it (read its lines with results())."""
        p = subprocess.Popen(['/usr/bin/python3', '-c', CLIENT, self.bus.address, json.dumps(steps)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env())
        self.clients.append(p)
        self.test.addCleanup(self.reap, p)
        return p

    def reap(self, p):
        if p.poll() is None:
            p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()

    def results(self, p, timeout=60):
        """The client's answers, one dict a step; it must have answered at least one."""
        out, err = p.communicate(timeout=timeout)
        res = [json.loads(line) for line in out.splitlines() if line.strip()]
        self.test.assertTrue(res, err)
        return res

    def ctl(self, *args, env=None, timeout=60):
        return subprocess.run([mamorictl(), *args], env=dict(self.env(), **(env or {})), capture_output=True,
                              text=True, timeout=timeout)

    def card_session(self, op):
        card = self.insert(op)
        self.wait_card_seen(card)
        self.test.assertEqual(self.login(), op)
        return card

    def end_card_session(self, card):
        self.iface().Lock()
        self.vcard.pull()
        self.agent.wait_event('card.removed', card=card.card_id)

    def enroll_captures(self, modality, touches, touch, env=None):
        """`mamorictl enroll MODALITY` in a card session (card_session() first): touch(i) for each of the
        touches, each once mamorictl asked for it. Returns its output, one item per prompt read (the
        last one with the rest); asserts it succeeded."""
        p = subprocess.Popen([mamorictl(), 'enroll', modality], env=dict(self.env(), **(env or {})),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.test.addCleanup(self.reap, p)
        lines = [p.stdout.readline()]
        for i in range(touches):
            touch(i)
            if i < touches - 1:
                lines.append(p.stdout.readline())
        out, err = p.communicate(timeout=30)
        lines.append(out)
        self.test.assertEqual(p.returncode, 0, ''.join(lines) + err)
        return lines

    def wait_step(self, step, timeout=10):
        bench.wait_until(lambda: self.prop('Step') == step, timeout=timeout, what=f'Step {step}')
