# The card layer (auth/card*.c) over a real pcscd and the virtual PIV card, through card-probe.
"""Reads the card id, verifies right and wrong PINs, authenticates with P-256, P-384 and RSA-2048
keys, and counts card exchanges both on our side and on the card's side."""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

PIN = '123456'


def probe_exe():
    return os.path.join(bench.build_dir(), 'tests', 'integration', 'card-probe')


class CardPcsc(unittest.TestCase):

    def setUp(self):
        self.started = []
        self.addCleanup(self._check_no_leftovers)
        self.tmp = self.enter(bench.TempDir())
        self.pki = bench.TestPKI(self.tmp)

    def enter(self, cm):
        value = cm.__enter__()
        self.addCleanup(cm.__exit__, None, None, None)
        proc = getattr(cm, 'proc', None)
        if proc is not None:
            self.started.append(proc.pid)
        return value

    def _check_no_leftovers(self):
        alive = []
        for pid in self.started:
            try:
                with open(f'/proc/{pid}/stat', encoding='ascii') as f:
                    if f.read().rsplit(')', 1)[1].split()[0] != 'Z':
                        alive.append(pid)
            except FileNotFoundError:
                pass
        self.assertEqual(alive, [], 'processes left running after the test')

    def start(self, kind='p256', tries=3, fault=None):
        self.card = self.pki.issue('OP0001', kind)
        port = bench.free_vpcd_port()
        self.pcscd = self.enter(bench.Pcscd(self.tmp, port))
        self.vcard = self.enter(bench.VCard(port, self.card.key, self.card.cert, PIN, tries=tries, fault=fault))
        self.env = self.pcscd.client_env()
        self.pcscd.wait_card(True)

    def probe(self, *args):
        """Runs card-probe on reader 0; returns (exit code, {key: value}, card-side APDU count)."""
        before = self.vcard.apdu_count() if self.vcard.proc else 0
        r = bench.run([probe_exe(), '--reader', bench.READER0] + list(args), env=self.env, timeout=60)
        out = dict(re.findall(r'^(\w+)=(.*)$', r.stdout, re.M))
        self.assertIn('result', out, f'card-probe said nothing useful:\n{r.stdout}\n{r.stderr}')
        after = self.vcard.apdu_count() if self.vcard.proc else 0
        return r.returncode, out, after - before

    def login(self, pin, cert=None):
        return self.probe('login', '--pin', pin, '--cert', cert or self.card.cert)

    def check_kind(self, kind, login_exchanges):
        self.start(kind)
        rc, out, _ = self.probe('id')
        self.assertEqual((rc, out['result']), (0, 'ok'), out)
        self.assertEqual(out['id'], self.card.card_id)
        self.assertEqual(int(out['der_len']), len(self.card.der))

        rc, out, card_side = self.login('654321')
        self.assertEqual((rc, out['result'], out.get('tries')), (1, 'pin-wrong', '2'), out)

        rc, out, card_side = self.login(PIN)
        self.assertEqual((rc, out['result']), (0, 'ok'), out)
        # Cached certificate: select + verify + sign (+ chaining and GET RESPONSE for RSA).
        self.assertEqual(int(out['exchanges']), login_exchanges, out)
        self.assertEqual(card_side, login_exchanges, 'the card counted a different number of APDUs')
        print(f'\n  {kind}: login with cached certificate: {out["exchanges"]} exchanges, '
              f'{int(out["elapsed_us"]) / 1000:.1f} ms', file=sys.stderr)

        # Reading the certificate as well, from the card.
        rc, out, _ = self.probe('login', '--pin', PIN, '--read-cert')
        self.assertEqual((rc, out['result']), (0, 'ok'), out)

        # A certificate of another key: the card's signature must not verify with it.
        other = self.pki.issue('OP0002', kind)
        rc, out, _ = self.login(PIN, other.cert)
        self.assertEqual((rc, out['result']), (1, 'signature-invalid'), out)

    def test_p256(self):
        self.check_kind('p256', 3)

    def test_p384(self):
        self.check_kind('p384', 3)

    def test_rsa2048(self):
        self.check_kind('rsa2048', 5)

    def test_pin_change_and_block(self):
        self.start('p256', tries=3)
        rc, out, _ = self.probe('tries')
        self.assertEqual((rc, out.get('verified'), out.get('pin_tries')), (0, 'no', '3'), out)
        rc, out, n = self.probe('change', '--pin', '12345', '--new-pin', '24681357')
        self.assertEqual((rc, out['result']), (1, 'pin-format'), out)
        self.assertEqual(n, 1, 'a malformed PIN must not reach the card (only SELECT may)')
        rc, out, _ = self.probe('change', '--pin', PIN, '--new-pin', '24681357')
        self.assertEqual((rc, out['result']), (0, 'ok'), out)
        rc, out, _ = self.login(PIN)
        self.assertEqual(out['result'], 'pin-wrong', out)
        rc, out, _ = self.login('24681357')
        self.assertEqual((rc, out['result']), (0, 'ok'), out)
        for left in ('2', '1'):
            rc, out, _ = self.login('000000')
            self.assertEqual((out['result'], out.get('tries')), ('pin-wrong', left), out)
        rc, out, _ = self.login('000000')
        self.assertEqual(out['result'], 'pin-blocked', out)
        rc, out, _ = self.login('24681357')
        self.assertEqual((rc, out['result']), (1, 'pin-blocked'), out)

    def test_faults(self):
        self.start('p256', fault='garbage-on-sign')
        rc, out, _ = self.login(PIN)
        self.assertEqual(rc, 1, out)
        self.assertIn(out['result'], ('malformed-response', 'signature-invalid'), out)

    def test_card_dropped_while_signing(self):
        self.start('p256', fault='drop-on-sign')
        rc, out, _ = self.login(PIN)
        # vpcd answers the interrupted command with nothing: removed or mute, never "malformed"
        # or "signature-invalid".
        self.assertEqual(rc, 1, out)
        self.assertIn(out['result'], ('card-removed', 'card-unresponsive'), out)
        print(f"\n  drop-on-sign reported as {out['result']}", file=sys.stderr)

    def test_card_pulled_and_pcscd_gone(self):
        self.start('p384')
        self.vcard.pull()
        self.pcscd.wait_card(False)
        rc, out, _ = self.probe('id')
        self.assertEqual((rc, out['result']), (1, 'card-removed'), out)
        self.vcard.insert()
        self.pcscd.wait_card(True)
        rc, out, _ = self.probe('id')
        self.assertEqual((rc, out['id']), (0, self.card.card_id), out)
        self.pcscd.kill()
        rc, out, _ = self.probe('id')
        self.assertEqual((rc, out['result']), (1, 'pcscd-unavailable'), out)


if __name__ == '__main__':
    unittest.main(verbosity=2)
