# What the finger and vein benchmarks share: timed identify and password logins by touch, and mamorid's scan timing.
"""t is a terminal.BioTerminal with its agent started; touch(who) puts who's finger or hand on the
reader (the SCAN command of the virtual sensor or of the simulated vein reader)."""
import time

from figures import wait_line


def identify_rounds(t, modality, touch, ops, rounds):
    """rounds of StartBioLogin (1:N among ops, each round another operator), cancelled once answered.
    Returns lists in ms: touch → identified, client start → Step MODALITY, and from mamorid's journal
    line of each scan: whose templates were chosen (the loop), the templates read and made ready."""
    samples, prep, chosen, ready = [], [], [], []
    for i in range(rounds):
        mark = t.agent.events.mark()
        who = ops[(i * 7919) % len(ops)]
        t0 = time.monotonic()
        p = t.client(['StartBioLogin', '', modality], ['CancelLogin'])
        t.wait_step(modality)
        t1 = time.monotonic()
        touch(who)
        res = wait_line(p)
        t2 = time.monotonic()
        assert res and res.get('ok') == [who, 'password'], res
        wait_line(p)
        p.wait()
        samples.append((t2 - t1) * 1000)
        prep.append((t1 - t0) * 1000)
        m = t.agent.events.wait(rf'{modality} scan: (\d+) templates compared, chosen in (\d+) us, read and made '
                                r'ready in (\d+) us', after=mark)
        assert int(m.group(1)) == len(ops), m.string
        chosen.append(int(m.group(2)) / 1000)
        ready.append(int(m.group(3)) / 1000)
    return samples, prep, chosen, ready


def set_password(t, op, password):
    """op's password, set in op's card session (terminal.py card_session()); the card is pulled after."""
    card = t.card_session(op)
    t.iface().ChangePassword('', password)
    t.end_card_session(card)


def password_rounds(t, modality, touch, op, password, rounds):
    """rounds of StartBioLogin by op's touch, AnswerPassword sent at once (no typing), then Lock. Returns
    lists in ms: touch → identified (Step password), touch → AnswerPassword answered (session active)."""
    identified, total = [], []
    for _ in range(rounds):
        p = t.client(['StartBioLogin', '', modality], ['AnswerPassword', '', password], ['Lock'])
        t.wait_step(modality)
        t0 = time.monotonic()
        touch(op)
        first = wait_line(p)
        t1 = time.monotonic()
        second = wait_line(p)
        t2 = time.monotonic()
        assert first and first.get('ok') == [op, 'password'], first
        assert second and second.get('ok') == op, second
        wait_line(p)
        p.wait()
        identified.append((t1 - t0) * 1000)
        total.append((t2 - t0) * 1000)
    return identified, total
