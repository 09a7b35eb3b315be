# Logins without a card through the PAM stack pam-auth-update writes from the shipped profile: finger + password, and the card that takes over.
"""Issue 12 through pamtester with the shipped stack (test_pamstack.py's throwaway root: the shipped
profile enabled by pam-auth-update, the built pam_mamori.so, the greeter-like ``other`` service whose
common-auth ends at pam_mamori) against mamorid with libfprint's real virtual sensor
(virtual_device_storage, which identifies; test_finger.py's FingerTerminal), the virtual card and
pcscd.

The account ``counter`` (in mamori-counter) logs in with no card in the reader: pam_mamori reads the
agent's Sensors ("finger"), invites the operator ("Touch the fingerprint sensor, or insert your card"),
StartBioLogin identifies the operator by the touch (1:N), and the operator's password opens the
session (Method finger+password). Checked: that login; a finger nobody enrolled refused in words
without a password prompt; wrong passwords answered later each time (the gaps between the prompts are
measured); a card inserted while the invitation waits takes over (card+pin, a group card whose member
identifies by finger, a non-member refused, card of A + finger of B under RequireFingerWithCard=yes →
lending-suspected on record); the invitation in ja_JP.UTF-8 and in C."""

import os
import select
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import test_pam  # noqa: E402
import test_pamstack  # noqa: E402
from test_finger import FingerTerminal  # noqa: E402
from test_pamstack import GREETER  # noqa: E402

PIN = test_pamstack.PIN
PASSWORD = 'yubi-to-kagi 2026'
INVITE = 'Touch the fingerprint sensor, or insert your card'
INVITE_JA = '指紋センサーに触れるか、カードを挿入してください'


class Transcript:
    """A pamtester run whose output is read as it comes, each piece with the time it came."""

    def __init__(self, proc):
        self.proc = proc
        self.pieces = {'stdout': [], 'stderr': []}
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        fds = {self.proc.stdout.fileno(): 'stdout', self.proc.stderr.fileno(): 'stderr'}
        while fds:
            ready, _, _ = select.select(list(fds), [], [], 1.0)
            for fd in ready:
                data = os.read(fd, 4096)
                if not data:
                    del fds[fd]
                    continue
                self.pieces[fds[fd]].append((time.monotonic(), data.decode('utf-8', 'replace')))

    def text(self, name):
        return ''.join(p for _, p in list(self.pieces[name]))

    def wait(self, timeout=120):
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        self.stdout, self.stderr = self.text('stdout'), self.text('stderr')
        self.returncode = self.proc.returncode
        return self

    def times_of(self, name, needle):
        """When each occurrence of needle was first seen in stream name (pieces joined as they came)."""
        seen, text, found = [], '', 0
        for t, piece in list(self.pieces[name]):
            text += piece
            while text.count(needle) > found:
                found += 1
                seen.append(t)
        return seen


@unittest.skipUnless(os.geteuid() == 0, 'needs root (mount namespace, overlays, useradd)')
class PamStackBio(test_pamstack.RootCase):
    """Each test: one counter terminal with a virtual fingerprint sensor, the shipped PAM stack."""

    TMP_PREFIX = 'mamori-pambio-'

    # --- the terminal -------------------------------------------------------------------------

    def terminal(self, **kw):
        t = self.use_terminal(FingerTerminal(self, **kw))
        self.agent = t.start_agent()
        return t

    def restart_agent(self, **session):
        """A new mamorid with [Session] changed; the virtual storage sensor forgets its prints with the
        old one, so they are put back."""
        t = self.term
        self.agent.stop()
        t.session_conf.update(session)
        os.unlink(t.sock)
        self.agent = t.start_agent()
        t.fp(*[f'INSERT {f}' for f in self.fingers])

    def enroll(self, *pairs):
        self.fingers = getattr(self, 'fingers', [])
        for op, finger in pairs:
            self.term.enroll(op, finger)
            self.fingers.append(finger)
        # enroll() pulls each card; it waits for a card.removed that may be an earlier one.
        bench.wait_until(lambda: not bool(self.term.prop('CardPresent')), timeout=10, what='CardPresent false')

    def set_password(self, op, password):
        """In op's card session, as the operator would with mamorictl passwd --password; the card is
        pulled after."""
        t = self.term
        t.card_session(op)
        t.iface().ChangePassword('', password)
        t.iface().Lock()
        self.pull()

    def pull(self):
        """Pulls the card and waits until the agent has seen it go."""
        t = self.term
        mark = self.agent.events.mark()
        t.vcard.pull()
        self.agent.wait_event('card.removed', after=mark)
        bench.wait_until(lambda: not bool(t.prop('CardPresent')), timeout=10, what='CardPresent false')

    def state(self):
        return str(self.term.prop('State'))

    def events(self, name):
        import agentproc
        return [agentproc.parse_event(line)[1] for line in list(self.agent.events.lines)
                if line.startswith(name + ' ')]

    # --- PAM ---------------------------------------------------------------------------------

    def pam_start(self, answers, lang='C', user='counter', op='authenticate'):
        """pamtester GREETER USER OP (as root, as a display manager runs it) with answers on stdin, read
        as it runs. lang: the conversation's language (LANG/LC_ALL of the application)."""
        env = self.pamtester_env(lang)
        if lang != 'C':
            env.update(test_pam.catalogue_env())
            loc = test_pam.ja_locale_env(self.tmp)
            if loc is None:
                self.skipTest('no ja_JP.UTF-8 locale and localedef cannot make one (Debian package locales)')
            env.update(loc)
        with self.preloaded():
            p = subprocess.Popen(['pamtester', '-v', GREETER, user, op], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            self.addCleanup(self.reap, p)
            p.stdin.write(''.join(a + '\n' for a in answers).encode())
            p.stdin.close()
            if self.preload_libs:
                # ld.so.preload counts at exec only: once pamtester runs with libasan, take it away,
                # so nothing else started meanwhile (a virtual card) gets it.
                bench.wait_until(lambda: p.poll() is not None or 'libasan' in read_text(f'/proc/{p.pid}/maps'),
                                 timeout=20, what='pamtester started')
        return Transcript(p)

    def reap(self, p):
        if p.poll() is None:
            p.kill()
        p.wait()
        for f in (p.stdout, p.stderr):
            f.close()

    def pam_finish(self, tr, timeout=120):
        tr.wait(timeout)
        self.assertNotIn('Sanitizer', tr.stderr, tr.stderr)
        return tr

    def finger_login(self, finger, answers, lang='C'):
        """No card: pamtester waits at the invitation, the finger touches when the agent scans."""
        tr = self.pam_start(answers, lang=lang)
        self.wait_step_or_say(tr, 'finger')
        self.term.fp(f'SCAN {finger}')
        return self.pam_finish(tr)

    def wait_step_or_say(self, tr, step, timeout=30):
        try:
            self.term.wait_step(step, timeout=timeout)
        except TimeoutError:
            tr.proc.kill()
            tr.wait(10)
            raise AssertionError(f'the agent never waited for {step}; pamtester said:\nstdout: {tr.stdout}\n'
                                 f'stderr: {tr.stderr}\nmamorid: ' + '\n'.join(list(self.agent.events.lines)[-15:]))

    def wait_finger_after_pin(self, tr, card):
        """The card took over (its PIN was asked: the bio login is cancelled by then) and the PIN was
        taken: the login waits for the finger of the card's login now."""
        t = self.term
        bench.wait_until(lambda: 'PIN' in tr.text('stderr') and str(t.prop('Step')) == 'finger'
                         and str(t.prop('Card')) == card.card_id, timeout=30,
                         what='the card\'s PIN taken, its finger step awaited')

    # --- finger + password, no card -------------------------------------------------------------

    def test_finger_then_password_logs_in_as_the_finger_s_operator(self):
        t = self.terminal()
        self.enroll(('OP0001', 'finger-a'), ('OP0002', 'finger-b'))
        self.set_password('OP0002', PASSWORD)
        self.assertEqual(list(t.prop('Sensors')), ['finger'])
        t0 = time.monotonic()
        tr = self.finger_login('finger-b', [PASSWORD])
        self.assertAuthenticated(tr, 'finger of OP0002, then its password')
        print(f'PAMBIO finger+password through the shipped stack: {time.monotonic() - t0:.2f} s '
              'from pamtester start to its exit', file=sys.stderr)
        self.assertIn(INVITE, tr.stdout)
        self.assertIn('Password:', tr.stderr)
        self.assertNotIn('PIN', tr.stderr)
        self.assertEqual(self.state(), 'active')
        self.assertEqual(str(t.prop('Operator')), 'OP0002')  # picked by the touch among two
        self.assertEqual(str(t.prop('Method')), 'finger+password')
        self.agent.wait_event('auth.ok', op='OP0002', method='finger+password')
        self.agent.wait_event('session.start', op='OP0002', method='finger+password')
        # The account step of the shipped stack passes for a password session too.
        acct = self.pam_finish(self.pam_start([], op='acct_mgmt'))
        self.assertEqual(acct.returncode, 0, acct.stderr)
        self.assertIn('account management done', acct.stdout)
        # The card-less session ends like any other: session.end on record without a card, the log
        # still writable, and the next operator's finger logs in.
        mark = self.agent.events.mark()
        t.iface().Lock()
        end = self.agent.wait_event('session.end', op='OP0002', reason='manual', after=mark)
        self.assertNotIn('card', end)
        self.assertTrue(bool(t.prop('LogWritable')))
        self.set_password('OP0001', PASSWORD + ' too')
        tr = self.finger_login('finger-a', [PASSWORD + ' too'])
        self.assertAuthenticated(tr, 'the next operator after a finger session was locked')
        self.assertEqual(str(t.prop('Operator')), 'OP0001')

    def test_verify_only_sensor_asks_the_operator_id(self):
        """A sensor that cannot identify (libfprint's virtual_device): the shared counter account names
        no operator, so the module asks the operator id, the touch is verified 1:1 against that
        operator's prints, then the password. Another operator's finger under that id is refused."""
        t = self.terminal(storage=False)
        self.enroll(('OP0001', 'finger-a'), ('OP0002', 'finger-b'))
        self.set_password('OP0002', PASSWORD)
        tr = self.pam_start(['OP0002', PASSWORD])
        self.wait_step_or_say(tr, 'finger')
        t.fp('SCAN finger-b')
        tr = self.pam_finish(tr)
        self.assertAuthenticated(tr, 'operator id, 1:1 finger, password')
        self.assertIn('Operator ID:', tr.stdout + tr.stderr)
        self.assertEqual(str(t.prop('Operator')), 'OP0002')
        self.assertEqual(str(t.prop('Method')), 'finger+password')
        mark = self.agent.events.mark()
        t.iface().Lock()
        self.agent.wait_event('session.end', op='OP0002', after=mark)
        # OP0001's finger under OP0002's id: no match, recorded against the id given.
        tr = self.pam_start(['OP0002', PASSWORD])
        self.wait_step_or_say(tr, 'finger')
        t.fp('SCAN finger-a')
        tr = self.pam_finish(tr)
        self.assertRefused(tr, "another operator's finger under OP0002's id")
        self.agent.wait_event('auth.fail', reason='finger-no-match', op='OP0002', after=mark)
        self.assertEqual(self.state(), 'locked')

    def test_wrong_finger_is_refused_in_words_and_no_password_is_asked(self):
        t = self.terminal()
        self.enroll(('OP0001', 'finger-a'))
        self.set_password('OP0001', PASSWORD)
        tr = self.finger_login('finger-nobody', [PASSWORD])
        self.assertRefused(tr, 'a finger nobody enrolled')
        self.assertIn(INVITE, tr.stdout)
        self.assertIn('Finger not recognised — touch the sensor again, or use your card', tr.stderr)
        self.assertNotIn('Password:', tr.stderr)
        self.assertEqual(self.state(), 'locked')
        fail = self.agent.wait_event('auth.fail', reason='finger-no-match', method='finger+password')
        self.assertNotIn('op', fail)  # a shared account's name is no operator: not recorded as one
        self.assertEqual([e for e in self.events('auth.ok') if e.get('method') != 'card+pin'], [])

    def test_wrong_password_is_answered_later_each_time(self):
        t = self.terminal()
        self.enroll(('OP0001', 'finger-a'))
        self.set_password('OP0001', PASSWORD)
        # The shipped profile's max_tries is 3: three wrong passwords in one conversation.
        tr = self.finger_login('finger-a', ['wrong one', 'wrong two', 'wrong three'])
        self.assertRefused(tr, 'three wrong passwords')
        prompts = tr.times_of('stderr', 'Password:')
        wrongs = tr.times_of('stderr', 'Password wrong')
        self.assertEqual(len(prompts), 3, tr.stderr)
        self.assertEqual(len(wrongs), 3, tr.stderr)
        # Each answer (after the agent's delay of 1 s, 2 s, 4 s) comes later than the one before.
        took = [w - p for p, w in zip(prompts, wrongs)]
        print('PAMBIO wrong password answers through PAM: ' + ', '.join(f'{x:.2f} s' for x in took),
              file=sys.stderr)
        self.assertGreaterEqual(took[0], 1.0, took)
        self.assertGreaterEqual(took[1], 2.0, took)
        self.assertGreaterEqual(took[2], 4.0, took)
        self.assertGreater(took[1], took[0], took)
        self.assertGreater(took[2], took[1], took)
        self.assertEqual(self.state(), 'locked')  # the last wrong one ended the login

        def counted():
            return sum(int(f.get('repeats', 1)) for f in self.events('auth.fail')
                       if f.get('reason') == 'password-wrong')
        bench.wait_until(lambda: counted() >= 3, timeout=15, what='three password-wrong failures on record')
        for f in self.events('auth.fail'):
            if f.get('reason') == 'password-wrong':
                self.assertEqual((f.get('op'), f.get('method')), ('OP0001', 'finger+password'))
        # The right password still opens (after the last failure's delay), in the next conversation.
        tr = self.finger_login('finger-a', [PASSWORD])
        self.assertAuthenticated(tr, 'the right password after three wrong ones')
        self.assertEqual(str(t.prop('Operator')), 'OP0001')

    # --- a card while the invitation waits ------------------------------------------------------

    def test_card_inserted_while_the_invitation_waits_takes_over(self):
        t = self.terminal()
        self.enroll(('OP0001', 'finger-a'))
        tr = self.pam_start([PIN])
        self.wait_step_or_say(tr, 'finger')
        t0 = time.monotonic()
        card = t.insert('OP0001')
        tr = self.pam_finish(tr)
        self.assertAuthenticated(tr, 'card inserted while the finger was awaited, then its PIN')
        self.assertIn(INVITE, tr.stdout)
        self.assertIn('PIN', tr.stderr)
        self.assertEqual(str(t.prop('Method')), 'card+pin')
        self.assertEqual(str(t.prop('Operator')), 'OP0001')
        ev = self.agent.wait_event('session.start', op='OP0001', method='card+pin')
        self.assertEqual(ev.get('card'), card.card_id)
        print(f'PAMBIO card takes over the finger invitation: session {time.monotonic() - t0:.2f} s after the '
              'insert', file=sys.stderr)

    def test_group_card_member_finger_and_non_member(self):
        t = self.terminal(group=('G-1', ['OP0001', 'OP0002']))
        self.enroll(('OP0002', 'finger-b'), ('OP0003', 'finger-c'))
        # The member: group card during the invitation, its PIN, then the member's finger.
        tr = self.pam_start([PIN])
        self.wait_step_or_say(tr, 'finger')
        g = t.insert('G1')
        t.wait_card_seen(g)
        self.wait_finger_after_pin(tr, g)
        t.fp('SCAN finger-b')
        tr = self.pam_finish(tr)
        self.assertAuthenticated(tr, 'group card + member finger')
        self.assertIn(INVITE, tr.stdout)
        self.assertIn('Touch the fingerprint sensor', tr.stdout)
        self.assertEqual(str(t.prop('Operator')), 'OP0002')
        self.assertEqual(str(t.prop('Method')), 'group-card+finger')
        ev = self.agent.wait_event('session.start', op='OP0002', method='group-card+finger')
        self.assertEqual(ev.get('card'), g.card_id)
        t.iface().Lock()
        self.pull()
        # A non-member's finger after the group card: refused as not-group-member, on record.
        tr = self.pam_start([PIN])
        self.wait_step_or_say(tr, 'finger')
        g = t.insert('G1')
        self.wait_finger_after_pin(tr, g)
        t.fp('SCAN finger-c')
        tr = self.pam_finish(tr)
        self.assertRefused(tr, 'group card + a non-member\'s finger')
        self.assertIn('not a member of this card\'s group', tr.stderr)
        ev = self.agent.wait_event('auth.fail', reason='not-group-member', op='OP0003')
        self.assertEqual(ev.get('card'), g.card_id)
        self.assertEqual(self.state(), 'locked')

    def test_card_of_a_with_finger_of_b_is_lending_suspected(self):
        t = self.terminal()
        self.enroll(('OP0001', 'finger-a'), ('OP0002', 'finger-b'))
        self.restart_agent(RequireFingerWithCard='yes')
        tr = self.pam_start([PIN])
        self.wait_step_or_say(tr, 'finger')
        a = t.insert('OP0001')
        self.wait_finger_after_pin(tr, a)
        t.fp('SCAN finger-b')
        tr = self.pam_finish(tr)
        self.assertRefused(tr, 'card of OP0001 + finger of OP0002')
        self.assertIn('cards are personal', tr.stderr)
        ev = self.agent.wait_event('auth.fail', reason='lending-suspected')
        self.assertEqual((ev.get('op'), ev.get('finger_operator')), ('OP0001', 'OP0002'))
        self.assertEqual(self.state(), 'locked')
        self.assertEqual(self.events('session.start'), [])

    # --- the words --------------------------------------------------------------------------

    def test_invitation_in_japanese_and_in_english(self):
        t = self.terminal()
        self.enroll(('OP0001', 'finger-a'))
        self.set_password('OP0001', PASSWORD)
        tr = self.finger_login('finger-nobody', [PASSWORD], lang='ja_JP.UTF-8')
        self.assertRefused(tr)
        self.assertIn(INVITE_JA, tr.stdout)
        self.assertNotIn(INVITE, tr.stdout)
        self.assertIn('指紋を認識できません', tr.stderr + tr.stdout)
        tr = self.finger_login('finger-a', [PASSWORD], lang='C')
        self.assertAuthenticated(tr)
        self.assertIn(INVITE, tr.stdout)
        self.assertNotIn(INVITE_JA, tr.stdout)


def read_text(path):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return f.read()
    except OSError:
        return ''


if __name__ == '__main__':
    unittest.main(verbosity=2)
