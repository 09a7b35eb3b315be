#!/usr/bin/python3
# Integration tests of mamori-collector and mamori-admin: real TLS on 127.0.0.1, PKI made by mamori-admin init.
"""mamori-collector over real HTTPS with client certificates, against logs signed by the C record code
(tests/integration/mklog). Checks the DESIGN §7 answers (200/409/422), exactly-once storage across
resends and kill -9, TLS refusal of clients without a valid certificate, hostile bodies, alerts, and
mamori-admin's card register + policy publishing."""
import base64
import calendar
import hashlib
import http.client
import json
import os
import random
import re
import resource
import shlex
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

    def __init__(self, tmp, extra_conf='', store=None, init_args=(), pg_owner=None):
        self.tmp = tmp
        self.conf = os.path.join(tmp, 'collector.conf')
        self.db = os.path.join(tmp, 'collector.db')
        # MAMORI_TEST_STORE=postgresql: the same tests on a database of a private PostgreSQL cluster
        # (pgcluster.py, one per test process), named by [Store] URL=. store='postgresql-tuned' (the
        # benches): PostgreSQL run as the capacity plan deploys it (pgcluster.Cluster(tuned=True)). pg_owner:
        # the database belongs to a role of that name (not a superuser), as which the centre connects, so that
        # mamori-admin init makes the tables as it (README, "PostgreSQL roles").
        self.store = store or os.environ.get('MAMORI_TEST_STORE', 'sqlite')
        self.pg = self.pg_db = None
        if self.store in ('postgresql', 'postgresql-tuned'):
            self.pg = pgcluster.shared(tuned=self.store == 'postgresql-tuned')
            self.store = 'postgresql'
            self.pg_db = 'c' + os.urandom(6).hex()
            self.url = self.pg.create_db(self.pg_db, owner=pg_owner)
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
        self.assertIn(f"Check the database file (sqlite3 {shlex.quote(self.centre.db)} 'PRAGMA integrity_check'",
                      p.stderr)
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


    def test_integrity_check_runs_as_written(self):
        """The database's check is a command to paste into a shell: a path with a space and a quote (the
        centre's directory may be named anything) is quoted, so that it checks that file. It was printed
        bare: `sqlite3 /…/it's a centre/collector.db` is no command at all."""
        c = self.centre
        pristine = self.stored()
        self.corrupt(pristine, self.LAST_RECORDS_PAGE)
        odd = os.path.join(c.tmp, "it's a centre")
        os.makedirs(odd)
        db = os.path.join(odd, 'collector.db')
        shutil.copyfile(c.db, db)
        conf = os.path.join(c.tmp, 'odd.conf')
        with open(c.conf) as f:
            text = f.read()
        self.assertIn(f'Database={c.db}\n', text)
        with open(conf, 'w') as f:
            f.write(text.replace(f'Database={c.db}\n', f'Database={db}\n'))
        p = bench.run([exe('collector', 'mamori-admin'), '--config', conf, 'audit', *self.VERBS['audit']],
                      timeout=120)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"(sqlite3 {shlex.quote(db)} 'PRAGMA integrity_check';", p.stderr)
        cmd = re.search(r"\((sqlite3 .*? 'PRAGMA integrity_check');", p.stderr).group(1)
        check = bench.run(['sh', '-c', cmd])
        self.assertNotEqual(check.stdout.strip(), 'ok', 'the check finds the damage')
        self.assertNotIn('unable to open', check.stderr)
        shutil.copyfile(pristine, db)  # the same command on the file as it was stored: it checks that file
        check = bench.run(['sh', '-c', cmd])
        self.assertEqual((check.returncode, check.stdout.strip()), (0, 'ok'), check.stderr)


def no_file_growth():
    """For a child: no file may be written (RLIMIT_FSIZE 0, SIGXFSZ ignored, so a write fails with EFBIG),
    as a full disk refuses them. A SQLite store opened while the collector holds it needs no write to be
    read; its changes are written (to its WAL) at COMMIT, which fails."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


# A check PostgreSQL makes at COMMIT (a deferred constraint trigger) that refuses every row of a table (or
# those {when} names): the COMMIT of a change that wrote one fails, and PostgreSQL rolls it back.
PG_REFUSE_AT_COMMIT = (
    'CREATE OR REPLACE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS'
    " $$ BEGIN RAISE EXCEPTION 'refused by the test at COMMIT'; END $$;"
    'CREATE CONSTRAINT TRIGGER test_refuse AFTER INSERT ON {table} DEFERRABLE INITIALLY DEFERRED'
    ' FOR EACH ROW {when}EXECUTE FUNCTION test_refuse()')


class AdminSaysWhatIsLeftTest(unittest.TestCase):
    """What mamori-admin says when a run or a change fails for real: what happened, what it leaves (is
    anything lost, half done?) and what to do next — and doing what it says works. Before, these said
    "cannot save the watch position P: E", "policy publish failed: E", "init failed: E", "collector renew
    failed: E", "office: commit failed: E", and took the register's office days for "a stored record"."""

    setUp = CollectorTest.setUp
    tearDown = CollectorTest.tearDown

    def admin_no_writes(self, *args):
        return subprocess.run([exe('collector', 'mamori-admin'), '--config', self.centre.conf, *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120,
                              preexec_fn=no_file_growth)

    def refuse_commits(self, table):
        """A change that writes table fails at COMMIT, on either store: PostgreSQL's check at COMMIT, or
        (SQLite) a mamori-admin that cannot write a file. Returns how to run mamori-admin under it."""
        c = self.centre
        if c.pg:
            c.pg.psql(c.pg_db, PG_REFUSE_AT_COMMIT.format(table=table, when=''))
            self.addCleanup(self.allow_commits, table)
            return lambda *args: c.admin(*args, check=False)
        return self.admin_no_writes

    def allow_commits(self, table):
        if self.centre.pg:
            self.centre.pg.psql(self.centre.pg_db, f'DROP TRIGGER IF EXISTS test_refuse ON {table}')

    def assert_one_message(self, p, *said):
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(p.stderr.count('mamori-admin:'), 1, p.stderr)
        self.assertNotIn('runtime error', p.stderr, 'UBSan')  # a watch of no logs yet passed memcpy NULL
        for s in said:
            self.assertIn(s, p.stderr)

    def test_register_office_days_unreadable(self):
        """The register is read first by audit, ledger, trace and watch: an office's working days that do
        not parse (only a damaged store or a row made by hand holds such) name the register and the office,
        not "a stored record" and mamori-admin verify (which checks records, not the register)."""
        c = self.centre
        c.admin('office', 'days', 'chuo', 'mon-fri')
        c.sql("UPDATE office_calendar SET days = 'someday' WHERE id = 'chuo'")
        position = os.path.join(c.tmp, 'watch.position')
        verbs = {'audit': ['--from', '1970-01-01', '--to', '2030-12-31'],
                 'ledger': ['--office', 'chuo', '--from', '1970-01-01', '--to', '2030-12-31'],
                 'trace': ['--operator', 'OP1', '--since', '1970-01-01'],
                 'watch': ['--once', '--position', position]}
        for verb, args in verbs.items():
            with self.subTest(verb=verb):
                p = c.admin(verb, *args, check=False)
                self.assert_one_message(p, f"{verb} failed: the register's working days of office chuo cannot "
                                        'be read', 'mamori-admin office days chuo DAY', f'run the {verb} again')
                self.assertNotIn('stored record', p.stderr)
                self.assertNotIn('mamori-admin verify', p.stderr)
                self.assertEqual(p.stdout, '')
        c.admin('office', 'days', 'chuo', 'mon-fri')  # as the message says
        for verb, args in verbs.items():
            self.assertEqual(c.admin(verb, *args, check=False).returncode, 0, verb)

    def test_watch_position_not_saved(self):
        """watch stops when it cannot save its position. Its file keeps the position saved before: the next
        watch prints again what this one printed since then, nothing skipped. A new watch that saved none:
        the next one starts from its own start."""
        c = self.centre
        position = os.path.join(c.tmp, 'watch.position')
        args = ['watch', '--once', '--format', 'json', '--position', position]
        p = self.admin_no_writes(*args)
        self.assert_one_message(p, f'watch stopped: cannot save its position to {position}: File too large',
                                'No position was saved: the next watch starts from when it starts',
                                'mamori-admin audit covers it', 'start the watch again')
        self.assertFalse(os.path.exists(position))
        c.admin(*args)
        with open(position) as f:
            saved = f.read()
        # A terminal's log, then a new one while the first did not end with agent.stop: the collector's
        # new-log alert, and findings.
        self.assertEqual(c.post(self.t1, c.mklog(count=3))[0], 200)
        self.assertEqual(c.post(self.t1, c.mklog(log=LOG_B, count=3))[0], 200)
        p = self.admin_no_writes(*args)
        self.assertNotEqual(p.stdout, '', 'findings printed before the save failed')
        self.assert_one_message(p, f'watch stopped: cannot save its position to {position}: File too large',
                                'Nothing is skipped: the file keeps the position saved before, so the next '
                                'watch prints again the findings and alerts printed since then',
                                "Check that the file's directory is writable", 'start the watch again')
        with open(position) as f:
            self.assertEqual(f.read(), saved)
        again = c.admin(*args)
        self.assertEqual(again.stdout, p.stdout, 'printed again')
        with open(position) as f:
            self.assertNotEqual(f.read(), saved)

    def test_policy_change_not_published(self):
        """policy publish (--emergency) that the store refuses at COMMIT: nothing published, and which bundle
        the collector goes on serving (here: not an emergency lock)."""
        c = self.centre
        self.assertIn('published policy serial 1', c.admin('policy', 'publish').stdout)
        admin = self.refuse_commits('policies')
        p = admin('policy', 'publish', '--emergency', '--reason', 'drill')
        self.assert_one_message(p, 'policy publish failed: ', '; nothing was published: the collector keeps '
                                'serving policy serial 1 (no emergency lock). Run the same command again; if it '
                                'fails the same way, ')
        self.assertIn("the PostgreSQL server's log says why" if c.pg else 'check the disk that holds the '
                      'database file', p.stderr)
        self.assertEqual(c.sql('SELECT max(serial) FROM policies'), [(1,)])
        self.allow_commits('policies')
        out = c.admin('policy', 'publish', '--emergency', '--reason', 'drill').stdout
        self.assertIn('published policy serial 2', out)
        self.assertIn('emergency lock in force', out)

    def test_register_change_not_stored(self):
        """A register change that the store refuses at COMMIT: rolled back, the register as it was."""
        c = self.centre
        hours = "SELECT hours FROM offices WHERE id = 'chuo'"
        before = c.sql(hours)
        admin = self.refuse_commits('history')
        p = admin('office', 'hours', 'chuo', '08:30-17:15')
        self.assert_one_message(p, 'office chuo: the change was not stored: the database refused to commit it',
                                'and it was rolled back, the register is as it was. Run the same command again')
        self.assertNotIn('commit failed', p.stderr)
        self.assertEqual(c.sql(hours), before)
        self.assertNotEqual(before, [('08:30-17:15',)])
        self.allow_commits('history')
        c.admin('office', 'hours', 'chuo', '08:30-17:15')
        self.assertEqual(c.sql(hours), [('08:30-17:15',)])

    def refuse_writes(self, table):
        """Every INSERT into table fails as it is made (not at COMMIT): a trigger that raises, on either store
        (SQLite: json() of a string that is no JSON, "malformed JSON"; PostgreSQL: RAISE)."""
        c = self.centre
        if c.pg:
            c.pg.psql(c.pg_db, PG_REFUSE_AT_COMMIT[:PG_REFUSE_AT_COMMIT.index('CREATE CONSTRAINT')] +
                      f'CREATE TRIGGER test_refuse_now BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION test_refuse()')
            return lambda: c.pg.psql(c.pg_db, f'DROP TRIGGER test_refuse_now ON {table}')
        c.sql(f"CREATE TRIGGER test_refuse_now BEFORE INSERT ON {table} BEGIN SELECT json('refused by the test'); END")
        return lambda: c.sql('DROP TRIGGER test_refuse_now')

    def test_register_write_refused(self):
        """A register change whose write the database refuses: rolled back, and it says so, what that leaves and
        what to do, as a refused COMMIT does. It said "office chuo: Input/output error". An unknown id keeps its
        own answer (not registered: nothing was changed), and a group of an unknown member names the member's
        step; it said "group add: a member is not a registered operator: not registered"."""
        c = self.centre
        hours = "SELECT hours FROM offices WHERE id = 'chuo'"
        before = c.sql(hours)
        c.admin('operator', 'add', 'OP1', '--office', 'chuo')
        history = c.sql('SELECT count(*) FROM history')
        req, d = self.new_request('T-0002', 'b')
        enr = os.path.join(d, 'enr')
        allow = self.refuse_writes('history')
        said = {('office', 'hours', 'chuo', '08:30-17:15'): ('office chuo', ''),
                ('operator', 'roles', 'OP1', 'counter'): ('operator OP1', ''),
                ('terminal', 'add', '--request', req, '--office', 'chuo', '--out', enr):
                    ('terminal add T-0002', '; no enrolment file was written')}
        for args, (what, left) in said.items():
            with self.subTest(args=args[:2]):
                p = c.admin(*args, check=False)
                self.assert_one_message(p, f'{what}: the change was not stored: the database refused it (Input/output '
                                        'error) and it was rolled back, the register is as it was' + left +
                                        '. Run the same command again; if it fails the same way, ' + self.store_why())
                self.assertEqual(p.stdout, '')
        self.assertEqual(c.sql(hours), before)
        self.assertEqual(c.sql('SELECT count(*) FROM history'), history)
        self.assertFalse(os.path.exists(enr))
        allow()
        c.admin('office', 'hours', 'chuo', '08:30-17:15')  # as it says
        self.assertEqual(c.sql(hours), [('08:30-17:15',)])
        # Not the database's refusal: the register's own answers.
        p = c.admin('office', 'hours', 'nowhere', '08:30-17:15', check=False)
        self.assert_one_message(p, 'office nowhere: not registered; nothing was changed\n')
        p = c.admin('operator', 'roles', 'OP9', 'counter', check=False)
        self.assert_one_message(p, 'operator OP9: not registered; nothing was changed\n')
        p = c.admin('group', 'add', 'G1', '--office', 'chuo', '--member', 'OP9', check=False)
        self.assert_one_message(p, 'group add G1: a member is not a registered operator; nothing was changed. Add '
                                'them first (mamori-admin operator add)')
        self.assertNotIn('database', p.stderr)

    def test_init_failed_lists_what_it_made(self):
        """An init that fails half way (here the collector's certificate cannot be written: a directory is in
        its place) lists the files it made, which nothing uses yet; removed, init runs again."""
        tmp = self.tmp
        conf = os.path.join(tmp, 'second.conf')
        admin_dir, state = os.path.join(tmp, 'second-admin'), os.path.join(tmp, 'second-state')
        with open(conf, 'w') as f:
            f.write(f'[Admin]\nDirectory={admin_dir}\n[Collector]\nStateDirectory={state}\n'
                    f'Database={tmp}/second.db\n')
        os.makedirs(os.path.join(state, 'collector.pem'))
        init = [exe('collector', 'mamori-admin'), '--config', conf, 'init']
        p = bench.run(init, timeout=120)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('mamori-admin: init failed: Is a directory; the centre is not initialised. It made these '
                      'files, which nothing uses yet:\n', p.stderr)
        self.assertIn('Remove them', p.stderr)
        made = [line[2:] for line in p.stderr.splitlines() if line.startswith('  /')]
        self.assertEqual(sorted(made), sorted([os.path.join(admin_dir, n) for n in os.listdir(admin_dir)]
                                              + [os.path.join(state, 'collector.key')]))
        for path in made:
            os.unlink(path)
        os.rmdir(os.path.join(state, 'collector.pem'))
        p = bench.run(init, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('initialised the centre', p.stdout)

    def test_collector_renew_failed(self):
        """collector renew writes the key, then the certificate. Failing before the key: nothing changed.
        Failing between: the two no longer match, so the collector must not be restarted until a renew
        succeeds — the running one goes on with the pair it loaded."""
        c = self.centre
        self.assertEqual(c.post(self.t1, c.mklog(count=3))[0], 200)
        state = os.path.join(c.tmp, 'state')
        renew = ['collector', 'renew', '--name', '127.0.0.1']
        key, cert = os.path.join(state, 'collector.key'), os.path.join(state, 'collector.pem')
        os.rename(key, key + '.aside')
        os.makedirs(key)
        p = c.admin(*renew, check=False)
        self.assert_one_message(p, 'collector renew failed: Is a directory; nothing was changed, the '
                                f"collector's key and certificate in {state} are as they were",
                                'then run mamori-admin collector renew again')
        os.rmdir(key)
        os.rename(key + '.aside', key)
        os.rename(cert, cert + '.aside')
        os.makedirs(cert)
        p = c.admin(*renew, check=False)
        self.assert_one_message(p, f'collector renew failed: Is a directory; the new key {key} is written but '
                                f'not its certificate: {cert} is still the old one',
                                'The running collector goes on with the pair it loaded: do not restart it until '
                                'mamori-admin collector renew (with the same --name) has succeeded')
        self.assertEqual(c.acked(self.t1), 3, 'the running collector still answers')
        os.rmdir(cert)
        c.admin(*renew)
        c.stop()
        c.start()
        self.assertEqual(c.acked(self.t1), 3)


    def store_why(self):
        """What admin_store_why() says of a refusal that is not a lock's or a full disk's."""
        return ("the PostgreSQL server's log says why" if self.centre.pg
                else 'check the disk that holds the database file (free space, I/O errors in the kernel log)')

    def new_request(self, term, seed):
        """An enrolment request of terminal term (identity from mklog's seed) and where its answer goes."""
        c = self.centre
        pub = os.path.join(c.tmp, f'{term}.pub')
        if not os.path.exists(pub):
            c.mklog(seed=seed, term=term, count=1, pub=pub)
        d = os.path.join(c.tmp, f'{term}-{os.urandom(3).hex()}')
        os.makedirs(d)
        return enroltool.make_request(term, pub, os.path.join(d, 'client.key'), os.path.join(d, 'request.json')), d

    def test_terminal_changes_not_stored(self):
        """terminal add, rekey and retire that the store refuses at COMMIT: rolled back, no enrolment file
        written, the terminal as it was (its certificate accepted, not retired). They said "cannot register
        terminal T: E" and "terminal retire: E", with no next step. Run again as they say, they work."""
        c = self.centre
        self.assertEqual(c.post(self.t1, c.mklog(count=3))[0], 200)
        add_req, add_dir = self.new_request('T-0002', 'b')
        rekey_req, rekey_dir = self.new_request('T-0001', 'a')
        add = ['terminal', 'add', '--request', add_req, '--office', 'chuo', '--out', os.path.join(add_dir, 'enr')]
        rekey = ['terminal', 'rekey', '--request', rekey_req, '--out', os.path.join(rekey_dir, 'enr')]
        retire = ['terminal', 'retire', 'T-0001', '--reason', 'stolen']
        history = c.sql('SELECT count(*) FROM history')
        admin = self.refuse_commits('history')
        said = {'add': (add, 'terminal add T-0002', '; no enrolment file was written. '),
                'rekey': (rekey, 'terminal rekey T-0001', '; the terminal keeps its certificate and no enrolment '
                          'file was written. '),
                'retire': (retire, 'terminal retire T-0001', '; the collector still accepts the terminal. ')}
        for verb, (args, what, left) in said.items():
            with self.subTest(verb=verb):
                p = admin(*args)
                self.assert_one_message(p, f'{what}: the change was not stored: the database refused to commit it (',
                                        ') and it was rolled back, the register is as it was' + left +
                                        'Run the same command again; if it fails the same way, ' + self.store_why())
                self.assertNotIn('cannot register', p.stderr)
                self.assertEqual(p.stdout, '')
        self.assertFalse(os.path.exists(os.path.join(add_dir, 'enr')) or os.path.exists(os.path.join(rekey_dir, 'enr')))
        self.assertEqual(c.sql("SELECT count(*) FROM terminals WHERE id = 'T-0002'"), [(0,)])
        self.assertEqual(c.sql('SELECT count(*) FROM history'), history)
        self.assertEqual(c.acked(self.t1), 3, 'its certificate accepted, not retired')
        self.allow_commits('history')
        for verb, (args, _, _) in said.items():
            self.assertEqual(c.admin(*args, check=False).returncode, 0, verb)
        enroltool.unpack(os.path.join(add_dir, 'enr'), add_dir)
        self.assertEqual(c.post(add_dir, c.mklog(seed='b', log=LOG_B, term='T-0002', count=3))[0], 200)
        status, body, _ = c.request(self.t1, 'GET', f'/v1/logs/{LOG_A}/acked')
        self.assertEqual((status, body), (403, {'error': 'terminal-retired'}))

    def hold_terminal(self, term):
        """Another client holds the store while the block runs: SQLite's write lock (BEGIN IMMEDIATE), or
        (PostgreSQL) the terminal's row, with a lock_timeout of 1 s for the database's new sessions."""
        c = self.centre
        if not c.pg:
            db = sqlite3.connect(c.db, isolation_level=None)
            db.execute('BEGIN IMMEDIATE')
            return lambda: (db.execute('ROLLBACK'), db.close())
        c.pg.psql(c.pg_db, f"ALTER DATABASE {c.pg_db} SET lock_timeout = '1s'")
        holder = subprocess.Popen([os.path.join(c.pg.bin, 'psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d',
                                   c.pg.conninfo(c.pg_db)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  text=True)
        holder.stdin.write(f"BEGIN; SELECT 1 FROM terminal_certs WHERE id = '{term}' FOR UPDATE;\n")
        holder.stdin.flush()
        for _ in range(300):
            if c.sql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{c.pg_db}'"
                     " AND state = 'idle in transaction' AND query LIKE '%FOR UPDATE%'") == [(1,)]:
                break
            time.sleep(0.1)
        else:
            self.fail('psql holds no lock')

        def release():
            holder.stdin.write('ROLLBACK;\n')
            holder.stdin.close()
            self.assertEqual(holder.wait(30), 0)
            c.pg.psql(c.pg_db, f'ALTER DATABASE {c.pg_db} RESET lock_timeout')
        return release

    def test_terminal_retire_while_store_held(self):
        """terminal retire on a store another client holds (SQLite: opening it waits 10 s for its write lock;
        PostgreSQL: the retire's write waits lock_timeout): not retired, and what may hold it. They said
        "cannot open the store F: Device or resource busy (check [Store] URL= in collector.conf and that the
        database is reachable)" and "terminal retire: Device or resource busy"."""
        c = self.centre
        self.assertEqual(c.post(self.t1, c.mklog(count=3))[0], 200)
        release = self.hold_terminal('T-0001')
        try:
            p = c.admin('terminal', 'retire', 'T-0001', '--reason', 'stolen', check=False)
        finally:
            release()
        if c.pg:
            said = ('terminal retire T-0001: the change was not stored: the database refused it (Device or resource '
                    'busy) and it was rolled back, the register is as it was; the collector still accepts the '
                    'terminal. Run the same command again; ')
        else:
            said = (f'cannot open the store {c.db}: Device or resource busy: another client held it longer than '
                    'mamori-admin waits; nothing was done. Run the same command again; ')
        self.assert_one_message(p, said + 'if it fails the same way, see what else holds the database that long (a '
                                'retention run, another mamori-admin)')
        self.assertNotIn('check [Store] URL=', p.stderr)
        self.assertEqual(c.acked(self.t1), 3, 'not retired')
        c.admin('terminal', 'retire', 'T-0001', '--reason', 'stolen')  # as it says
        self.assertEqual(c.request(self.t1, 'GET', f'/v1/logs/{LOG_A}/acked')[0], 403)

    def test_terminal_answer_not_written(self):
        """add and rekey register the terminal first, then write its enrolment file: when that cannot be
        written, the terminal is enrolled (rekeyed: its old certificate refused) and a rekey with the same
        request writes the file. It said "cannot write FILE: E" only."""
        c = self.centre
        req, d = self.new_request('T-0002', 'b')
        nowhere = os.path.join(c.tmp, 'no-such-directory', 'enr')
        p = c.admin('terminal', 'add', '--request', req, '--office', 'chuo', '--out', nowhere, check=False)
        self.assert_one_message(p, f'terminal T-0002 is enrolled (office chuo), but its enrolment file cannot be '
                                f'written to {nowhere}: No such file or directory. Nothing needs undoing: check that '
                                '--out names a file in a writable directory on a disk not full, then run mamori-admin '
                                f'terminal rekey --request {shlex.quote(req)} --out FILE, which writes it')
        self.assertEqual(c.sql("SELECT count(*) FROM terminals WHERE id = 'T-0002'"), [(1,)])
        enr = os.path.join(d, 'enr')
        c.admin('terminal', 'rekey', '--request', req, '--out', enr)  # as it says
        enroltool.unpack(enr, d)
        self.assertEqual(c.post(d, c.mklog(seed='b', term='T-0002', count=3))[0], 200)
        # A rekey whose file is not written: the old certificate is refused until one is installed.
        p = c.admin('terminal', 'rekey', '--request', req, '--out', nowhere, check=False)
        self.assert_one_message(p, 'terminal T-0002 is rekeyed: the collector refuses its previous certificate from '
                                f'now on, but the enrolment file with the new one cannot be written to {nowhere}: No '
                                "such file or directory. Until one is installed the terminal's uploads are refused: "
                                f'check that --out', f'terminal rekey --request {shlex.quote(req)} --out FILE, which writes it')
        status, body, _ = c.request(d, 'GET', '/v1/policy')
        self.assertEqual((status, body), (403, {'error': 'certificate-replaced'}))
        c.admin('terminal', 'rekey', '--request', req, '--out', enr)
        enroltool.unpack(enr, d)
        self.assertEqual(c.acked(d), 3)

    def refuse_deleting(self, log):
        """Retention's deletions of log fail. PostgreSQL: its anchor is refused at the COMMIT of the month's
        drop. SQLite, which deletes by rows: as its rows are deleted, a trigger fails (json() of a log id:
        "malformed JSON"; of a column read for the row, since SQLite evaluates an expression of the
        statement's parameters alone, old.log, once for every row, whatever the WHERE)."""
        c = self.centre
        if c.pg:
            c.pg.psql(c.pg_db, PG_REFUSE_AT_COMMIT.format(table='anchors', when=f"WHEN (NEW.log = '{log}') "))
            return lambda: c.pg.psql(c.pg_db, 'DROP TRIGGER test_refuse ON anchors')
        c.sql('CREATE TABLE test_refused (log TEXT)')
        c.sql(f"INSERT INTO test_refused VALUES ('{log}')")
        c.sql('CREATE TRIGGER test_refuse BEFORE DELETE ON records'
              ' BEGIN SELECT json(log) FROM test_refused WHERE log = old.log; END')
        return lambda: c.sql('DROP TRIGGER test_refuse')

    def test_retention_failed_half_way(self):
        """retention deletes month by month, oldest first. Stopped by a failure in the second of three old
        months, it says which months it deleted, what of the one it stopped in (PostgreSQL drops a month in one
        transaction: nothing; SQLite deletes each log's part in its own: the first log's), which months are
        left and that running it again is safe; run again, it deletes what is left and the logs verify. It
        said "retention failed: E (what was deleted before is anchored and recorded; run it again)"."""
        c = self.centre
        months = {'a' * 32: (2015, 1), 'b' * 32: (2015, 2), 'c' * 32: (2015, 2), 'd' * 32: (2015, 3)}
        for log, (y, m) in months.items():
            start = calendar.timegm((y, m, 5, 0, 0, 0)) * 10 ** 6
            self.assertEqual(c.post(self.t1, c.mklog(log=log, count=5, start=start))[0], 200, log)
        allow = self.refuse_deleting('c' * 32)
        p = c.admin('retention', check=False)
        self.assertIn('month 2015-01: deleted 5 records of 1 logs', p.stdout)
        self.assertNotIn('month 2015-02: deleted', p.stdout)
        if c.pg:
            done, left = '2015-01', '2015-02'
        else:
            done, left = '2015-01, and 5 of the 10 records of 2015-02', 'the other 5 records of 2015-02'
        self.assert_one_message(p, 'retention failed deleting month 2015-02: Input/output error. Deleted (anchored '
                                f'and recorded, as printed above): {done}; left: {left}, and 2015-03. Running '
                                'mamori-admin retention again is safe: it goes on from what was deleted; if it fails '
                                'the same way, ' + self.store_why())
        stored = dict(c.sql('SELECT log, count(*) FROM records GROUP BY log'))
        self.assertEqual(stored, {'b' * 32: 5, 'c' * 32: 5, 'd' * 32: 5} if c.pg else {'c' * 32: 5, 'd' * 32: 5})
        allow()
        p = c.admin('retention')
        self.assertIn(f'deleted {15 if c.pg else 10} records older than', p.stdout)
        self.assertEqual(c.stored(), 0)
        self.assertEqual(c.admin('verify', check=False).returncode, 0)


class AdminStoreFailsPgTest(unittest.TestCase):
    """PostgreSQL: mamori-admin's runs on a store that refuses their reads (the records table's SELECT
    revoked from the role mamori-admin connects as) say once, before reading anything, which privilege the
    role lacks and the GRANT that gives it (README, "PostgreSQL roles")."""

    setUp = CollectorTest.setUp
    tearDown = CollectorTest.tearDown

    VERBS = dict(AdminStoreFailsTest.VERBS, verify=[], export=[],
                 trace=['--operator', 'OP1', '--since', '1970-01-01'])

    def test_reads_say_the_store_failed(self):
        c = self.centre
        self.assertEqual(c.post(self.t1, c.mklog(count=200))[0], 200)
        role = 'admin_' + os.urandom(4).hex()
        c.pg.psql(c.pg_db, f'CREATE ROLE {role} LOGIN; GRANT USAGE, CREATE ON SCHEMA public TO {role};'
                           f' GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}')
        conf = os.path.join(c.tmp, 'role.conf')
        with open(c.conf) as f:
            text = f.read()
        self.assertIn(f'URL={c.url}\n', text)
        url = c.url.replace(f'user={pgcluster.SUPERUSER} ', f'user={role} ')
        self.assertNotEqual(url, c.url)
        with open(conf, 'w') as f:
            f.write(text.replace(f'URL={c.url}\n', f'URL={url}\n'))

        def admin(verb, args):
            return bench.run([exe('collector', 'mamori-admin'), '--config', conf, verb, *args], timeout=120)

        for verb, args in self.VERBS.items():
            p = admin(verb, args)
            self.assertEqual(p.returncode, 0, (verb, p.stderr))
        c.pg.psql(c.pg_db, f'REVOKE SELECT ON records FROM {role}')
        for verb, args in self.VERBS.items():
            with self.subTest(verb=verb):
                p = admin(verb, args)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertEqual(p.stderr,
                                 f'mamori-admin: {verb}: role {role} lacks SELECT on table records, which reading the '
                                 f"store needs; as the tables' owner ({pgcluster.SUPERUSER}), run: GRANT SELECT ON ALL "
                                 f'TABLES IN SCHEMA public TO {role}\n')
                self.assertEqual(p.stdout, '', 'no report')


def readme_sql(marker):
    """The README's ```sql block that holds marker, as statements."""
    with open(os.path.join(HERE, '..', '..', 'README.md'), encoding='utf-8') as f:
        blocks = re.findall(r'```sql\n(.*?)```', f.read(), re.S)
    block = [b for b in blocks if marker in b]
    assert len(block) == 1, marker
    return re.sub(r'--[^\n]*', '', block[0])


class PgRolesTest(unittest.TestCase):
    """PostgreSQL with a role of its own for each program, set up as README's "PostgreSQL roles" says (its
    very GRANTs): the tables' owner (the role mamori-admin init ran as), a collector's role that may read and
    add but neither delete nor own, and an auditor's that may only SELECT. Records of a month that has no
    partition (mklog's: 2025-11) wait in the default partition when they open the store."""

    def setUp(self):
        self._tmp = bench.TempDir('mamori-pgroles-')
        self.tmp = self._tmp.__enter__()
        sfx = os.urandom(3).hex()
        self.owner, self.coll, self.auditor = f'owner_{sfx}', f'mamori-collector-{sfx}', f'auditor_{sfx}'
        self.centre = Centre(self.tmp, store='postgresql', pg_owner=self.owner)
        self.t1 = self.centre.add_terminal('T-0001', 'a')
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            bench.stop_process(p)
            if p.stderr:
                p.stderr.close()
        self.centre.stop()
        self._tmp.__exit__(None, None, None)

    def psql(self, query, user=None, check=True):
        return self.centre.pg.psql(self.centre.pg_db, query, user=user or pgcluster.SUPERUSER, check=check)

    def grant(self, collector=True, auditor=True):
        """The README's roles and GRANTs, for this test's role names, run as the README says."""
        c = self.centre
        if collector:
            self.psql(f'CREATE ROLE "{self.coll}" LOGIN')
        if auditor:
            self.psql(f'CREATE ROLE {self.auditor} LOGIN')
        grants = readme_sql('GRANT EXECUTE ON FUNCTION mamori_records_maintain')
        grants = grants.replace('"mamori-collector"', f'"{self.coll}"').replace('mamori_audit', self.auditor)
        for stmt in filter(str.strip, grants.split(';')):
            if (collector and self.coll in stmt) or (auditor and self.auditor in stmt):
                self.psql(stmt, user=self.owner)
        self.assertIn(f'user={self.owner} ', c.url)

    def conf_as(self, role):
        """collector.conf (and its drop-ins) with the store's URL naming role."""
        c = self.centre
        conf = os.path.join(self.tmp, f'{role}.conf')
        with open(c.conf) as f:
            text = f.read()
        url = c.url.replace(f'user={self.owner} ', f'user={role} ')
        with open(conf, 'w') as f:
            f.write(text.replace(f'URL={c.url}\n', f'URL={url}\n'))
        if not os.path.exists(conf + '.d'):
            shutil.copytree(c.conf + '.d', conf + '.d')
        return conf

    def admin_as(self, role, *args):
        return bench.run([exe('collector', 'mamori-admin'), '--config', self.conf_as(role), *args], timeout=120)

    def collector_as(self, role, conf=None):
        """A collector started as role (or with conf): (its port, None), or (None, its stderr) when it exited."""
        p = subprocess.Popen([exe('collector', 'mamori-collector'), '--config', conf or self.conf_as(role)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        w = self.watch = bench.LineWatcher(p.stderr)  # the lines it wrote before listening: self.watch.lines
        try:
            return int(w.wait(r'listening on 127\.0\.0\.1 port (\d+)', timeout=30).group(1)), None
        except Exception:
            p.wait(30)
            w.join()
            return None, '\n'.join(w.lines) + '\n'

    def post_waiting(self, lines):
        """lines posted (as the owner's collector: opened first, so nothing is filed after the post) and left
        waiting in the default partition."""
        c = self.centre
        c.start()
        self.assertEqual(c.post(self.t1, lines)[0], 200)
        c.stop()
        self.assertEqual(self.waiting(), len(lines))

    def waiting(self):
        return int(self.psql('SELECT count(*) FROM records_default'))

    def test_collector_role_files_waiting_records_and_cannot_delete(self):
        c = self.centre
        self.grant(auditor=False)
        lines = c.mklog(count=40)
        self.post_waiting(lines[:20])
        # Two collectors of the collector's role start at once: both open the store (one files the month
        # waiting in the default partition, the other finds it filed) and serve.
        ports, conf = [], self.conf_as(self.coll)
        threads = [threading.Thread(target=lambda: ports.append(self.collector_as(self.coll, conf)))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([p[1] for p in ports], [None, None], 'both started')
        self.assertEqual(self.waiting(), 0, 'the waiting records were filed into their month')
        self.assertEqual(self.psql("SELECT count(*), pg_get_userbyid(relowner) FROM records_202511, pg_class"
                                   " WHERE relname = 'records_202511' GROUP BY relowner").strip(),
                         f'20\t{self.owner}', "the month's partition belongs to the tables' owner")
        c.port = ports[0][0]
        self.assertEqual(c.post(self.t1, lines[20:30])[0], 200)
        c.port = ports[1][0]
        self.assertEqual(c.post(self.t1, lines[20:])[0], 200)
        self.assertEqual(c.acked(self.t1), 40)
        self.assertEqual(c.stored(), 40)
        # Whatever it is made to do, the collector's role cannot destroy a record.
        for sql, error in [('DELETE FROM records', 'permission denied for table records'),
                           ('TRUNCATE records', 'permission denied for table records'),
                           ('DELETE FROM records_202511', 'permission denied for table records_202511'),
                           ('DROP TABLE records_202511', 'must be owner of table records_202511'),
                           ('ALTER TABLE records DETACH PARTITION records_202511', 'must be owner of table records'),
                           ('SELECT mamori_records_partition(0, 0)',
                            'permission denied for function mamori_records_partition'),
                           ('UPDATE records SET line = line', 'permission denied for table records')]:
            with self.subTest(sql=sql):
                p = self.psql(sql, user=self.coll, check=False)
                self.assertNotEqual(p.returncode, 0, sql)
                self.assertIn(error, p.stderr)
        self.assertEqual(c.stored(), 40)
        v = c.admin('verify')
        self.assertIn('40 records, intact', v.stdout)

    def test_auditor_reads_and_changes_nothing(self):
        c = self.centre
        self.grant(collector=False)
        lines = c.mklog(count=30)
        self.post_waiting(lines)
        history = self.psql('SELECT count(*) FROM history')
        reads = {'verify': [], 'export': [], 'alerts': [], 'history': [], 'cards': [], 'register': ['verify'],
                 'audit': ['--from', '2025-01-01', '--to', '2026-12-31', '--format', 'json'],
                 'ledger': ['--office', 'chuo', '--from', '2025-01-01', '--to', '2026-12-31'],
                 'trace': ['--operator', 'OP1', '--since', '2025-01-01']}
        for verb, args in reads.items():
            with self.subTest(verb=verb):
                p = self.admin_as(self.auditor, verb, *args)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertNotIn('mamori-admin:', p.stderr)
        self.assertIn('30 records, intact', self.admin_as(self.auditor, 'verify').stdout)
        self.assertEqual(self.admin_as(self.auditor, 'export').stdout.encode(), b''.join(lines))
        self.assertEqual(self.waiting(), 30, "a reader's open files nothing")
        # What it may not do, it is refused before anything is read or changed, with the GRANT to run.
        p = self.admin_as(self.auditor, 'operator', 'add', 'OP9', '--office', 'chuo')
        self.assertEqual(p.returncode, 1)
        a, o = self.auditor, self.owner
        self.assertEqual(p.stderr,
                         f'mamori-admin: operator add: role {a} lacks INSERT on table terminals, which changing the '
                         f"register needs; as the tables' owner ({o}), run: GRANT SELECT ON ALL TABLES IN SCHEMA "
                         f'public TO {a}; GRANT INSERT, UPDATE ON terminals, terminal_certs, offices, office_calendar, '
                         f'operators, operator_roles, groups_, cards, policies, secret_changes TO {a}; GRANT INSERT ON '
                         f'history TO {a}\n')
        p = self.admin_as(self.auditor, 'retention', '--dry-run')
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr,
                         f'mamori-admin: retention: role {a} does not own the table records (its owner is {o}), and '
                         f"only the owner may drop a month's partition or rebuild its key: run it as {o}, or, as "
                         f'{o}: GRANT {o} TO {a}\n')
        self.assertEqual(p.stdout, '')
        self.assertEqual(self.psql('SELECT count(*) FROM history'), history, 'nothing changed')
        self.assertEqual(self.psql("SELECT count(*) FROM operators WHERE id = 'OP9'").strip(), '0')
        self.assertEqual(self.waiting(), 30)
        # Without SELECT on records, a report says so before it reads anything.
        self.psql(f'REVOKE SELECT ON records FROM {a}', user=o)
        p = self.admin_as(self.auditor, 'verify')
        self.assertEqual((p.returncode, p.stdout), (1, ''))
        self.assertEqual(p.stderr,
                         f'mamori-admin: verify: role {a} lacks SELECT on table records, which reading the store '
                         f"needs; as the tables' owner ({o}), run: GRANT SELECT ON ALL TABLES IN SCHEMA public TO "
                         f'{a}\n')

    def test_missing_grant_is_named(self):
        c = self.centre
        self.grant(auditor=False)
        self.psql(f'REVOKE EXECUTE ON FUNCTION mamori_records_maintain(bigint) FROM "{self.coll}"', user=self.owner)
        self.post_waiting(c.mklog(count=5))
        port, err = self.collector_as(self.coll)
        self.assertIsNone(port)
        q, o = f'"{self.coll}"', self.owner
        self.assertEqual(err,
                         f'mamori-collector: role {q} lacks EXECUTE on function '
                         f"mamori_records_maintain(bigint), which storing records needs; as the tables' owner ({o}), "
                         f'run: GRANT SELECT ON mamori_schema, history, terminal_certs, policies TO {q}; GRANT SELECT, '
                         f'INSERT ON records TO {q}; GRANT SELECT, INSERT, UPDATE ON logs, alerts, secret_changes TO '
                         f'{q}; GRANT SELECT, UPDATE ON terminals TO {q}; GRANT EXECUTE ON FUNCTION '
                         f'mamori_records_maintain(bigint) TO {q}\n')
        self.assertEqual(self.procs[-1].returncode, 1)
        self.assertEqual(self.waiting(), 5, 'nothing filed')
        # Nor may it insert: named the same way.
        self.psql(f'GRANT EXECUTE ON FUNCTION mamori_records_maintain(bigint) TO "{self.coll}";'
                  f' REVOKE INSERT ON records FROM "{self.coll}"', user=o)
        port, err = self.collector_as(self.coll)
        self.assertIsNone(port)
        self.assertTrue(err.startswith(f'mamori-collector: role {q} lacks INSERT on table '
                                       f"records, which storing records needs; as the tables' owner ({o}), run: "),
                        err)
        # A database without tables yet, opened first by a role that may not make them.
        db = 'empty' + os.urandom(4).hex()
        c.pg.psql('postgres', f'CREATE DATABASE {db} OWNER {o}')
        conf = self.conf_as(self.coll)
        with open(conf) as f:
            text = f.read()
        with open(conf, 'w') as f:
            f.write(text.replace(f'dbname={c.pg_db}', f'dbname={db}'))
        port, err = self.collector_as(self.coll, conf)
        self.assertIsNone(port)
        self.assertEqual(err,
                         f'mamori-collector: cannot open the store: the database holds no mamori tables yet, and '
                         f'role {q} may not make them (it lacks CREATE on schema public): run mamori-admin init as '
                         f"the role that is to own them, or, as the schema's owner: GRANT CREATE ON SCHEMA public TO "
                         f'{q}\n')
        self.assertEqual(c.pg.psql(db, "SELECT count(*) FROM pg_class WHERE relname = 'records'").strip(), '0')

    def test_collector_role_that_could_delete_is_named(self):
        """A collector whose role could destroy records (the tables' owner, or DELETE/TRUNCATE on records) says so
        at every start, and what to do; it serves meanwhile (refusing would stop the policy reaching the
        terminals too). It said nothing."""
        c = self.centre
        self.grant(auditor=False)
        q, o = f'"{self.coll}"', self.owner
        port, err = self.collector_as(o)
        self.assertIsNone(err)
        said = [line for line in self.watch.lines if 'warning' in line]
        self.assertEqual(said, [
            f"mamori-collector: warning: role {o} has the rights of the tables' owner ({o}), so a collector could "
            'delete records and drop months, which its role must never be able to do (README, "PostgreSQL roles"). '
            'Give the collector a role of its own: as PostgreSQL\'s superuser, CREATE ROLE "mamori-collector" LOGIN; '
            "as the tables' owner, run: GRANT SELECT ON mamori_schema, history, terminal_certs, policies TO "
            '"mamori-collector"; GRANT SELECT, INSERT ON records TO "mamori-collector"; GRANT SELECT, INSERT, UPDATE '
            'ON logs, alerts, secret_changes TO "mamori-collector"; GRANT SELECT, UPDATE ON terminals TO '
            '"mamori-collector"; GRANT EXECUTE ON FUNCTION mamori_records_maintain(bigint) TO "mamori-collector"; '
            'then run the collector as that role (its User=, with no user in [Store] URL=). The collector serves '
            'meanwhile'])
        c.port = port
        self.assertEqual(c.post(self.t1, c.mklog(count=3))[0], 200, 'it serves')
        # The superuser the other PostgreSQL cases run the collector as: the same.
        port, err = self.collector_as(pgcluster.SUPERUSER)
        self.assertIsNone(err)
        self.assertIn(f"mamori-collector: warning: role {pgcluster.SUPERUSER} has the rights of the tables' owner ({o}), "
                      'so a collector could delete records', '\n'.join(self.watch.lines))
        for grant, what in [('DELETE', 'DELETE'), ('TRUNCATE', 'TRUNCATE'), ('DELETE, TRUNCATE', 'DELETE, TRUNCATE')]:
            with self.subTest(grant=grant):
                self.psql(f'GRANT {grant} ON records TO {q}', user=o)
                port, err = self.collector_as(self.coll)
                self.assertIsNone(err)
                self.assertEqual([line for line in self.watch.lines if 'warning' in line], [
                    f'mamori-collector: warning: role {q} may {what} on table records, so a collector could delete '
                    'records, which its role must never be able to do (README, "PostgreSQL roles"); as the tables\' '
                    f'owner ({o}), run: REVOKE {what} ON public.records FROM {q} (and from PUBLIC, or the role it has '
                    'it through). The collector serves meanwhile'])
                self.psql(f'REVOKE DELETE, TRUNCATE ON records FROM {q}', user=o)
        # The README's role: not a word.
        port, err = self.collector_as(self.coll)
        self.assertIsNone(err)
        self.assertEqual([line for line in self.watch.lines if 'warning' in line], [])

    def test_read_needs_every_table(self):
        """What reading the store needs (store-pg.c access_needs[]) names every table the schema makes: each one
        an auditor may not read is named before anything is read. A table added to the schema and not to the
        list would let an auditor's report start and fail half way. (history said "Input/output error": the open
        read it, to chain it, before the check.)"""
        c = self.centre
        self.grant(collector=False)
        a, o = self.auditor, self.owner
        tables = self.psql("SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                           " AND relkind IN ('r', 'p') AND NOT relispartition ORDER BY relname").split()
        self.assertIn('records', tables)
        self.assertIn('mamori_schema', tables)
        for t in tables:
            with self.subTest(table=t):
                self.psql(f'REVOKE SELECT ON {t} FROM {a}', user=o)
                p = self.admin_as(a, 'alerts')
                self.psql(f'GRANT SELECT ON {t} TO {a}', user=o)
                self.assertEqual((p.returncode, p.stdout), (1, ''), p.stderr)
                self.assertIn(f'role {a} lacks SELECT on table {t}', p.stderr)
        p = self.admin_as(a, 'alerts')
        self.assertEqual((p.returncode, p.stderr), (0, ''))

    def test_history_of_an_earlier_build_is_chained_by_its_owner(self):
        """History rows written before the register's hash chain are chained by the first open as the owner; a
        collector's or an auditor's role opening it first is told so and changes nothing. They said "cannot open
        the store …: Input/output error (check [Store] URL= …)"."""
        c = self.centre
        self.grant()
        c.admin('operator', 'add', 'OP1', '--office', 'chuo')
        # A row as a build before the chain wrote it: no prev, no hash.
        self.psql("INSERT INTO history (id, ts, object, object_id, action, detail) SELECT max(id) + 1, 1,"
                  " 'operator', 'OP2', 'add', 'office=chuo' FROM history", user=self.owner)
        q, o = f'"{self.coll}"', self.owner
        said = ("cannot open the store: the store's tables were made by another build of mamori and must be changed, "
                f'which only their owner may do: role {{}} does not own them (their owner is {o}). Run any mamori-admin '
                f'command once as {o} (it changes them), then this again\n')
        port, err = self.collector_as(self.coll)
        self.assertIsNone(port)
        self.assertEqual(err, 'mamori-collector: ' + said.format(q))
        p = self.admin_as(self.auditor, 'register', 'verify')
        self.assertEqual((p.returncode, p.stdout, p.stderr), (1, '', 'mamori-admin: register verify: ' + said.format(self.auditor)))
        self.assertEqual(self.psql('SELECT count(*) FROM history WHERE hash IS NULL').strip(), '1', 'nothing changed')
        # The owner's first command chains it; then both open it.
        p = self.admin_as(o, 'alerts')
        self.assertEqual((p.returncode, p.stderr), (0, ''))
        self.assertEqual(self.psql('SELECT count(*) FROM history WHERE hash IS NULL').strip(), '0')
        p = self.admin_as(self.auditor, 'register', 'verify')
        self.assertEqual((p.returncode, p.stderr), (0, ''))
        port, err = self.collector_as(self.coll)
        self.assertIsNone(err)

    def test_store_of_an_earlier_build_is_upgraded_by_its_owner(self):
        c = self.centre
        self.grant()
        self.post_waiting(c.mklog(count=5))
        # The functions as the build before made them: run with the rights of whoever calls them, by anyone, on
        # the caller's search_path; and that build's schema mark.
        self.psql('ALTER FUNCTION mamori_records_maintain(bigint) SECURITY INVOKER RESET search_path;'
                  ' ALTER FUNCTION mamori_records_partition(bigint, integer) RESET search_path;'
                  ' GRANT EXECUTE ON FUNCTION mamori_records_maintain(bigint) TO PUBLIC;'
                  ' GRANT EXECUTE ON FUNCTION mamori_records_partition(bigint, integer) TO PUBLIC;'
                  " UPDATE mamori_schema SET mark = '0123456789abcdef'", user=self.owner)
        # Opened first by the collector's or the auditor's role: told to open it as the owner, nothing changed.
        q, o = f'"{self.coll}"', self.owner
        port, err = self.collector_as(self.coll)
        self.assertIsNone(port)
        self.assertEqual(err,
                         "mamori-collector: cannot open the store: the store's tables were made by another build of "
                         f'mamori and must be changed, which only their owner may do: role {q} does not own them '
                         f'(their owner is {o}). Run any mamori-admin command once as {o} (it changes them), then '
                         'this again\n')
        p = self.admin_as(self.auditor, 'verify')
        self.assertEqual(p.returncode, 1)
        self.assertIn(f'mamori-admin: verify: cannot open the store: the store\'s tables were made by another build',
                      p.stderr)
        self.assertEqual(self.psql("SELECT mark FROM mamori_schema").strip(), '0123456789abcdef')
        self.assertEqual(self.waiting(), 5)
        # The owner's first command changes them in place.
        p = self.admin_as(o, 'alerts')
        self.assertEqual((p.returncode, p.stderr), (0, ''))
        self.assertEqual(self.psql("SELECT prosecdef, proconfig FROM pg_proc WHERE proname = 'mamori_records_maintain'"),
                         't\t{"search_path=public, pg_temp"}\n')
        self.assertEqual(self.psql("SELECT has_function_privilege('public', 'mamori_records_maintain(bigint)',"
                                   " 'EXECUTE'), has_function_privilege('public',"
                                   " 'mamori_records_partition(bigint, integer)', 'EXECUTE')"), 'f\tf\n')
        port, err = self.collector_as(self.coll)
        self.assertIsNone(err)
        self.assertEqual(self.waiting(), 0)
        self.assertEqual(int(self.psql('SELECT count(*) FROM records_202511')), 5)
        p = self.admin_as(self.auditor, 'verify')
        self.assertIn('5 records, intact', p.stdout)


# mklog uses no store: its case is one of the SQLite run only, not run again on PostgreSQL.
if os.environ.get('MAMORI_TEST_STORE', 'sqlite') == 'postgresql':
    del MklogOptionsTest
    del AdminStoreFailsTest  # and the pages of SQLite's file are SQLite's alone
else:  # and the sessions and roles of a PostgreSQL server are PostgreSQL's alone
    del SessionEndedTest
    del AdminStoreFailsPgTest
    del PgRolesTest

if __name__ == '__main__':
    unittest.main(verbosity=2)
