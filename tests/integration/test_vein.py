#!/usr/bin/python3
"""Vein + password end to end (issue 12): mamorid loading the real simulated vein reader
(tests/bio/vein-test-plugin.c, built as mamori-vein-test.so and installed root-only the way
`[Biometric] VeinPlugin=` wants it), the virtual card, pcscd, a private bus and the mock logind.
Enrolment in a card session (`mamorictl enroll vein`, in English and Japanese), templates on disk
root-only beside the fingerprints, vein+password through D-Bus (1:N, and 1:1 on a reader that only
verifies), no match and an unusable capture recorded, a scan cancelled by CancelLogin, by a card
inserted meanwhile and by the client going away, the reader unplugged, a retired operator's
templates deleted and recorded, `mamorictl prints list|delete` over both modalities.

The plugin listens on a Unix socket and takes one ASCII command per connection (SCAN id, RETRY,
GONE, STAGES n), answering "ok" once a capture took it; a capture with nothing queued waits until
cancelled, so every test answers or cancels its scans before it ends."""
import json
import os
import shutil
import socket
import stat
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from terminal import BioTerminal  # noqa: E402

PLUGIN = 'mamori-vein-test.so'


class VeinTerminal(BioTerminal):
    """A terminal with the simulated vein reader behind [Biometric] VeinPlugin= (and no fingerprint
    sensor)."""

    SENSOR_WHAT = 'the vein reader open'

    def __init__(self, test, verify_only=False, operators=('OP0001', 'OP0002', 'OP0003'), extra_ops=()):
        super().__init__(test, 'vein.sock', cards=operators, extra_ops=extra_ops)
        # Root-only, as the loader demands: the plugin's directory 0755 root, the file 0644 root.
        self.plugins = os.path.join(self.tmp, 'plugins')
        os.mkdir(self.plugins, 0o755)
        os.chmod(self.plugins, 0o755)
        self.plugin = os.path.join(self.plugins, 'vein.so')
        shutil.copy(os.path.join(bench.build_dir(), 'tests', 'bio', PLUGIN), self.plugin)
        os.chmod(self.plugin, 0o644)
        self.options = self.sock + (' verify-only' if verify_only else '')
        # No fingerprint sensor: libfprint's virtual driver without its socket finds nothing.
        self.agent_env = {'FP_DRIVERS_WHITELIST': 'virtual_device'}

    def agent_config(self):
        return dict(super().agent_config(), Biometric={'VeinPlugin': self.plugin, 'VeinPluginOptions': self.options})

    def start_agent(self):
        if geteuid() != 0:
            self.test.skipTest('a root-owned plugin file needs root')
        return super().start_agent()

    def vein(self, cmd, wait=True):
        """One command to the simulated reader; with wait, until a capture took it ("ok")."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(20)
        s.connect(self.sock)
        s.sendall(cmd.encode() + b'\n')
        if wait:
            self.test.assertEqual(s.recv(16), b'ok\n', f'the reader did not take {cmd}')
        s.close()

    def enroll(self, op, hand, password=None, env=None):
        """Card session of op, `mamorictl enroll vein`, three captures; the password too when given.
        Returns mamorictl's output."""
        card = self.card_session(op)
        text = ''.join(self.enroll_captures('vein', 3, lambda i: self.vein(f'SCAN {hand}'), env=env))
        self.agent.wait_event('enroll', op=op, action='enrolled', modality='vein')
        if password:
            self.iface().ChangePassword('', password)
        self.end_card_session(card)
        return text


def geteuid():
    return os.geteuid()


class VeinLoginTest(unittest.TestCase):
    """A reader that identifies (1:N): nobody types an operator id."""

    def setUp(self):
        self.t = VeinTerminal(self)
        self.agent = self.t.start_agent()

    def test_enrol_then_vein_password_login(self):
        t = self.t
        text = t.enroll('OP0001', 'hand-a', password='vein-pass-1')
        self.assertIn('Place your hand on the vein reader', text)
        self.assertIn('Place your hand again, 2 of 3', text)
        self.assertIn('Place your hand again, 3 of 3', text)
        self.assertIn('Enrolled: vein pattern 1 of operator OP0001', text)
        t.enroll('OP0002', 'hand-b', password='vein-pass-2')
        # Root-only on disk, beside the prints: DIR and operator directories 0700, templates 0600.
        self.assertEqual(stat.S_IMODE(os.stat(t.prints).st_mode), 0o700)
        for op in ('OP0001', 'OP0002'):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(t.prints, op)).st_mode), 0o700)
            st = os.stat(os.path.join(t.prints, op, '1.vein'))
            self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid), (0o600, 0))
        listing = t.ctl('prints', 'list', '--json')
        self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertEqual(sorted((p['operator'], p['modality'], p['slot']) for p in json.loads(listing.stdout)),
                         [('OP0001', 'vein', 1), ('OP0002', 'vein', 1)])
        # The login screen learns what it can offer without a card.
        self.assertEqual([str(x) for x in t.prop('Sensors')], ['vein'])

        # The hand picks OP0002 among the two; its password opens the session.
        p = t.client(['StartBioLogin', '', 'vein'], ['AnswerPassword', '', 'vein-pass-2'])
        t.wait_step('vein')
        self.assertEqual(t.prop('State'), 'authenticating')
        t.vein('SCAN hand-b')
        res = t.results(p)
        self.assertEqual(res[0]['ok'], ['OP0002', 'password'], res)
        self.assertEqual(res[1]['ok'], 'OP0002', res)
        self.assertEqual(t.prop('State'), 'active')
        self.assertEqual(t.prop('Operator'), 'OP0002')
        self.assertEqual(t.prop('Method'), 'vein+password')
        ev = self.agent.wait_event('auth.ok', op='OP0002')
        self.assertEqual(ev['method'], 'vein+password')
        self.assertNotIn('card', ev)
        self.agent.wait_event('session.start', op='OP0002', method='vein+password')
        # A template is bound to a card-verified identity: no enrolment in a vein session.
        r = t.ctl('enroll', 'vein')
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('card session', r.stderr)
        # The session ends on record without a card field (there is none) and the log stays writable.
        t.iface().Lock()
        self.assertEqual(t.prop('State'), 'locked')
        ev = self.agent.wait_event('session.end', op='OP0002', reason='manual')
        self.assertNotIn('card', ev)
        self.assertTrue(t.prop('LogWritable'))

    def test_no_match_and_unreadable_recorded(self):
        t = self.t
        t.enroll('OP0001', 'hand-a')
        p = t.client(['StartBioLogin', '', 'vein'])
        t.wait_step('vein')
        t.vein('SCAN hand-z')  # a hand nobody enrolled
        res = t.results(p)
        self.assertEqual(res[0].get('error'), 'VeinNoMatch', res)
        ev = self.agent.wait_event('auth.fail', reason='vein-no-match')
        self.assertEqual(ev['method'], 'vein+password')
        self.assertEqual(t.prop('State'), 'locked')
        p = t.client(['StartBioLogin', '', 'vein'])
        t.wait_step('vein')
        t.vein('RETRY')
        res = t.results(p)
        self.assertEqual(res[0].get('error'), 'VeinUnreadable', res)
        self.agent.wait_event('auth.fail', reason='vein-unreadable', method='vein+password')
        # The reader is free again: the enrolled hand still logs in.
        p = t.client(['StartBioLogin', '', 'vein'], ['CancelLogin'])
        t.wait_step('vein')
        t.vein('SCAN hand-a')
        self.assertEqual(t.results(p)[0]['ok'], ['OP0001', 'password'])

    def test_scan_cancelled_by_cancel_login_card_and_client_gone(self):
        t = self.t
        t.enroll('OP0001', 'hand-a')
        # CancelLogin from the client that started it, while the reader waits for a hand.
        p = t.client(['async', 'StartBioLogin', '', 'vein'], ['wait_step', 'vein'], ['CancelLogin'])
        res = t.results(p)
        self.assertEqual(res[1]['ok'], None, res)  # CancelLogin answered
        self.assertEqual(res[2]['method'], 'StartBioLogin')
        # Cancelled, a reason of the table with its own words (it was CardError "cancelled": the
        # operator read "Card could not be read").
        self.assertEqual(res[2].get('error'), 'Cancelled', res)
        self.assertEqual(res[2].get('message'), 'cancelled', res)
        self.assertEqual(t.prop('State'), 'locked')
        self.assertEqual(t.prop('Step'), '')

        # A card inserted while the reader waits: the operator chose the card. The scan ends at once,
        # nothing is recorded as a failure, and the card logs in.
        p = t.client(['async', 'StartBioLogin', '', 'vein'], ['wait_step', 'vein'])
        t.wait_step('vein')
        t0 = time.monotonic()
        card = t.insert('OP0001')
        res = t.results(p)
        self.assertEqual(res[1].get('error'), 'NotPending', res)
        self.assertIn('card was inserted', res[1]['message'])
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(t.prop('State'), 'locked')
        self.assertTrue(t.prop('CardPresent'))
        self.assertEqual(t.login(), 'OP0001')
        t.end_card_session(card)

        # The client going away cancels its scan; the reader is free for the next one at once.
        p = t.client(['StartBioLogin', '', 'vein'])
        t.wait_step('vein')
        p.kill()
        p.wait()
        bench.wait_until(lambda: t.prop('State') == 'locked', timeout=10, what='login cancelled')
        p = t.client(['StartBioLogin', '', 'vein'], ['CancelLogin'])
        t.wait_step('vein')
        t.vein('SCAN hand-a')
        self.assertEqual(t.results(p)[0]['ok'], ['OP0001', 'password'])
        self.assertFalse([x for x in t.agent.events.lines if x.startswith('auth.fail')],
                         'a cancelled scan is no failure')

    def test_reader_gone_during_a_scan(self):
        t = self.t
        t.enroll('OP0001', 'hand-a')
        p = t.client(['StartBioLogin', '', 'vein'])
        t.wait_step('vein')
        t.vein('GONE')
        res = t.results(p)
        self.assertEqual(res[0].get('error'), 'BioUnavailable', res)
        self.agent.wait_event('auth.fail', reason='bio-unavailable', method='vein+password')
        self.assertEqual(t.prop('State'), 'locked')
        # The vein thread opens the reader again by itself (the plugin listens again): it is back
        # in Sensors, and the next login works.
        bench.wait_until(lambda: [str(x) for x in t.prop('Sensors')] == ['vein'], timeout=10,
                         what='the reader back in Sensors')
        p = t.client(['StartBioLogin', '', 'vein'], ['CancelLogin'])
        t.wait_step('vein')
        t.vein('SCAN hand-a')
        self.assertEqual(t.results(p)[0]['ok'], ['OP0001', 'password'])

    def test_retired_operator_templates_deleted_and_recorded(self):
        t = self.t
        t.enroll('OP0002', 'hand-b')
        t.enroll('OP0003', 'hand-c')
        t.publish(serial=2, op_status={'OP0003': 'retired'})
        self.agent.wait_event('enroll', op='OP0003', action='retired-deleted', modality='vein', prints='1')
        self.assertFalse(os.path.exists(os.path.join(t.prints, 'OP0003')))
        self.assertTrue(os.path.exists(os.path.join(t.prints, 'OP0002', '1.vein')))
        # The retired operator's hand opens nothing any more.
        p = t.client(['StartBioLogin', '', 'vein'])
        t.wait_step('vein')
        t.vein('SCAN hand-c')
        self.assertEqual(t.results(p)[0].get('error'), 'VeinNoMatch')
        # Deleted by root: recorded with its modality.
        r = t.ctl('prints', 'delete', '--modality', 'vein', 'OP0002')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('Deleted 1 vein pattern of operator OP0002', r.stdout)
        self.agent.wait_event('enroll', op='OP0002', action='deleted', modality='vein')
        self.assertFalse(os.path.exists(os.path.join(t.prints, 'OP0002')))
        r = t.ctl('prints', 'delete', 'OP0002')
        self.assertIn('had no enrolled prints or vein patterns', r.stdout)


class VeinVerifyOnlyTest(unittest.TestCase):
    """A reader that can only verify: the operator id is given, 1:1."""

    def test_one_to_one(self):
        t = VeinTerminal(self, verify_only=True)
        agent = t.start_agent()
        t.enroll('OP0001', 'hand-a')
        t.enroll('OP0002', 'hand-b')
        p = t.client(['StartBioLogin', 'OP0001', 'vein'], ['CancelLogin'])
        t.wait_step('vein')
        t.vein('SCAN hand-a')
        self.assertEqual(t.results(p)[0]['ok'], ['OP0001', 'password'])
        p = t.client(['StartBioLogin', 'OP0001', 'vein'])
        t.wait_step('vein')
        t.vein('SCAN hand-b')  # another enrolled hand is not OP0001's
        res = t.results(p)
        self.assertEqual(res[0].get('error'), 'VeinNoMatch', res)
        ev = agent.wait_event('auth.fail', reason='vein-no-match')
        self.assertEqual(ev['op'], 'OP0001')
        # Without an operator's id there is nothing to verify against: the caller is told to ask it
        # (Step "operator-id"), no capture is asked for and nothing starts.
        p = t.client(['StartBioLogin', '', 'vein'])
        self.assertEqual(t.results(p, timeout=20)[0].get('ok'), ['', 'operator-id'])
        self.assertEqual(str(t.prop('State')), 'locked')


class VeinLanguageTest(unittest.TestCase):
    """mamorictl enroll vein and enroll finger speak the operator's language."""

    def test_enrol_in_japanese(self):
        import test_pam
        t = VeinTerminal(self)
        t.start_agent()
        po = test_pam.catalogue_env()
        if not os.path.exists(os.path.join(po['MAMORI_LOCALEDIR'], 'ja', 'LC_MESSAGES', 'mamori.mo')):
            self.fail('po/ja.po was not built into build/po (meson i18n)')
        loc = test_pam.ja_locale_env(t.tmp)
        if loc is None:
            self.skipTest('no ja_JP.UTF-8 locale and localedef cannot make one (Debian package locales)')
        env = dict(po, **loc, LANG='ja_JP.UTF-8', LC_ALL='ja_JP.UTF-8')
        text = t.enroll('OP0001', 'hand-a', env=env)
        self.assertIn('静脈センサーに手をかざしてください', text)
        self.assertIn('もう一度手をかざしてください（2/3 回目）', text)
        self.assertIn('登録しました：操作者 OP0001 の静脈パターン 1 番', text)
        # Without a card session: the refusal in Japanese too (the reason table's words).
        r = t.ctl('enroll', 'finger', env=env)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('登録できませんでした', r.stderr)
        r = t.ctl('enroll', 'vein', env={'LANG': 'C', 'LC_ALL': 'C'})
        self.assertIn('enrolment failed', r.stderr)


if __name__ == '__main__':
    unittest.main()
