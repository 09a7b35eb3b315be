#!/usr/bin/python3
# Integration tests of collector receipts (DESIGN.md §7) end to end: real collector, uploader, log writer.
"""Receipts: an acknowledgement is believed only through a receipt signed by the collector's receipt
key whose line hash is that of the terminal's own record. A collector that lies about `acked` (a fake
HTTPS server with the collector's own certificate: no receipt, a receipt by another key, a receipt
by the right key for records the terminal does not have) moves no cursor and deletes nothing; a forged
cursor deletes nothing; a 409 fork is reported as a fork; a log pruned after a real upload verifies
from its first present record through the stored receipt (mamorictl log verify and the independent
indep_verify.py)."""
import base64
import glob
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import unittest

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import enroltool  # noqa: E402
import bench  # noqa: E402
import indep_verify  # noqa: E402
from test_collector import Centre, exe  # noqa: E402
from test_upload import TERM, Terminal, free_port, public_pem  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def segments(log_dir):
    return sorted(glob.glob(os.path.join(log_dir, 'seg-*.log')))


def first_seq(log_dir):
    return int(os.path.basename(segments(log_dir)[0])[4:24])


class FakeCollector:
    """HTTPS on 127.0.0.1 with the real collector's certificate and client-certificate check, answering
    as `answer(method, path, body)` says: (status, dict)."""

    def __init__(self, state_dir, answer):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def handle_one(self, method):
                n = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(n) if n else b''
                outer.requests.append((method, self.path, body))
                status, obj = answer(method, self.path, body)
                data = json.dumps(obj, separators=(',', ':')).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self.handle_one('GET')

            def do_POST(self):
                self.handle_one('POST')

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(state_dir, 'collector.pem'), os.path.join(state_dir, 'collector.key'))
        ctx.load_verify_locations(os.path.join(state_dir, 'terminal-ca.pem'))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', self.port), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def posts(self):
        return [r for r in self.requests if r[0] == 'POST']

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def raw_b64(pub_pem_path):
    with open(pub_pem_path, 'rb') as f:
        pub = serialization.load_pem_public_key(f.read())
    return base64.b64encode(pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def sign_receipt(key, log, acked, line, next_key_b64, collector='fake'):
    r = {'v': 1, 'collector': collector, 'log': log, 'acked': acked, 'line': line, 'key': next_key_b64,
         'ts': int(time.time() * 1e6)}
    r['sig'] = base64.b64encode(key.sign(indep_verify.jcs(r).encode())).decode()
    return r


class ReceiptTest(unittest.TestCase):
    def setUp(self):
        self._tmp = bench.TempDir('mamori-receipts-')
        self.tmp = self._tmp.__enter__()
        self.centre = Centre(self.tmp)
        with open(self.centre.conf) as f:
            conf = f.read()
        with open(self.centre.conf, 'w') as f:
            f.write(conf.replace('Listen=127.0.0.1:0', f'Listen=127.0.0.1:{free_port()}'))
        self.state = os.path.join(self.tmp, 'state')
        self.term = Terminal(self.tmp)
        self.term.append(300)  # ~20 segments of 32 KiB, key rotations every 200
        self.pub = public_pem(self.term.identity, os.path.join(self.tmp, 'term.pub'))
        self.cert_dir = os.path.join(self.tmp, TERM)
        enroltool.enrol(self.centre.admin, TERM, 'chuo', self.pub, self.cert_dir)
        self.fake = None

    def tearDown(self):
        self.term.stop()
        self.centre.stop()
        if self.fake:
            self.fake.close()
        self._tmp.__exit__(None, None, None)

    def log_id(self):
        with open(segments(self.term.log)[0], 'rb') as f:
            return json.loads(f.readline())['log']

    def prune(self):
        """Open the log with retention 0, as mamorid does at start and on its timer: it deletes what a
        receipt it verifies itself covers. Returns the segment files left."""
        env = dict(os.environ, OPLOG_CURSOR=self.term.cursor, OPLOG_RECEIPT_KEY=self.term.receipt_key,
                   OPLOG_RETENTION_DAYS='0')
        p = bench.run([exe('tests', 'integration', 'oplog-appender'), self.term.log, self.term.keys,
                       self.term.identity, '1', '0'], env=env, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return segments(self.term.log)

    def upload_all(self):
        self.centre.start()
        self.term.configure(self.centre, self.cert_dir)
        self.term.start()
        self.term.wait_acked(self.term.last_seq())
        self.term.stop()
        self.centre.stop()

    def verify_ctl(self, *extra):
        return bench.run([exe('agent', 'mamorictl'), 'log', 'verify', self.term.log, '--identity', self.pub,
                          *extra], timeout=120)

    def indep(self, *extra):
        return bench.run([bench.PYTHON, os.path.join(HERE, 'indep_verify.py'), self.term.log, self.pub, *extra],
                         timeout=120)

    def test_pruned_log_verifies_through_receipt(self):
        self.upload_all()
        with open(self.term.cursor) as f:
            cursor = json.load(f)
        last = self.term.last_seq()
        self.assertEqual(cursor['acked'], last)
        self.assertEqual(cursor['receipt']['acked'], last)
        indep_verify.check_receipt(cursor['receipt'], indep_verify.load_public(self.term.receipt_key))
        self.term.append(30)  # records after the receipt: checked with its key
        before = segments(self.term.log)
        left = self.prune()
        self.assertLess(len(left), len(before), 'a verified receipt lets old segments go')
        first = first_seq(self.term.log)
        self.assertGreater(first, 1)
        self.assertLessEqual(first, last + 1)

        p = self.verify_ctl('--cursor', self.term.cursor, '--receipt-key', self.term.receipt_key)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(f'verified from seq {first} using receipt for {last}', p.stdout)
        p = self.indep(self.term.cursor, self.term.receipt_key)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(f'from seq {first} using receipt for {last}', p.stdout)

        # Without the receipt the pruned log cannot be vouched for, and says what to give.
        p = self.verify_ctl('--cursor', os.path.join(self.tmp, 'none'), '--receipt-key', self.term.receipt_key)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn('receipt', p.stderr)
        self.assertEqual(self.indep().returncode, 1)

        # A record changed before the receipt's seq: the chain no longer reaches its hash.
        seg = segments(self.term.log)[0]
        with open(seg, 'rb') as f:
            data = f.read()
        lines = data.split(b'\n')
        r = json.loads(lines[0])
        r['data'] = {'tampered': 1}
        lines[0] = indep_verify.jcs(r).encode()
        with open(seg, 'wb') as f:
            f.write(b'\n'.join(lines))
        p = self.verify_ctl('--cursor', self.term.cursor, '--receipt-key', self.term.receipt_key)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn('BROKEN', p.stderr)
        self.assertEqual(self.indep(self.term.cursor, self.term.receipt_key).returncode, 1)

    def test_forged_cursor_deletes_nothing(self):
        log = self.log_id()
        last = self.term.last_seq()
        before = segments(self.term.log)
        other = Ed25519PrivateKey.generate()
        any_key = raw_b64(self.pub)
        self.term.configure(self.centre, self.cert_dir)
        forged = [
            {'log': log, 'acked': last + 1000},
            {'log': log, 'acked': last,
             'receipt': sign_receipt(other, log, last, '0' * 63 + '1', any_key)},
        ]
        for c in forged:
            with open(self.term.cursor, 'w') as f:
                f.write(json.dumps(c, separators=(',', ':')) + '\n')
            self.assertLessEqual(set(before), set(self.prune()), f'a forged cursor deleted segments: {c}')
        # The uploader does not believe it either: it asks the collector, and sends everything.
        self.centre.start()
        self.term.configure(self.centre, self.cert_dir)
        self.term.start()
        self.term.watch.wait(r'cursor .* not believed', timeout=15)
        self.term.wait_acked(self.term.last_seq())
        self.term.stop()
        self.assertEqual(self.centre.stored(), self.term.last_seq(), 'stored once each, none skipped')

    def lying_collector(self, make_receipt):
        """A collector that answers every POST with 200 acked = last + 1000 and the receipt
        make_receipt(log, acked) gives (None: none); GET acked is answered truthfully (nothing)."""
        log = self.log_id()
        with open(os.path.join(self.state, 'receipt.key'), 'rb') as f:
            receipt_key = serialization.load_pem_private_key(f.read(), password=None)
        identity_b64 = raw_b64(self.pub)
        last = self.term.last_seq()

        def answer(method, path, body):
            if method == 'GET' and path == f'/v1/logs/{log}/acked':
                return 200, {'log': log, 'acked': 0,
                             'receipt': sign_receipt(receipt_key, log, 0, '0' * 64, identity_b64)}
            if method == 'POST' and path == '/v1/records':
                out = {'log': log, 'acked': last + 1000}
                rc = make_receipt(receipt_key, log, last + 1000)
                if rc:
                    out['receipt'] = rc
                return 200, out
            return 404, {'error': 'not-found'}

        self.fake = FakeCollector(self.state, answer)
        before = segments(self.term.log)
        self.term.configure(self.fake, self.cert_dir, poll=1)
        self.term.start()
        self.term.watch.wait(r'protocol error: the collector\'s POST /v1/records answer \(200\) is refused',
                             timeout=30)
        bench.wait_until(lambda: len(self.fake.posts()) >= 2, timeout=30, what='the batch retried')
        self.term.stop()
        self.assertEqual(self.term.acked(), 0, 'the cursor moved on a lie')
        self.assertLessEqual(set(before), set(self.prune()), 'a lie deleted segments')
        self.fake.close()
        self.fake = None

    def test_lying_collector_no_receipt(self):
        self.lying_collector(lambda key, log, acked: None)

    def test_lying_collector_other_key(self):
        other = Ed25519PrivateKey.generate()
        self.lying_collector(lambda key, log, acked: sign_receipt(other, log, acked, '1' * 64, 'A' * 43 + '='))

    def test_lying_collector_right_key(self):
        # Even the collector's own key cannot make a terminal believe records it does not have.
        self.lying_collector(lambda key, log, acked: sign_receipt(key, log, acked, '1' * 64, 'A' * 43 + '='))

    def test_fork_reported_as_fork(self):
        log = self.log_id()

        def answer(method, path, body):
            if method == 'GET':
                with open(os.path.join(self.state, 'receipt.key'), 'rb') as f:
                    key = serialization.load_pem_private_key(f.read(), password=None)
                b64 = raw_b64(self.pub)
                return 200, {'log': log, 'acked': 0, 'receipt': sign_receipt(key, log, 0, '0' * 64, b64)}
            return 409, {'acked': 0, 'error': 'fork', 'log': log, 'seq': 1}

        self.fake = FakeCollector(self.state, answer)
        self.term.configure(self.fake, self.cert_dir, poll=1)
        self.term.start()
        self.term.watch.wait(r'FORK: the collector holds a different record at seq 1', timeout=30)
        bench.wait_until(lambda: len(self.fake.posts()) >= 2, timeout=30, what='the batch retried')
        self.term.stop()
        self.assertFalse(any('resending from' in l or 'resuming from' in l for l in self.term.watch.lines),
                         'a fork was taken for a gap')
        self.assertEqual(self.term.acked(), 0)
        # Every POST started at seq 1: nothing skipped.
        for _, _, body in self.fake.posts():
            self.assertEqual(json.loads(body.split(b'\n')[0])['seq'], 1)

    def test_collector_receipt_key_exported(self):
        # The enrolment files carry the collector's public receipt key; the collector prints the same.
        p = bench.run([exe('collector', 'mamori-collector'), '--config', self.centre.conf, '--receipt-key'])
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(self.cert_dir, 'receipt.pub')) as f:
            self.assertEqual(f.read(), p.stdout)
        self.assertEqual(os.stat(os.path.join(self.state, 'receipt.key')).st_mode & 0o777, 0o600)
        # The uploader refuses to run without it, and says what to install.
        self.term.configure(self.centre, self.cert_dir, receipt_key=os.path.join(self.tmp, 'missing.pub'))
        self.term.start()
        self.term.watch.wait(r'ReceiptKey=.*missing\.pub.*install the collector\'s receipt\.pub', timeout=15)
        self.assertEqual(self.term.proc.wait(15), 1)
        self.term.stop()


if __name__ == '__main__':
    unittest.main(verbosity=2)
