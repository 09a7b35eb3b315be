#!/usr/bin/python3
# No starving (issue 11 item 6): deadlines that trickling cannot stretch, half-open floods, folded alerts.
"""mamori-collector under the attacks of issue 11 finding 9, on 127.0.0.1 only: request headers
trickled one line per second are cut at RequestTimeoutSec from the accept; 1,000 half-open
connections (plain TCP connects from 127.0.0.x that never finish TLS, reconnected as soon as the
collector drops them) do not keep a terminal with a valid certificate from uploading, reading its
acked count and fetching the policy within the uploader's connect timeout; a refused batch resent
again and again is one alert row with a count."""
import json
import base64
import os
import resource
import selectors
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from test_collector import Centre, LOG_A  # noqa: E402

HALF_OPEN = 1000
UPLOADER_CONNECT_TIMEOUT = 10.0  # agent/uploader: CURLOPT_CONNECTTIMEOUT_MS, which covers the TLS handshake


def raise_fd_limit(need):
    """The flood needs a descriptor per connection here (and the collector, our child, inherits the
    limit). Raise the soft limit; fail (never pass quietly) when the hard limit is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise AssertionError(f'RLIMIT_NOFILE hard limit {hard} < {need}: raise it (ulimit -Hn) to run this test')
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class HalfOpenFlood:
    """Holds n plain TCP connections to port from 127.0.0.2…, never sending a byte; each one the
    server drops is opened again at once (so n stay held, and the server sees a stream of new ones)."""

    def __init__(self, port, n=HALF_OPEN, addresses=250):
        self.port, self.n, self.addresses = port, n, addresses
        self.sel = selectors.DefaultSelector()
        self.stop_flag = threading.Event()
        self.opened = 0
        self.dropped_by_server = 0
        self.held = 0
        self.errors = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def connect(self, i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((f'127.0.0.{2 + i % self.addresses}', 0))
        s.setblocking(False)
        try:
            s.connect(('127.0.0.1', self.port))
        except BlockingIOError:
            pass
        except OSError:
            self.errors += 1
            s.close()
            return
        self.sel.register(s, selectors.EVENT_READ, i)
        self.opened += 1
        self.held += 1

    def start(self):
        for i in range(self.n):
            self.connect(i)
        self.thread.start()
        return self

    def run(self):
        while not self.stop_flag.is_set():
            for key, _ in self.sel.select(timeout=0.1):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b''
                if data:
                    continue  # the server never speaks first in TLS; ignore anything
                self.sel.unregister(s)
                s.close()
                self.held -= 1
                self.dropped_by_server += 1
                if not self.stop_flag.is_set():
                    self.connect(key.data)

    def stop(self):
        self.stop_flag.set()
        self.thread.join(10)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


def terminal_round(c, cert_dir, lines, timeout=UPLOADER_CONNECT_TIMEOUT):
    """What the uploader does at each poll, each on a new connection: POST, GET acked, GET policy.
    Returns the seconds each took; raises when one fails or takes longer than timeout."""
    took = []
    t0 = time.monotonic()
    status, body, _ = c.request(cert_dir, 'POST', '/v1/records', b''.join(lines), timeout=timeout)
    took.append(time.monotonic() - t0)
    assert status == 200, (status, body)
    t0 = time.monotonic()
    status, body, _ = c.request(cert_dir, 'GET', f'/v1/logs/{LOG_A}/acked', timeout=timeout)
    took.append(time.monotonic() - t0)
    assert status == 200, (status, body)
    t0 = time.monotonic()
    status, body, _ = c.request(cert_dir, 'GET', '/v1/policy', timeout=timeout)
    took.append(time.monotonic() - t0)
    assert status == 200, (status, body)
    return took


class StarvingTest(unittest.TestCase):
    def setUp(self):
        self._tmp = bench.TempDir('mamori-starving-')
        self.tmp = self._tmp.__enter__()
        self.addCleanup(self._tmp.__exit__, None, None, None)

    def centre(self, conf=''):
        c = Centre(self.tmp, extra_conf=conf)
        t1 = c.add_terminal('T-0001', 'a')
        c.admin('policy', 'publish')
        c.start()
        self.addCleanup(c.stop)
        return c, t1

    def test_trickled_headers_cut_at_request_timeout(self):
        """One header line a second (each byte resets an idle timer) is cut at RequestTimeoutSec
        from the accept, while the sender is still trickling."""
        c, t1 = self.centre('RequestTimeoutSec=3\nIdleTimeoutSec=30\n')
        ctx = c.context(t1)
        with socket.create_connection(('127.0.0.1', c.port), timeout=20) as raw:
            t0 = time.monotonic()
            s = ctx.wrap_socket(raw, server_hostname='127.0.0.1')
            s.sendall(b'GET /v1/policy HTTP/1.1\r\n')
            closed_at = None
            for i in range(30):
                time.sleep(1)
                try:
                    s.sendall(b'X-Trickle-%d: %s\r\n' % (i, b'y' * 10))
                except (ssl_errors() + (OSError,)):
                    closed_at = time.monotonic() - t0
                    break
                s.settimeout(0.01)
                try:
                    if s.recv(100) == b'':
                        closed_at = time.monotonic() - t0
                        break
                except (TimeoutError, socket.timeout):
                    pass
                except ssl_errors() + (OSError,):
                    closed_at = time.monotonic() - t0
                    break
                finally:
                    s.settimeout(20)
            self.assertIsNotNone(closed_at, 'a header trickle outlived RequestTimeoutSec=3 by 27 s')
            print(f'\n  trickled headers cut after {closed_at:.2f} s (RequestTimeoutSec=3)', file=sys.stderr)
            self.assertGreaterEqual(closed_at, 2.5)
            self.assertLess(closed_at, 5.5)
        # The collector still serves.
        self.assertEqual(c.request(t1, 'GET', '/v1/policy')[0], 200)

    def test_terminal_served_while_1000_half_open_held(self):
        soft, hard = raise_fd_limit(HALF_OPEN + 1024)
        print(f'\n  RLIMIT_NOFILE soft={soft} hard={hard}', file=sys.stderr)
        c, t1 = self.centre()
        lines = c.mklog(count=40)
        flood = HalfOpenFlood(c.port).start()
        self.addCleanup(flood.stop)
        time.sleep(1)  # all 1,000 connects were issued by start(); let the collector accept them
        self.assertEqual(flood.errors, 0)
        took = []
        for i in range(10):
            took += terminal_round(c, t1, lines[i * 4:(i + 1) * 4])
            self.assertGreaterEqual(flood.held, HALF_OPEN - 50, 'the flood is no longer held')
        self.assertEqual(c.acked(t1), 40)
        # The collector itself stays bounded: MaxUnauthenticated (256) half-open ones, not 1,000.
        fds = len(os.listdir(f'/proc/{c.proc.pid}/fd'))
        took.sort()
        print(f'  {flood.held} half-open held ({flood.opened} opened, {flood.dropped_by_server} dropped by the '
              f'collector); collector fds {fds}; 30 terminal requests: median {took[len(took) // 2] * 1000:.0f} ms, '
              f'max {took[-1] * 1000:.0f} ms', file=sys.stderr)
        self.assertLess(fds, 256 + 64)
        self.assertLess(took[-1], UPLOADER_CONNECT_TIMEOUT)

    def test_finished_handshake_is_never_pushed_out(self):
        """With room for one unauthenticated connection per address, a terminal whose TLS handshake
        finished (no request sent yet) stays while newer half-open connections from its address
        push each other out; its request is then answered on that same connection."""
        c, t1 = self.centre('MaxUnauthenticated=2\nMaxConnectionsPerIP=1\n')
        ctx = c.context(t1)
        raw = socket.create_connection(('127.0.0.1', c.port), timeout=10)
        tls = ctx.wrap_socket(raw, server_hostname='127.0.0.1')  # handshake done, nothing sent
        self.addCleanup(tls.close)
        time.sleep(0.3)  # the collector reads the client's Finished (sent last) on its next run
        half = []
        for _ in range(5):
            h = socket.create_connection(('127.0.0.1', c.port), timeout=10)
            half.append(h)
            self.addCleanup(h.close)
            time.sleep(0.1)
        # The older half-open ones were pushed out by the newer: they read EOF.
        for h in half[:-1]:
            h.settimeout(5)
            self.assertEqual(h.recv(10), b'')
        tls.sendall(b'GET /v1/policy HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
        tls.settimeout(10)
        answer = tls.recv(12)
        self.assertTrue(answer.startswith(b'HTTP/1.1 200'), answer)

    def test_identical_alerts_folded(self):
        c, t1 = self.centre()
        lines = c.mklog(count=10)
        bad = list(lines[:5])
        rec = json.loads(bad[2])
        sig = bytearray(base64.b64decode(rec['sig']))
        sig[0] ^= 1
        rec['sig'] = base64.b64encode(bytes(sig)).decode()
        bad[2] = json.dumps(rec, separators=(',', ':'), sort_keys=True, ensure_ascii=False).encode() + b'\n'
        for _ in range(5):  # a stuck terminal retrying the same batch
            self.assertEqual(c.post(t1, bad)[0], 422)
        out = c.admin('alerts').stdout.splitlines()
        rows = [line.split('\t') for line in out]
        self.assertEqual(len(rows), 1, out)
        self.assertEqual(rows[0][2:6], ['bad-signature', 'T-0001', LOG_A, '3'])
        self.assertEqual(rows[0][7], '5')  # count
        self.assertGreater(int(rows[0][8]), int(rows[0][1]))  # last seen after first seen
        # Another alert is a row of its own.
        bad2 = list(lines[:5])
        rec = json.loads(bad2[3])
        sig = bytearray(base64.b64decode(rec['sig']))
        sig[0] ^= 1
        rec['sig'] = base64.b64encode(bytes(sig)).decode()
        bad2[3] = json.dumps(rec, separators=(',', ':'), sort_keys=True, ensure_ascii=False).encode() + b'\n'
        bad2[2] = lines[2]
        self.assertEqual(c.post(t1, bad2)[0], 422)
        self.assertEqual(len(c.admin('alerts').stdout.splitlines()), 2)


def ssl_errors():
    import ssl
    return (ssl.SSLError,)


if __name__ == '__main__':
    unittest.main(verbosity=2)
