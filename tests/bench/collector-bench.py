#!/usr/bin/python3
# Collector ingest bench: SQLite and PostgreSQL, 1 and 2 collectors, beside cores × openssl verify/s.
"""Usage: MAMORI_BUILD_DIR=BUILD collector-bench.py [RECORDS] [BATCH] [TERMINALS] [STORES] [COLLECTORS] [REPEAT]

RECORDS (100000) signed records (tests/integration/mklog), spread over TERMINALS (8) terminals a
collector (one log each: 8 terminals with one collector, 16 with two), posted by tests/bench/ingest-client
(C, libcurl: terminals cost the machine ~1.5 µs a record) in batches of BATCH (1000) over one keep-alive
TLS connection per terminal, all terminals at once; terminal i posts to collector i mod C. Each
terminal waits for a batch's answer before it sends the next, so a collector has as many batches in
flight as it has terminals. With 4 there were moments with fewer than two batches left to verify and
a core idle (on this 2-core VM: ~19,000 records/s with 4, ~22,400 with 8, same build and hour); a
collector of a real fleet (thousands of terminals over a few collectors) has hundreds in flight at the
peak, so the bench gives every collector the same 8, however many collectors share the machine: two
collectors with 8 terminals between them left cores idle as one with 4 did (session 12: 1.89 cores
used against 1.95). Every STORE in STORES ("sqlite,postgresql-tuned,postgresql")
with every C in COLLECTORS ("1,2"), REPEAT (3) times each, every time into a new centre (an empty
store, the same records); PostgreSQL is a private cluster (tests/integration/pgcluster.py, fsync on),
warmed before anything is measured (pgcluster's warm(): every shared buffer used once and a pool of
recycled WAL segments, as in a centre that has run a while: a fresh cluster otherwise makes and
zero-fills a new 16 MiB WAL segment every ~25,000 records, a sixth of its CPU in a run) and checkpointed
after every repetition, outside the measured window, its CPU counted (each repetition starts with clean
buffers, and its WAL goes into recycled segments):
`postgresql` with PostgreSQL's defaults, `postgresql-tuned` as the capacity plan deploys it (huge
pages, reserved for the run when run as root, and glibc keeping the server's heap between statements;
`huge_pages=` says whether the pages were there). Use a build without sanitizers for figures. MAMORI_BENCH_COLLECTOR_CONF adds
`[Collector]` lines to every collector's configuration (`;` between them), e.g. `Workers=2` to compare.

The baseline is measured in the same run, right before each repetition:
- `openssl speed ed25519` verify/s of one core (OpenSSL divides by the CPU time it used), × cores:
  the goal's yardstick (ingest >= 80 % of it); measured again right after the repetition and the two
  averaged, since what a core of this shared VM gives drifts by tens of percent within minutes. When
  the two differ by more than 5 % the machine changed speed under the repetition and its ratio means
  nothing: it is printed (`unsteady`), left out of the figures and run again, up to 3 × REPEAT tries
  a configuration (`unsteady=N` on the summary line says how many were left out);
- `openssl speed -elapsed -multi CORES ed25519`: verify/s the whole machine gave OpenSSL in wall time
  at that moment — on a VM shared with other work, what was actually there to be had.
Per configuration it prints records/s (median, min, max over the repetitions) while every terminal
was posting (from the last terminal's first answer to the first terminal's last: the rate under
continuous load, which a finite run's start and ragged end would understate; `whole_run` is records /
the whole run's wall time), both ratios (`ratio`: median records/s over median baseline;
`ratio_per_run`: each repetition against its own baseline, median and range — the steadier figure
when the machine's speed drifts), and where
the centre's CPU went: `cpu_per_record_us` (collector + PostgreSQL processes, and the CPU of the checkpoint
after the run that writes the pages it dirtied — outside the measured window, so the rate leaves it
out and this figure does not; `ratio_with_checkpoint` is each repetition's ratio had that checkpoint run
on the same cores during it, as a running centre's do: the rate it can keep up; PostgreSQL's share in
brackets, and `postgresql_page_faults_per_record`, the pages its processes had to be given: each costs this VM
microseconds) against
`verify_cpu_us` (one verification, from the median one-core baseline of that configuration) — their quotient, `verify_share`, is how
much of the centre's work is signature checking, which no load on the machine changes; and
`cores_used` (centre CPU seconds / wall seconds of the whole run); `client_cpu_per_record_us` (the
terminals' own cost, on the same cores). Also the bytes the store grew by per million
records. Before each store's configurations, `stage_costs` (tests/bench/ingest-cost.c): the same
centre cost on one thread, stage by stage, beside one verification measured batch by batch in
between — a figure a busy machine hardly moves."""
import copy
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))
import bench  # noqa: E402
import pgcluster  # noqa: E402
from test_collector import Centre  # noqa: E402

TICK = os.sysconf('SC_CLK_TCK')


def store_bytes(c):
    if c.pg:
        return int(c.pg.psql(c.pg_db, 'SELECT pg_database_size(current_database())').strip())
    return sum(os.path.getsize(os.path.join(c.tmp, f)) for f in os.listdir(c.tmp) if f.startswith('collector.db'))


def openssl_verify(elapsed_multi=0):
    """verify/s: of one core by CPU time, or (elapsed_multi = N) of N processes by wall time."""
    args = ['openssl', 'speed', '-seconds', '2']
    if elapsed_multi:
        args += ['-elapsed', '-multi', str(elapsed_multi)]
    out = subprocess.run(args + ['ed25519'], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    m = re.search(r'Ed25519\)\s+\S+\s+\S+\s+(\S+)\s+(\S+)', out)
    return float(m.group(2)) if m else 0.0


def cpu_and_faults(pid):
    """(CPU ticks, page faults) of a process so far."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return int(fields[11]) + int(fields[12]), int(fields[7])  # utime + stime, minflt
    except (OSError, IndexError, ValueError):
        return 0, 0


def centre_pids(collectors, pg):
    """The collectors' pids and, for PostgreSQL, the postmaster and its children (backends, writers)."""
    pids = [x.proc.pid for x in collectors]
    if pg:
        with open(os.path.join(pg.dir, 'data', 'postmaster.pid')) as f:
            master = int(f.readline())
        pids.append(master)
        for d in os.listdir('/proc'):
            if d.isdigit():
                try:
                    with open(f'/proc/{d}/stat') as f:
                        if int(f.read().rsplit(')', 1)[1].split()[1]) == master:
                            pids.append(int(d))
                except (OSError, ValueError, IndexError):
                    pass
    return pids


_cost_dbs = 0
_warmed = set()


def warm_cluster(store):
    """The store's shared PostgreSQL cluster (the one Centre uses), warmed once (pgcluster.warm()): its
    buffers touched and its WAL pool full, as in a centre that has run a while."""
    cluster = pgcluster.shared(tuned=store == 'postgresql-tuned')
    if store not in _warmed:
        cluster.warm()
        _warmed.add(store)
    return cluster


def checkpoint_cpu(store):
    """PostgreSQL's CPU seconds for a checkpoint now, which writes the pages the last repetition dirtied
    and recycles its WAL segments: the next repetition starts from the state the first did."""
    if not store.startswith('postgresql'):
        return 0.0
    cluster = warm_cluster(store)
    pids = centre_pids([], cluster)
    cpu0 = {p: cpu_and_faults(p)[0] for p in pids}
    cluster.checkpoint()
    return sum(cpu_and_faults(p)[0] - cpu0[p] for p in pids) / TICK


def stage_costs(store):
    """tests/bench/ingest-cost on this store: the centre's CPU per record stage by stage against one
    verification, on one thread (CPU time, medians of 5 rounds of 10,000 records): what the collector
    can reach at most, whatever else the machine is doing. Its two figure lines."""
    global _cost_dbs
    args = [os.path.join(bench.build_dir(), 'tests', 'bench', 'ingest-cost'), '10000', '1000', '5']
    env = dict(os.environ)
    if store.startswith('postgresql'):
        cluster = warm_cluster(store)
        _cost_dbs += 1
        args.append(cluster.create_db(f'cost{_cost_dbs}'))
        env['MAMORI_BENCH_PG_DATA'] = os.path.join(cluster.dir, 'data')
    out = subprocess.run(args, stdout=subprocess.PIPE, text=True, env=env, check=True).stdout
    return [line for line in out.splitlines() if line.startswith(('us_per_record', 'centre_cost'))]


def make_logs(n, terms):
    """The records of every terminal once: (term, seed, lines); each centre enrols the same seeds. Their
    times end a minute ago, as a terminal's would, so that PostgreSQL files them in this month's
    partition (older ones would go to the default partition, which has an index more)."""
    per = n // terms
    start = time.time_ns() // 1000 - 60_000_000 - per * 1000
    return [(f'T-{t + 1:04d}', f's{t}', Centre.mklog(None, seed=f's{t}', log=f'{t + 1:032x}', term=f'T-{t + 1:04d}',
                                                     count=per, rotate=1000, start=start)) for t in range(terms)]


def run_once(store, collectors, logs, batch):
    with bench.TempDir('mamori-collector-bench-') as tmp:
        extra = os.environ.get('MAMORI_BENCH_COLLECTOR_CONF', '').replace(';', '\n')
        c = Centre(tmp, extra_conf='MaxBatchRecords=20000\n' + (extra + '\n' if extra else ''), store=store)
        certs = [c.add_terminal(term, seed) for term, seed, _ in logs]
        cs = [c] + [copy.copy(c) for _ in range(collectors - 1)]
        for x in cs:
            x.start()
        before = store_bytes(c)
        jobs = []
        for i, (cert, (term, _, lines)) in enumerate(zip(certs, logs)):
            path = os.path.join(tmp, f'{term}.ndjson')
            with open(path, 'wb') as f:
                f.write(b''.join(lines))
            jobs.append(f'https://127.0.0.1:{cs[i % len(cs)].port}/v1/records,{cert}/client.pem,{cert}/client.key,{path}')
        try:
            pids = centre_pids(cs, c.pg)
            cpu0 = {p: cpu_and_faults(p) for p in pids}
            perf = os.environ.get('MAMORI_BENCH_PERF')  # a file: the whole machine sampled while terminals post
            wrap = ['perf', 'record', '-a', '-g', '-F', '999', '-o', perf, '--'] if perf else []
            out = subprocess.run(wrap + [os.path.join(bench.build_dir(), 'tests', 'bench', 'ingest-client'),
                                  os.path.join(tmp, 'state', 'collector-ca.pem'), str(batch)] + jobs,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            after = {p: cpu_and_faults(p) for p in centre_pids(cs, c.pg)}
            used = {p: after[p][0] - cpu0.get(p, (0, 0))[0] for p in after}
            faults = {p: after[p][1] - cpu0.get(p, (0, 0))[1] for p in after}
            cpu = sum(used.values()) / TICK
            pg_cpu = cpu - sum(used.get(x.proc.pid, 0) for x in cs) / TICK
            collector_faults = sum(faults.get(x.proc.pid, 0) for x in cs)
            pg_faults = sum(faults.values()) - collector_faults
        finally:
            for x in cs:
                x.stop()
        if out.returncode != 0:
            raise SystemExit(f'{store} x{collectors}: {out.stderr.strip()}')
        got = dict(kv.split('=') for kv in out.stdout.split())
        dt, client = float(got['seconds']), float(got['cpu_seconds'])
        if float(got['steady_seconds']) <= 0:
            raise SystemExit(f'{store} x{collectors}: no window with every terminal posting; give more records')
        steady = int(got['steady_records']) / float(got['steady_seconds'])
        total = sum(len(lines) for _, _, lines in logs)
        if int(got['records']) != total:
            raise SystemExit(f'{store} x{collectors}: {got["records"]} posted, {total} made')
        stored = c.stored()
        if stored != total:
            raise SystemExit(f'{store} x{collectors}: {stored} stored, {total} posted')
        return (steady, total / dt, dt, cpu, pg_cpu, store_bytes(c) - before, total, client, pg_faults,
                collector_faults)


def main():
    os.environ['MAMORI_TEST_PG_FSYNC'] = 'on'  # commits as durable as SQLite's synchronous=FULL
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    terms = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    stores = (sys.argv[4] if len(sys.argv) > 4 else 'sqlite,postgresql-tuned,postgresql').split(',')
    for store in stores:
        if store not in ('sqlite', 'postgresql', 'postgresql-tuned'):
            raise SystemExit(f'collector-bench: unknown store {store!r} (sqlite, postgresql, postgresql-tuned)')
    counts = [int(x) for x in (sys.argv[5] if len(sys.argv) > 5 else '1,2').split(',')]
    repeat = int(sys.argv[6]) if len(sys.argv) > 6 else 3
    cores = os.cpu_count()
    logs = {k: make_logs(n, terms * k) for k in counts}
    one_core = openssl_verify()
    print(f'cores={cores} openssl_ed25519_verify_per_s={one_core:.0f} (one core, CPU time) '
          f'cores_x_verify={cores * one_core:.0f}', flush=True)
    for store in stores:
        for line in stage_costs(store):
            print(f'  stage_costs store={store} {line}', flush=True)
        for k in counts:
            rates, whole, goal, avail, cpu_us, pg_us, used, client_us, pg_faults_r = [], [], [], [], [], [], [], [], []
            ckpt_us, sustained = [], []
            tries, unsteady = 0, 0
            checkpoint_cpu(store)  # what stage_costs or the configuration before left dirty
            while len(rates) < repeat and tries < 3 * repeat:
                tries += 1
                vm = openssl_verify(cores)
                before = openssl_verify()  # right before the run, as `after` is right after it
                (rate, whole_rate, dt, cpu, pg_cpu, grown, total, client, pg_faults,
                 collector_faults) = run_once(store, k, logs[k], batch)
                after = openssl_verify()
                ckpt = checkpoint_cpu(store)
                v1 = (before + after) / 2  # the machine's speed drifts: before and after, averaged
                steady_speed = abs(before - after) <= 0.05 * max(before, after)
                print(f'  store={store} collectors={k} run={tries} records={total} seconds={dt:.2f} '
                      f'records_per_s={rate:.0f} whole_run_records_per_s={whole_rate:.0f} cores_x_verify={cores * v1:.0f} '
                      f'(before {cores * before:.0f}, after {cores * after:.0f}'
                      f'{"" if steady_speed else ": unsteady, left out"}) '
                      f'ratio={rate / (cores * v1):.0%} '
                      f'machine_verify_elapsed={vm:.0f} centre_cpu_s={cpu:.1f} postgresql_cpu_s={pg_cpu:.1f} '
                      f'postgresql_page_faults_per_record={pg_faults / total:.2f} '
                      f'collector_page_faults_per_record={collector_faults / total:.2f} '
                      f'client_cpu_per_record_us={client * 1e6 / total:.1f} mb_per_million={grown / total:.0f}'
                      + (f' checkpoint_cpu_per_record_us={ckpt * 1e6 / total:.1f}' if store.startswith('postgresql') else ''),
                      flush=True)
                if not steady_speed:
                    unsteady += 1
                    continue
                rates.append(rate)
                whole.append(whole_rate)
                goal.append(cores * v1)
                avail.append(vm)
                cpu_us.append((cpu + ckpt) * 1e6 / total)  # the run's pages written count as its work
                pg_us.append((pg_cpu + ckpt) * 1e6 / total)
                ckpt_us.append(ckpt * 1e6 / total)
                sustained.append(rate * cpu / (cpu + ckpt) / (cores * v1))  # its checkpoint on the same cores
                used.append(cpu / dt)
                client_us.append(client * 1e6 / total)
                pg_faults_r.append(pg_faults / total)
            if not rates:
                print(f'store={store} collectors={k} terminals={terms * k}: no repetition with a steady machine '
                      f'in {tries} tries; no figure', flush=True)
                continue
            med = statistics.median(rates)
            verify_us = 1e6 * cores / statistics.median(goal)  # one verification, this configuration's baseline
            share = verify_us / statistics.median(cpu_us)
            print(f'store={store} collectors={k} terminals={terms * k} records={n // (terms * k) * terms * k} batch={batch} '
                  f'records_per_s median={med:.0f} min={min(rates):.0f} max={max(rates):.0f} (n={len(rates)}, unsteady={unsteady}) '
                  f'whole_run_median={statistics.median(whole):.0f} '
                  f'cores_x_verify={statistics.median(goal):.0f} ratio={med / statistics.median(goal):.0%} '
                  f'ratio_per_run median={statistics.median(r / g for r, g in zip(rates, goal)):.0%} '
                  f'min={min(r / g for r, g in zip(rates, goal)):.0%} max={max(r / g for r, g in zip(rates, goal)):.0%} '
                  f'machine_verify_elapsed={statistics.median(avail):.0f} '
                  f'ratio_elapsed={med / statistics.median(avail):.0%} '
                  + (f'ratio_with_checkpoint median={statistics.median(sustained):.0%} '
                     f'min={min(sustained):.0%} max={max(sustained):.0%} ' if store.startswith('postgresql') else '')
                  + f'cpu_per_record_us={statistics.median(cpu_us):.1f} (postgresql {statistics.median(pg_us):.1f}'
                  + (f', of which its checkpoint after the run {statistics.median(ckpt_us):.1f}' if store.startswith('postgresql') else '')
                  + ') '
                  f'postgresql_page_faults_per_record={statistics.median(pg_faults_r):.2f} '
                  f'verify_cpu_us={verify_us:.1f} '
                  f'verify_share={share:.0%} cores_used={statistics.median(used):.2f} '
                  f'client_cpu_per_record_us={statistics.median(client_us):.1f}'
                  + (f' huge_pages={"yes" if pgcluster.shared(tuned=True).huge_pages else "no"}'
                     if store == 'postgresql-tuned' else ''), flush=True)
    pgcluster.stop_shared()


if __name__ == '__main__':
    main()
