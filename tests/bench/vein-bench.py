#!/usr/bin/python3
"""Vein benchmarks on the simulated vein reader (tests/bio/vein-test-plugin.c behind [Biometric]
VeinPlugin=, the same plugin ABI a vendor's reader would use): touch → session active for
vein+password (the hand identified 1:N, then AnswerPassword sent at once: no typing; the answer
comes after auth.ok, session.start and unlock are durable), and identify time with 10, 100 and 1,000
enrolled templates (touch → StartBioLogin answered).

Templates for the galleries are written here in the store's layout (PrintsDirectory/OP/1.vein, 0600,
in 0700 directories): the simulated reader's template of hand X is "vein-test:1:X"."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
import terminal  # noqa: E402
from biobench import identify_rounds, password_rounds, set_password  # noqa: E402
from figures import line  # noqa: E402
from test_vein import VeinTerminal  # noqa: E402

WIDTH = 56  # the label column of line()


def make_templates(prints_dir, ops):
    os.makedirs(prints_dir, mode=0o700, exist_ok=True)
    for op in ops:
        d = os.path.join(prints_dir, op)
        os.makedirs(d, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(d, '1.vein'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, f'vein-test:1:hand-{op}'.encode())
        os.close(fd)


def identify(sizes=(10, 100, 1000), rounds=20):
    print('\nvein identify: hand (SCAN sent) → StartBioLogin answered, simulated reader, ASan build unless '
          'MAMORI_BUILD_DIR says otherwise')
    for n in sizes:
        cleanups = terminal.Cleanups()
        try:
            ops = [f'OP{i:05d}' for i in range(n)]
            t = VeinTerminal(cleanups, operators=('OP0001',), extra_ops=ops)
            make_templates(t.prints, ops)
            t.start_agent()
            samples, prep, chosen, ready = identify_rounds(
                t, 'vein', lambda who: t.vein(f'SCAN hand-{who}', wait=False), ops, rounds)
            line(f'{n} templates: hand → identified', samples, WIDTH)
            line(f'{n} templates: whose templates (policy, mamorid loop)', chosen, WIDTH)
            line(f'{n} templates: read from the store (vein thread)', ready, WIDTH)
            line(f'{n} templates: client start → Step vein', prep, WIDTH)
        finally:
            cleanups.close()


def vein_password(rounds=20, password='correct horse 1'):
    print('\nvein+password: hand → identified → AnswerPassword answered (session active), no typing')
    cleanups = terminal.Cleanups()
    try:
        t = VeinTerminal(cleanups, operators=('OP0001',))
        make_templates(t.prints, ['OP0001'])
        t.start_agent()
        set_password(t, 'OP0001', password)
        identified, total = password_rounds(t, 'vein', lambda who: t.vein(f'SCAN hand-{who}', wait=False), 'OP0001',
                                            password, rounds)
        line('vein + password: hand → active (scrypt check included)', total, WIDTH)
        line('vein + password: hand → identified (Step password)', identified, WIDTH)
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
