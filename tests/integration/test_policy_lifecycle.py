#!/usr/bin/python3
# Policy lifecycle at the centre (DESIGN.md §8): refresh before half the validity, a sticky emergency.
"""mamori-admin's policy lifecycle against a real store: `policy refresh` re-signs the current bundle
(same content, new issued/expires, serial+1) only once half its validity has passed and says so
otherwise; an emergency survives every ordinary publish (and refresh) until `emergency clear
--reason`, which is recorded in the register history with who and why."""
import base64
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import policytool  # noqa: E402
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


if __name__ == '__main__':
    unittest.main(verbosity=2)
