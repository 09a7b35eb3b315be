#!/usr/bin/python3
"""Vein benchmarks on the simulated vein reader (tests/bio/vein-test-plugin.c behind [Biometric]
VeinPlugin=, the same plugin ABI a vendor's reader would use): touch → session active for
vein+password (the hand identified 1:N, then AnswerPassword sent at once: no typing; the answer
comes after auth.ok, session.start and unlock are durable), and identify time with 10, 100 and 1,000
enrolled templates (touch → StartBioLogin answered).

Templates for the galleries are written here in the store's layout (PrintsDirectory/OP/1.vein, 0600,
in 0700 directories): the simulated reader's template of hand X is "vein-test:1:X"."""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
import policytool  # noqa: E402
import terminal  # noqa: E402
from test_vein import VeinTerminal  # noqa: E402


def percentile(values, p):
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def line(label, samples):
    print(f'  {label:<56} n={len(samples):<3} median={statistics.median(samples):8.1f} ms  '
          f'p99={percentile(samples, 99):8.1f} ms  min={min(samples):7.1f}  max={max(samples):7.1f}', flush=True)


class BenchTerminal(VeinTerminal):
    def __init__(self, test, extra_ops=(), **kw):
        self.extra_ops = list(extra_ops)
        super().__init__(test, **kw)

    def publish(self, serial, card_status=None, emergency=False, op_status=None, op_offices=None):
        ops = list(self.cards) + self.extra_ops
        cards = [policytool.card(c.card_id, op) for op, c in self.cards.items()]
        b = policytool.bundle(serial, 'chuo', 'T-0001', [policytool.operator(op, ['chuo']) for op in ops], cards)
        policytool.install(os.path.join(self.tmp, 'agent-state', 'policy'), self.signer.sign(b))


def make_templates(prints_dir, ops):
    os.makedirs(prints_dir, mode=0o700, exist_ok=True)
    for op in ops:
        d = os.path.join(prints_dir, op)
        os.makedirs(d, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(d, '1.vein'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, f'vein-test:1:hand-{op}'.encode())
        os.close(fd)


def wait_line(p):
    import json
    out = p.stdout.readline()
    return json.loads(out) if out.strip() else None


def identify(sizes=(10, 100, 1000), rounds=20):
    print('\nvein identify: hand (SCAN sent) → StartBioLogin answered, simulated reader, ASan build unless '
          'MAMORI_BUILD_DIR says otherwise')
    for n in sizes:
        cleanups = terminal.Cleanups()
        try:
            ops = [f'OP{i:05d}' for i in range(n)]
            t = BenchTerminal(cleanups, operators=('OP0001',), extra_ops=ops)
            make_templates(t.prints, ops)
            agent = t.start_agent()
            samples, chosen, ready = [], [], []
            for i in range(rounds):
                mark = agent.events.mark()
                who = ops[(i * 7919) % n]
                p = t.client(['StartBioLogin', '', 'vein'], ['CancelLogin'])
                t.wait_step('vein')
                t0 = time.monotonic()
                t.vein(f'SCAN hand-{who}', wait=False)
                res = wait_line(p)
                t1 = time.monotonic()
                assert res and res.get('ok') == [who, 'password'], res
                wait_line(p)
                p.wait()
                samples.append((t1 - t0) * 1000)
                m = agent.events.wait(r'vein scan: (\d+) templates compared, chosen in (\d+) us, read and made '
                                      r'ready in (\d+) us', after=mark)
                assert int(m.group(1)) == n, m.string
                chosen.append(int(m.group(2)) / 1000)
                ready.append(int(m.group(3)) / 1000)
            line(f'{n} templates: hand → identified', samples)
            line(f'{n} templates: whose templates (policy, mamorid loop)', chosen)
            line(f'{n} templates: read from the store (vein thread)', ready)
        finally:
            cleanups.close()


def vein_password(rounds=20, password='correct horse 1'):
    print('\nvein+password: hand → identified → AnswerPassword answered (session active), no typing')
    cleanups = terminal.Cleanups()
    try:
        t = BenchTerminal(cleanups, operators=('OP0001',))
        make_templates(t.prints, ['OP0001'])
        t.start_agent()
        card = t.insert('OP0001')
        t.wait_card_seen(card)
        t.login()
        t.iface().ChangePassword('', password)
        t.end_card_session(card)
        total, identified = [], []
        for _ in range(rounds):
            p = t.client(['StartBioLogin', '', 'vein'], ['AnswerPassword', '', password], ['Lock'])
            t.wait_step('vein')
            t0 = time.monotonic()
            t.vein('SCAN hand-OP0001', wait=False)
            first = wait_line(p)
            t1 = time.monotonic()
            second = wait_line(p)
            t2 = time.monotonic()
            assert first and first.get('ok') == ['OP0001', 'password'], first
            assert second and second.get('ok') == 'OP0001', second
            wait_line(p)
            p.wait()
            identified.append((t1 - t0) * 1000)
            total.append((t2 - t0) * 1000)
        line('vein + password: hand → active (scrypt check included)', total)
        line('vein + password: hand → identified (Step password)', identified)
    finally:
        cleanups.close()


def main(argv):
    if os.geteuid() != 0:
        print('vein bench: needs root (the plugin must be a root-owned file)')
        return
    which = argv[1:] or ['password', 'identify']
    if 'password' in which:
        vein_password()
    if 'identify' in which:
        identify()


if __name__ == '__main__':
    main(sys.argv)
