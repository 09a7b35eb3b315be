#!/usr/bin/python3
# Integration tests of mamori-uploader against a real mamori-collector on 127.0.0.1 (test PKI by mamori-admin).
"""The terminal's log (written by the oplog appender or by mamorid) pushed by mamori-uploader to a real
collector over mutual TLS: the centre's `mamori-admin export` must equal the terminal's segment files
byte for byte, through collector outages, ≥ 100 kill -9 of the uploader, a lost or stale cursor; a
collector whose certificate is not from the pinned CA is refused; a policy published at the centre
reaches mamorid (policy.load) and a suspended card is refused by the terminal."""
import glob
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import enroltool  # noqa: E402
import agentproc  # noqa: E402
import bench  # noqa: E402
from test_collector import Centre, exe  # noqa: E402

TERM = 'T-CRASH'  # the oplog appender's terminal id


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def public_pem(private_path, out):
    p = bench.run(['openssl', 'pkey', '-in', private_path, '-pubout', '-out', out])
    assert p.returncode == 0, p.stderr
    return out


class Terminal:
    """The terminal side: a log directory (oplog appender or mamorid), the uploader's config and cursor."""

    def __init__(self, tmp, name='term'):
        self.dir = os.path.join(tmp, name)
        self.log = os.path.join(self.dir, 'log')
        self.keys = os.path.join(self.dir, 'keys')
        self.identity = os.path.join(self.keys, 'identity.pem')
        self.policy = os.path.join(self.dir, 'policy')
        self.cursor = os.path.join(self.dir, 'upload', 'cursor')
        self.conf = os.path.join(self.dir, 'agent.conf')
        for d in (self.log, self.policy, os.path.dirname(self.cursor)):
            os.makedirs(d, exist_ok=True)
        self.proc = None
        self.watch = None
        self.appender = None

    def append(self, count, threads=1, wait=True):
        """oplog appender: count records (-1 = until stopped), small segments so batches cross them."""
        args = [exe('tests', 'integration', 'oplog-appender'), self.log, self.keys, self.identity,
                str(threads), str(count), '200', str(32 * 1024)]
        if wait:
            p = bench.run(args, timeout=300)
            assert p.returncode == 0, p.stdout + p.stderr
            return
        self.appender = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop_appender(self):
        if self.appender:
            bench.stop_process(self.appender, timeout=30)
            self.appender = None

    def configure(self, centre, cert_dir, ca=None, poll=1, signer=None, extra='', receipt_key=None):
        self.receipt_key = receipt_key or os.path.join(cert_dir, 'receipt.pub')
        with open(self.conf, 'w') as f:
            f.write(f'[Terminal]\nId={TERM}\n[Log]\nDirectory={self.log}\n'
                    f'[Collector]\nURL=https://127.0.0.1:{centre.port}\n'
                    f'CA={ca or os.path.join(cert_dir, "collector-ca.pem")}\n'
                    f'ClientCert={os.path.join(cert_dir, "client.pem")}\n'
                    f'ClientKey={os.path.join(cert_dir, "client.key")}\nPollSec={poll}\n'
                    f'ReceiptKey={self.receipt_key}\n'
                    f'[Policy]\nDirectory={self.policy}\nSignerKey={signer or os.path.join(self.dir, "none.pub")}\n'
                    f'{extra}')

    def start(self, *args, env_extra=None):
        env = dict(os.environ)
        env.pop('JOURNAL_STREAM', None)
        env.pop('NOTIFY_SOCKET', None)
        env.update(env_extra or {})
        self.proc = subprocess.Popen([exe('agent', 'mamori-uploader'), '--config', self.conf, '--cursor', self.cursor,
                                      *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.watch = bench.LineWatcher(self.proc.stderr)
        return self

    def stop(self):
        rc = None
        if self.proc:
            rc = bench.stop_process(self.proc, timeout=10)
            self.watch.join()
            self.proc.stderr.close()
            self.proc = None
        return rc

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.watch.join()
        self.proc.stderr.close()
        self.proc = None

    def lines(self):
        """Every committed line of the local log, in seq order."""
        out = b''
        for seg in sorted(glob.glob(os.path.join(self.log, 'seg-*.log'))):
            with open(seg, 'rb') as f:
                data = f.read()
            out += data[:data.rfind(b'\n') + 1]
        return out

    def last_seq(self):
        data = self.lines()
        return 0 if not data else json.loads(data.splitlines()[-1])['seq']

    def acked(self):
        try:
            with open(self.cursor, 'rb') as f:
                raw = f.read()
        except FileNotFoundError:
            return 0
        c = json.loads(raw)
        assert raw.endswith(b'\n') and set(c) in ({'log', 'acked'}, {'log', 'acked', 'receipt'}), raw
        return c['acked']

    def wait_acked(self, seq, timeout=120):
        bench.wait_until(lambda: self.acked() >= seq, timeout=timeout, interval=0.05,
                         what=f'cursor at {seq} (now {self.acked()})')


class NotifyListener:
    """systemd's notify socket, drained by a thread (a full datagram queue would block the sender)."""

    def __init__(self, tmp):
        self.path = os.path.join(tmp, 'notify.sock')
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages = []  # (monotonic time, assignment)
        self.cond = threading.Condition()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.cond:
                self.messages.extend((time.monotonic(), line) for line in msg.split('\n') if line)
                self.cond.notify_all()

    def wait(self, line, after, timeout):
        """The time of the first `line` received after monotonic time `after`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, m in self.messages:
                    if t > after and m == line:
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f'{line} not received within {timeout}s: {self.messages[-20:]}')
                self.cond.wait(left)

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


class UploadTest(unittest.TestCase):
    def setUp(self):
        self._tmp = bench.TempDir('mamori-upload-')
        self.tmp = self._tmp.__enter__()
        self.centre = Centre(self.tmp)
        # A fixed port, so that a restarted collector is found again.
        with open(self.centre.conf) as f:
            conf = f.read()
        with open(self.centre.conf, 'w') as f:
            f.write(conf.replace('Listen=127.0.0.1:0', f'Listen=127.0.0.1:{free_port()}'))
        self.term = Terminal(self.tmp)
        self.term.append(5)  # creates the identity key and the log
        pub = public_pem(self.term.identity, os.path.join(self.tmp, 'term.pub'))
        self.cert_dir = os.path.join(self.tmp, TERM)
        enroltool.enrol(self.centre.admin, TERM, 'chuo', pub, self.cert_dir)
        self.centre.start()
        self.term.configure(self.centre, self.cert_dir)

    def tearDown(self):
        self.term.stop_appender()
        self.term.stop()
        self.centre.stop()
        self._tmp.__exit__(None, None, None)

    def assertCentreHoldsExactly(self):
        """The centre's export is the terminal's log, byte for byte, and verifies."""
        local = self.term.lines()
        exported = self.centre.admin('export').stdout.encode()
        n = local.count(b'\n')
        self.assertEqual(self.centre.stored(), n, 'stored twice or missing')
        self.assertEqual(exported, local)
        v = self.centre.admin('verify')
        self.assertIn(f'{n} records, intact', v.stdout)
        return n

    def test_backlog_then_stream(self):
        t = self.term
        t.append(3000, threads=2)
        t.start('--batch-records', '500')
        t.wait_acked(t.last_seq())
        t.append(1500, threads=3)  # agent.stop + more while the uploader is running
        t.wait_acked(t.last_seq())
        self.assertEqual(t.stop(), 0, 'SIGTERM is a clean exit')
        n = self.assertCentreHoldsExactly()
        self.assertGreater(n, 4500)
        with open(t.cursor, 'rb') as f:
            cur = json.loads(f.read())
        self.assertEqual(cur['acked'], n)
        self.assertRegex(cur['log'], r'^[0-9a-f]{32}$')

    def test_collector_outage(self):
        t = self.term
        t.start()
        t.append(-1, threads=2, wait=False)
        time.sleep(1.5)
        self.centre.stop()
        during = t.acked()
        time.sleep(3)
        self.assertTrue(t.proc.poll() is None, 'the uploader must not exit while the collector is down')
        self.assertEqual(t.acked(), during, 'no acknowledgement without a collector')
        self.centre.start()
        time.sleep(1.5)
        t.stop_appender()
        t.wait_acked(t.last_seq(), timeout=60)
        self.assertGreater(t.acked(), during)
        t.watch.wait(r'unreachable: connection refused', timeout=1)
        t.watch.wait(r'uploading again', timeout=1)
        t.stop()
        self.assertCentreHoldsExactly()

    def test_kill9_uploader(self):
        """≥ 100 kill -9 of the uploader at random moments during a steady stream: nothing lost or
        stored twice, the cursor never ahead of the collector and never going back."""
        t = self.term
        rnd = random.Random(4321)
        t.append(-1, threads=2, wait=False)
        kills, last = 0, 0
        t_end = time.monotonic() + 110
        while kills < 100 and time.monotonic() < t_end:
            t.start('--batch-records', str(rnd.choice((1, 7, 50, 400))))
            time.sleep(rnd.uniform(0.05, 0.5))
            t.kill9()
            kills += 1
            acked = t.acked()
            self.assertGreaterEqual(acked, last, 'the cursor went back')
            self.assertLessEqual(acked, self.centre.stored(), 'cursor ahead of what the collector stored')
            last = acked
        t.stop_appender()
        self.assertGreaterEqual(kills, 100)
        self.assertGreater(last, 0, 'nothing was ever uploaded between kills')
        t.start()
        t.wait_acked(t.last_seq())
        t.stop()
        n = self.assertCentreHoldsExactly()
        print(f'\n  {kills} kills, {n} records, exactly once', file=sys.stderr)

    def test_lost_and_stale_cursor(self):
        t = self.term
        t.append(400)
        t.start()
        t.wait_acked(t.last_seq())
        t.stop()
        with open(t.cursor) as f:
            log = json.load(f)['log']
        # Cursor lost: the uploader asks the collector where it stands and goes on from there.
        os.unlink(t.cursor)
        t.append(100)
        t.start()
        t.wait_acked(t.last_seq())
        t.watch.wait(r'collector has acknowledged up to seq \d+', timeout=1)
        t.stop()
        self.assertCentreHoldsExactly()
        # A stale cursor (behind the collector), with its receipt: the resend is acknowledged again,
        # stored once.
        with open(t.cursor) as f:
            good = json.load(f)
        t.append(50)
        t.start('--batch-records', '64')
        t.wait_acked(t.last_seq())
        t.stop()
        with open(t.cursor, 'w') as f:
            f.write(json.dumps(good, separators=(',', ':')) + '\n')
        t.start('--batch-records', '64')
        t.wait_acked(t.last_seq())
        t.stop()
        self.assertCentreHoldsExactly()
        # A cursor without a receipt (written by hand, or before receipts), behind or ahead of the
        # collector: not believed; the uploader asks the collector and goes on from there.
        have = self.centre.stored()
        t.append(100)
        for acked in (10, have + 60):
            with open(t.cursor, 'w') as f:
                f.write(json.dumps({'log': log, 'acked': acked}) + '\n')
            t.start()
            t.watch.wait(r'cursor .* not believed \(no receipt\): asking the collector', timeout=15)
            t.wait_acked(t.last_seq())
            t.stop()
        self.assertCentreHoldsExactly()

    def test_wrong_collector_ca(self):
        t = self.term
        other = os.path.join(self.tmp, 'other-ca.pem')
        p = bench.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
                       '-subj', '/CN=not the collector CA', '-days', '2', '-keyout', other + '.key', '-out', other])
        self.assertEqual(p.returncode, 0, p.stderr)
        t.configure(self.centre, self.cert_dir, ca=other)
        t.start()
        t.watch.wait(r'unreachable: TLS refused', timeout=15)
        time.sleep(3)
        self.assertIsNone(t.proc.poll(), 'the uploader keeps retrying')
        self.assertEqual(self.centre.stored(), 0)
        self.assertFalse(os.path.exists(t.cursor))
        t.stop()
        # The right CA: the same uploader configuration works.
        t.configure(self.centre, self.cert_dir)
        t.start()
        t.wait_acked(t.last_seq(), timeout=30)
        t.stop()
        self.assertCentreHoldsExactly()

    def test_event_loop_wakeups_watchdog_and_stop(self):
        """The uploader's sd-event loop: READY=1, watchdog pings while idle and while the collector is
        down (the backoff is a timer, not a sleep), log activity wakes it before the idle recheck,
        and SIGTERM during a backoff stops it at once with STOPPING=1."""
        t = self.term
        notify = NotifyListener(self.tmp)
        self.addCleanup(notify.close)
        t.start(env_extra={'NOTIFY_SOCKET': notify.path, 'WATCHDOG_USEC': '400000'})
        t0 = time.monotonic()
        notify.wait('READY=1', 0, timeout=10)
        t.wait_acked(t.last_seq())
        # Idle: new records are picked up through inotify, not by the 5 s recheck.
        latencies = []
        for _ in range(5):
            start = time.monotonic()
            t.append(20)
            t.wait_acked(t.last_seq(), timeout=30)
            latencies.append(time.monotonic() - start)
        latencies.sort()
        print(f'\n  append of 20 records (oplog-appender run) → acked: median {latencies[2] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms',
              file=sys.stderr)
        self.assertLess(latencies[2], 1.5, f'records waited for the idle recheck: {latencies}')
        # Pings at half WATCHDOG_USEC, idle ...
        now = time.monotonic()
        notify.wait('WATCHDOG=1', notify.wait('WATCHDOG=1', now, timeout=2), timeout=2)
        # ... and while retrying a collector that is down.
        self.centre.stop()
        t.append(10)
        t.watch.wait(r'unreachable: connection refused', timeout=20)
        now = time.monotonic()
        notify.wait('WATCHDOG=1', notify.wait('WATCHDOG=1', now, timeout=2), timeout=2)
        self.assertIsNone(t.proc.poll())
        start = time.monotonic()
        rc = t.stop()
        elapsed = time.monotonic() - start
        self.assertEqual(rc, 0, 'SIGTERM is a clean exit')
        self.assertLess(elapsed, 2.0, 'SIGTERM must stop the uploader during a backoff')
        notify.wait('STOPPING=1', t0, timeout=1)


class PolicyEndToEndTest(unittest.TestCase):
    """card suspend + policy publish at the centre → the uploader installs the bundle → mamorid loads
    it (policy.load with the new serial) → the terminal refuses the card (mamorictl auth-test on the
    virtual card through pcscd). mamorid's own log goes up through the same uploader."""

    PIN = '123456'

    def test_suspend_at_centre_refused_at_terminal(self):
        with bench.TempDir('mamori-upload-policy-') as tmp:
            centre = Centre(tmp)
            with open(centre.conf) as f:
                conf = f.read()
            with open(centre.conf, 'w') as f:
                f.write(conf.replace('Listen=127.0.0.1:0', f'Listen=127.0.0.1:{free_port()}'))
            signer = os.path.join(tmp, 'policy-signer.pub')
            with open(signer, 'w') as f:
                f.write(centre.admin('policy', 'signer').stdout)
            pki = bench.TestPKI(tmp)
            card = pki.issue('OP0001', 'p256')
            term = Terminal(tmp)
            sections = {
                'Terminal': {'Id': 'T-0001', 'Office': 'chuo', 'IdentityKey': term.identity},
                'Card': {'TrustAnchors': pki.ca_path},
                'Log': {'Directory': term.log},
                'Policy': {'Directory': term.policy, 'SignerKey': signer},
            }
            env = dict(os.environ, PCSCLITE_CSOCK_NAME=os.path.join(tmp, 'no-pcscd.comm'))
            agent = agentproc.Mamorid(tmp, env, sections)
            procs = []
            try:
                agent.start()
                bench.wait_until(lambda: os.path.exists(term.identity), timeout=10, what='identity key')
                pub = public_pem(term.identity, os.path.join(tmp, 'agent.pub'))
                cert_dir = os.path.join(tmp, 'T-0001')
                enroltool.enrol(centre.admin, 'T-0001', 'chuo', pub, cert_dir)
                centre.admin('operator', 'add', 'OP0001', '--name', 'Test Operator', '--office', 'chuo')
                centre.operator_ca(pki.ca_path)
                card_id = centre.admin('card', 'issue', '--cert', card.cert, '--operator', 'OP0001').stdout.strip()
                self.assertEqual(card_id, card.card_id)
                centre.admin('policy', 'publish')
                centre.start()
                procs.append(centre)
                term.configure(centre, cert_dir, poll=2, signer=signer)
                term.start()
                procs.append(term)
                agent.wait_event('policy.load', timeout=20, serial='1')

                # The terminal's login decision, with the real card layer.
                port = bench.free_vpcd_port()
                pcscd = bench.Pcscd(tmp, port)
                pcscd.__enter__()
                self.addCleanup(pcscd.__exit__, None, None, None)
                vcard = bench.VCard(port, card.key, card.cert, self.PIN)
                vcard.__enter__()
                self.addCleanup(vcard.__exit__, None, None, None)
                pcscd.wait_card(True)
                ctl_conf = os.path.join(tmp, 'ctl.conf')
                agentproc.write_config(ctl_conf, agentproc.merge_sections(sections, {
                    'Terminal': {'IdentityKey': os.path.join(tmp, 'ctl-keys', 'identity.pem')}}))

                def auth():
                    p = bench.run([os.path.join(bench.build_dir(), 'agent', 'mamorictl'), 'auth-test', '--config',
                                   ctl_conf], env=pcscd.client_env(), input=self.PIN + '\n', timeout=60)
                    return p.stdout.strip()

                self.assertEqual(auth(), 'allow OP0001')

                centre.admin('card', 'suspend', card_id, '--reason', 'lost on the train')
                t0 = time.monotonic()
                centre.admin('policy', 'publish')
                agent.wait_event('policy.load', timeout=20, serial='2')
                t_load = time.monotonic() - t0
                out = auth()
                t_refused = time.monotonic() - t0
                self.assertEqual(out, 'refuse card-suspended')
                with open(os.path.join(term.policy, 'policy.json')) as f:
                    self.assertEqual(json.load(f)['serial'], 2)
                print(f'\n  publish → policy.load {t_load:.2f} s, → refusal {t_refused:.2f} s (PollSec=2)',
                      file=sys.stderr)

                # mamorid's own records (agent.start, policy.load …) reached the centre intact.
                last = term.last_seq()
                term.wait_acked(last, timeout=30)
                term.stop()
                exported = centre.admin('export').stdout.encode()
                self.assertEqual(exported, term.lines()[:len(exported)])
                self.assertGreaterEqual(exported.count(b'\n'), last)
                self.assertIn(b'"ev":"policy.load"', exported)
            finally:
                agent.stop()
                for p in procs:
                    p.stop()


if __name__ == '__main__':
    unittest.main(verbosity=2)
