# Passwords and group cards through pam_mamori.so and mamorictl against mamorid (pam_wrapper + pypamtest, pamtester).
"""DESIGN.md §4: a group card + its PIN opens the door, then a member of the card's group types their
operator id and password; the session's operator is the member. The verifiers are scrypt lines
written by Python's own hashlib.scrypt here (so mamorid's OpenSSL EVP_KDF reading them is a
cross-check) or set by the operator with `mamorictl passwd --password` in a card session.

Checked: the member logs in and is the session's operator; a non-member is refused
(not-group-member, on record); a wrong password is answered later each time (1 s, 2 s, 4 s …)
and every failure is on record (through the record limiter); an expired password forces the
change in chauthtok before the session is kept, and a new password under MinLength is refused;
a password set in a card session lands root-only (0700/0600) and logs in after a group card."""

import base64
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentproc  # noqa: E402
import bench  # noqa: E402
import policytool  # noqa: E402
import test_pam  # noqa: E402
from test_pam import (OFFICE, PAM_AUTH_ERR, PAM_AUTHTOK_ERR, PAM_NEW_AUTHTOK_REQD, PAM_SUCCESS,  # noqa: E402
                      PIN, TERMINAL, USER)

GROUP = 'G-chuo-1'
MEMBER = 'OP0002'
OTHER_MEMBER = 'OP0001'
STRANGER = 'OP0003'
PASSWORD = 'kumo-no-ue 2026'
NEW_PASSWORD = 'hoshi-zora 2027'
DAY_US = 24 * 3600 * 1000000

# One PAM transaction with answers for hidden (echo_off) and visible (echo_on) prompts.
DRIVER = r'''
import json, sys, pypamtest
req = json.loads(sys.argv[1])
cases = [pypamtest.TestCase(op, expected_rv=rv) for op, rv in req['cases']]
try:
    res = pypamtest.run_pamtest(req['user'], req['service'], cases, req['echo_off'], req['echo_on'])
    print(json.dumps({'ok': True, 'info': list(res.info), 'errors': list(res.errors)}))
except pypamtest.PamTestError as e:
    print(json.dumps({'ok': False, 'error': str(e)}))
'''


def python_verifier(password, ln=12, r=8, p=1, salt=None):
    """A verifier line made by Python's hashlib.scrypt (the format of mamori/password-verifier.h)."""
    salt = salt or os.urandom(16)
    h = hashlib.scrypt(password.encode(), salt=salt, n=2 ** ln, r=r, p=p, dklen=32, maxmem=64 * 1024 * 1024)
    return (f'$mamori-scrypt$v=1$ln={ln},r={r},p={p}$'
            f'{base64.b64encode(salt).decode()}${base64.b64encode(h).decode()}')


class GroupCardPassword(test_pam.PamBase):
    """A group card for GROUP (members OP0002, OP0001), an individual card for OP0001, OP0003 outside."""

    def setUp(self):
        super().setUp()
        self.pki = bench.TestPKI(self.tmp)
        self.signer = policytool.Signer.generate(self.tmp)
        self.state = os.path.join(self.tmp, 'state')
        self.policy_dir = os.path.join(self.state, 'policy')
        os.makedirs(self.policy_dir)
        self.bus = self.enter(bench.SystemBus(self.tmp))
        self.bus_address = self.bus.address
        self.logind = self.enter(bench.MockLogind(self.bus))
        self.port = bench.free_vpcd_port()
        self.pcscd = self.enter(bench.Pcscd(self.tmp, self.port))
        self.vcard = None
        self.serial = 0
        self.pw_dir = os.path.join(self.state, 'passwords')
        self.group_card = self.pki.issue('group-G-chuo-1', 'p256')
        self.op1_card = self.pki.issue('OP0001', 'p256')

    insert = test_pam.PamWithAgent.insert
    agent_property = test_pam.PamWithAgent.agent_property
    wait_card_seen = test_pam.PamWithAgent.wait_card_seen

    def publish_group(self, **kw):
        self.serial += 1
        ops = [policytool.operator(op, [OFFICE]) for op in (OTHER_MEMBER, MEMBER, STRANGER)]
        cards = [{'id': self.group_card.card_id, 'kind': 'group', 'group': GROUP, 'status': 'active'},
                 policytool.card(self.op1_card.card_id, OTHER_MEMBER)]
        groups = [{'id': GROUP, 'offices': [OFFICE], 'members': [MEMBER, OTHER_MEMBER]}]
        b = policytool.bundle(self.serial, OFFICE, TERMINAL, ops, cards, groups=groups, **kw)
        policytool.install(self.policy_dir, self.signer.sign(b))

    def start_agent(self, max_age_days=183, extra=None):
        env = self.pcscd.client_env(self.bus.client_env())
        conf = {
            'Terminal': {'Id': TERMINAL, 'Office': OFFICE,
                         'IdentityKey': os.path.join(self.state, 'keys', 'identity.key')},
            'Card': {'TrustAnchors': self.pki.ca_path},
            'Policy': {'Directory': self.policy_dir, 'SignerKey': self.signer.pub_path, 'StalePolicy': 'deny'},
            'Log': {'Directory': os.path.join(self.state, 'log')},
            'Secrets': {'MaxAgeDays': str(max_age_days), 'WarnDays': '14', 'MinLength': '10',
                        'PasswordDirectory': self.pw_dir},
        }
        for section, keys in (extra or {}).items():
            conf.setdefault(section, {}).update(keys)
        self.agent = self.enter(agentproc.Mamorid(self.tmp, env, conf))
        if not test_pam.agent_interface_exposed(self.bus.address):
            self.fail('mamorid does not serve org.mamori.Agent1 on the bus (see mamorid: lines above)')
        return self.agent

    def set_password(self, op, password, age_days=0):
        """Writes op's verifier as root would find it (Python's scrypt), set age_days ago."""
        os.makedirs(self.pw_dir, mode=0o700, exist_ok=True)
        path = os.path.join(self.pw_dir, op)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'w', encoding='ascii') as f:
            f.write(python_verifier(password) + '\n')
        if age_days:
            t = time.time() - age_days * 86400
            os.utime(path, (t, t))

    def group_session(self, **kw):
        self.publish_group()
        self.set_password(MEMBER, PASSWORD)
        self.insert(self.group_card)
        self.start_agent(**kw)
        self.wait_card_seen(True)

    def swap_card(self, card, lock=True):
        """Lock the screen (unless told not to), pull the card in the reader, insert card."""
        if lock:
            self.ctl('lock')
        self.vcard.pull()
        self.vcard.stop()
        self.wait_card_seen(False)
        self.insert(card)
        self.wait_card_seen(True)

    def pam(self, cases, echo_off=(), echo_on=()):
        req = {'user': USER, 'service': test_pam.SERVICE, 'cases': cases, 'echo_off': list(echo_off),
               'echo_on': list(echo_on)}
        p = subprocess.run([bench.PYTHON, '-c', DRIVER, json.dumps(req)], env=self.pam_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120, check=False)
        self.assertNotIn('Sanitizer', p.stderr, p.stderr)
        self.assertEqual(p.returncode, 0, p.stderr)
        res = json.loads(p.stdout)
        res['log'] = p.stderr
        return res

    def events(self, name):
        return [agentproc.parse_event(line)[1] for line in list(self.agent.events.lines)
                if line.startswith(name + ' ')]

    def test_member_password_logs_in_as_the_member(self):
        self.group_session()
        res = self.pam([[0, PAM_SUCCESS], [2, PAM_SUCCESS]], [PIN, PASSWORD], [MEMBER])
        self.assertPam(res)
        self.assertIn('Group card accepted — type your own operator ID and password', res['info'])
        self.assertEqual(str(self.agent_property('State')), 'active')
        self.assertEqual(str(self.agent_property('Operator')), MEMBER)
        self.assertEqual(str(self.agent_property('Method')), 'group-card+password')
        self.assertEqual(str(self.agent_property('Step')), '')
        ok = self.agent.wait_event('auth.ok', op=MEMBER, method='group-card+password')
        self.assertEqual(ok.get('card'), self.group_card.card_id)
        self.assertEqual(ok.get('group'), GROUP)
        self.agent.wait_event('session.start', op=MEMBER, method='group-card+password')
        self.assertIn(f'operator {MEMBER} logged in', res['log'])
        # The group card's session ends with the card, like any card session.
        self.vcard.pull()
        self.agent.wait_event('session.end', op=MEMBER, reason='card-removed')

    def test_non_member_and_unknown_id_are_refused(self):
        self.group_session()
        self.set_password(STRANGER, PASSWORD)  # a password of their own does not make them a member
        for who in (STRANGER, 'NOBODY-42'):
            res = self.pam([[0, PAM_AUTH_ERR]], [PIN, PASSWORD], [who])
            self.assertPam(res, who)
            self.assertTrue(any('not a member of this card' in e for e in res['errors']), res['errors'])
            self.assertEqual(str(self.agent_property('State')), 'locked')
        fails = [f for f in self.events('auth.fail') if f.get('reason') == 'not-group-member']
        self.assertGreaterEqual(len(fails), 1, self.events('auth.fail'))
        self.assertEqual(fails[0].get('op'), STRANGER)
        self.assertEqual(fails[0].get('method'), 'group-card+password')
        self.assertEqual(self.events('auth.ok'), [])

    def test_wrong_password_waits_longer_each_time_and_is_recorded(self):
        import dbus
        self.group_session()
        conn = self.bus.connect()
        self.addCleanup(conn.close)
        agent = dbus.Interface(conn.get_object(test_pam.AGENT_NAME, test_pam.AGENT_PATH), test_pam.AGENT_NAME)
        agent.StartLogin(USER)
        self.assertEqual(str(agent.AnswerPin(PIN)), '')  # a group card: no operator yet
        self.assertEqual(str(self.agent_property('Step')), 'password')
        self.assertEqual(str(self.agent_property('State')), 'authenticating')
        took, messages = [], []
        for _ in range(3):
            t0 = time.monotonic()
            with self.assertRaises(dbus.DBusException) as cm:
                agent.AnswerPassword(MEMBER, 'not the password', timeout=120)
            took.append(time.monotonic() - t0)
            self.assertEqual(cm.exception.get_dbus_name(), 'org.mamori.Agent1.Error.PasswordWrong')
            messages.append(cm.exception.get_dbus_message())
            # The login still waits for the password.
            self.assertEqual(str(self.agent_property('Step')), 'password')
        self.assertEqual(messages, ['password-wrong delay=1', 'password-wrong delay=2', 'password-wrong delay=4'])
        # 1 s, 2 s, 4 s: each answer later than the one before.
        self.assertGreaterEqual(took[0], 1.0, took)
        self.assertGreaterEqual(took[1], 2.0, took)
        self.assertGreaterEqual(took[2], 4.0, took)
        self.assertGreater(took[2], took[1])
        self.assertGreater(took[1], took[0])
        agent.CancelLogin()

        # Through PAM too, in words; the right password still logs in, and resets the count.
        self.write_service('debug timeout=3 max_tries=1')
        res = self.pam([[0, PAM_AUTH_ERR]], [PIN, 'still not it'], [MEMBER])
        self.assertPam(res)
        self.assertTrue(any(e.startswith('Password wrong') for e in res['errors']), res['errors'])
        self.assertEqual(str(self.agent_property('State')), 'locked')
        res = self.pam([[0, PAM_SUCCESS]], [PIN, PASSWORD], [MEMBER])
        self.assertPam(res)
        self.assertEqual(str(self.agent_property('Operator')), MEMBER)

        # Each failure is on record: in full, or counted in its cause's summary (repeats).
        def counted():
            return sum(int(f.get('repeats', 1)) for f in self.events('auth.fail')
                       if f.get('reason') == 'password-wrong')
        bench.wait_until(lambda: counted() >= 4, timeout=15, what='four password-wrong failures on record')
        self.assertEqual(counted(), 4, self.events('auth.fail'))
        for f in self.events('auth.fail'):
            if f.get('reason') == 'password-wrong':
                self.assertEqual(f.get('op'), MEMBER)
                self.assertEqual(f.get('method'), 'group-card+password')

    def agent_iface(self):
        import dbus
        conn = self.bus.connect()
        self.addCleanup(conn.close)
        return dbus.Interface(conn.get_object(test_pam.AGENT_NAME, test_pam.AGENT_PATH), test_pam.AGENT_NAME)

    def wrong_password(self, agent, expect_delay):
        """One wrong password on a login at Step password: its answer's delay and how long it took."""
        import dbus
        t0 = time.monotonic()
        with self.assertRaises(dbus.DBusException) as cm:
            agent.AnswerPassword(MEMBER, 'not the password', timeout=120)
        took = time.monotonic() - t0
        self.assertEqual(cm.exception.get_dbus_name(), 'org.mamori.Agent1.Error.PasswordWrong')
        self.assertEqual(cm.exception.get_dbus_message(), f'password-wrong delay={expect_delay}')
        return took

    def restart_agent(self):
        """kill -9 and start again: the counts were durable before the answer, not saved at stop."""
        self.agent.stop(sig=signal.SIGKILL)
        self.agent.start()
        self.assertTrue(test_pam.agent_interface_exposed(self.bus.address), 'mamorid back on the bus')
        self.wait_card_seen(True)

    def test_failure_delay_survives_a_restart(self):
        """The counts are in a root-only file: restarting mamorid (even by kill -9) does not start them at
        zero."""
        self.group_session()
        agent = self.agent_iface()
        agent.StartLogin(USER)
        agent.AnswerPin(PIN)
        self.wrong_password(agent, 1)
        self.wrong_password(agent, 2)
        agent.CancelLogin()
        path = os.path.join(self.pw_dir, '.failures')
        st = os.lstat(path)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, os.geteuid())
        with open(path, encoding='ascii') as f:
            self.assertIn(f'op {MEMBER} 2 ', f.read())

        self.restart_agent()
        agent = self.agent_iface()
        agent.StartLogin(USER)
        agent.AnswerPin(PIN)
        # The third failure waits 4 s: the count went on (a reset count would say delay=1).
        took = self.wrong_password(agent, 4)
        self.assertGreaterEqual(took, 3.5)
        agent.CancelLogin()

    def test_untrusted_failure_file_locks_out_and_says_so(self):
        """A failure file that cannot be read counts as locked out, not as zero: the journal says so,
        the next answer waits the longest delay (32 s), then the right password still logs in."""
        self.group_session()
        agent = self.agent_iface()
        agent.StartLogin(USER)
        agent.AnswerPin(PIN)
        self.wrong_password(agent, 1)
        agent.CancelLogin()
        path = os.path.join(self.pw_dir, '.failures')
        self.agent.stop()
        with open(path, 'w', encoding='ascii') as f:
            f.write('mamori-password-failures 1\nfloor 0 0 0\nop OP0002 1 garbage\n')
        t0 = time.monotonic()
        self.agent.start()
        self.agent.events.wait(r'password failure counts in .* cannot be trusted .* every operator counts as '
                               r'locked out', timeout=10)
        self.assertTrue(test_pam.agent_interface_exposed(self.bus.address))
        self.wait_card_seen(True)
        with open(path, encoding='ascii') as f:
            self.assertIn('\nfloor 6 ', f.read())  # rewritten, sound, with the lock-out in it
        agent = self.agent_iface()
        agent.StartLogin(USER)
        agent.AnswerPin(PIN)
        self.assertEqual(str(agent.AnswerPassword(MEMBER, PASSWORD, timeout=120)), MEMBER)
        self.assertGreaterEqual(time.monotonic() - t0, 31.0)
        self.assertEqual(str(self.agent_property('Operator')), MEMBER)

    def test_wrong_then_right_in_one_login(self):
        """max_tries passwords in one conversation: the login keeps waiting after a wrong one."""
        self.group_session()
        t0 = time.monotonic()
        res = self.pam([[0, PAM_SUCCESS]], [PIN, 'not it', PASSWORD], [MEMBER])
        self.assertPam(res)
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)  # the first wrong one's answer waited
        self.assertTrue(any(e.startswith('Password wrong') for e in res['errors']), res['errors'])
        self.assertEqual(str(self.agent_property('Operator')), MEMBER)

    def test_expired_password_is_changed_before_the_session(self):
        self.publish_group()
        self.set_password(MEMBER, PASSWORD, age_days=200)
        self.insert(self.group_card)
        self.start_agent(max_age_days=183)
        self.wait_card_seen(True)
        res = self.pam([[0, PAM_SUCCESS], [2, PAM_NEW_AUTHTOK_REQD], [5, PAM_SUCCESS]],
                       [PIN, PASSWORD, PASSWORD, NEW_PASSWORD, NEW_PASSWORD], [MEMBER])
        self.assertPam(res)
        self.assertIn('Your password is older than 183 days and must be changed now', res['errors'])
        self.assertIn('Password changed', res['info'])
        self.assertEqual(str(self.agent_property('State')), 'active')
        self.agent.wait_event('password.change', op=MEMBER)
        mode = os.stat(os.path.join(self.pw_dir, MEMBER)).st_mode
        self.assertEqual(stat.S_IMODE(mode), 0o600)
        # The new password is the one now: the old is wrong, the new logs in, and is not expired.
        self.ctl('lock')
        self.write_service('debug timeout=3 max_tries=1')
        res = self.pam([[0, PAM_AUTH_ERR]], [PIN, PASSWORD], [MEMBER])
        self.assertPam(res)
        res = self.pam([[0, PAM_SUCCESS], [2, PAM_SUCCESS]], [PIN, NEW_PASSWORD], [MEMBER])
        self.assertPam(res)

    def test_expiry_warning_and_min_length(self):
        self.publish_group()
        self.set_password(MEMBER, PASSWORD, age_days=175)
        self.insert(self.group_card)
        self.start_agent(max_age_days=183)
        self.wait_card_seen(True)
        res = self.pam([[0, PAM_SUCCESS], [2, PAM_SUCCESS]], [PIN, PASSWORD], [MEMBER])
        self.assertPam(res)
        self.assertIn('Your password expires in 8 days — change it with: mamorictl passwd --password', res['info'])
        # MinLength=10: a shorter new password is refused in the password step, and nothing changes.
        res = self.pam([[5, PAM_AUTHTOK_ERR]], [PASSWORD, 'short1', 'short1'])
        self.assertPam(res)
        self.assertIn('The new password is too short — use at least 10 characters', res['errors'])
        self.assertEqual(self.events('password.change'), [])
        c = self.ctl('passwd', '--password', stdin=f'{PASSWORD}\nshort1\nshort1\n')
        self.assertEqual(c.returncode, 1, c)
        self.assertIn('too short', c.stderr)

    def test_expired_password_not_changed_locks(self):
        self.publish_group()
        self.set_password(MEMBER, PASSWORD, age_days=200)
        self.insert(self.group_card)
        self.start_agent(max_age_days=183)
        self.wait_card_seen(True)
        res = self.pam([[0, PAM_SUCCESS], [2, PAM_NEW_AUTHTOK_REQD], [5, PAM_AUTHTOK_ERR]],
                       [PIN, PASSWORD, PASSWORD, 'short1', 'short1'], [MEMBER])
        self.assertPam(res)
        bench.wait_until(lambda: str(self.agent_property('State')) == 'locked', timeout=5,
                         what='session locked after the expired password was not changed')
        self.assertIn('expired password was not changed: locked', res['log'])

    def test_password_set_in_card_session_then_group_login(self):
        """OP0001 sets a first password with their own card, then uses it after the group card."""
        self.publish_group()
        self.insert(self.op1_card)
        self.start_agent()
        self.wait_card_seen(True)
        # No session: nothing to set.
        c = self.ctl('passwd', '--password', stdin=f'{NEW_PASSWORD}\n{NEW_PASSWORD}\n')
        self.assertEqual(c.returncode, 1, c)
        self.assertIn('log in with your own card first', c.stderr)
        self.assertPam(self.pam([[0, PAM_SUCCESS]], [PIN]))
        self.assertEqual(str(self.agent_property('Operator')), OTHER_MEMBER)
        c = self.ctl('passwd', '--password', stdin='too-short\ntoo-short\n')
        self.assertEqual(c.returncode, 1, c)
        self.assertIn('use at least 10 characters', c.stderr)
        c = self.ctl('passwd', '--password', stdin=f'{NEW_PASSWORD}\n{NEW_PASSWORD}\n')
        self.assertEqual(c.returncode, 0, c)
        self.agent.wait_event('password.change', op=OTHER_MEMBER, card=self.op1_card.card_id)
        self.assertEqual(stat.S_IMODE(os.stat(self.pw_dir).st_mode), 0o700)
        path = os.path.join(self.pw_dir, OTHER_MEMBER)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path, encoding='ascii') as f:
            line = f.read()
        self.assertRegex(line, r'^\$mamori-scrypt\$v=1\$ln=15,r=8,p=1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+\n$')
        self.assertNotIn(NEW_PASSWORD, line)
        # Changing it needs the current one.
        c = self.ctl('passwd', '--password', stdin=f'wrong-current\n{PASSWORD}\n{PASSWORD}\n')
        self.assertEqual(c.returncode, 1, c)
        self.assertIn('Password wrong', c.stderr)

        # Swap cards: the group card, then OP0001's new password.
        self.swap_card(self.group_card, lock=True)
        res = self.pam([[0, PAM_SUCCESS]], [PIN, NEW_PASSWORD], [OTHER_MEMBER])
        self.assertPam(res)
        self.assertEqual(str(self.agent_property('Operator')), OTHER_MEMBER)
        self.assertEqual(str(self.agent_property('Method')), 'group-card+password')


    def both_members_with_password(self, card):
        """Both members have PASSWORD; card in the reader, the agent started."""
        self.publish_group()
        self.set_password(OTHER_MEMBER, PASSWORD)
        self.set_password(MEMBER, PASSWORD)
        self.insert(card)
        self.start_agent()
        self.wait_card_seen(True)

    def test_admin_resets_a_forgotten_password(self):
        """`mamorictl password reset OP` (root only, through the bus and its policy): the verifier goes, on
        record; the old password no longer logs in; the operator sets a new one with their own card, as
        the first time, and it logs in after the group card."""
        self.both_members_with_password(self.group_card)
        path = os.path.join(self.pw_dir, OTHER_MEMBER)

        # Not root: refused by the permission table before anything happens, nothing recorded.
        os.chmod(self.tmp, 0o711)  # let uid 65534 reach the private bus socket
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus_address)
        r = bench.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'busctl', '--system', 'call',
                       test_pam.AGENT_NAME, test_pam.AGENT_PATH, test_pam.AGENT_NAME, 'ResetPassword', 's',
                       OTHER_MEMBER], env=env)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('only root may reset a password', r.stderr + r.stdout)
        self.assertTrue(os.path.exists(path))
        # Not an operator id: refused.
        c = self.ctl('password', 'reset', '../etc')
        self.assertEqual(c.returncode, 1, c)
        self.assertTrue(os.path.exists(path))

        c = self.ctl('password', 'reset', OTHER_MEMBER)
        self.assertEqual(c.returncode, 0, c)
        self.assertIn(f'The password of operator {OTHER_MEMBER} on this terminal is removed (recorded)', c.stdout)
        self.assertFalse(os.path.exists(path))
        self.assertTrue(os.path.exists(os.path.join(self.pw_dir, MEMBER)))  # only that operator's
        rec = self.agent.wait_event('enroll', op=OTHER_MEMBER, action='reset', modality='password')
        self.assertIsNone(rec.get('card'))
        c = self.ctl('password', 'reset', OTHER_MEMBER)
        self.assertEqual(c.returncode, 1, c)
        self.assertIn(f'operator {OTHER_MEMBER} has no password on this terminal', c.stderr)
        c = self.ctl('password')
        self.assertEqual(c.returncode, 2, c)

        # The forgotten password no longer logs in: the words say how to set a new one.
        res = self.pam([[0, PAM_AUTH_ERR]], [PIN, PASSWORD], [OTHER_MEMBER])
        self.assertPam(res)
        self.assertTrue(any('No password is set for this operator on this terminal' in e for e in res['errors']),
                        res['errors'])
        self.agent.wait_event('auth.fail', op=OTHER_MEMBER, reason='password-unset')
        self.assertEqual(str(self.agent_property('State')), 'locked')

        # The first-login flow: their own card, a new password, then the group card and that password.
        self.swap_card(self.op1_card, lock=False)
        self.assertPam(self.pam([[0, PAM_SUCCESS]], [PIN]))
        self.assertEqual(str(self.agent_property('Operator')), OTHER_MEMBER)
        c = self.ctl('passwd', '--password', stdin=f'{NEW_PASSWORD}\n{NEW_PASSWORD}\n')
        self.assertEqual(c.returncode, 0, c)
        self.agent.wait_event('password.change', op=OTHER_MEMBER)
        self.swap_card(self.group_card, lock=True)
        res = self.pam([[0, PAM_SUCCESS]], [PIN, NEW_PASSWORD], [OTHER_MEMBER])
        self.assertPam(res)
        self.assertEqual(str(self.agent_property('Operator')), OTHER_MEMBER)


    def test_reset_ends_the_session_opened_with_that_password(self):
        """An administrator who resets a (compromised) password locks the live session that password
        opened: session.end reason password-reset after the reset's record, the screen locked. A card+PIN
        session of the same operator was not opened with it and stays."""
        self.both_members_with_password(self.op1_card)

        # OP0001 with their own card and PIN: their password's reset leaves that session.
        self.assertPam(self.pam([[0, PAM_SUCCESS]], [PIN]))
        self.assertEqual(str(self.agent_property('Method')), 'card+pin')
        c = self.ctl('password', 'reset', OTHER_MEMBER)
        self.assertEqual(c.returncode, 0, c)
        self.agent.wait_event('enroll', op=OTHER_MEMBER, action='reset', modality='password')
        self.assertEqual(str(self.agent_property('State')), 'active')
        self.assertEqual(str(self.agent_property('Operator')), OTHER_MEMBER)

        # OP0002 after the group card, with the password: its reset ends that session at once.
        self.swap_card(self.group_card, lock=True)
        self.assertPam(self.pam([[0, PAM_SUCCESS]], [PIN, PASSWORD], [MEMBER]))
        self.assertEqual(str(self.agent_property('Operator')), MEMBER)
        c = self.ctl('password', 'reset', MEMBER)
        self.assertEqual(c.returncode, 0, c)
        self.agent.wait_event('session.end', op=MEMBER, reason='password-reset')
        self.agent.wait_event('lock', reason='password-reset')
        bench.wait_until(lambda: str(self.agent_property('State')) == 'locked', timeout=10, what='State locked')
        self.assertEqual(str(self.agent_property('Operator')), '')
        names = [agentproc.parse_event(line)[0] for line in list(self.agent.events.lines)
                 if line.startswith(('enroll ', 'session.end '))]
        self.assertEqual(names[-2:], ['enroll', 'session.end'])  # the reset on record first
        # The first session ended when the screen was locked for the swap, not by its operator's reset.
        self.assertEqual([e.get('reason') for e in self.events('session.end') if e.get('op') == OTHER_MEMBER],
                         ['manual'])
        # And the reset password no longer opens anything.
        res = self.pam([[0, PAM_AUTH_ERR]], [PIN, PASSWORD], [MEMBER])
        self.assertTrue(any('No password is set for this operator on this terminal' in e for e in res['errors']),
                        res['errors'])

if __name__ == '__main__':
    unittest.main(verbosity=2)
