#!/usr/bin/python3
"""mamori benchmarks (tools/dev bench [NAME…]). Each prints its figures — median and p99 — next to
the baseline measured in the same run. Add a benchmark: a function NAME(args) in BENCHES."""
import os
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
import agentproc  # noqa: E402
import bench  # noqa: E402


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def report(title, unit, rows):
    """rows: [(label, [samples])] → one line each with n, median, p99, min, max."""
    print(f'\n{title}')
    for label, samples in rows:
        print(f'  {label:<44} n={len(samples):<4} median={statistics.median(samples):8.1f} {unit}  '
              f'p99={percentile(samples, 99):8.1f} {unit}  min={min(samples):8.1f}  max={max(samples):8.1f}')


def removal(pulls=30):
    """Card pull → card.removed logged by mamorid, next to a bare SCardGetStatusChange watcher
    (the pcscd floor) observing the same pulls."""
    floor_exe = os.path.join(bench.build_dir(), 'tests', 'bench', 'pcsc-floor')
    with bench.TempDir(prefix='mamori-bench-') as tmp:
        pki = bench.TestPKI(tmp)
        card = pki.issue('OP-BENCH', 'p256')
        port = bench.free_vpcd_port()
        with bench.Pcscd(tmp, port, debug=False) as pcscd, \
                bench.VCard(port, card.key, card.cert, '123456', trace=False) as vc, \
                agentproc.Mamorid(tmp, pcscd.client_env(), {'Terminal': {'Id': 'T-BENCH'}}) as agent:
            floor = subprocess.Popen([floor_exe, bench.READER0], env=pcscd.client_env(), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            try:
                floor_out = bench.LineWatcher(floor.stdout)
                floor_out.wait(r'^ready$')
                floor_out.wait(r'^inserted ')
                agent.wait_event('card.inserted', card=card.card_id)
                detect, logged, floor_lat = [], [], []
                for _ in range(pulls):
                    # A random phase against pcscd's 400 ms poll, so the figures show its spread.
                    time.sleep(random.uniform(0.1, 0.5))
                    a_mark, f_mark = agent.events.mark(), floor_out.mark()
                    t0 = time.monotonic()
                    vc.pull()
                    ev = agent.wait_event('card.removed', after=a_mark, card=card.card_id)
                    t_logged = time.monotonic()  # the line has been written and read back
                    m = floor_out.wait(r'^removed mono_us=(\d+)', after=f_mark)
                    detect.append((int(ev['mono_us']) / 1e6 - t0) * 1e3)
                    logged.append((t_logged - t0) * 1e3)
                    floor_lat.append((int(m.group(1)) / 1e6 - t0) * 1e3)
                    a_mark, f_mark = agent.events.mark(), floor_out.mark()
                    vc.insert()
                    agent.wait_event('card.inserted', after=a_mark, card=card.card_id)
                    floor_out.wait(r'^inserted ', after=f_mark)
            finally:
                bench.stop_process(floor)
    report(f'card pull → removal reported ({pulls} pulls, vpcd polled by pcscd every 400 ms)', 'ms', [
        ('mamorid card.removed line read by the test', logged),
        ('mamorid detection (mono_us in the event)', detect),
        ('baseline: bare SCardGetStatusChange watcher', floor_lat),
    ])


BENCHES = {'removal': removal}


def main(argv):
    names = argv or list(BENCHES)
    for name in names:
        if name not in BENCHES:
            print(f'unknown benchmark {name!r}; known: {", ".join(BENCHES)}', file=sys.stderr)
            return 2
    for name in names:
        BENCHES[name]()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
