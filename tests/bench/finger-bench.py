#!/usr/bin/python3
"""Fingerprint benchmarks on libfprint's virtual_device_storage (it identifies): identify time with
10, 100 and 1,000 enrolled prints (touch → StartBioLogin's answer), and touch → session active for
group-card+finger (the ScanFinger answer is sent after auth.ok, session.start and unlock are durable)
and for finger+password (touch → identified, then AnswerPassword at once: no typing), also through
pam_mamori.so under pamtester (no card in the reader: the module starts StartBioLogin itself).

Prints for the galleries are made here with libfprint itself (python3-gi, FPrint): a print of the
virtual device is its driver, device id and the scanned id; the agent's sensor learns each id with
INSERT (the virtual storage device keeps its list in memory)."""
import json
import os
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
import bench  # noqa: E402
import policytool  # noqa: E402
import terminal  # noqa: E402
from test_finger import FingerTerminal  # noqa: E402


def percentile(values, p):
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def line(label, samples):
    print(f'  {label:<52} n={len(samples):<3} median={statistics.median(samples):8.1f} ms  '
          f'p99={percentile(samples, 99):8.1f} ms  min={min(samples):7.1f}  max={max(samples):7.1f}', flush=True)


def make_prints(prints_dir, ops):
    """One print per operator, as the virtual storage device would have enrolled it: finger id fid-OP."""
    import gi
    gi.require_version('FPrint', '2.0')
    from gi.repository import FPrint, GLib
    sock = os.path.join(os.path.dirname(prints_dir), 'gen.sock')
    os.environ['FP_VIRTUAL_DEVICE_STORAGE'] = sock
    os.environ['FP_DRIVERS_WHITELIST'] = 'virtual_device_storage'
    ctx = FPrint.Context()
    ctx.enumerate()
    dev = ctx.get_devices()[0]
    for op in ops:
        d = os.path.join(prints_dir, op)
        os.makedirs(d, mode=0o700, exist_ok=True)
        p = FPrint.Print.new(dev)
        p.set_username(op)
        p.set_property('fpi-type', 1)  # FPI_PRINT_RAW
        p.set_property('fpi-data', GLib.Variant('s', f'fid-{op}'))
        path = os.path.join(d, '1.print')
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, p.serialize())
        os.close(fd)


class BenchTerminal(FingerTerminal):
    def __init__(self, test, extra_ops=(), **kw):
        self.extra_ops = list(extra_ops)
        super().__init__(test, **kw)

    def publish(self, serial, card_status=None, emergency=False, op_status=None, op_offices=None):
        ops = [op for op in self.cards if op != 'G1'] + self.extra_ops
        cards = [policytool.card(c.card_id, op) for op, c in self.cards.items() if op != 'G1']
        groups = []
        if self.group:
            gid, members = self.group
            groups = [{'id': gid, 'offices': ['chuo'], 'members': members}]
            cards.append({'id': self.cards['G1'].card_id, 'kind': 'group', 'group': gid, 'status': 'active'})
        b = policytool.bundle(serial, 'chuo', 'T-0001', [policytool.operator(op, ['chuo']) for op in ops], cards,
                              groups=groups)
        policytool.install(os.path.join(self.tmp, 'agent-state', 'policy'), self.signer.sign(b))

    def fp_fast(self, cmd):
        # One command per connection, and the next only once the device has read this one (it
        # drops a connection that arrives while it still reads the previous: "old connection").
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.sock)
        s.sendall(cmd.encode())
        s.close()
        time.sleep(0.015)

    def insert_ids(self, ids):
        """The virtual storage sensor queues INSERTs and applies them at its next scan."""
        for i in ids:
            self.fp_fast(f'INSERT {i}')


def wait_line(p):
    out = p.stdout.readline()
    return json.loads(out) if out.strip() else None


def identify(sizes=(10, 100, 1000), rounds=20):
    print('\nidentify: touch (SCAN sent) → StartBioLogin answered, virtual_device_storage, ASan build '
          'unless MAMORI_BUILD_DIR says otherwise')
    results = {}
    for n in sizes:
        cleanups = terminal.Cleanups()
        try:
            ops = [f'OP{i:05d}' for i in range(n)]
            t = BenchTerminal(cleanups, operators=('OP0001',), extra_ops=ops, group=None)
            make_prints(t.prints, ops)
            t.start_agent()
            t.insert_ids([f'fid-{op}' for op in ops])
            samples, prep, read_us, ready_us = [], [], [], []
            for i in range(rounds):
                mark = t.agent.events.mark()
                who = ops[(i * 7919) % n]
                t0 = time.monotonic()
                p = t.client(['StartBioLogin', '', 'finger'], ['CancelLogin'])
                t.wait_step('finger')
                t1 = time.monotonic()
                t.fp_fast(f'SCAN fid-{who}')
                res = wait_line(p)
                t2 = time.monotonic()
                assert res and res.get('ok') == [who, 'password'], res
                wait_line(p)
                p.wait()
                samples.append((t2 - t1) * 1000)
                prep.append((t1 - t0) * 1000)
                m = t.agent.events.wait(r'finger scan: (\d+) templates compared, chosen in (\d+) us, read and made ready in (\d+) us',
                                        after=mark)
                assert int(m.group(1)) == n, m.string
                read_us.append(int(m.group(2)) / 1000)
                ready_us.append(int(m.group(3)) / 1000)
            line(f'{n} prints: touch → identified', samples)
            line(f'{n} prints: whose prints (policy, mamorid loop)', read_us)
            line(f'{n} prints: read + deserialized (finger thread)', ready_us)
            line(f'{n} prints: client start → Step finger', prep)
            results[n] = statistics.median(samples)
        finally:
            cleanups.close()
    return results


def group_card_finger(rounds=20):
    print('\ngroup-card+finger: touch → ScanFinger answered (session active, records durable)')
    cleanups = terminal.Cleanups()
    try:
        t = BenchTerminal(cleanups, operators=('OP0001', 'OP0002'), group=('G-1', ['OP0001', 'OP0002']))
        make_prints(t.prints, ['OP0002'])
        t.start_agent()
        t.insert_ids(['fid-OP0002'])
        g = t.insert('G1')
        t.wait_card_seen(g)
        samples = []
        for _ in range(rounds):
            p = t.client(['StartLogin', 'counter'], ['AnswerPin', terminal.PIN], ['ScanFinger', 'finger'], ['Lock'])
            t.wait_step('finger')
            t0 = time.monotonic()
            t.fp_fast('SCAN fid-OP0002')
            res = [wait_line(p) for _ in range(3)]
            t1 = time.monotonic()
            assert res[2] and res[2].get('ok') == 'OP0002', res
            wait_line(p)
            p.wait()
            samples.append((t1 - t0) * 1000)
        line('group card + member finger: touch → active', samples)
    finally:
        cleanups.close()


def finger_password(rounds=20, password='correct horse 1'):
    print('\nfinger+password: touch → identified → AnswerPassword answered (session active), no typing')
    cleanups = terminal.Cleanups()
    try:
        t = BenchTerminal(cleanups, operators=('OP0001',))
        make_prints(t.prints, ['OP0001'])
        t.start_agent()
        t.insert_ids(['fid-OP0001'])
        # The operator's password, set in a card session (helper `password`'s verb).
        card = t.insert('OP0001')
        t.wait_card_seen(card)
        t.login()
        p = t.client(['ChangePassword', '', password])
        res = wait_line(p)
        if not res or 'error' in res:
            print(f'  (skipped: cannot set a password through ChangePassword: {res})')
            return
        t.iface().Lock()
        t.vcard.pull()
        samples = []
        for _ in range(rounds):
            p = t.client(['StartBioLogin', '', 'finger'], ['AnswerPassword', '', password], ['Lock'])
            t.wait_step('finger')
            t0 = time.monotonic()
            t.fp_fast('SCAN fid-OP0001')
            res = [wait_line(p) for _ in range(2)]
            t1 = time.monotonic()
            assert res[1] and res[1].get('ok') == 'OP0001', res
            wait_line(p)
            p.wait()
            samples.append((t1 - t0) * 1000)
        line('finger + password: touch → active (scrypt check included)', samples)
    finally:
        cleanups.close()


def pam_env(t):
    """pamtester through pam_wrapper on a service of pam_mamori alone (test_finger.FingerPamTest's)."""
    import test_pam
    d = os.path.join(t.tmp, 'pam.d')
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, test_pam.SERVICE), 'w', encoding='ascii') as f:
        f.write(f'auth required {test_pam.pam_module()}\naccount required pam_permit.so\n'
                f'session required pam_permit.so\n')
    for name, text in (('passwd', test_pam.NSS_PASSWD), ('group', test_pam.NSS_GROUP)):
        with open(os.path.join(t.tmp, name), 'w', encoding='ascii') as f:
            f.write(text)
    env = dict(t.env())
    preload = ['libpam_wrapper.so', 'libnss_wrapper.so']
    asan = test_pam.asan_runtime()
    if asan:
        preload.insert(0, asan)
    env.update({'LD_PRELOAD': ':'.join(preload), 'PAM_WRAPPER': '1', 'PAM_WRAPPER_SERVICE_DIR': d,
                'NSS_WRAPPER_PASSWD': os.path.join(t.tmp, 'passwd'), 'NSS_WRAPPER_GROUP': os.path.join(t.tmp, 'group'),
                'ASAN_OPTIONS': 'detect_leaks=0:abort_on_error=0', 'LANG': 'C', 'LC_ALL': 'C'})
    return env


def finger_password_pam(rounds=20, password='correct horse 1'):
    print('\nfinger+password through PAM: pamtester (no card: pam_mamori invites, StartBioLogin) — touch → '
          'pamtester authenticated (AnswerPassword answered: session active), the password already on stdin')
    import subprocess
    import test_pam
    cleanups = terminal.Cleanups()
    try:
        t = BenchTerminal(cleanups, operators=('OP0001',))
        make_prints(t.prints, ['OP0001'])
        t.start_agent()
        t.insert_ids(['fid-OP0001'])
        card = t.insert('OP0001')
        t.wait_card_seen(card)
        t.login()
        t.iface().ChangePassword('', password)
        t.iface().Lock()
        t.vcard.pull()
        t.agent.wait_event('card.removed', card=card.card_id)
        env = pam_env(t)
        samples = []
        for _ in range(rounds):
            p = subprocess.Popen(['pamtester', test_pam.SERVICE, test_pam.USER, 'authenticate'], env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            p.stdin.write(password + '\n')
            p.stdin.close()
            t.wait_step('finger', timeout=30)
            t0 = time.monotonic()
            t.fp_fast('SCAN fid-OP0001')
            p.wait(timeout=60)
            t1 = time.monotonic()
            out, err = p.stdout.read(), p.stderr.read()
            p.stdout.close()
            p.stderr.close()
            assert p.returncode == 0, out + err
            assert str(t.prop('Method')) == 'finger+password', t.prop('Method')
            t.iface().Lock()
            samples.append((t1 - t0) * 1000)
        line('finger + password via PAM: touch → authenticated', samples)
    finally:
        cleanups.close()


def main(argv):
    which = argv[1:] or ['identify', 'group', 'password', 'pam']
    if 'identify' in which:
        identify()
    if 'group' in which:
        group_card_finger()
    if 'password' in which:
        finger_password()
    if 'pam' in which:
        finger_password_pam()


if __name__ == '__main__':
    main(sys.argv)
