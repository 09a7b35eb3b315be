# The virtual PIV card under OpenSC and a real pcscd; the bench's mock logind. Run: meson test --suite integration
"""mamori-vcard must look like a real PIV card to software we did not write (OpenSC), and the
bench's processes must come and go cleanly."""

import hashlib
import os
import re
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

PIN = '123456'
SHA256_DIGESTINFO = bytes.fromhex('3031300d060960864801650304020105000420')


class BenchCase(unittest.TestCase):
    """Per test: a temp dir and a check, run after every other cleanup, that nothing is left."""

    def setUp(self):
        self.started = []  # (pid, what) of every process this test started
        self.addCleanup(self._check_no_leftovers)
        self.tmp = self.enter(bench.TempDir())

    def enter(self, cm):
        value = cm.__enter__()
        self.addCleanup(cm.__exit__, None, None, None)
        for attr in ('proc',):
            proc = getattr(cm, attr, None)
            if proc is not None:
                self.started.append((proc.pid, type(cm).__name__))
        return value

    def _check_no_leftovers(self):
        alive = []
        for pid, what in self.started:
            try:
                with open(f'/proc/{pid}/stat', encoding='ascii') as f:
                    state = f.read().rsplit(')', 1)[1].split()[0]
            except FileNotFoundError:
                continue
            if state != 'Z':
                alive.append((pid, what))
        self.assertEqual(alive, [], 'processes left running after the test')

    def run_ok(self, args, env, timeout=60):
        r = bench.run(args, env=env, timeout=timeout)
        self.assertEqual(r.returncode, 0, f'{args[0]} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}')
        return r.stdout


class VCardOpenSC(BenchCase):

    def setUp(self):
        super().setUp()
        self.pki = bench.TestPKI(self.tmp)

    def start(self, kind='p256', tries=3, fault=None):
        self.card = self.pki.issue('OP0001', kind)
        port = bench.free_vpcd_port()
        self.pcscd = self.enter(bench.Pcscd(self.tmp, port))
        self.vcard = self.enter(bench.VCard(port, self.card.key, self.card.cert, PIN, tries=tries, fault=fault))
        self.env = self.pcscd.client_env()
        self.pcscd.wait_card(True)

    def send_apdu(self, apdu_hex):
        """opensc-tool --send-apdu (after OpenSC bound its PIV driver); returns (sw1, sw2)."""
        out = self.run_ok(['opensc-tool', '--send-apdu', apdu_hex], self.env)
        m = re.search(r'Received \(SW1=0x([0-9A-Fa-f]{2}), SW2=0x([0-9A-Fa-f]{2})\)', out)
        self.assertIsNotNone(m, out)
        return int(m.group(1), 16), int(m.group(2), 16)

    @staticmethod
    def verify_apdu(pin):
        block = pin.encode().ljust(8, b'\xff')
        return '00:20:00:80:08:' + ':'.join(f'{b:02X}' for b in block)

    def check_card(self, kind):
        self.start(kind)

        # OpenSC binds its PIV driver to the card.
        self.assertIn('Personal Identity Verification Card', self.run_ok(['opensc-tool', '--name'], self.env))

        # The PKCS#15 emulation lists key 9A ("PIV AUTH key") with ID 01 of the right type.
        dump = self.run_ok(['pkcs15-tool', '--dump'], self.env)
        m = re.search(r'Private (RSA|EC) Key \[PIV AUTH key\](.*?)\n\n', dump, re.S)
        self.assertIsNotNone(m, dump)
        self.assertEqual(m.group(1), 'RSA' if kind == 'rsa2048' else 'EC')
        self.assertRegex(m.group(2), r'Key ref\s*: 154 \(0x9A\)')
        self.assertRegex(m.group(2), r'ID\s*: 01')

        # The certificate comes back intact (GET DATA + GET RESPONSE chaining).
        pem = self.run_ok(['pkcs15-tool', '--read-certificate', '01'], self.env)
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        got = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
        self.assertEqual(hashlib.sha256(got).hexdigest(), self.card.card_id)

        # pkcs11-tool signs after C_Login; the signature verifies with the certificate's key.
        data_path = os.path.join(self.tmp, 'in.bin')
        sig_path = os.path.join(self.tmp, 'sig.bin')
        challenge = os.urandom(32)
        if kind == 'rsa2048':
            digest = hashlib.sha256(challenge).digest()
            payload, mech, hname = SHA256_DIGESTINFO + digest, 'RSA-PKCS', 'sha256'
        elif kind == 'p384':
            digest = hashlib.sha384(challenge).digest()
            payload, mech, hname = digest, 'ECDSA', 'sha384'
        else:
            digest = hashlib.sha256(challenge).digest()
            payload, mech, hname = digest, 'ECDSA', 'sha256'
        with open(data_path, 'wb') as f:
            f.write(payload)
        args = ['pkcs11-tool', '--login', '--pin', PIN, '--sign', '--mechanism', mech, '--id', '01',
                '--input-file', data_path, '--output-file', sig_path]
        if mech == 'ECDSA':
            args += ['--signature-format', 'openssl']
        self.run_ok(args, self.env)
        with open(sig_path, 'rb') as f:
            sig = f.read()
        bench.verify_signature(self.card.public_key, sig, digest, hname)
        # ... and not over other data.
        with self.assertRaises(Exception):
            bench.verify_signature(self.card.public_key, sig, bytes(len(digest)), hname)

        # A wrong PIN is refused by the card.
        r = bench.run(args[:2] + ['--pin', '999999'] + args[4:], env=self.env)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('CKR_PIN_INCORRECT', r.stdout + r.stderr)

        # Every exchange went through our card: OpenSC's login + sign needs only a handful.
        self.assertGreater(self.vcard.apdu_count(), 0)

    def test_p256(self):
        self.check_card('p256')

    def test_p384(self):
        self.check_card('p384')

    def test_rsa2048(self):
        self.check_card('rsa2048')

    def test_wrong_pin_lowers_tries_then_blocks(self):
        self.start('p256', tries=3)
        self.assertEqual(self.send_apdu('00:20:00:80'), (0x63, 0xC3))
        for left in (2, 1):
            self.assertEqual(self.send_apdu(self.verify_apdu('000000')), (0x63, 0xC0 | left))
            self.assertEqual(self.send_apdu('00:20:00:80'), (0x63, 0xC0 | left))
        # The token flags that pkcs11 users see follow the counter.
        self.assertIn('final user PIN try', self.run_ok(['pkcs11-tool', '--list-token-slots'], self.env))
        self.assertEqual(self.send_apdu(self.verify_apdu('000000')), (0x69, 0x83))
        # Blocked: the right PIN no longer opens the card, through raw APDUs or PKCS#11.
        self.assertEqual(self.send_apdu(self.verify_apdu(PIN)), (0x69, 0x83))
        r = bench.run(['pkcs11-tool', '--login', '--pin', PIN, '--list-objects'], env=self.env)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stdout + r.stderr, r'CKR_PIN_LOCKED|CKR_PIN_INCORRECT')
        self.assertIn('user PIN locked', self.run_ok(['pkcs11-tool', '--list-token-slots'], self.env))

    def test_right_pin_resets_counter(self):
        self.start('p256', tries=3)
        self.assertEqual(self.send_apdu(self.verify_apdu('000000')), (0x63, 0xC2))
        self.assertEqual(self.send_apdu(self.verify_apdu(PIN)), (0x90, 0x00))
        self.assertEqual(self.send_apdu('00:20:00:80'), (0x90, 0x00))
        self.assertEqual(self.send_apdu(self.verify_apdu('000000')), (0x63, 0xC2))

    def test_pull_and_insert(self):
        self.start('p256')
        self.assertEqual(self.send_apdu(self.verify_apdu(PIN)), (0x90, 0x00))

        self.vcard.pull()
        self.pcscd.wait_card(False)
        r = bench.run(['opensc-tool', '--name'], env=self.env)
        self.assertNotEqual(r.returncode, 0)

        self.vcard.insert()
        self.pcscd.wait_card(True)
        self.assertIn('Personal Identity Verification Card', self.run_ok(['opensc-tool', '--name'], self.env))
        # A pulled card forgets that its PIN was verified.
        self.assertEqual(self.send_apdu('00:20:00:80'), (0x63, 0xC3))

        # Twice more, quickly: every pull is seen.
        for _ in range(2):
            self.vcard.pull()
            self.pcscd.wait_card(False)
            self.vcard.insert()
            self.pcscd.wait_card(True)

    def test_pcscd_killed_and_restarted(self):
        self.start('p256')
        mark = self.vcard.out.mark()
        self.pcscd.kill()
        self.vcard.out.wait(r'^reader-lost$', timeout=10, after=mark)
        self.pcscd.start()
        self.started.append((self.pcscd.pid, 'pcscd (restarted)'))
        self.vcard.out.wait(r'^inserted$', timeout=15, after=mark)
        self.pcscd.wait_card(True)
        self.assertIn('Personal Identity Verification Card', self.run_ok(['opensc-tool', '--name'], self.env))

    def test_fault_drop_on_sign(self):
        self.start('p256', fault='drop-on-sign')
        path = os.path.join(self.tmp, 'in.bin')
        with open(path, 'wb') as f:
            f.write(bytes(32))
        r = bench.run(['pkcs11-tool', '--login', '--pin', PIN, '--sign', '--mechanism', 'ECDSA', '--id', '01',
                       '--input-file', path, '--output-file', os.path.join(self.tmp, 'sig.bin')], env=self.env)
        self.assertNotEqual(r.returncode, 0)
        self.vcard.out.wait(r'^pulled$', timeout=5)
        self.pcscd.wait_card(False)

    def test_vcard_exits_cleanly(self):
        self.start('p256')
        self.assertEqual(self.vcard.stop(), 0)

    def test_vcard_refuses_mismatched_key(self):
        other = self.pki.issue('OP0002', 'p256')
        card = self.pki.issue('OP0001', 'p256')
        r = bench.run([bench.vcard_exe(), '--port', '1', '--key', other.key, '--cert', card.cert, '--pin', PIN],
                      timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('cannot load key/certificate', r.stderr)


class MockLogindBench(BenchCase):

    def setUp(self):
        super().setUp()
        self.bus = self.enter(bench.SystemBus(self.tmp))
        self.logind = self.enter(bench.MockLogind(self.bus))
        self.env = self.bus.client_env()

    def busctl(self, *args):
        return self.run_ok(['busctl', '--system', '--no-pager'] + list(args), self.env, timeout=20)

    def test_lock_session_emits_lock(self):
        # Find the session as mamorid does: through the seat's ActiveSession.
        out = self.busctl('get-property', 'org.freedesktop.login1', '/org/freedesktop/login1/seat/seat0',
                          'org.freedesktop.login1.Seat', 'ActiveSession')
        m = re.match(r'\(so\) "(\S+)" "(\S+)"', out.strip())
        self.assertIsNotNone(m, out)
        session_id, session_path = m.group(1), m.group(2)
        self.assertEqual(session_path, self.logind.session_path)
        out = self.busctl('get-property', 'org.freedesktop.login1', session_path,
                          'org.freedesktop.login1.Session', 'Type', 'LockedHint')
        self.assertEqual(out.split(), ['s', '"wayland"', 'b', 'false'])

        with bench.DBusMonitor(self.bus, "type='signal',interface='org.freedesktop.login1.Session'") as mon:
            self.busctl('call', 'org.freedesktop.login1', '/org/freedesktop/login1',
                        'org.freedesktop.login1.Manager', 'LockSession', 's', session_id)
            mon.lines.wait(r'path=' + re.escape(session_path) + r';.*member=Lock$', timeout=10)
        self.assertEqual(self.logind.calls('LockSession'), [[session_id]])
        self.assertTrue(self.logind.session_property('LockedHint'))

        self.busctl('call', 'org.freedesktop.login1', '/org/freedesktop/login1',
                    'org.freedesktop.login1.Manager', 'UnlockSession', 's', session_id)
        self.assertFalse(self.logind.session_property('LockedHint'))

    def test_idle_hint(self):
        self.logind.set_idle(True, since_usec=1_700_000_000_000_000)
        out = self.busctl('get-property', 'org.freedesktop.login1', self.logind.session_path,
                          'org.freedesktop.login1.Session', 'IdleHint', 'IdleSinceHint')
        self.assertEqual(out.split(), ['b', 'true', 't', '1700000000000000'])
        self.logind.set_idle(False)
        self.assertFalse(self.logind.session_property('IdleHint'))


class DesktopIgnoresLock(BenchCase):

    def test_lock_without_desktop(self):
        bus = self.enter(bench.SystemBus(self.tmp))
        logind = self.enter(bench.MockLogind(bus, desktop_locks=False))
        self.run_ok(['busctl', '--system', 'call', 'org.freedesktop.login1', '/org/freedesktop/login1',
                     'org.freedesktop.login1.Manager', 'LockSession', 's', logind.session_id], bus.client_env())
        self.assertEqual(len(logind.calls('LockSession')), 1)
        self.assertFalse(logind.session_property('LockedHint'))


if __name__ == '__main__':
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    unittest.main(verbosity=2)
