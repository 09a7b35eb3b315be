#!/usr/bin/python3
# Integration tests of mamori-collector and mamori-admin: real TLS on 127.0.0.1, PKI made by mamori-admin init.
"""mamori-collector over real HTTPS with client certificates, against logs signed by the C record code
(tests/integration/mklog). Checks the DESIGN §7 answers (200/409/422), exactly-once storage across
resends and kill -9, TLS refusal of clients without a valid certificate, hostile bodies, alerts, and
mamori-admin's card register + policy publishing."""
import base64
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import enroltool  # noqa: E402
import bench  # noqa: E402
import indep_verify  # noqa: E402
import pgcluster  # noqa: E402
import policytool  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LOG_A = '0123456789abcdef0123456789abcdef'
LOG_B = 'fedcba9876543210fedcba9876543210'


def exe(*parts):
    return os.path.join(bench.build_dir(), *parts)


class Centre:
    """A centre in a temp dir: collector.conf, mamori-admin init, registered terminals, one collector."""

    def __init__(self, tmp, extra_conf='', store=None, init_args=()):
        self.tmp = tmp
        self.conf = os.path.join(tmp, 'collector.conf')
        self.db = os.path.join(tmp, 'collector.db')
        # MAMORI_TEST_STORE=postgresql: the same tests on a database of a private PostgreSQL cluster
        # (pgcluster.py, one per test process), named by [Store] URL=. store='postgresql-tuned' (the
        # benches): PostgreSQL run as the capacity plan deploys it (pgcluster.Cluster(tuned=True)).
        self.store = store or os.environ.get('MAMORI_TEST_STORE', 'sqlite')
        self.pg = self.pg_db = None
        if self.store in ('postgresql', 'postgresql-tuned'):
            self.pg = pgcluster.shared(tuned=self.store == 'postgresql-tuned')
            self.store = 'postgresql'
            self.pg_db = 'c' + os.urandom(6).hex()
            self.url = self.pg.create_db(self.pg_db)
            where = f'[Store]\nURL={self.url}\n'
        else:
            self.url = self.db
            where = f'[Collector]\nDatabase={self.db}\n'
        with open(self.conf, 'w') as f:
            f.write(f'[Admin]\nDirectory={tmp}/admin\n{where}[Collector]\nListen=127.0.0.1:0\n'
                    f'StateDirectory={tmp}/state\n{extra_conf}')
        # A drop-in, so that tests can keep appending [Collector] keys to the main file.
        os.makedirs(self.conf + '.d', exist_ok=True)
        with open(os.path.join(self.conf + '.d', 'operator-ca.conf'), 'w') as f:
            f.write(f'[Cards]\nOperatorCA={tmp}/operator-ca.pem\n')
        self.proc = None
        self.port = None
        self.admin('init', *init_args)

    def operator_ca(self, src=None):
        """The operator CA card certificates must chain to: src (a PEM file) copied, or a new one made here.
        Returns (ca.pem, ca.key or None)."""
        ca = os.path.join(self.tmp, 'operator-ca.pem')
        if src:
            shutil.copyfile(src, ca)
            return ca, None
        key = ca[:-4] + '.key'
        if not os.path.exists(key):
            r = bench.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
                           '-subj', '/CN=test operator CA', '-days', '30', '-keyout', key, '-out', ca,
                           '-addext', 'basicConstraints=critical,CA:TRUE',
                           '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature'])
            assert r.returncode == 0, r.stderr
        return ca, key

    def card_cert(self, name, ca=True, days=2):
        """A card certificate (PEM path) signed by operator_ca(), or self-signed when ca is False."""
        p = os.path.join(self.tmp, f'{name}.pem')
        if not ca:
            r = bench.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
                           '-subj', f'/CN={name}', '-days', str(days), '-keyout', p + '.key', '-out', p,
                           '-addext', 'keyUsage=critical,digitalSignature'])
            assert r.returncode == 0, r.stderr
            return p
        ca_pem, ca_key = self.operator_ca()
        r = bench.run(['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
                       '-subj', f'/CN={name}', '-keyout', p + '.key', '-out', p + '.csr'])
        assert r.returncode == 0, r.stderr
        ext = p + '.ext'
        with open(ext, 'w') as f:
            f.write('keyUsage=critical,digitalSignature\n')
        r = bench.run(['openssl', 'x509', '-req', '-in', p + '.csr', '-CA', ca_pem, '-CAkey', ca_key,
                       '-CAcreateserial', '-days', str(days), '-extfile', ext, '-out', p])
        assert r.returncode == 0, r.stderr
        return p

    def admin(self, *args, check=True):
        p = bench.run([exe('collector', 'mamori-admin'), '--config', self.conf, *args], timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f'mamori-admin {" ".join(args)} failed: {p.returncode} {p.stdout} {p.stderr}')
        return p

    def mklog(self, seed='a', log=LOG_A, term='T-0001', count=50, rotate=7, variant=None, fork_at=None,
              pub=None, start=None):
        args = [exe('tests', 'integration', 'mklog'), '--seed', seed, '--log', log, '--term', term,
                '--count', str(count), '--rotate', str(rotate)]
        if pub:
            args += ['--identity-pub', pub]
        if variant:
            args += ['--variant', variant, '--fork-at', str(fork_at)]
        if start is not None:
            args += ['--start', str(start)]
        out = subprocess.run(args, stdout=subprocess.PIPE, check=True, timeout=300).stdout
        lines = out.split(b'\n')
        assert lines[-1] == b''
        return [l + b'\n' for l in lines[:-1]]

    def add_terminal(self, term, seed):
        pub = os.path.join(self.tmp, f'{term}.pub')
        self.mklog(seed=seed, term=term, count=1, pub=pub)
        out = os.path.join(self.tmp, term)
        enroltool.enrol(self.admin, term, 'chuo', pub, out)
        return out

    def start(self):
        # A small ASan quarantine, so that RSS reflects what the collector holds, not what ASan keeps.
        env = dict(os.environ, ASAN_OPTIONS='quarantine_size_mb=4:' + os.environ.get('ASAN_OPTIONS', ''))
        self.proc = subprocess.Popen([exe('collector', 'mamori-collector'), '--config', self.conf], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.watch = bench.LineWatcher(self.proc.stderr)
        m = self.watch.wait(r'listening on 127\.0\.0\.1 port (\d+)', timeout=30)
        self.port = int(m.group(1))

    def stop(self):
        if self.proc:
            bench.stop_process(self.proc)
            self.watch.join()
            self.proc.stderr.close()
            self.proc = None

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.watch.join()
        self.proc.stderr.close()
        self.proc = None

    def context(self, cert_dir):
        ctx = ssl.create_default_context(cafile=os.path.join(self.tmp, 'state', 'collector-ca.pem'))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert_dir:
            ctx.load_cert_chain(os.path.join(cert_dir, 'client.pem'), os.path.join(cert_dir, 'client.key'))
        return ctx

    def request(self, cert_dir, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPSConnection('127.0.0.1', self.port, context=self.context(cert_dir), timeout=timeout)
        try:
            h = {'Content-Type': 'application/x-ndjson'} if body is not None else {}
            h.update(headers or {})
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return r.status, (json.loads(data) if data and r.getheader('Content-Type') == 'application/json'
                              else data), r
        finally:
            conn.close()

    def receipt_key(self):
        return indep_verify.load_public(os.path.join(self.tmp, 'state', 'receipt.pub'))

    def check_receipt(self, body, lines=None):
        """A 200 answer carries a receipt (DESIGN §7) for exactly its log and acked, signed by the
        collector's receipt key, checked here independently (indep_verify.py); it is taken out of
        body. With the posted lines, its line hash is that of the record acked among them."""
        assert isinstance(body, dict) and 'receipt' in body, body
        rc = indep_verify.check_receipt(body.pop('receipt'), self.receipt_key())
        assert rc['log'] == body['log'] and rc['acked'] == body['acked'], (rc, body)
        if rc['acked'] == 0:
            assert rc['line'] == '0' * 64, rc
        for line in lines or []:
            if json.loads(line)['seq'] == rc['acked']:
                assert hashlib.sha256(line.rstrip(b'\n')).hexdigest() == rc['line'], rc
        return rc

    def post(self, cert_dir, lines, **kw):
        status, body, _ = self.request(cert_dir, 'POST', '/v1/records', b''.join(lines), **kw)
        if status == 200:
            self.check_receipt(body, lines)
        return status, body

    def acked(self, cert_dir, log=LOG_A):
        status, body, _ = self.request(cert_dir, 'GET', f'/v1/logs/{log}/acked')
        assert status == 200, (status, body)
        self.check_receipt(body)
        return body['acked']

    def sql(self, query):
        """Rows of a query on the store, whichever backend (PostgreSQL: integers as int, NULL as None)."""
        if self.pg:
            def value(v):
                return None if v == '' else int(v) if re.fullmatch(r'-?\d+', v) else v
            return [tuple(value(v) for v in row) for row in self.pg.sql(self.pg_db, query)]
        with sqlite3.connect(self.db) as c:
            return c.execute(query).fetchall()

    def stored(self):
        return self.sql('SELECT count(*) FROM records')[0][0]

    def alerts(self, kind=None):
        rows = self.sql('SELECT kind, term, log, seq FROM alerts ORDER BY id')
        return [r for r in rows if kind is None or r[0] == kind]

    def rss_kb(self):
        with open(f'/proc/{self.proc.pid}/status') as f:
            return int(re.search(r'VmRSS:\s+(\d+)', f.read()).group(1))


class CollectorTest(unittest.TestCase):
    def setUp(self):
        self._tmp = bench.TempDir('mamori-collector-')
        self.tmp = self._tmp.__enter__()
        self.centre = Centre(self.tmp)
        self.t1 = self.centre.add_terminal('T-0001', 'a')
        self.centre.start()

    def tearDown(self):
        self.centre.stop()
        self._tmp.__exit__(None, None, None)

    def export(self):
        p = self.centre.admin('export')
        return p.stdout.encode()

    def test_post_resend_gap(self):
        c = self.centre
        lines = c.mklog(count=30)
        self.assertEqual(c.post(self.t1, lines[:10]), (200, {'log': LOG_A, 'acked': 10}))
        # Identical resend: acknowledged again, stored once.
        self.assertEqual(c.post(self.t1, lines[:10]), (200, {'log': LOG_A, 'acked': 10}))
        self.assertEqual(c.stored(), 10)
        # Gap before the first new seq: 409 with what we have.
        self.assertEqual(c.post(self.t1, lines[15:20]), (409, {'log': LOG_A, 'acked': 10}))
        self.assertEqual(c.stored(), 10)
        # Overlapping resend continues the log.
        self.assertEqual(c.post(self.t1, lines[5:30]), (200, {'log': LOG_A, 'acked': 30}))
        self.assertEqual(c.acked(self.t1), 30)
        self.assertEqual(c.acked(self.t1, LOG_B), 0)
        self.assertEqual(self.export(), b''.join(lines))
        v = c.admin('verify')
        self.assertIn('30 records, intact', v.stdout)
        # The export passes the independent verifier (its own JCS and Ed25519).
        d = os.path.join(self.tmp, 'exported')
        os.mkdir(d)
        with open(os.path.join(d, 'seg-00000000000000000001.log'), 'wb') as f:
            f.write(self.export())
        p = bench.run([bench.PYTHON, os.path.join(HERE, 'indep_verify.py'), d, os.path.join(self.tmp, 'T-0001.pub')])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('OK 30', p.stdout)

    def test_fork_is_409_with_alert(self):
        c = self.centre
        a = c.mklog(count=12)
        b = c.mklog(count=12, variant='evil', fork_at=8)
        self.assertEqual(a[:7], b[:7])
        self.assertEqual(c.post(self.t1, a[:10])[0], 200)
        status, body = c.post(self.t1, b[5:12])
        self.assertEqual(status, 409)
        self.assertEqual(body['error'], 'fork')
        self.assertEqual(body['seq'], 8)
        self.assertEqual(c.alerts('fork'), [('fork', 'T-0001', LOG_A, 8)])
        # The sender's history leaves ours right after what we stored: also a fork.
        status, body = c.post(self.t1, b[10:12])
        self.assertEqual((status, body['error']), (409, 'fork'))
        self.assertEqual(self.export(), b''.join(a[:10]))

    def test_bad_signature_nothing_stored(self):
        c = self.centre
        lines = c.mklog(count=20)
        self.assertEqual(c.post(self.t1, lines[:5])[0], 200)
        bad = list(lines[5:15])
        rec = json.loads(bad[5])
        sig = bytearray(base64.b64decode(rec['sig']))
        sig[0] ^= 1
        rec['sig'] = base64.b64encode(bytes(sig)).decode()
        bad[5] = json.dumps(rec, separators=(',', ':'), sort_keys=True, ensure_ascii=False).encode() + b'\n'
        self.assertNotEqual(bad[5], lines[10])
        status, body = c.post(self.t1, bad)
        self.assertEqual(status, 422)
        self.assertEqual(body, {'error': 'bad-signature', 'seq': 11})
        self.assertEqual(c.stored(), 5)  # not even the good records 6..10 of that batch
        self.assertEqual(c.alerts('bad-signature'), [('bad-signature', 'T-0001', LOG_A, 11)])
        self.assertEqual(c.post(self.t1, lines[5:20])[0], 200)

    def test_term_must_be_certificate_cn(self):
        c = self.centre
        t2 = c.add_terminal('T-0002', 'b')
        # T-0002's own records (term T-0002) posted with T-0001's certificate.
        lines = c.mklog(seed='b', term='T-0002', log=LOG_B, count=5)
        status, body = c.post(self.t1, lines)
        self.assertEqual((status, body['error']), (422, 'term'))
        self.assertEqual(c.stored(), 0)
        self.assertEqual(c.post(t2, lines)[0], 200)
        # A log signed by another identity key than the one registered for the terminal.
        forged = c.mklog(seed='mallory', term='T-0001', count=5)
        status, body = c.post(self.t1, forged)
        self.assertEqual((status, body['error']), (422, 'bad-signature'))
        self.assertEqual(c.stored(), 5)
        # T-0001 cannot read T-0002's log state.
        status, _, _ = c.request(self.t1, 'GET', f'/v1/logs/{LOG_B}/acked')
        self.assertEqual(status, 404)

    def test_new_log_alert(self):
        c = self.centre
        self.assertEqual(c.post(self.t1, c.mklog(count=3))[0], 200)
        self.assertEqual(c.alerts('new-log'), [])
        self.assertEqual(c.post(self.t1, c.mklog(log=LOG_B, count=3))[0], 200)
        self.assertEqual(c.alerts('new-log'), [('new-log', 'T-0001', LOG_B, 1)])

    def tls_refused(self, cert_dir):
        try:
            status, body, _ = self.centre.request(cert_dir, 'GET', '/v1/policy')
        except (ssl.SSLError, ConnectionError, http.client.HTTPException, OSError):
            return True
        self.fail(f'request answered {status} {body}')

    def test_tls_client_certificate_required(self):
        self.assertTrue(self.tls_refused(None))
        # A certificate of another CA, with a registered terminal's CN.
        other = os.path.join(self.tmp, 'other')
        os.mkdir(other)
        p = bench.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                       '-nodes', '-subj', '/CN=T-0001', '-days', '2', '-keyout', os.path.join(other, 'client.key'),
                       '-out', os.path.join(other, 'client.pem')])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(self.tls_refused(other))
        self.assertEqual(self.centre.stored(), 0)
        # TLS 1.1 is refused even with a good certificate.
        ctx = self.centre.context(self.t1)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        with socket.create_connection(('127.0.0.1', self.centre.port), timeout=10) as s:
            with self.assertRaises((ssl.SSLError, ConnectionError)):
                ctx.wrap_socket(s, server_hostname='127.0.0.1').do_handshake()
        # The good certificate works.
        self.assertEqual(self.centre.acked(self.t1), 0)

    def test_hostile_bodies(self):
        c = self.centre
        lines = c.mklog(count=5)
        rss0 = c.rss_kb()
        cases = [
            (b'not json\n', 422),
            (lines[0][:-20], 422),                            # truncated line
            (lines[0] + b'\n', 422),                          # empty line
            (lines[0] + b'{"v":1}\n', 422),                   # second line not a record
            (b'{"a":"' + b'x' * 200000 + b'"}\n', 422),        # one line over 64 KiB
            (b'\x00\xff' * 1000, 422),
            (b'', 422),
        ]
        for body, want in cases:
            status, _ = c.post(self.t1, [body])
            self.assertEqual(status, want, body[:60])
        # 10 MB line, announced by Content-Length: 413 before the body is read (the answer comes
        # while the client is still sending, as with Expect: 100-continue).
        with socket.create_connection(('127.0.0.1', c.port), timeout=30) as raw:
            s = c.context(self.t1).wrap_socket(raw, server_hostname='127.0.0.1')
            s.sendall(b'POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n'
                      b'Content-Length: %d\r\n\r\n{"a":"xxxx' % (10 * 1024 * 1024 + 10))
            self.assertRegex(s.recv(200), rb'^HTTP/1\.1 413 ')
            s.close()
        # 100 MB chunked (no Content-Length): discarded while read, then 413.
        conn = http.client.HTTPSConnection('127.0.0.1', c.port, context=c.context(self.t1), timeout=120)
        chunk = b'y' * (1024 * 1024)
        conn.request('POST', '/v1/records', body=(chunk for _ in range(100)),
                     headers={'Content-Type': 'application/x-ndjson'}, encode_chunked=True)
        r = conn.getresponse()
        self.assertEqual(r.status, 413)
        conn.close()
        # Wrong content type.
        status, _, _ = c.request(self.t1, 'POST', '/v1/records', b''.join(lines), headers={'Content-Type': 'text/plain'})
        self.assertEqual(status, 415)
        self.assertEqual(c.stored(), 0)
        self.assertLess(c.rss_kb() - rss0, 64 * 1024, 'collector memory grew by more than 64 MiB')
        # Still serving.
        self.assertEqual(c.post(self.t1, lines), (200, {'log': LOG_A, 'acked': 5}))

    def test_slow_sender_is_dropped(self):
        c = self.centre
        c.stop()
        with open(c.conf, 'a') as f:
            f.write('RequestTimeoutSec=2\nIdleTimeoutSec=2\n')
        c.start()
        ctx = c.context(self.t1)
        with socket.create_connection(('127.0.0.1', c.port), timeout=20) as raw:
            s = ctx.wrap_socket(raw, server_hostname='127.0.0.1')
            s.sendall(b'POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n'
                      b'Content-Length: 1000\r\n\r\n')
            t0 = time.monotonic()
            closed = False
            try:
                for _ in range(20):
                    s.sendall(b'x')
                    time.sleep(0.5)
            except (ssl.SSLError, OSError):
                closed = True
            if not closed:
                s.settimeout(10)
                closed = s.recv(100) == b''
            self.assertTrue(closed)
            self.assertLess(time.monotonic() - t0, 10.5)
        self.assertEqual(c.stored(), 0)

    def test_silent_terminal_alert(self):
        c = self.centre
        c.stop()
        with open(c.conf, 'a') as f:
            f.write('SilentSec=1\nSilentCheckSec=1\n')
        c.start()
        self.assertEqual(c.post(self.t1, c.mklog(count=2))[0], 200)
        bench.wait_until(lambda: c.alerts('silent'), timeout=10, what='silent alert')
        self.assertEqual([a[1] for a in c.alerts('silent')], ['T-0001'])

    def test_verify_threads(self):
        """VerifyThreads=: auto (the default) starts one signature thread per core but one, a number starts
        that many, 0 none; the records are stored either way."""
        c = self.centre

        def threads():
            with open(f'/proc/{c.proc.pid}/status') as f:
                return int(re.search(r'Threads:\s+(\d+)', f.read()).group(1))

        auto = threads()
        counts = {}
        for n in (0, 3):
            c.stop()
            with open(c.conf, 'a') as f:
                f.write(f'VerifyThreads={n}\n')
            c.start()
            counts[n] = threads()
        self.assertEqual(counts[3] - counts[0], 3)
        self.assertEqual(auto - counts[0], max((os.cpu_count() or 1) - 1, 0))
        self.assertEqual(c.post(self.t1, c.mklog(count=20))[0], 200)
        self.assertEqual(c.acked(self.t1), 20)

    def test_kill9_during_stream(self):
        """≥ 100 kill -9 of the collector while a client streams batches; every acknowledged record
        survives and the store verifies."""
        c = self.centre
        # Long enough that the stream outlasts 100 kills even on a fast, idle machine (about 19k
        # records get acknowledged on a loaded one).
        total = 80000
        lines = c.mklog(count=total, rotate=100)
        midstream = 0
        rnd = random.Random(1234)
        acknowledged = 0
        kills = 0
        t_end = time.monotonic() + 150
        while kills < 100 and time.monotonic() < t_end:
            if c.proc is None:
                c.start()
            killer = threading.Timer(rnd.uniform(0.02, 0.4), lambda p=c.proc: os.kill(p.pid, signal.SIGKILL))
            killer.start()
            try:
                acked = c.acked(self.t1, LOG_A)
                self.assertGreaterEqual(acked, acknowledged, 'an acknowledged record was lost')
                while acked < total:
                    n = rnd.randint(1, 20)
                    status, body = c.post(self.t1, lines[acked:acked + n], timeout=10)
                    if status == 409:
                        acked = body['acked']
                        continue
                    self.assertEqual(status, 200, body)
                    self.assertGreaterEqual(body['acked'], acked)
                    acked = body['acked']
                    acknowledged = max(acknowledged, acked)
            except (OSError, http.client.HTTPException, ssl.SSLError):
                pass
            killer.join()
            if c.proc.poll() is None:
                killer.cancel()
            c.proc.wait(10)
            c.watch.join()
            c.proc = None
            kills += 1
            midstream += acknowledged < total
        self.assertGreaterEqual(kills, 100)
        self.assertGreaterEqual(midstream, 100, 'the stream ended before the kills did')
        c.start()
        final = c.acked(self.t1, LOG_A)
        self.assertGreaterEqual(final, acknowledged)
        self.assertEqual(c.stored(), final)
        c.stop()
        v = c.admin('verify')
        self.assertIn(f'{final} records, intact', v.stdout)
        self.assertEqual(self.export(), b''.join(lines[:final]))
        print(f'\n  {kills} kills ({midstream} mid-stream), {acknowledged} records acknowledged, {final} stored', file=sys.stderr)


class AdminPolicyTest(unittest.TestCase):
    def test_card_register_and_policy(self):
        with bench.TempDir('mamori-admin-') as tmp:
            c = Centre(tmp)
            c.add_terminal('T-0001', 'a')
            c.admin('operator', 'add', 'OP0001', '--name', '山田 花子', '--office', 'chuo')
            c.admin('operator', 'add', 'OP0002', '--office', 'chuo')
            c.admin('operator', 'add', 'OP0003', '--office', 'funabashi-tax')
            c.admin('group', 'add', 'G-tax-1', '--office', 'funabashi-tax', '--member', 'OP0002', 'OP0003')
            certs = [c.card_cert(f'card{i}') for i in range(2)]
            card1 = c.admin('card', 'issue', '--cert', certs[0], '--operator', 'OP0001').stdout.strip()
            card2 = c.admin('card', 'issue', '--cert', certs[1], '--group', 'G-tax-1').stdout.strip()
            self.assertRegex(card1, r'^[0-9a-f]{64}$')
            self.assertNotEqual(card1, card2)
            # Unknown operator, bad card id, suspend without a reason: refused.
            self.assertNotEqual(c.admin('card', 'issue', '--cert', certs[0], '--operator', 'NOPE', check=False).returncode, 0)
            self.assertNotEqual(c.admin('card', 'suspend', card1, check=False).returncode, 0)
            self.assertNotEqual(c.admin('card', 'suspend', 'x' * 64, '--reason', 'lost', check=False).returncode, 0)

            c.admin('policy', 'publish')
            c.admin('card', 'suspend', card1, '--reason', 'lost on the train')
            c.admin('card', 'return', card2)
            c.admin('operator', 'retire', 'OP0003', '--reason', 'moved to another city')
            out = os.path.join(tmp, 'policy.json')
            c.admin('policy', 'publish', '--out', out)

            signer_pem = c.admin('policy', 'signer').stdout.encode()
            with open(out, 'rb') as f:
                raw = f.read()
            b = json.loads(raw)
            # Independent check: Ed25519 over the independent JCS bytes without "sig".
            from cryptography.hazmat.primitives import serialization
            pub = serialization.load_pem_public_key(signer_pem)
            unsigned = {k: v for k, v in b.items() if k != 'sig'}
            pub.verify(base64.b64decode(b['sig']), policytool.jcs_bytes(unsigned))
            self.assertEqual(b['serial'], 2)
            cards = {x['id']: x for x in b['cards']}
            self.assertEqual(cards[card1], {'id': card1, 'kind': 'individual', 'operator': 'OP0001',
                                            'status': 'suspended'})
            self.assertEqual(cards[card2]['status'], 'returned')
            self.assertEqual(cards[card2]['group'], 'G-tax-1')
            ops = {x['id']: x for x in b['operators']}
            self.assertEqual(ops['OP0003']['status'], 'retired')
            self.assertEqual(ops['OP0001']['name'], '山田 花子')
            self.assertEqual(b['terminals'], [{'id': 'T-0001', 'office': 'chuo'}])
            self.assertEqual(sorted(o['id'] for o in b['offices']), ['chuo', 'funabashi-tax'])

            # The card register keeps every step.
            hist = c.admin('card', 'history', card1).stdout.splitlines()
            self.assertEqual([h.split('\t')[3] for h in hist], ['issue', 'suspended'])
            self.assertIn('lost on the train', hist[1])

            # Served by the collector with an ETag; 304 on If-None-Match.
            c.start()
            try:
                t1 = os.path.join(tmp, 'T-0001')
                status, body, r = c.request(t1, 'GET', '/v1/policy')
                self.assertEqual(status, 200)
                self.assertEqual(body, b)
                etag = r.getheader('ETag')
                self.assertTrue(etag)
                status, _, _ = c.request(t1, 'GET', '/v1/policy', headers={'If-None-Match': etag})
                self.assertEqual(status, 304)
                c.admin('card', 'resume', card1, '--reason', 'found')
                c.admin('policy', 'publish')
                status, body, r = c.request(t1, 'GET', '/v1/policy', headers={'If-None-Match': etag})
                self.assertEqual(status, 200)
                self.assertEqual(body['serial'], 3)
                self.assertNotEqual(r.getheader('ETag'), etag)
            finally:
                c.stop()


class MklogOptionsTest(unittest.TestCase):
    """mklog, the test logs' writer, refuses a bad option (exit status 2, the option named, what to give
    instead) rather than writing a log other than the one asked for (it read "12x" as 12 and "-1" as
    2^64 - 1 records)."""

    def test_bad_options_refused(self):
        mklog = exe('tests', 'integration', 'mklog')
        bad = [(['--count', '12x'], '--count "12x": give a whole number from 0 to'),
               (['--count', '-1'], '--count "-1"'),
               (['--count', ''], '--count ""'),
               (['--count', '1000000001'], 'from 0 to 1000000000'),
               (['--rotate', '0x10'], '--rotate "0x10"'),
               (['--fork-at', ' 3'], '--fork-at " 3"'),
               (['--start', '-5'], '--start "-5"'),
               (['--start', '99999999999999999999'], '--start "99999999999999999999"'),
               (['--start', '9223372036854775000', '--count', '2'], 'give a smaller --start or --count'),
               (['--log', LOG_A.upper()], 'give a log id: 32 lowercase hex digits'),
               (['--log', LOG_A + '0'], 'give a log id'),
               (['--count', '3', 'extra'], '"extra": give options only')]
        for args, message in bad:
            with self.subTest(args=args):
                p = subprocess.run([mklog, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   timeout=60)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(message, p.stderr)
                self.assertEqual(p.stdout, '', 'no log written')
        p = subprocess.run([mklog, '--count', '3', '--start', '007', '--fork-at', '2', '--variant', 'v'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual([json.loads(l)['ts'] for l in p.stdout.splitlines()], [1007, 2007, 3007])


class SessionEndedTest(unittest.TestCase):
    """PostgreSQL: the server ends every session of the collector (a restart, a failover, here
    pg_terminate_backend()). A terminal's next POST is answered 200, not 503: its worker's first statements
    (the register, the log's state: reads) are sent again on a new connection, then BEGIN. They failed once,
    and the terminal waited for its next try."""

    setUp = CollectorTest.setUp
    tearDown = CollectorTest.tearDown

    def end_sessions(self):
        """Every other client session of the collector's database ended, each waited for; how many."""
        (n, alive), = self.centre.sql(
            'SELECT count(*), count(*) FILTER (WHERE NOT pg_terminate_backend(pid, 5000)) FROM pg_stat_activity'
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
        self.assertEqual(alive, 0)
        return n

    def test_post_after_sessions_ended(self):
        c = self.centre
        lines = c.mklog(count=40)
        self.assertEqual(c.post(self.t1, lines[:10]), (200, {'log': LOG_A, 'acked': 10}))
        for k in range(1, 4):
            self.assertGreaterEqual(self.end_sessions(), 1)  # at least the worker that answered
            batch = lines[10 * k:10 * k + 10]
            self.assertEqual(c.post(self.t1, batch), (200, {'log': LOG_A, 'acked': 10 * k + 10}))
        self.end_sessions()
        self.assertEqual(c.acked(self.t1), 40)
        self.assertEqual(c.stored(), 40)


class AdminStoreFailsTest(unittest.TestCase):
    """SQLite: mamori-admin's reports (audit, ledger, self-inspection) and alerts on a store that fails while
    they read it (a page of a table overwritten once the collector stored it: SQLite reads it back as
    corrupt, the store answers -EIO): each says once on stderr what failed and what to do next, writes no
    report and exits 1. They exited 1 saying nothing: -EIO was taken for "explained already"."""

    setUp = CollectorTest.setUp
    tearDown = CollectorTest.tearDown

    VERBS = {'audit': ['--from', '1970-01-01', '--to', '2030-12-31'],
             'ledger': ['--office', 'chuo', '--from', '1970-01-01', '--to', '2030-12-31'],
             'self-inspection': ['--office', 'chuo', '--year', '2026']}
    # The last leaf page of the records (the highest seqs): a read fails mid-stream, after the others.
    LAST_RECORDS_PAGE = ("SELECT pageno FROM dbstat WHERE name = 'records' AND pagetype = 'leaf'"
                         ' ORDER BY path DESC LIMIT 1')

    def corrupt(self, pristine, page_sql):
        """The store as stored, then the first 64 bytes of the page page_sql names overwritten."""
        shutil.copyfile(pristine, self.centre.db)
        with sqlite3.connect(self.centre.db) as db:
            size = db.execute('PRAGMA page_size').fetchone()[0]
            page = db.execute(page_sql).fetchone()[0]
        db.close()
        with open(self.centre.db, 'r+b') as f:
            f.seek((page - 1) * size)
            f.write(b'\xff' * 64)

    def assert_fails_once(self, verb, args, said, report=True):
        """One line on stderr: what failed, the database's own check (not mamori-admin verify, which reads
        the chains only and cannot find a corrupt page), and to run the verb again."""
        p = self.centre.admin(verb, *args, check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        if report:
            self.assertEqual(p.stdout, '', 'no report')
        self.assertNotIn('BROKEN', p.stdout, 'a read that failed is no verdict on a chain')
        self.assertEqual(p.stderr.count('mamori-admin:'), 1, p.stderr)
        self.assertIn(said, p.stderr)
        self.assertIn(f"Check the database file (sqlite3 {self.centre.db} 'PRAGMA integrity_check'", p.stderr)
        self.assertIn(f'run the {verb} again', p.stderr)
        self.assertNotIn('mamori-admin verify', p.stderr)

    def stored(self):
        """The store as the collector left it (WAL folded into the file), and a copy of it."""
        c = self.centre
        self.assertEqual(c.post(self.t1, c.mklog(count=200))[0], 200)
        proc = c.proc
        c.stop()
        self.assertTrue(proc.stderr.closed, 'stop() closes the collector\'s stderr pipe')
        with sqlite3.connect(c.db) as db:
            db.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        db.close()
        pristine = c.db + '.pristine'
        shutil.copyfile(c.db, pristine)
        return pristine

    def test_reads_say_the_store_failed(self):
        """verify, export, trace and watch read the records too: the same one message when a read fails.
        verify said "BROKEN: stored seq differs" of the log (a read is not a chain's fault), the others
        "X failed: Input/output error" with no next step."""
        c = self.centre
        pristine = self.stored()
        position = os.path.join(c.tmp, 'watch.position')
        reads = {'verify': [], 'export': [], 'trace': ['--operator', 'OP1', '--since', '1970-01-01'],
                 'watch': ['--once', '--position', position]}
        for verb, args in reads.items():
            self.assertEqual(c.admin(verb, *args, check=False).returncode, 0, verb)
        os.unlink(position)  # a new watch: from now, but its first pass reads the last records again
        self.corrupt(pristine, self.LAST_RECORDS_PAGE)
        for verb, args in reads.items():
            with self.subTest(verb=verb):
                self.assert_fails_once(verb, args, f'{verb} failed reading the store: Input/output error',
                                       report=False)

    def test_reports_say_the_store_failed(self):
        c = self.centre
        pristine = self.stored()
        for verb, args in self.VERBS.items():
            self.assertEqual(c.admin(verb, *args, check=False).returncode, 0, verb)

        # Mid-stream: the last page of the records (the highest seqs), after the reports read the others.
        self.corrupt(pristine, self.LAST_RECORDS_PAGE)
        for verb, args in self.VERBS.items():
            with self.subTest(verb=verb, table='records'):
                self.assert_fails_once(verb, args, f'{verb} failed reading the store: Input/output error')
        # The alerts, which each run reads first.
        self.corrupt(pristine, "SELECT rootpage FROM sqlite_master WHERE name = 'alerts'")
        for verb, args in dict(self.VERBS, alerts=[]).items():
            with self.subTest(verb=verb, table='alerts'):
                self.assert_fails_once(verb, args, f'{verb} failed reading the store: Input/output error')


# mklog uses no store: its case is one of the SQLite run only, not run again on PostgreSQL.
if os.environ.get('MAMORI_TEST_STORE', 'sqlite') == 'postgresql':
    del MklogOptionsTest
    del AdminStoreFailsTest  # and the pages of SQLite's file are SQLite's alone
else:  # and the sessions of a PostgreSQL server are PostgreSQL's alone
    del SessionEndedTest

if __name__ == '__main__':
    unittest.main(verbosity=2)
