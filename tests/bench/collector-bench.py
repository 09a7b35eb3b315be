#!/usr/bin/python3
# Collector throughput bench: a 100,000-record backlog posted over one keep-alive TLS connection; prints figures.
"""Usage: MAMORI_BUILD_DIR=BUILD collector-bench.py [RECORDS] [BATCH]

Prints the collector's ingest rate (records/s, verification + durable commit), the database size per
million records, and `openssl speed ed25519` verify/s measured in the same run. Use a build without
sanitizers for figures."""
import http.client
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))
import bench  # noqa: E402
from test_collector import Centre, LOG_A  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    with bench.TempDir('mamori-collector-bench-') as tmp:
        c = Centre(tmp, extra_conf='MaxBatchRecords=20000\n')
        t1 = c.add_terminal('T-0001', 'a')
        lines = c.mklog(count=n, rotate=1000)
        c.start()
        try:
            conn = http.client.HTTPSConnection('127.0.0.1', c.port, context=c.context(t1), timeout=120)
            t0 = time.monotonic()
            for i in range(0, n, batch):
                conn.request('POST', '/v1/records', body=b''.join(lines[i:i + batch]),
                             headers={'Content-Type': 'application/x-ndjson'})
                r = conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise SystemExit(f'batch at {i}: {r.status} {body}')
            dt = time.monotonic() - t0
            conn.close()
        finally:
            c.stop()
        size = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp) if f.startswith('collector.db'))
        speed = subprocess.run(['openssl', 'speed', '-seconds', '3', 'ed25519'], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True).stdout
        m = re.search(r'Ed25519\)\s+\S+\s+\S+\s+(\S+)\s+(\S+)', speed)
        print(f'records={n} batch={batch} seconds={dt:.2f} collector_records_per_s={n / dt:.0f}')
        print(f'openssl_ed25519_verify_per_s={m.group(2) if m else "?"}')
        print(f'db_bytes={size} db_mb_per_million={size / n * 1e6 / 1e6:.0f}')


if __name__ == '__main__':
    main()
