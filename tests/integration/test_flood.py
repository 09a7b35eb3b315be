#!/usr/bin/python3
"""Floods bounded (issue 10 item 4): a blocked card is refused at StartLogin without a card
exchange; auth.fail and policy.reject are rate-limited per cause (the first of a burst in full,
the rest counted in one summary record), so a flood can neither fill the disk nor hide a real
event. Measures records per second and disk used under a 60 s flood and asserts the bound.

MAMORI_FLOOD_SEC shortens the card flood (default 60); the figures are printed either way."""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from test_callers import call_as  # noqa: E402
from terminal import Terminal  # noqa: E402

WRONG = '654321'
FLOOD_SEC = float(os.environ.get('MAMORI_FLOOD_SEC', '60'))
FLOOD_ROUNDS = 100000  # the loop ends at whichever bound comes first
RENAMES = 500
RENAME_SEC = 60.0
NOBODY_ROUNDS = 500
INTERVAL_SEC = 5  # record-limit.h: one full record per cause per 5 s
# At most one full record and one summary per cause per interval, and a few of their own.
MAX_RECORDS_PER_SEC = 0.5
MAX_DISK_BYTES_60S = 64 * 1024


def log_dir(t):
    return os.path.join(t.tmp, 'agent-state', 'log')


def records(t):
    """Every record written so far, parsed (all segments)."""
    out = []
    d = log_dir(t)
    for name in sorted(os.listdir(d)):
        if name.startswith('seg-') and name.endswith('.log'):
            with open(os.path.join(d, name), encoding='utf-8') as f:
                out += [json.loads(line) for line in f if line.strip()]
    return out


def disk_bytes(t):
    """Bytes written to the log's files (their sizes)."""
    d = log_dir(t)
    return sum(os.stat(os.path.join(d, n)).st_size for n in os.listdir(d))


def call_error(fn, *args):
    try:
        fn(*args)
        return None
    except Exception as e:  # dbus.exceptions.DBusException
        return e.get_dbus_name()


def counted(recs, ev, reason):
    """Occurrences of (ev, reason) the records account for: full records + summaries' repeats."""
    n = 0
    for r in recs:
        if r['ev'] == ev and r['data'].get('reason') == reason:
            n += r['data'].get('repeats', 1)
    return n


def report(name, before_recs, after_recs, before_disk, after_disk, seconds, extra='', recs=()):
    n = after_recs - before_recs
    for r in list(recs)[:20]:
        print(f"  {r['seq']} {r['ev']} {json.dumps(r['data'], sort_keys=True)}", file=sys.stderr)
    print(f'\nFLOOD {name}: {n} records in {seconds:.1f} s = {n / seconds:.2f} records/s; '
          f'disk +{after_disk - before_disk} bytes ({(after_disk - before_disk) * 60 / seconds:.0f} bytes per 60 s)'
          f'{extra}', file=sys.stderr, flush=True)
    return n


class FloodTest(unittest.TestCase):
    def test_blocked_card_flood_is_bounded(self):
        t = Terminal(self, cards=('OP0001', 'OP0002'))
        card = t.insert('OP0001')
        t.start_agent()
        t.wait_card_seen(card)
        iface = t.iface()
        # Three wrong PINs block the card (as root: nobody is refused before anything now).
        for _ in range(3):
            iface.StartLogin('counter')
            err = call_error(iface.AnswerPin, WRONG)
        self.assertEqual(err, 'org.mamori.Agent1.Error.PinBlocked')
        t.agent.wait_event('pin.blocked', after=0)
        time.sleep(0.5)  # the card is reset after the last answer
        apdus = t.vcard.apdu_count()
        recs0, disk0 = len(records(t)), disk_bytes(t)

        rounds, t0 = 0, time.monotonic()
        while rounds < FLOOD_ROUNDS and time.monotonic() - t0 < FLOOD_SEC:
            err = call_error(iface.StartLogin, 'counter')
            if err is None:  # a build that still starts a login on a blocked card
                err = call_error(iface.AnswerPin, WRONG)
            self.assertEqual(err, 'org.mamori.Agent1.Error.PinBlocked')
            rounds += 1
        elapsed = time.monotonic() - t0
        recs1, disk1 = len(records(t)), disk_bytes(t)
        apdus_flood = t.vcard.apdu_count() - apdus
        n = report('blocked card (StartLogin+AnswerPin as root)', recs0, recs1, disk0, disk1, elapsed,
                   f'; {rounds} rounds ({rounds / elapsed:.0f}/s); {apdus_flood} APDUs', records(t)[recs0:recs1])

        # The same flood as nobody (outside the seat's session) is refused before anything: no
        # record at all.
        os.chmod(t.tmp, 0o711)
        recs2, t2 = len(records(t)), time.monotonic()
        calls = [('org.mamori.Agent1', m, a) for _ in range(NOBODY_ROUNDS)
                 for m, a in (('StartLogin', ['counter']), ('AnswerPin', [WRONG]))]
        out = call_as(t, calls)
        self.assertEqual({o.get('error') for o in out}, {'org.freedesktop.DBus.Error.AccessDenied'})
        # (the pin-blocked summary of the root flood may fall in this time: it is no record of nobody's)
        own = [r for r in records(t)[recs2:] if 'repeats' not in r['data']]
        report(f'{NOBODY_ROUNDS} rounds as nobody', 0, len(own), 0, 0, time.monotonic() - t2)
        self.assertEqual(own, [])
        apdus_flood = t.vcard.apdu_count() - apdus

        # A real event of another cause during the burst is recorded at once: the card is pulled,
        # a login without a card is refused as no-card, on record before its answer.
        t.vcard.pull()
        t.agent.wait_event('card.removed', after=0)
        before = len(records(t))
        self.assertEqual(call_error(iface.StartLogin, 'counter'), 'org.mamori.Agent1.Error.NoCard')
        self.assertIn('no-card', [r['data']['reason'] for r in records(t)[before:] if r['ev'] == 'auth.fail'])
        # So is a successful login with another card.
        other = t.insert('OP0002')
        t.wait_card_seen(other)
        self.assertEqual(t.login(), 'OP0002')
        evs = [r['ev'] for r in records(t)[before:]]
        self.assertIn('auth.ok', evs)
        self.assertIn('unlock', evs)

        # Nothing is hidden: the summaries count every refusal (the last one at the interval's end).
        bench.wait_until(lambda: counted(records(t), 'auth.fail', 'pin-blocked') >= rounds + 1,
                         timeout=INTERVAL_SEC + 5, what='the pin-blocked summary')
        all_recs = records(t)
        self.assertEqual(counted(all_recs, 'auth.fail', 'pin-blocked'), rounds + 1)  # + the blocking VERIFY
        summaries = [r for r in all_recs if r['ev'] == 'auth.fail' and 'repeats' in r['data']]
        self.assertTrue(summaries)
        for s in summaries:
            self.assertEqual(s['card'], card.card_id)
            self.assertGreaterEqual(s['data']['period_us'], 0)
        # The bound: no card exchange, about one record per interval, a few kB per minute.
        self.assertEqual(apdus_flood, 0, 'the blocked card was touched')
        self.assertGreater(rounds, 100, 'the flood did not run')
        self.assertLessEqual(n / elapsed, MAX_RECORDS_PER_SEC)
        self.assertLessEqual(n, elapsed / INTERVAL_SEC + 2)
        self.assertLessEqual((disk1 - disk0) * 60 / elapsed, MAX_DISK_BYTES_60S)

    def test_policy_rename_flood_is_bounded(self):
        t = Terminal(self)
        card = t.insert('OP0001')
        t.start_agent()
        t.wait_card_seen(card)
        t.agent.wait_event('policy.load', after=0)
        pdir = os.path.join(t.tmp, 'agent-state', 'policy')
        recs0, disk0 = len(records(t)), disk_bytes(t)

        t0 = time.monotonic()
        done = 0
        for i in range(RENAMES):
            if time.monotonic() - t0 > RENAME_SEC:
                break
            tmp = os.path.join(pdir, f'.flood-{i}')
            with open(tmp, 'wb') as f:
                f.write(b'{"v":1,"serial":%d,"garbage":"%s"}' % (i, os.urandom(8).hex().encode()))
            os.rename(tmp, os.path.join(pdir, 'policy.json'))
            done += 1
            time.sleep(0.02)  # paced, so that mamorid reads most renames one by one
        time.sleep(1)  # the last renames are read
        elapsed = time.monotonic() - t0  # the window whose records are counted
        recs1, disk1 = len(records(t)), disk_bytes(t)
        report(f'{done} garbage policy.json renames', recs0, recs1, disk0, disk1, elapsed,
               recs=records(t)[recs0:recs1])
        self.assertEqual(done, RENAMES)
        # The flood's own records: on a busy machine a record of the card inserted before it may be
        # written inside the window too, and is not the flood's doing.
        rejects = [r for r in records(t)[recs0:recs1] if r['ev'] == 'policy.reject']
        self.assertTrue(rejects, 'the garbage was not even noticed')
        self.assertLessEqual(len(rejects), elapsed / INTERVAL_SEC + 3)

        # A bundle that is signed and new is loaded and recorded at once, mid-burst.
        before = len(records(t))
        t.publish(serial=2)
        bench.wait_until(lambda: any(r['ev'] == 'policy.load' and r['data'].get('serial') == 2
                                     for r in records(t)[before:]), timeout=5, what='policy.load of serial 2')
        # Another cause is recorded at once as well: an older signed bundle (rollback).
        t.publish(serial=1)
        bench.wait_until(lambda: any(r['ev'] == 'policy.reject' and r['data'].get('reason') == 'rollback'
                                     for r in records(t)[before:]), timeout=5, what='policy.reject rollback')
        # What the flood caused is in full records and one summary, and no more than the renames.
        bench.wait_until(lambda: any('repeats' in r['data'] for r in records(t)[recs0:]
                                     if r['ev'] == 'policy.reject'), timeout=INTERVAL_SEC + 5,
                         what='the policy.reject summary')
        reason = rejects[0]['data']['reason']
        self.assertLessEqual(counted(records(t)[recs0:], 'policy.reject', reason), RENAMES)

if __name__ == '__main__':
    unittest.main(verbosity=2)
