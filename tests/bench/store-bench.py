#!/usr/bin/python3
# Store bench: one year of 50 terminals in SQLite and in PostgreSQL side by side: bytes per million records, year-audit of one office.
"""Usage: [MAMORI_STORE_BENCH_BASELINE_ADMIN=ADMIN] MAMORI_BUILD_DIR=BUILD store-bench.py [RECORDS_MILLIONS (1)] [TIME_LIMIT_S (1200)] [sizes]

The same records (tests/integration/auditgen.py: JCS records chained by prev, realistic sessions of 10
offices × 5 terminals on every weekday of a year, a fixed dummy signature as in audit-bench.py: the audit
does not re-verify stored records) go straight into a SQLite store and into a PostgreSQL store (a private
cluster, pgcluster.py, fsync on), with the registry, as the collector would have filed them (monthly
partitions on PostgreSQL). Prints per backend: records, bytes of the records table (with its indexes and
TOAST) and of the whole database per million records, and the same rows in the layout before this
change (a line-hash column; PostgreSQL: one table with a (log, seq) key) inserted in filing order; then `mamori-admin audit
--office` of one office over the year (median of 3, page cache warm) and a year's ledger of that office."""
import datetime
import hashlib
import os
import sqlite3
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
os.environ['TZ'] = 'Asia/Tokyo'
import auditgen  # noqa: E402
import bench  # noqa: E402
from test_collector import Centre, exe  # noqa: E402

os.environ.setdefault('MAMORI_TEST_PG_FSYNC', 'on')


def world(millions):
    per_term_day = millions * 1e6 / 50 / 261
    sessions = 20
    ops = max(1, int(per_term_day / sessions - 9))
    return auditgen.World(seed=7, days=365, offices=10, terms_per_office=5, ops_per_office=12,
                          sessions_per_day=sessions, app_ops=(max(1, ops // 2), ops * 3 // 2), sign=False,
                          plant=False)


def registry_rows(w):
    from cryptography.hazmat.primitives import serialization
    now = int(time.time() * 1e6)
    rows = {'offices': [], 'terminals': [], 'operators': [], 'operator_roles': [], 'groups_': [], 'cards': []}
    for o in w.offices:
        rows['offices'].append((o['id'], o['hours']))
        for tid in o['terms']:
            pem = w.terms[tid]['identity'].public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
            rows['terminals'].append((tid, o['id'], pem, now))
        for op in o['ops']:
            rows['operators'].append((op, op, o['id'], 'active'))
            rows['operator_roles'].append((op, w.ops[op]['role']))
        rows['groups_'].append((o['group'], o['id'], ' '.join(w.groups[o['group']]['members'])))
    for cid, card in w.cards.items():
        rows['cards'].append((cid, card['pem'], card['operator'], card['group'], card['status']))
    return rows


COLUMNS = {'offices': '(id, hours)', 'terminals': '(id, office, identity_pem, created)',
           'operators': '(id, name, offices, status)', 'operator_roles': '(id, roles)',
           'groups_': '(id, offices, members)', 'cards': '(id, cert_pem, operator, group_, status)'}


def copy_text(v):
    if v is None:
        return '\\N'
    return str(v).replace('\\', '\\\\').replace('\t', '\\t').replace('\n', '\\n').replace('\r', '\\r')


class PgCopy:
    """COPY … FROM STDIN through psql, fed as rows come."""

    def __init__(self, cluster, db, table_cols):
        self.p = subprocess.Popen([os.path.join(cluster.bin, 'psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d',
                                   cluster.conninfo(db), '-c', f'COPY {table_cols} FROM STDIN'],
                                  stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def row(self, values):
        self.p.stdin.write(('\t'.join(copy_text(v) for v in values) + '\n').encode())

    def close(self):
        self.p.stdin.close()
        err = self.p.stderr.read()
        if self.p.wait() != 0:
            raise SystemExit(f'COPY failed: {err.decode()}')


def fill(w, sq_db, pg, pg_db, limit_s):
    c = sqlite3.connect(sq_db)
    c.execute('PRAGMA synchronous=OFF')
    reg = registry_rows(w)
    for table, rows in reg.items():
        marks = ','.join('?' * len(rows[0]))
        c.executemany(f'INSERT OR REPLACE INTO {table} {COLUMNS[table]} VALUES ({marks})', rows)
        cp = PgCopy(pg, pg_db, table + ' ' + COLUMNS[table])
        for r in rows:
            cp.row(r)
        cp.close()
    # The months of the year exist before the rows come, as the collector's maintenance makes them.
    start_us = int(time.mktime(w.start_date.timetuple()) * 1e6)
    pg.psql(pg_db, f'SELECT mamori_records_partition({start_us}, k) FROM generate_series(-1, 13) k')
    cp = PgCopy(pg, pg_db, 'records (log, seq, ts, line)')
    pending = []
    started = time.monotonic()

    def sink(lg, seq, h, line):
        text = line.decode()
        pending.append((lg.id, seq, lg.last_ts, text))
        cp.row((lg.id, seq, lg.last_ts, text))
        if len(pending) >= 20000:
            c.executemany('INSERT INTO records (log, seq, ts, line) VALUES (?,?,?,?)', pending)
            pending.clear()
            if time.monotonic() - started > limit_s:
                raise SystemExit(f'generation exceeded {limit_s} s: lower RECORDS_MILLIONS')
    w.sink = sink
    w.generate()
    c.executemany('INSERT INTO records (log, seq, ts, line) VALUES (?,?,?,?)', pending)
    cp.close()
    now = int(time.time() * 1e6)
    n = 0
    cp = PgCopy(pg, pg_db, 'logs (id, term, last_seq, last_hash, key, epochs, first_seen, last_seen, last_ts)')
    for tid, t in w.terms.items():
        for lg in t['logs']:
            c.execute('INSERT INTO logs (id, term, last_seq, last_hash, key, epochs, first_seen, last_seen, last_ts)'
                      ' VALUES (?,?,?,?,?,?,?,?,?)', (lg.id, tid, lg.seq, lg.prev, lg.pub, lg.epochs, now, now,
                                                      lg.last_ts))
            cp.row((lg.id, tid, lg.seq, lg.prev, '\\x' + lg.pub.hex(), lg.epochs, now, now, lg.last_ts))
            n += lg.seq
    cp.close()
    c.commit()
    c.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    c.close()
    pg.psql(pg_db, 'VACUUM ANALYZE')
    return n


def timed(args):
    t0 = time.monotonic()
    p = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit(f'{" ".join(args)}: {p.stderr[-2000:]}')
    return time.monotonic() - t0


def main():
    millions = float(sys.argv[1]) if len(sys.argv) > 1 else 1
    limit = float(sys.argv[2]) if len(sys.argv) > 2 else 1200
    admin = exe('collector', 'mamori-admin')
    with bench.TempDir('mamori-store-bench-') as tmp:
        os.makedirs(os.path.join(tmp, 'sqlite'))
        os.makedirs(os.path.join(tmp, 'pg'))
        sq = Centre(os.path.join(tmp, 'sqlite'), store='sqlite')
        pgc = Centre(os.path.join(tmp, 'pg'), store='postgresql')
        w = world(millions)
        t0 = time.monotonic()
        n = fill(w, sq.db, pgc.pg, pgc.pg_db, limit)
        print(f'records={n} terminals={len(w.terms)} generate_and_store_s={time.monotonic() - t0:.0f} '
              f'load={os.getloadavg()[0]:.1f}', flush=True)
        per_m = lambda b: b / n * 1e6 / 1e6  # MB per million records
        sq_file = sum(os.path.getsize(os.path.join(sq.tmp, f)) for f in os.listdir(sq.tmp)
                      if f.startswith('collector.db'))
        # The same rows in the layout before this change (a hash column, no ts), in another file, in filing order.
        before_db = os.path.join(tmp, 'before.db')
        b = sqlite3.connect(before_db)
        b.execute('PRAGMA synchronous=OFF')
        b.execute('CREATE TABLE records (log TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL,'
                  ' line TEXT NOT NULL, PRIMARY KEY (log, seq)) WITHOUT ROWID')
        src = sqlite3.connect(sq.db)
        rows = src.execute('SELECT log, seq, line FROM records ORDER BY ts, log, seq')
        while True:
            chunk = rows.fetchmany(20000)
            if not chunk:
                break
            b.executemany('INSERT INTO records VALUES (?,?,?,?)',
                          [(lg, seq, hashlib.sha256(line.encode()).hexdigest(), line) for lg, seq, line in chunk])
        b.commit()
        b.close()
        src.close()
        print(f'sqlite: database_mb_per_million={per_m(sq_file):.0f} '
              f'records_before_mb_per_million={per_m(os.path.getsize(before_db)):.0f}', flush=True)
        os.unlink(before_db)
        rel = "(SELECT inhrelid FROM pg_inherits WHERE inhparent = 'records'::regclass)"
        pg_records = int(pgc.sql(f'SELECT sum(pg_total_relation_size(inhrelid)) FROM {rel} x')[0][0])
        pg_db = int(pgc.sql('SELECT pg_database_size(current_database())')[0][0])
        empty = int(pgc.sql("SELECT pg_database_size('postgres')")[0][0])
        # The rows as main stored them before this change: one table, (log, seq) key, columns in that order.
        pgc.pg.psql(pgc.pg_db, 'CREATE TABLE records_before (log text COLLATE "C" NOT NULL, seq bigint NOT NULL,'
                               ' hash text COLLATE "C" NOT NULL, line text COLLATE "C" NOT NULL,'
                               ' PRIMARY KEY (log, seq)); INSERT INTO records_before SELECT log, seq,'
                               " encode(sha256(convert_to(line, 'UTF8')), 'hex'), line FROM records ORDER BY ts, log, seq")
        pgc.pg.psql(pgc.pg_db, 'VACUUM ANALYZE records_before')
        before = int(pgc.sql("SELECT pg_total_relation_size('records_before')")[0][0])
        pgc.pg.psql(pgc.pg_db, 'DROP TABLE records_before')
        print(f'postgresql: database_mb_per_million={per_m(pg_db - empty):.0f} (above an empty database) '
              f'records_mb_per_million={per_m(pg_records):.0f} records_before_partitioning_mb_per_million='
              f'{per_m(before):.0f}', flush=True)
        if 'sizes' in sys.argv[3:]:
            return
        office = w.offices[0]['id']
        start, end = w.start_date.isoformat(), w.end_date.isoformat()
        base = os.environ.get('MAMORI_STORE_BENCH_BASELINE_ADMIN')  # another build's mamori-admin, same stores
        for name, c in (('sqlite', sq), ('postgresql', pgc)):
            args = [admin, '--config', c.conf, 'audit', '--office', office, '--from', start, '--to', end,
                    '--format', 'json']
            timed(args)  # warm
            if base:
                runs = [timed([base] + args[1:]) for _ in range(3)]
                print(f'{name}: baseline_audit_office_year_median_s={statistics.median(runs):.2f} '
                      f'load={os.getloadavg()[0]:.1f}', flush=True)
            runs = [timed(args) for _ in range(3)]
            la = os.getloadavg()[0]
            led = [timed([admin, '--config', c.conf, 'ledger', '--office', office, '--from', start, '--to', end,
                          '--format', 'csv']) for _ in range(3)]
            # The last quarter only: where each log's window starts is found first (the seek).
            q = (w.end_date - datetime.timedelta(days=91)).isoformat()
            quarter = [timed(args[:7] + [q] + args[8:]) for _ in range(3)]
            if base:
                bq = [timed([base] + args[1:7] + [q] + args[8:]) for _ in range(3)]
                print(f'{name}: baseline_audit_office_last_quarter_median_s={statistics.median(bq):.2f}', flush=True)
            print(f'{name}: audit_office_year_median_s={statistics.median(runs):.2f} '
                  f'audit_office_last_quarter_median_s={statistics.median(quarter):.2f} '
                  f'ledger_office_year_median_s={statistics.median(led):.2f} load={la:.1f}', flush=True)


if __name__ == '__main__':
    main()
