#!/usr/bin/python3
# Collector ingest bench: SQLite and PostgreSQL, 1 and 2 collectors, beside cores × openssl verify/s.
"""Usage: MAMORI_BUILD_DIR=BUILD collector-bench.py [RECORDS] [BATCH] [TERMINALS] [STORES] [COLLECTORS]

RECORDS (100000) signed records (tests/integration/mklog) of TERMINALS (4) terminals, one log each,
posted in batches of BATCH (1000) over one keep-alive TLS connection per terminal, all terminals at
once; terminal i posts to collector i mod C. Runs every STORE in STORES ("sqlite,postgresql") with
every C in COLLECTORS ("1,2"); PostgreSQL is a private cluster (tests/integration/pgcluster.py, fsync
on). Prints per run the ingest rate (records/s: verification + durable commit, answers after COMMIT)
and the bytes the store grew by per million records, then `openssl speed ed25519` verify/s of one
core measured in the same run and cores × that. Use a build without sanitizers for figures."""
import copy
import http.client
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))
import bench  # noqa: E402
import pgcluster  # noqa: E402
from test_collector import Centre  # noqa: E402


def store_bytes(c):
    if c.pg:
        return int(c.pg.psql(c.pg_db, 'SELECT pg_database_size(current_database())').strip())
    return sum(os.path.getsize(os.path.join(c.tmp, f)) for f in os.listdir(c.tmp) if f.startswith('collector.db'))


def run(store, collectors, n, batch, terms):
    with bench.TempDir('mamori-collector-bench-') as tmp:
        c = Centre(tmp, extra_conf='MaxBatchRecords=20000\n', store=store)
        per = n // terms
        logs = []
        for t in range(terms):
            term = f'T-{t + 1:04d}'
            cert = c.add_terminal(term, f's{t}')
            lines = c.mklog(seed=f's{t}', log=f'{t + 1:032x}', term=term, count=per, rotate=1000)
            logs.append((cert, lines))
        cs = [c] + [copy.copy(c) for _ in range(collectors - 1)]
        for x in cs:
            x.start()
        before = store_bytes(c)
        errors = []

        def post(i, cert, lines):
            col = cs[i % len(cs)]
            conn = http.client.HTTPSConnection('127.0.0.1', col.port, context=col.context(cert), timeout=300)
            try:
                for k in range(0, len(lines), batch):
                    conn.request('POST', '/v1/records', body=b''.join(lines[k:k + batch]),
                                 headers={'Content-Type': 'application/x-ndjson'})
                    r = conn.getresponse()
                    body = r.read()
                    if r.status != 200:
                        errors.append(f'batch at {k}: {r.status} {body}')
                        return
            finally:
                conn.close()

        try:
            threads = [threading.Thread(target=post, args=(i, cert, lines)) for i, (cert, lines) in enumerate(logs)]
            t0 = time.monotonic()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            dt = time.monotonic() - t0
        finally:
            for x in cs:
                x.stop()
        if errors:
            raise SystemExit(f'{store} x{collectors}: {errors[0]}')
        stored = c.stored()
        if stored != per * terms:
            raise SystemExit(f'{store} x{collectors}: {stored} stored, {per * terms} posted')
        grown = store_bytes(c) - before
        total = per * terms
        print(f'store={store} collectors={collectors} terminals={terms} records={total} batch={batch} '
              f'seconds={dt:.2f} records_per_s={total / dt:.0f} '
              f'store_bytes_grown={grown} mb_per_million={grown / total:.0f}', flush=True)


def main():
    os.environ['MAMORI_TEST_PG_FSYNC'] = 'on'  # commits as durable as SQLite's synchronous=FULL
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    terms = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    stores = (sys.argv[4] if len(sys.argv) > 4 else 'sqlite,postgresql').split(',')
    counts = [int(x) for x in (sys.argv[5] if len(sys.argv) > 5 else '1,2').split(',')]
    for store in stores:
        for k in counts:
            run(store, k, n, batch, terms)
    speed = subprocess.run(['openssl', 'speed', '-seconds', '3', 'ed25519'], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True).stdout
    m = re.search(r'Ed25519\)\s+\S+\s+\S+\s+(\S+)\s+(\S+)', speed)
    cores = os.cpu_count()
    verify = float(m.group(2)) if m else 0
    print(f'openssl_ed25519_verify_per_s={verify:.0f} cores={cores} cores_x_verify={cores * verify:.0f}')
    if pgcluster._shared:
        pgcluster._shared.stop()


if __name__ == '__main__':
    main()
