#!/usr/bin/python3
# Policy lifecycle at the centre (DESIGN.md §8): refresh before half the validity, a sticky emergency.
"""mamori-admin's policy lifecycle against a real store: `policy refresh` re-signs the current bundle
(same content, new issued/expires, serial+1) only once half its validity has passed and says so
otherwise; an emergency survives every ordinary publish (and refresh) until `emergency clear
--reason`, which is recorded in the register history with who and why. End to end: `card suspend`
+ `policy publish` at the centre ends a live session at the terminal (collector → mamori-uploader
with the default PollSec → mamorid with the virtual card, dbusmock logind)."""
import base64
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import enroltool  # noqa: E402
import bench  # noqa: E402
import policytool  # noqa: E402
import terminal  # noqa: E402
import test_upload  # noqa: E402
from test_collector import Centre  # noqa: E402

from cryptography.hazmat.primitives import serialization  # noqa: E402


class PolicyLifecycleTest(unittest.TestCase):
    def setUp(self):
        self._tmp = bench.TempDir('mamori-lifecycle-')
        self.tmp = self._tmp.__enter__()
        self.addCleanup(self._tmp.__exit__, None, None, None)

    def centre(self, validity='7d'):
        c = Centre(self.tmp, extra_conf=f'[Policy]\nValiditySec={validity}\n')
        c.add_terminal('T-0001', 'a')
        c.admin('operator', 'add', 'OP0001', '--office', 'chuo')
        self.signer = serialization.load_pem_public_key(c.admin('policy', 'signer').stdout.encode())
        return c

    def bundle(self, c):
        b = json.loads(c.admin('policy', 'show').stdout)
        # Independent check of every bundle: Ed25519 over the independent JCS bytes without "sig".
        self.signer.verify(base64.b64decode(b['sig']),
                           policytool.jcs_bytes({k: v for k, v in b.items() if k != 'sig'}))
        return b

    def history(self, c):
        return [line.split('\t') for line in c.admin('history').stdout.splitlines()]

    def test_refresh_resigns_past_half_validity_only(self):
        c = self.centre(validity='4s')
        r = c.admin('policy', 'refresh', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('no policy published yet: run mamori-admin policy publish', r.stderr)

        c.admin('policy', 'publish')
        first = self.bundle(c)
        self.assertEqual(first['expires'] - first['issued'], 4 * 1000000)
        # Before half the validity: nothing changes, and it says so.
        r = c.admin('policy', 'refresh')
        self.assertIn('is fresh', r.stdout)
        self.assertIn('nothing to do', r.stdout)
        self.assertEqual(self.bundle(c), first)

        # Past half: the same content re-signed, newly dated, serial + 1.
        half = first['issued'] + (first['expires'] - first['issued']) // 2
        time.sleep(max(0, half / 1e6 - time.time()) + 0.2)
        # Registry changes not yet published must not slip in with a refresh.
        c.admin('operator', 'add', 'OP0002', '--office', 'chuo')
        r = c.admin('policy', 'refresh')
        self.assertIn('re-signed as serial 2', r.stdout)
        second = self.bundle(c)
        self.assertEqual(second['serial'], first['serial'] + 1)
        self.assertGreaterEqual(second['issued'], half)
        self.assertEqual(second['expires'] - second['issued'], 4 * 1000000)
        same = {k: v for k, v in first.items() if k not in ('serial', 'issued', 'expires', 'sig')}
        self.assertEqual({k: v for k, v in second.items() if k not in ('serial', 'issued', 'expires', 'sig')}, same)
        self.assertEqual([o['id'] for o in second['operators']], ['OP0001'])
        # Fresh again right after.
        self.assertIn('nothing to do', c.admin('policy', 'refresh').stdout)
        self.assertEqual(self.bundle(c)['serial'], 2)

    def test_emergency_is_sticky_until_cleared_with_a_reason(self):
        c = self.centre()
        c.admin('policy', 'publish')
        self.assertFalse(self.bundle(c)['emergency'])
        c.admin('policy', 'publish', '--emergency', '--reason', 'leak suspected at chuo')
        self.assertTrue(self.bundle(c)['emergency'])

        # A routine publish (a registry change) keeps the emergency, and says how to lift it.
        c.admin('operator', 'add', 'OP0002', '--office', 'chuo')
        r = c.admin('policy', 'publish')
        self.assertIn('emergency clear --reason', r.stdout)
        b = self.bundle(c)
        self.assertTrue(b['emergency'])
        self.assertEqual(b['serial'], 3)
        self.assertIn('OP0002', [o['id'] for o in b['operators']])

        # Clearing needs a reason; without one nothing changes.
        r = c.admin('emergency', 'clear', check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn('--reason', r.stderr)
        self.assertEqual(self.bundle(c)['serial'], 3)

        r = c.admin('emergency', 'clear', '--reason', 'all clear after the audit')
        self.assertIn('emergency cleared', r.stdout)
        b = self.bundle(c)
        self.assertFalse(b['emergency'])
        self.assertEqual(b['serial'], 4)
        # Recorded: who set it and why, who cleared it and why.
        rows = [h for h in self.history(c) if h[1] == 'emergency']
        self.assertEqual([h[3] for h in rows], ['set', 'clear'])
        self.assertRegex(rows[0][4], r'^by=\S+.* serial=2 reason=leak suspected at chuo$')
        self.assertRegex(rows[1][4], r'^by=\S+.* serial=4 reason=all clear after the audit$')
        who = rows[1][4].split(' ')[0]
        self.assertNotEqual(who, 'by=')

        # Once cleared, ordinary publishes stay clear; clearing again is refused.
        c.admin('policy', 'publish')
        self.assertFalse(self.bundle(c)['emergency'])
        r = c.admin('emergency', 'clear', '--reason', 'again', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('no emergency is in force', r.stderr)

    def test_refresh_keeps_an_emergency(self):
        c = self.centre(validity='2s')
        c.admin('policy', 'publish', '--emergency')
        first = self.bundle(c)
        time.sleep(max(0, (first['issued'] + 1000000) / 1e6 - time.time()) + 0.2)
        c.admin('policy', 'refresh')
        b = self.bundle(c)
        self.assertEqual(b['serial'], 2)
        self.assertTrue(b['emergency'])


class SuspendEndsLiveSessionTest(unittest.TestCase):
    POLL_SEC = 60  # [Collector] PollSec= default

    def test_card_suspended_at_centre_ends_live_session(self):
        t = terminal.Terminal(self)
        policy_dir = os.path.join(t.tmp, 'agent-state', 'policy')
        os.unlink(os.path.join(policy_dir, 'policy.json'))  # only the centre's bundles from here on
        ctmp = os.path.join(t.tmp, 'centre')
        os.makedirs(ctmp)
        centre = Centre(ctmp)
        with open(centre.conf) as f:
            conf = f.read()
        with open(centre.conf, 'w') as f:
            f.write(conf.replace('Listen=127.0.0.1:0', f'Listen=127.0.0.1:{test_upload.free_port()}'))
        with open(t.signer.pub_path, 'w') as f:  # mamorid trusts the centre's policy key
            f.write(centre.admin('policy', 'signer').stdout)

        a = t.insert('OP0001')
        agent = t.start_agent()
        identity = os.path.join(t.tmp, 'agent-state', 'keys', 'identity.pem')
        bench.wait_until(lambda: os.path.exists(identity), timeout=10, what='identity key')
        pub = test_upload.public_pem(identity, os.path.join(t.tmp, 'identity.pub'))
        cert_dir = os.path.join(ctmp, 'T-0001')
        enroltool.enrol(centre.admin, 'T-0001', 'chuo', pub, cert_dir)
        centre.admin('operator', 'add', 'OP0001', '--office', 'chuo')
        centre.operator_ca(t.pki.ca_path)
        card_id = centre.admin('card', 'issue', '--cert', a.cert, '--operator', 'OP0001').stdout.strip()
        centre.admin('policy', 'publish')
        centre.start()
        self.addCleanup(centre.stop)

        up = test_upload.Terminal(t.tmp, name='uploader')
        up.log, up.policy = os.path.join(t.tmp, 'agent-state', 'log'), policy_dir
        up.configure(centre, cert_dir, poll=self.POLL_SEC, signer=t.signer.pub_path)
        up.start()
        self.addCleanup(up.stop)
        agent.wait_event('policy.load', timeout=30, serial='1')
        t.wait_card_seen(a)
        self.assertEqual(t.login(), 'OP0001')

        t.logind.clear_calls()
        t0 = time.monotonic()
        centre.admin('card', 'suspend', card_id, '--reason', 'lost on the train')
        centre.admin('policy', 'publish')
        agent.wait_event('session.end', timeout=self.POLL_SEC + 30, reason='card-suspended', op='OP0001')
        took = time.monotonic() - t0
        print(f'\n  card suspend + publish at the centre -> session.end card-suspended at the terminal: '
              f'{took:.2f} s (PollSec={self.POLL_SEC})', file=sys.stderr)
        bench.wait_until(lambda: t.logind.calls('LockSession'), timeout=5, what='LockSession')
        self.assertEqual(t.prop('State'), 'locked')
        self.assertLess(took, self.POLL_SEC + 30)


if __name__ == '__main__':
    unittest.main(verbosity=2)
