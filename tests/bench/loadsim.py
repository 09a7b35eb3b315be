#!/usr/bin/python3
# Load simulation: N terminals post a working day, compressed into minutes, to 2 collectors on one PostgreSQL.
"""Usage: MAMORI_BUILD_DIR=BUILD loadsim.py [--quick] [--terminals N] [--records R] [--day-seconds D]
                                    [--cap-seconds C] [--collectors K]
                                    [--store postgresql-tuned|postgresql|sqlite]
                                    [--workers W] [--threads T] [--no-restart]

A centre as deployed (mamori-admin init, K mamori-collector processes sharing one database: a private
PostgreSQL 15 cluster, tests/integration/pgcluster.py, fsync on, Unix socket, set up as the capacity
plan deploys it — huge pages when run as root, glibc keeping the server's heap; `--store postgresql`:
PostgreSQL's defaults; collectors on 127.0.0.1 only). loadsim-gen makes N terminals — each a P-256 TLS
key with a certificate of the centre's terminal CA and the registry row that `mamori-admin terminal add`
writes, an Ed25519 identity, and one signed,
chained working day of about R records (boot, card+PIN sessions, resident lookups as app.op, idle and
card-pull locks, rare PIN failures, key.rotate every 1000) — then the day (08:00-18:00) is replayed in D
seconds: a record becomes due at its time on the compressed clock, and each terminal behaves like
mamori-uploader: it posts what is due (at most 1000 records a batch), one request at a time, resends
from the acknowledged seq after a 409, and on a refused or broken connection or a 5xx goes over to the
other collector. Each POST opens a new TLS connection with the terminal's own certificate (in a real day
the collector's IdleTimeoutSec closes a terminal's connection between its posts). Terminal i starts at
collector i mod K and re-resolves to a random one at 1 in 10 of its connections (DNS round robin).
Unless --no-restart, the last collector is stopped at 40 % of the day and started again at 50 %.

The run is bounded: setup and day together stop at C seconds of wall clock (default 900; --quick: 120
terminals, 60 records, a 30 s day, cap 180). Progress goes to a terminal once a second; piped, only the
result: terminals, records, records/s, POST latency p50/p99/max, errors by kind, alerts, and the check
that every log holds exactly the records posted, each seq once. Exit 0 only when every record was
acknowledged and stored exactly once within the cap, with no alert."""
import argparse
import collections
import copy
import http.client
import json
import multiprocessing
import os
import random
import socket
import ssl
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
import bench  # noqa: E402
import pgcluster  # noqa: E402
from test_collector import Centre  # noqa: E402

DAY0 = 1763938800000000  # Monday 2025-11-24 08:00 JST, in µs
DAY_LEN = 10 * 3600 * 1000000  # 08:00-18:00
BATCH = 1000  # mamori-uploader's default batch
TIMEOUT = 60


def percentile(values, p):
    s = sorted(values)
    if not s:
        return 0.0
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


class Terminal:
    __slots__ = ('id', 'pem', 'lines', 'due', 'acked', 'cur', 'ctx', 'next_at', 'addr')

    def __init__(self, tid, pem, lines, due, cur):
        self.id, self.pem, self.lines, self.due, self.cur = tid, pem, lines, due, cur
        # Its own source address, as terminals have (the collector bounds handshakes per address).
        n = int(tid[2:])
        self.addr = (f'127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255 or 1}', 0)
        self.acked = 0
        self.ctx = None
        self.next_at = due[0]


def load_terminal(out, tid, day_seconds, cur):
    with open(os.path.join(out, tid + '.log'), 'rb') as f:
        lines = f.read().split(b'\n')[:-1]
    due = []
    for line in lines:
        i = line.index(b'"ts":') + 5
        ts = int(line[i:line.index(b',', i)])
        due.append(max(0.0, (ts - DAY0) / DAY_LEN * day_seconds))
    return Terminal(tid, os.path.join(out, tid + '.pem'), [l + b'\n' for l in lines], due, cur)


def store_size(centre, tmp):
    if centre.pg:
        return int(centre.pg.psql(centre.pg_db, 'SELECT pg_database_size(current_database())').strip())
    return sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp) if f.startswith('collector.db'))


def cpu_seconds(pid, children=False):
    """utime + stime of pid (and of its reaped children), from /proc."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / os.sysconf('SC_CLK_TCK')


def pg_cpu_seconds(cluster):
    """CPU of the PostgreSQL cluster so far: the postmaster, its reaped backends and the live ones."""
    with open(os.path.join(cluster.dir, 'data', 'postmaster.pid')) as f:
        pm = int(f.readline())
    total = cpu_seconds(pm, children=True)
    try:
        with open(f'/proc/{pm}/task/{pm}/children') as f:
            total += sum(cpu_seconds(int(c)) for c in f.read().split())
    except OSError:
        pass
    return total


def start(collector, tries=3):
    """Starts a collector; on a machine under heavy load its first line may take longer than
    Centre.start() waits (30 s), so it is tried again."""
    for k in range(tries):
        try:
            return collector.start()
        except TimeoutError:
            collector.stop()
            if k == tries - 1:
                raise


def error_kind(e):
    if isinstance(e, ConnectionRefusedError):
        return 'connection-refused'
    if isinstance(e, (ConnectionResetError, BrokenPipeError)):
        return 'connection-reset'
    if isinstance(e, http.client.RemoteDisconnected):
        return 'disconnected'
    if isinstance(e, (socket.timeout, TimeoutError)):
        return 'timeout'
    if isinstance(e, ssl.SSLError):
        return 'tls'
    return type(e).__name__


def worker(w, nworkers, names, args, out, ca, ports, t0, deadline, progress, results):
    """Plays terminals names[w::nworkers] with args.threads threads; puts its figures into results."""
    rng = random.Random(w)
    terms = [load_terminal(out, n, args.day_seconds, (w + k * nworkers) % len(ports))
             for k, n in enumerate(names[w::nworkers])]
    progress[w * 3 + 2] = 1  # loaded
    while t0.value == 0:
        time.sleep(0.05)
    start = t0.value
    heap_lock = threading.Condition()
    import heapq
    heap = [(t.next_at, i) for i, t in enumerate(terms)]
    heapq.heapify(heap)
    left = [len(terms)]
    lat, hs, wait, errors, status = [], [], [], collections.Counter(), collections.Counter()
    posted = [0, 0]  # posts, records acknowledged
    stop = threading.Event()

    def context(t):
        if t.ctx is None:
            c = ssl.create_default_context(cafile=ca)
            c.minimum_version = ssl.TLSVersion.TLSv1_2
            c.load_cert_chain(t.pem)
            t.ctx = c
        return t.ctx

    def turn(t):
        """One step of terminal t's uploader; returns the clock time (s after start) of its next step,
        or None when its day is acknowledged."""
        now = time.monotonic() - start
        n = len(t.lines)
        if t.acked >= n:
            return None
        nxt = t.acked + 1
        if t.due[nxt - 1] > now:
            return t.due[nxt - 1]
        end = nxt - 1
        while end < n and end - (nxt - 1) < BATCH and t.due[end] <= now:
            end += 1
        body = b''.join(t.lines[nxt - 1:end])
        if rng.random() < 0.1:
            t.cur = rng.randrange(len(ports))
        port = ports[t.cur]
        t1 = time.monotonic()
        conn = http.client.HTTPSConnection('127.0.0.1', port, context=context(t), timeout=TIMEOUT,
                                           source_address=t.addr)
        try:
            conn.connect()
            hs.append(time.monotonic() - t1)
            conn.request('POST', '/v1/records', body=body, headers={'Content-Type': 'application/x-ndjson'})
            r = conn.getresponse()
            data = r.read()
        except Exception as e:  # a broken connection is what the uploader meets: go over to the other
            errors[error_kind(e)] += 1
            if os.environ.get('LOADSIM_DEBUG'):
                print(t.id, repr(e), file=sys.stderr)
            t.cur = (t.cur + 1) % len(ports)
            return now + 0.2
        finally:
            conn.close()
        lat.append(time.monotonic() - t1)
        posted[0] += 1
        status[r.status] += 1
        try:
            answer = json.loads(data)
        except ValueError:
            answer = {}
        if r.status == 200 and answer.get('acked', -1) >= end and 'receipt' in answer:
            posted[1] += answer['acked'] - t.acked
            wait.append(time.monotonic() - start - t.due[nxt - 1])
            t.acked = answer['acked']
            return now
        if r.status == 409 and 'error' not in answer and isinstance(answer.get('acked'), int):
            errors['409-gap'] += 1
            t.acked = answer['acked']
            return now
        errors[f'http-{r.status}-{answer.get("error", "short-ack" if r.status == 200 else "?")}'] += 1
        if r.status >= 500:
            t.cur = (t.cur + 1) % len(ports)
        return now + 1.0

    def run():
        while True:
            with heap_lock:
                while True:
                    if stop.is_set() or time.monotonic() > deadline:
                        stop.set()
                        heap_lock.notify_all()
                        return
                    if not heap:
                        if left[0] == 0:
                            return
                        heap_lock.wait(0.5)
                        continue
                    at, i = heap[0]
                    wait = at - (time.monotonic() - start)
                    if wait <= 0:
                        heapq.heappop(heap)
                        break
                    heap_lock.wait(min(wait, 0.5))
            nxt = turn(terms[i])
            progress[w * 3] = posted[1]
            progress[w * 3 + 1] = posted[0]
            with heap_lock:
                if nxt is None:
                    left[0] -= 1
                else:
                    heapq.heappush(heap, (nxt, i))
                heap_lock.notify()

    threads = [threading.Thread(target=run) for _ in range(args.threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    results.put({'lat': lat, 'hs': hs, 'wait': wait, 'errors': dict(errors), 'status': dict(status), 'posts': posted[0],
                 'acked': {t.id: t.acked for t in terms},
                 'finished': time.monotonic() - start})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--quick', action='store_true', help='120 terminals, 60 records, 30 s day, cap 180 s')
    ap.add_argument('--terminals', type=int)
    ap.add_argument('--records', type=int, help='records per terminal-day (about)')
    ap.add_argument('--day-seconds', type=float, help='the working day 08:00-18:00 lasts this long')
    ap.add_argument('--cap-seconds', type=float, help='wall-clock bound of the whole run')
    ap.add_argument('--collectors', type=int, default=2)
    ap.add_argument('--store', default='postgresql-tuned', choices=('postgresql-tuned', 'postgresql', 'sqlite'))
    ap.add_argument('--workers', type=int, default=os.cpu_count() or 2, help='client processes')
    ap.add_argument('--threads', type=int, default=32, help='connections at once per client process')
    ap.add_argument('--no-restart', action='store_true', help='do not restart a collector mid-day')
    args = ap.parse_args()
    q = args.quick
    args.terminals = args.terminals or (120 if q else 10000)
    args.records = args.records or (60 if q else 100)
    args.day_seconds = args.day_seconds or (30.0 if q else 300.0)
    args.cap_seconds = args.cap_seconds or (180.0 if q else 900.0)
    tty = sys.stderr.isatty()
    t_begin = time.monotonic()
    deadline = t_begin + args.cap_seconds

    def say(msg):
        if tty:
            print(f'\r\033[K{msg}', end='', file=sys.stderr, flush=True)

    os.environ['MAMORI_TEST_PG_FSYNC'] = 'on'
    if args.store.startswith('postgresql') and not pgcluster.Cluster().available():
        print('loadsim: PostgreSQL is not installed (Debian postgresql-15): skipped', file=sys.stderr)
        sys.exit(77)
    ok = True
    with bench.TempDir('mamori-loadsim-') as tmp:
        centre = Centre(tmp, store=args.store, extra_conf='MaxConnections=2000\nSilentSec=1d\n')
        cols = [centre] + [copy.copy(centre) for _ in range(args.collectors - 1)]
        out = os.path.join(tmp, 'terminals')
        os.makedirs(out)
        admin = os.path.join(tmp, 'admin')
        gen = os.path.join(bench.build_dir(), 'tests', 'bench', 'loadsim-gen')
        say(f'making {args.terminals} terminals…')
        procs, per = [], -(-args.terminals // args.workers)
        for w in range(args.workers):
            first, count = 1 + w * per, min(per, args.terminals - w * per)
            if count <= 0:
                continue
            procs.append(subprocess.Popen(
                [gen, '--ca-cert', os.path.join(admin, 'terminal-ca.pem'), '--ca-key',
                 os.path.join(admin, 'terminal-ca.key'), '--store', centre.url, '--out', out,
                 '--first', str(first), '--count', str(count), '--records', str(args.records),
                 '--day-start', str(DAY0)]))
        try:
            for p in procs:
                if p.wait(max(1, deadline - time.monotonic())) != 0:
                    raise SystemExit('loadsim: loadsim-gen failed')
        except subprocess.TimeoutExpired:
            raise SystemExit(f'loadsim: CAP HIT after {args.cap_seconds:g} s while making the terminals')
        finally:
            for p in procs:
                bench.stop_process(p)
        names = sorted(n[:-4] for n in os.listdir(out) if n.endswith('.log'))
        expect = {}
        for n in names:
            with open(os.path.join(out, n + '.log'), 'rb') as f:
                expect[n] = f.read().count(b'\n')
        t_setup = time.monotonic() - t_begin
        size0 = store_size(centre, tmp)
        pg0 = pg_cpu_seconds(centre.pg) if centre.pg else 0.0
        col_cpu = [0.0]
        load0 = os.getloadavg()[0]
        for c in cols:
            start(c)
        ports = multiprocessing.Array('i', [c.port for c in cols], lock=False)
        progress = multiprocessing.Array('q', 3 * args.workers, lock=False)
        t0 = multiprocessing.Value('d', 0.0, lock=False)
        results = multiprocessing.Queue()
        ca = os.path.join(tmp, 'state', 'collector-ca.pem')
        ws = [multiprocessing.Process(target=worker, args=(w, args.workers, names, args, out, ca, ports, t0,
                                                           deadline, progress, results))
              for w in range(args.workers)]
        for p in ws:
            p.start()
        while not all(progress[w * 3 + 2] for w in range(args.workers)) and time.monotonic() < deadline:
            say('loading the logs…')
            time.sleep(0.2)
        t0.value = time.monotonic()
        restarted = []
        last = cols[-1]
        phase = 0
        res = []
        try:
            # A client's figures are read as they come: a process does not end before its queue is read.
            while len(res) < len(ws) and (any(p.is_alive() for p in ws) or not results.empty()):
                try:
                    res.append(results.get(timeout=0.5 if tty else 0.2))
                except Exception:
                    pass
                el = time.monotonic() - t0.value
                if not args.no_restart and len(cols) > 1:
                    if phase == 0 and el >= 0.4 * args.day_seconds:
                        col_cpu[0] += cpu_seconds(last.proc.pid)
                        last.stop()
                        ports[len(cols) - 1] = 1  # nothing listens there: a refused connection
                        restarted.append(el)
                        phase = 1
                    elif phase == 1 and el >= 0.5 * args.day_seconds:
                        start(last)
                        ports[len(cols) - 1] = last.port
                        restarted.append(time.monotonic() - t0.value)
                        phase = 2
                acked = sum(progress[w * 3] for w in range(args.workers))
                posts = sum(progress[w * 3 + 1] for w in range(args.workers))
                say(f'day {min(100, 100 * el / args.day_seconds):3.0f} %  t={el:6.1f} s  records acked {acked:,}  '
                    f'posts {posts:,}  {acked / max(el, 0.001):,.0f} records/s'
                    + ('  (collector %d down)' % len(cols) if phase == 1 else ''))
        finally:
            if phase == 1:
                last.start()
        if len(res) < len(ws):  # a client process died: what it played counts as not acknowledged
            print('loadsim: a client process ended without its figures', file=sys.stderr)
            ok = False
        for p in ws:
            p.join()
        say('')
        if tty:
            print('\r\033[K', end='', file=sys.stderr)
        t_day = max(r['finished'] for r in res)
        lat = [x for r in res for x in r['lat']]
        hs = [x for r in res for x in r['hs']]
        wait = [x for r in res for x in r['wait']]
        errors, status = collections.Counter(), collections.Counter()
        acked = {}
        for r in res:
            errors.update(r['errors'])
            status.update(r['status'])
            acked.update(r['acked'])
        total = sum(expect.values())
        done = sum(acked.values())
        posts = sum(r['posts'] for r in res)
        for c in cols:
            col_cpu[0] += cpu_seconds(c.proc.pid) if c.proc else 0.0
        pg_cpu = pg_cpu_seconds(centre.pg) - pg0 if centre.pg else 0.0
        for c in cols:
            c.stop()
        # Every record stored exactly once: per log, rows = distinct seqs = highest seq = lines posted.
        load1 = os.getloadavg()[0]
        rows = centre.sql('SELECT l.term, count(*), count(DISTINCT r.seq), max(r.seq) FROM records r '
                          'JOIN logs l ON l.id = r.log GROUP BY l.term')
        size = store_size(centre, tmp) - size0
        stored = {r[0]: tuple(int(x) for x in r[1:]) for r in rows}
        bad = [t for t in names if stored.get(t) != (expect[t],) * 3]
        alerts = collections.Counter(a[0] for a in centre.alerts())
    cap_hit = done < total
    ok = ok and not bad and not cap_hit and not alerts
    kinds = ', '.join(f'{k}={v}' for k, v in sorted(errors.items())) or 'none'
    print(f'loadsim: store={args.store} collectors={args.collectors} terminals={len(names)} '
          f'records={total} records_per_terminal={total / max(1, len(names)):.0f} '
          f'day_seconds={args.day_seconds:g} (08:00-18:00 compressed x{DAY_LEN / 1e6 / args.day_seconds:.0f})'
          f' load_average={load0:.1f}->{load1:.1f} cores={os.cpu_count()}'
          f'{" restart=%.0fs-%.0fs" % tuple(restarted[:2]) if len(restarted) >= 2 else ""}')
    print(f'  setup_s={t_setup:.1f} (keys, certificates, registry rows, signed logs)  day_wall_s={t_day:.1f}  '
          f'records_acked={done} records_per_s={done / max(t_day, 0.001):.0f}  posts={posts} '
          f'posts_per_s={posts / max(t_day, 0.001):.0f} mean_batch={done / max(1, posts):.1f}')
    print(f'  post_latency_ms p50={1000 * percentile(lat, 50):.1f} p99={1000 * percentile(lat, 99):.1f} '
          f'max={1000 * max(lat or [0]):.1f} (new TLS connection + POST + answer after COMMIT); of which '
          f'connect+handshake p50={1000 * percentile(hs, 50):.1f} p99={1000 * percentile(hs, 99):.1f}')
    print(f'  cpu_s collectors={col_cpu[0]:.1f} postgresql={pg_cpu:.1f}  per POST: collector '
          f'{1000 * col_cpu[0] / max(1, posts):.2f} ms + postgresql {1000 * pg_cpu / max(1, posts):.2f} ms; '
          f'per 1,000 records: {1000 * col_cpu[0] / max(1, done):.2f} + {1000 * pg_cpu / max(1, done):.2f} s')
    print(f'  upload_delay_s (due on the compressed clock → stored) p50={percentile(wait, 50):.1f} '
          f'p99={percentile(wait, 99):.1f} max={max(wait or [0]):.1f}')
    print(f'  http_status={dict(sorted(status.items()))}  errors: {kinds}')
    print(f'  store_grew_bytes={size} mb_per_million_records={size / max(1, total):.0f}  alerts: '
          f'{", ".join(f"{k}={v}" for k, v in sorted(alerts.items())) or "none"}')
    print(f'  check: {len(names) - len(bad)}/{len(names)} logs hold exactly the records posted, each seq once'
          + (f'; WRONG: {", ".join(bad[:5])} {[stored.get(t) for t in bad[:5]]} want {[expect[t] for t in bad[:5]]}'
             if bad else '')
          + (f'; CAP HIT after {args.cap_seconds:g} s: {total - done} records not acknowledged' if cap_hit else ''))
    pgcluster.stop_shared()
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
