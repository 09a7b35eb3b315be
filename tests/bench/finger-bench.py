#!/usr/bin/python3
"""Fingerprint benchmarks on libfprint's virtual_device_storage (it identifies): identify time with
10, 100 and 1,000 enrolled prints (touch → StartBioLogin's answer), and touch → session active for
group-card+finger (the ScanFinger answer is sent after auth.ok, session.start and unlock are durable)
and for finger+password (touch → identified, then AnswerPassword at once: no typing), also through
pam_mamori.so under pamtester (no card in the reader: the module starts StartBioLogin itself).

Prints for the galleries are made here with libfprint itself (python3-gi, FPrint): a print of the
virtual device is its driver, device id and the scanned id; the agent's sensor learns each id with
INSERT (the virtual storage device keeps its list in memory)."""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
import terminal  # noqa: E402
from biobench import identify_rounds, password_rounds, set_password  # noqa: E402
from figures import line, wait_line  # noqa: E402
from test_finger import FingerTerminal  # noqa: E402

FAST = 0.015  # seconds between sensor commands: the least the virtual device takes (FingerTerminal.fp)


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


def identify(sizes=(10, 100, 1000), rounds=20):
    print('\nidentify: touch (SCAN sent) → StartBioLogin answered, virtual_device_storage, ASan build '
          'unless MAMORI_BUILD_DIR says otherwise')
    results = {}
    for n in sizes:
        cleanups = terminal.Cleanups()
        try:
            ops = [f'OP{i:05d}' for i in range(n)]
            t = FingerTerminal(cleanups, operators=('OP0001',), extra_ops=ops)
            make_prints(t.prints, ops)
            t.start_agent()
            # The virtual storage sensor queues INSERTs and applies them at its next scan.
            t.fp(*[f'INSERT fid-{op}' for op in ops], pause=FAST)
            samples, prep, read_us, ready_us = identify_rounds(
                t, 'finger', lambda who: t.fp(f'SCAN fid-{who}', pause=FAST), ops, rounds)
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
        t = FingerTerminal(cleanups, operators=('OP0001', 'OP0002'), group=('G-1', ['OP0001', 'OP0002']))
        make_prints(t.prints, ['OP0002'])
        t.start_agent()
        t.fp('INSERT fid-OP0002', pause=FAST)
        g = t.insert('G1')
        t.wait_card_seen(g)
        samples = []
        for _ in range(rounds):
            p = t.client(['StartLogin', 'counter'], ['AnswerPin', terminal.PIN], ['ScanFinger', 'finger'], ['Lock'])
            t.wait_step('finger')
            t0 = time.monotonic()
            t.fp('SCAN fid-OP0002', pause=FAST)
            res = [wait_line(p) for _ in range(3)]
            t1 = time.monotonic()
            assert res[2] and res[2].get('ok') == 'OP0002', res
            wait_line(p)
            p.wait()
            samples.append((t1 - t0) * 1000)
        line('group card + member finger: touch → active', samples)
    finally:
        cleanups.close()


def one_operator(cleanups, password):
    """A terminal whose one operator, OP0001, has a print (finger id fid-OP0001) and the password."""
    t = FingerTerminal(cleanups, operators=('OP0001',))
    make_prints(t.prints, ['OP0001'])
    t.start_agent()
    t.fp('INSERT fid-OP0001', pause=FAST)
    set_password(t, 'OP0001', password)
    return t


def finger_password(rounds=20, password='correct horse 1'):
    print('\nfinger+password: touch → identified → AnswerPassword answered (session active), no typing')
    cleanups = terminal.Cleanups()
    try:
        t = one_operator(cleanups, password)
        identified, total = password_rounds(t, 'finger', lambda who: t.fp(f'SCAN fid-{who}', pause=FAST), 'OP0001',
                                            password, rounds)
        line('finger + password: touch → active (scrypt check included)', total)
        line('finger + password: touch → identified (Step password)', identified)
    finally:
        cleanups.close()


def finger_password_pam(rounds=20, password='correct horse 1'):
    print('\nfinger+password through PAM: pamtester (no card: pam_mamori invites, StartBioLogin) — touch → '
          'pamtester authenticated (AnswerPassword answered: session active), the password already on stdin')
    import subprocess
    import test_pam
    cleanups = terminal.Cleanups()
    try:
        t = one_operator(cleanups, password)
        env = t.pam_wrapper_env(LANG='C', LC_ALL='C')
        samples = []
        for _ in range(rounds):
            p = subprocess.Popen(['pamtester', test_pam.SERVICE, test_pam.USER, 'authenticate'], env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            p.stdin.write(password + '\n')
            p.stdin.close()
            t.wait_step('finger', timeout=30)
            t0 = time.monotonic()
            t.fp('SCAN fid-OP0001', pause=FAST)
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
