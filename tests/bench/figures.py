# The benchmarks' figures: nearest-rank percentiles, one summary line per series, a client's next answer.
import json
import math
import statistics


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))  # rank ceil(p·n), 1-based
    return s[k]


def line(label, samples, width=52):
    """One series in milliseconds: n, median, p99, min, max."""
    print(f'  {label:<{width}} n={len(samples):<3} median={statistics.median(samples):8.1f} ms  '
          f'p99={percentile(samples, 99):8.1f} ms  min={min(samples):7.1f}  max={max(samples):7.1f}', flush=True)


def wait_line(p):
    """The next answer of a terminal.CLIENT process (a dict), or None once it has ended."""
    out = p.stdout.readline()
    return json.loads(out) if out.strip() else None
