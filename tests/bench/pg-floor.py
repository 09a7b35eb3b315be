#!/usr/bin/python3
# PostgreSQL's own CPU a record when a batch is stored, by table layout, beside one Ed25519 verification.
"""Usage: MAMORI_BUILD_DIR=BUILD pg-floor.py [RECORDS (30000)] [BATCH (1000)] [REPEAT (3)]

What PostgreSQL itself costs the machine for each record the collector stores, without the collector:
RECORDS signed lines of one terminal (tests/integration/mklog, times ending a minute ago so that they
fall in this month's partition) are sent with psql's \\copy, one COPY and one commit per BATCH records,
into a private PostgreSQL 15 cluster (tests/integration/pgcluster.py, fsync on) set up as the capacity
plan deploys it (`tuned`: huge pages when run as root, glibc keeping the server's heap, a 1 GiB pool
of recycled WAL segments), warmed first (pgcluster's warm()) and checkpointed before every run: the
pages a run dirtied are written by the next run's checkpoint, outside its figure (collector-bench
counts that cost: 0.4-1.1 µs a record in session 14). Layouts:

- `store`: the store's own `records` table (its schema made by tests/bench/ingest-cost in a warm-up),
  one row a record, in COPY's binary format, the whole batch in one COPY;
- `store-copy-250`: the same rows as the collector sends them: a COPY per 250 rows, one transaction a
  batch (PostgreSQL 15 notes a hold on the row type per row a COPY buffers, and that bookkeeping slows
  with each one: store-pg.c COPY_ROWS_MAX);
- `store-short`: the same with each line cut to 40 bytes: what a row costs whatever its size;
- `store-4-sessions`: the store's rows dealt out batch by batch to 4 logs, each sent by its own session, all
  four at once: what a collector's 4 workers copying at the same moment cost PostgreSQL;
- `store-log-number`: the store's rows with the log named by a number (`bigint`, as a `logs` row could
  give it) instead of its 32-character id: every key column fixed-width, so PostgreSQL finds the
  index tuple's later columns by cached offsets and compares 8 bytes instead of 32;
- `batch-row`: one row a batch (the batch's lines as one text value, STORAGE EXTERNAL: TOAST chunks,
  no compression), the layout the last session proposed to cut PostgreSQL's per-record work;
- `batch-row-lz4`: the same value compressed with lz4.

The CPU is that of the postmaster and all its children (their ticks, 1/CLK_TCK s), in µs a record,
median and max over REPEAT runs, each into a new database. The baseline, measured in the same run
before and after: one Ed25519 verification (`openssl speed ed25519`, one core, CPU time). PostgreSQL's
cost in verifications is what it adds to each record on a machine whose cores it shares with the
collector: with the collector's own ~0.15 (ingest-cost's stage_costs), ingest can reach at most
1 / (1.15 + that) of cores × verify/s."""
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
import bench  # noqa: E402
import pgcluster  # noqa: E402

LOG = '0123456789abcdef0123456789abcdef'
COPY_ROWS = 250  # store-copy-250: collector/store-pg.c COPY_ROWS_MAX
SESSIONS = 4  # store-4-sessions: the collector's default workers on 2 cores, each its own COPY
COPY_BINARY_HEADER = b'PGCOPY\n\xff\r\n\x00' + struct.pack('>ii', 0, 0)  # signature, flags, no extension
BATCH_DDL = ('CREATE TABLE batches (log text NOT NULL, first_seq bigint NOT NULL, ts bigint NOT NULL,'
             ' lines text NOT NULL, PRIMARY KEY (log, first_seq));')
LAYOUTS = {
    'store': None,
    'store-copy-250': None,
    'store-short': None,
    'store-4-sessions': None,
    'store-log-number': ('CREATE TABLE records (seq bigint NOT NULL, ts bigint NOT NULL, log bigint NOT NULL,'
                         ' line text COLLATE "C" NOT NULL, PRIMARY KEY (log, seq, ts)) PARTITION BY RANGE (ts);'
                         'CREATE TABLE records_all PARTITION OF records FOR VALUES FROM (MINVALUE) TO (MAXVALUE)'),
    'batch-row': BATCH_DDL + 'ALTER TABLE batches ALTER lines SET STORAGE EXTERNAL',
    'batch-row-lz4': BATCH_DDL + 'ALTER TABLE batches ALTER lines SET COMPRESSION lz4',
}


def verify_us():
    out = subprocess.run(['openssl', 'speed', '-seconds', '2', 'ed25519'], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout
    m = re.search(r'Ed25519\)\s+\S+\s+\S+\s+(\S+)\s+(\S+)', out)
    if not m:
        raise RuntimeError('openssl speed ed25519 gave no verify figure')
    return 1e6 / float(m.group(2))


def copy_escape(b):
    """COPY's text format: backslash, tab, newline and CR escaped (as the collector's copy_append())."""
    return b.replace(b'\\', b'\\\\').replace(b'\t', b'\\t').replace(b'\n', b'\\n').replace(b'\r', b'\\r')


def copy_binary_row(seq, ts, line, log=LOG):
    """One row of COPY's binary format (log, seq, ts, line), as the collector's pgc_put_records() writes it;
    a log given as a number goes as a bigint."""
    log = struct.pack('>q', log) if isinstance(log, int) else log.encode()
    return (struct.pack('>hi', 4, len(log)) + log + struct.pack('>iqiq', 8, seq, 8, ts)
            + struct.pack('>i', len(line)) + line)


def write_copy_binary(path, rows):
    """A COPY file in the binary format of rows (seq, ts, line, log); its path."""
    with open(path, 'wb') as f:
        f.write(COPY_BINARY_HEADER)
        for row in rows:
            f.write(copy_binary_row(*row))
        f.write(struct.pack('>h', -1))
    return path


def write_batches(tmp, lines, batch):
    """One COPY file a batch for each layout kind: rows (full and short lines, binary) and one row a batch (text)."""
    import json
    files = {'store': [], 'store-copy-250': [], 'store-short': [], 'store-log-number': [], 'batch': [],
             'store-4-sessions': [[] for _ in range(SESSIONS)]}
    for k in range(0, len(lines), batch):
        chunk = lines[k:k + batch]
        ts = [json.loads(line)['ts'] for line in chunk]
        for kind, cut in (('store', None), ('store-short', 40)):
            files[kind].append(write_copy_binary(os.path.join(tmp, f'{kind}-{k}.copy'),
                                                 [(k + i + 1, ts[i], line[:cut] if cut else line, LOG)
                                                  for i, line in enumerate(chunk)]))
        files['store-log-number'].append(write_copy_binary(os.path.join(tmp, f'store-log-number-{k}.copy'),
                                                           [(k + i + 1, ts[i], line, 1)
                                                            for i, line in enumerate(chunk)]))
        files['store-copy-250'].append([write_copy_binary(os.path.join(tmp, f'store-copy-250-{k}-{j}.copy'),
                                                          [(k + j + i + 1, ts[j + i], line, LOG)
                                                           for i, line in enumerate(chunk[j:j + COPY_ROWS])])
                                        for j in range(0, len(chunk), COPY_ROWS)])
        # The same rows dealt out batch by batch to SESSIONS logs, one session each.
        j, first = (k // batch) % SESSIONS, (k // batch) // SESSIONS * batch
        files['store-4-sessions'][j].append(write_copy_binary(os.path.join(tmp, f'session{j}-{k}.copy'),
                                                              [(first + i + 1, ts[i], line, f'{j + 1:032x}')
                                                               for i, line in enumerate(chunk)]))
        path = os.path.join(tmp, f'batch-{k}.tsv')
        with open(path, 'wb') as f:
            f.write(b'%s\t%d\t%d\t%s\n' % (LOG.encode(), k + 1, ts[-1],
                                           copy_escape(b'\n'.join(chunk) + b'\n')))
        files['batch'].append(path)
    return files


def cluster_ticks(cluster):
    """CPU ticks of the postmaster (with its reaped children) and of its live children."""
    with open(os.path.join(cluster.dir, 'data', 'postmaster.pid')) as f:
        master = f.readline().strip()

    def stat(pid):
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()
    total = sum(int(x) for x in stat(master)[11:15])  # utime stime cutime cstime
    for d in os.listdir('/proc'):
        if d.isdigit() and d != master:
            try:
                s = stat(d)
                if s[1] == master:
                    total += int(s[11]) + int(s[12])
            except (OSError, IndexError, ValueError):
                pass
    return total


def one_run(cluster, name, files, n, db):
    conn = cluster.create_db(db)
    if LAYOUTS[name] is None:
        # The store's schema, as the collector makes it (this month's partition included).
        subprocess.run([os.path.join(bench.build_dir(), 'tests', 'bench', 'ingest-cost'), '2', '1', '1', conn],
                       stdout=subprocess.DEVNULL, check=True)
        table, paths, form = 'records (log, seq, ts, line)', files[name], ' WITH (FORMAT binary)'
    elif name == 'store-log-number':
        cluster.psql(db, LAYOUTS[name])
        table, paths, form = 'records (log, seq, ts, line)', files[name], ' WITH (FORMAT binary)'
    else:
        cluster.psql(db, LAYOUTS[name])
        table, paths, form = 'batches', files['batch'], ''
    sessions = paths if name == 'store-4-sessions' else [paths]
    before = cluster_ticks(cluster)
    psqls = [subprocess.Popen([os.path.join(cluster.bin, 'psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', conn],
                              stdin=subprocess.PIPE, text=True) for _ in sessions]
    for p, mine in zip(psqls, sessions):  # all sessions at once, each its own log's batches in turn
        if name == 'store-copy-250':  # a batch: its COPYs in one transaction
            p.stdin.write(''.join('BEGIN;\n' + ''.join(f"\\copy {table} FROM '{f}'{form}\n" for f in batch)
                                  + 'COMMIT;\n' for batch in mine))
        else:
            p.stdin.write(''.join(f"\\copy {table} FROM '{f}'{form}\n" for f in mine))
        p.stdin.close()
    if any([p.wait(timeout=600) != 0 for p in psqls]):  # every session waited for, failed or not
        raise RuntimeError(f'{name}: psql failed')
    time.sleep(0.2)  # the backend reaped, its ticks in the postmaster's cutime
    after = cluster_ticks(cluster)
    return (after - before) / os.sysconf('SC_CLK_TCK') / n * 1e6


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    start = time.time_ns() // 1000 - 60_000_000 - n * 1000
    out = subprocess.run([os.path.join(bench.build_dir(), 'tests', 'integration', 'mklog'), '--seed', 'floor',
                          '--log', LOG, '--term', 'T-0001', '--count', str(n), '--rotate', str(batch),
                          '--start', str(start)], stdout=subprocess.PIPE, check=True).stdout
    lines = out.split(b'\n')[:-1]
    v_before = verify_us()
    cluster = pgcluster.Cluster(fsync=True, tuned=True).start()
    figures = {name: [] for name in LAYOUTS}
    try:
        cluster.warm()  # as in a centre that has run a while (pgcluster.warm())
        with tempfile.TemporaryDirectory(prefix='mamori-pg-floor-') as tmp:
            files = write_batches(tmp, lines, batch)
            k = 0
            for r in range(repeat):
                for name in LAYOUTS:  # interleaved, so that every layout meets the same drift
                    k += 1
                    cluster.checkpoint()  # each run from clean buffers, its WAL into recycled segments
                    figures[name].append(one_run(cluster, name, files, n, f'floor{k}'))
                    if sys.stderr.isatty():
                        print(f'\r  run {r + 1}/{repeat} {name:14s}', end='', file=sys.stderr, flush=True)
            if sys.stderr.isatty():
                print(file=sys.stderr)
    finally:
        cluster.stop()
    v = (v_before + verify_us()) / 2
    print(f'pg_floor records={n} batch={batch} repeat={repeat} mean_line_bytes={sum(map(len, lines)) / n:.0f}')
    print(f'  baseline one Ed25519 verification (openssl speed, one core, before and after): {v:.1f} us')
    for name, xs in figures.items():
        med = statistics.median(xs)
        print(f'  {name:14s} postgresql_us_per_record median={med:.1f} max={max(xs):.1f}'
              f'  = {med / v:.3f} verifications; ceiling with the collector\'s 1.15: {100 / (1.15 + med / v):.0f} %')


if __name__ == '__main__':
    main()
