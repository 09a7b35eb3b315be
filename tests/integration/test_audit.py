#!/usr/bin/python3
# Integration test of mamori-admin's audit verbs over a year of independently generated, signed records.
"""A year of records for several offices (tests/integration/auditgen.py, written from DESIGN §6 alone) is
posted through the real collector API by real terminal certificates, with planted violations of every §12
kind. Checks: audit finds each planted violation with the right kind and records and nothing else at
severity high; the ledger has one row per session with the violations on the right rows; trace finds every
record of a card; each HTML report renders in headless Chromium without console errors (screenshots kept
in the build directory)."""
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ['TZ'] = 'Asia/Tokyo'  # DESIGN §12: dates in the centre's local time zone
import enroltool  # noqa: E402
import auditgen  # noqa: E402
import bench  # noqa: E402
from test_collector import Centre, exe  # noqa: E402

DAYS = int(os.environ.get('MAMORI_AUDIT_DAYS', '365'))


class AuditTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = bench.TempDir('mamori-audit-')
        cls.tmp = cls._tmp.__enter__()
        cls.centre = Centre(cls.tmp, extra_conf='SilentSec=3650d\n')
        t0 = time.monotonic()
        cls.world = auditgen.World(seed=13, days=DAYS, sessions_per_day=2, app_ops=(1, 2))
        cls.world.generate()
        cls.centre.admin  # noqa: B018
        cls.world.register(cls.centre.admin, cls.tmp)
        cls.centre.start()
        post = lambda tid, lines: cls.centre.post(os.path.join(cls.tmp, tid), lines)
        cls.world.post_all(post)
        cls.world.plant_fork_and_bad_signature(post)
        print(f'\n{cls.world.records()} records of {len(cls.world.terms)} terminals posted in '
              f'{time.monotonic() - t0:.1f} s; {len(cls.world.expected)} planted findings', file=sys.stderr)
        cls.start = cls.world.start_date.isoformat()
        cls.today = cls.world.today.isoformat()  # in the centre's zone, like the collector's alert times
        cls.artifacts = os.path.join(bench.build_dir(), 'test-artifacts', 'audit')
        os.makedirs(cls.artifacts, exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        cls.centre.stop()
        if os.environ.get('MAMORI_AUDIT_KEEP'):
            print('kept', cls.tmp, file=sys.stderr)
            return
        cls._tmp.__exit__(None, None, None)

    def admin(self, *args, check=True):
        p = bench.run([exe('collector', 'mamori-admin'), '--config', self.centre.conf, *args], timeout=600)
        if check:
            self.assertEqual(p.returncode, 0, f'mamori-admin {" ".join(args)}: {p.stderr}')
        return p

    def audit(self, *extra):
        p = self.admin('audit', '--from', self.start, '--to', self.today, '--format', 'json', *extra)
        return json.loads(p.stdout)

    def test_1_audit_finds_every_planted_violation(self):
        out = self.audit()
        self.assertEqual(out['from'], self.start)
        findings = out['findings']
        kinds = {'outside-hours', 'card-on-two-terminals', 'suspended-card-used', 'returned-card-used',
                 'pin-failures-burst', 'finger-failures-burst', 'card-left', 'secret-overdue',
                 'group-without-member', 'lending-suspected', 'lock-bypassed', 'log-gap', 'log-fork',
                 'log-bad-signature', 'terminal-silent', 'app-ops-unusual', 'emergency'}
        self.assertEqual(set(out['counts']), kinds)
        self.assertEqual(sorted(out['counts'].items()),
                         sorted((k, sum(1 for f in findings if f['kind'] == k)) for k in kinds))
        self.assertEqual({e['kind'] for e in self.world.expected}, kinds, 'the generator plants every kind')
        matched = set()
        for e in self.world.expected:
            want = sorted(tuple(r) for r in e['records'])
            hits = [i for i, f in enumerate(findings) if f['kind'] == e['kind'] and
                    sorted((r['log'], r['seq']) for r in f['records']) == want]
            self.assertTrue(hits, f'planted {e["kind"]} on {e["term"]} {want} not found; '
                                  f'{e["kind"]} found: {[f for f in findings if f["kind"] == e["kind"]]}')
            f = findings[hits[0]]
            self.assertEqual(f['term'], e['term'], f)
            if 'op' in e:
                self.assertEqual(f['op'], e['op'], f)
            self.assertTrue(f['why'], f)
            self.assertIn(f['severity'], ('high', 'medium', 'low'))
            matched.add(hits[0])
        stray = [f for i, f in enumerate(findings) if f['severity'] == 'high' and i not in matched]
        self.assertEqual(stray, [], 'high findings that were not planted')
        # Outside hours exactly where planted: a night, a Saturday and a holiday of office a are found; office
        # c's ordinary Saturday sessions (it works mon-sat) and everyone's weekday sessions are not.
        outside = [f for f in findings if f['kind'] == 'outside-hours']
        self.assertEqual(sorted(tuple(r.values()) for f in outside for r in f['records']),
                         sorted(tuple(r) for e in self.world.expected if e['kind'] == 'outside-hours'
                                for r in e['records']), outside)
        whys = ' '.join(f['why'] for f in outside)
        self.assertIn('(sat), a day office-a does not work (its days: mon tue wed thu fri)', whys)
        self.assertIn('on a holiday of office-a', whys)
        saturday_c = [r for r in self.world._all_records() if r['ev'] == 'session.start' and
                      r['term'] in self.world.offices[2]['terms'] and
                      datetime.datetime.fromtimestamp(r['ts'] / 1e6).weekday() == 5]
        self.assertTrue(saturday_c, 'office c works on Saturdays')
        # The folded PIN flood (one record in full + a summary with repeats 4) counts as 5 failures.
        folded = [f for f in findings if f['kind'] == 'pin-failures-burst' and 'summary' in f['why']]
        self.assertEqual(len(folded), 1, [f for f in findings if f['kind'] == 'pin-failures-burst'])
        self.assertTrue(folded[0]['why'].startswith('5 failed PIN/password entries'), folded[0])
        # Each finding has the §12 shape.
        for f in findings:
            self.assertEqual(set(f), {'kind', 'severity', 'term', 'op', 'card', 'ts', 'records', 'why'})
        # --office keeps the findings of that office's terminals only.
        office_b = self.world.offices[1]['id']
        terms_b = set(self.world.offices[1]['terms'])
        only = self.audit('--office', office_b)['findings']
        self.assertTrue(only)
        self.assertTrue(all(f['term'] in terms_b for f in only), only)
        self.assertEqual(len(only), sum(1 for f in findings if f['term'] in terms_b))

    def test_2_ledger_rows_and_violations(self):
        office = self.world.offices[0]
        p = self.admin('ledger', '--office', office['id'], '--from', self.start, '--to', self.today,
                       '--format', 'json')
        led = json.loads(p.stdout)
        rows = led['sessions']
        # One row per session.start of the office's terminals.
        starts = [(r['log'], r['seq']) for r in self.world._all_records()
                  if r['ev'] == 'session.start' and r['term'] in office['terms']]
        self.assertEqual(sorted((r['log'], r['seq']) for r in rows), sorted(starts))
        for r in rows:
            self.assertEqual(set(r) - {'log', 'seq'}, {'term', 'op', 'method', 'start', 'end', 'seconds',
                                                       'end_reason', 'card', 'violations'})
        by_start = {(r['log'], r['seq']): r for r in rows}
        for e in self.world.expected:
            if e['kind'] in ('outside-hours', 'card-on-two-terminals', 'secret-overdue') and e['term'] in office['terms']:
                row = by_start[tuple(e['records'][-1])]
                self.assertIn(e['kind'], row['violations'], row)
        left = [e for e in self.world.expected if e['kind'] == 'card-left'][0]
        tagged = [r for r in rows if 'card-left' in r['violations']]
        self.assertEqual(len(tagged), 1, tagged)
        self.assertEqual(tagged[0]['end_reason'], 'idle')
        self.assertEqual(tagged[0]['term'], left['term'])
        clean = [r for r in rows if not r['violations']]
        self.assertGreater(len(clean), len(rows) * 0.9)
        csv = self.admin('ledger', '--office', office['id'], '--from', self.start, '--to', self.today).stdout
        p = subprocess.run([exe('collector', 'mamori-admin'), '--config', self.centre.conf, 'ledger', '--office',
                            office['id'], '--from', self.start, '--to', self.today], stdout=subprocess.PIPE,
                           timeout=600, check=True)
        self.assertEqual(p.stdout.count(b'\r\n'), len(rows) + 1)
        self.assertTrue(p.stdout.startswith(b'term,op,method,start,end,seconds,end_reason,card,violations\r\n'))

    def test_3_trace_card(self):
        op = self.world.offices[0]['ops'][1]
        card = self.world.card_of(op)
        since = (self.world.start_date + datetime.timedelta(days=100)).isoformat()
        since_us = auditgen.World.at(self.world, 100, 0, 0)
        want = sorted(((r['ts'], r['log'], r['seq']) for r in self.world._all_records()
                       if r['card'] == card and r['ts'] >= since_us))
        p = self.admin('trace', '--card', card, '--since', since, '--format', 'json')
        got = [json.loads(line) for line in p.stdout.splitlines()]
        self.assertEqual([(r['ts'], r['log'], r['seq']) for r in got], want)
        # By operator: also the records that name only the card (auth.fail, card.inserted).
        p = self.admin('trace', '--operator', op, '--since', since)
        self.assertGreaterEqual(len(p.stdout.splitlines()), len(want))

    def render(self, name, html):
        """Headless Chromium: console errors fail the test; the screenshot is kept as an artifact."""
        chromium = shutil.which('chromium')
        if not chromium:
            self.fail('chromium is not installed (tools/dev deps installs it)')
        path = os.path.join(self.artifacts, name + '.html')
        with open(path, 'w') as f:
            f.write(html)
        shot = os.path.join(self.artifacts, name + '.png')
        profile = os.path.join(self.tmp, 'chromium-' + name)
        args = [chromium, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
                f'--user-data-dir={profile}', '--enable-logging=stderr', '--v=0',
                '--window-size=1240,1754', f'--screenshot={shot}', 'file://' + path]
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=180)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        console = [l for l in p.stderr.splitlines() if 'CONSOLE' in l or 'Uncaught' in l]
        self.assertEqual(console, [], 'console messages while rendering ' + name)
        self.assertTrue(os.path.getsize(shot) > 10000, shot)
        self.assertNotIn('http://', html.replace('http://www.w3.org/2000/svg', ''))
        self.assertNotIn('https://', html)
        self.assertNotIn('<script', html)

    def test_4_html_reports_render(self):
        office = self.world.offices[0]['id']
        html = self.admin('audit', '--from', self.start, '--to', self.today, '--format', 'html').stdout
        self.assertIn('<svg', html)
        self.assertIn('card-on-two-terminals', html)
        self.render('audit', html)
        html = self.admin('ledger', '--office', office, '--from', self.start, '--to', self.today,
                          '--format', 'html').stdout
        self.assertIn('使用簿', html)
        self.render('ledger', html)

    def post_now(self, tid, ev, data, op=None, card=None):
        """One new record on a terminal's log, stamped now, posted through the collector."""
        lg = self.world.terms[tid]['logs'][-1]
        seq = lg.append(int(time.time() * 1e6), ev, op, card, data)
        t0 = time.monotonic()
        status, body = self.centre.post(os.path.join(self.tmp, tid), [lg.lines[-1] + b'\n'])
        self.assertEqual(status, 200, body)
        return (lg.id, seq), t0

    def test_5_watch_live_and_across_restarts(self):
        pos = os.path.join(self.tmp, 'watch.position')
        cmd = [exe('collector', 'mamori-admin'), '--config', self.centre.conf, 'watch', '--format', 'json',
               '--position', pos]
        # A first run starts from now: a year already stored is the audit's business, not the watch's.
        p = bench.run(cmd + ['--once'], timeout=600)
        self.assertEqual((p.returncode, p.stdout), (0, ''), p.stderr)
        self.assertTrue(os.path.exists(pos))
        tid = self.world.offices[1]['terms'][0]
        bypass = {'method': 'LockSession', 'session': 'c1', 'reason': 'bypass', 'latency_us': '1900'}
        proc = subprocess.Popen(cmd + ['--interval', '100ms'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            watcher = bench.LineWatcher(proc.stdout)
            time.sleep(1.0)
            ref, t0 = self.post_now(tid, 'lock', bypass)
            m = watcher.wait(r'^\{.*"kind":"lock-bypassed".*\}$', timeout=30)
            delay = time.monotonic() - t0
            f = json.loads(m.group(0))
            self.assertEqual([(r['log'], r['seq']) for r in f['records']], [ref])
            self.assertEqual((f['term'], f['severity']), (tid, 'high'))
            print(f'\nwatch: POST → finding printed in {delay * 1000:.0f} ms', file=sys.stderr)
        finally:
            bench.stop_process(proc)
            watcher.join()
        # While the watch is stopped: a burst of wrong PINs. Its restart prints it, and only it.
        card = self.world.card_of(self.world.offices[1]['ops'][1])
        refs = [self.post_now(tid, 'auth.fail', {'method': 'card+pin', 'reason': 'pin-wrong', 'tries': str(2 - i)},
                              card=card)[0] for i in range(3)]
        p = bench.run(cmd + ['--once'], timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual([f['kind'] for f in out], ['pin-failures-burst'], out)
        self.assertEqual([(r['log'], r['seq']) for r in out[0]['records']], refs)
        p = bench.run(cmd + ['--once'], timeout=600)
        self.assertEqual((p.returncode, p.stdout), (0, ''), 'nothing new: nothing printed again')

    def test_6_self_inspection(self):
        office = self.world.offices[2]
        year = self.world.today.year
        p = self.admin('self-inspection', '--office', office['id'], '--year', str(year), '--format', 'json')
        si = json.loads(p.stdout)
        self.assertEqual((si['office'], si['year'], si['from'], si['to']),
                         (office['id'], year, f'{year}-01-01', f'{year}-12-31'))
        items = si['checklist']
        kinds = [k for it in items for k in it['kinds']]
        self.assertEqual(len(kinds), 17, 'every §12 kind in exactly one checklist item')
        self.assertEqual(len(set(kinds)), 17)
        self.assertIn('training', [it['section'] for it in items if it['result'] == 'to-fill'])
        audit = self.admin('audit', '--office', office['id'], '--from', f'{year}-01-01', '--to', f'{year}-12-31',
                           '--format', 'json')
        counts = json.loads(audit.stdout)['counts']
        for it in items:
            if it['kinds']:
                self.assertEqual(it['count'], sum(counts[k] for k in it['kinds']), it)
                self.assertEqual(it['result'], 'check' if it['count'] else 'ok')
        ops = {o['op']: o for o in si['operators']}
        self.assertTrue(set(ops) <= set(office['ops']), ops)
        self.assertEqual(sum(o['sessions'] for o in ops.values()), si['sessions'])
        self.assertGreater(si['sessions'], 0)
        emergency = [it for it in items if it['id'] == 'emergency'][0]
        self.assertEqual(emergency['count'], len(office['terms']))  # the planted emergency locked office C
        html = self.admin('self-inspection', '--office', office['id'], '--year', str(year)).stdout
        self.assertIn('自己点検', html)
        self.render('self-inspection', html)

    def test_6b_secret_overdue_again_in_a_later_window(self):
        """An operator who never changes the PIN is overdue in the audit of a later period too (its first
        overdue login in that period), not only in the audit that holds their first overdue login."""
        w = self.world
        p = w.never_changes
        first = [e for e in w.expected if e['kind'] == 'secret-overdue'][0]
        by_ref = {(r['log'], r['seq']): r for r in w._all_records()}
        first_ts = by_ref[tuple(first['records'][0])]['ts']
        day = (datetime.datetime.fromtimestamp(first_ts / 1e6, tz=w.tz).date() - w.start_date).days + 30
        since = w.at(day, 0, 0)
        owner = {cid: c['operator'] for cid, c in w.cards.items()}
        logins = sorted((r for r in w._all_records() if r['ev'] == 'session.start' and r['ts'] >= since and
                         (r['op'] == p or owner.get(r['card']) == p)), key=lambda r: (r['ts'], r['log'], r['seq']))
        self.assertTrue(logins, f'{p} logs in after day {day}')
        out = self.admin('audit', '--from', (w.start_date + datetime.timedelta(days=day)).isoformat(), '--to',
                         self.today, '--format', 'json')
        found = [f for f in json.loads(out.stdout)['findings'] if f['kind'] == 'secret-overdue']
        self.assertEqual([(f['op'], [(r['log'], r['seq']) for r in f['records']]) for f in found],
                         [(p, [(logins[0]['log'], logins[0]['seq'])])], found)
        self.assertIn('unchanged since at least', found[0]['why'])

    def test_7_retention_deletes_only_older_records(self):
        c = self.centre
        tid = 'T-OLD1'
        identity = auditgen.Ed25519PrivateKey.generate()
        pub = os.path.join(self.tmp, tid + '.pub')
        with open(pub, 'wb') as f:
            f.write(identity.public_key().public_bytes(auditgen.serialization.Encoding.PEM,
                                                       auditgen.serialization.PublicFormat.SubjectPublicKeyInfo))
        enroltool.enrol(self.admin, tid, self.world.offices[0]['id'], pub, os.path.join(self.tmp, tid))
        lg = auditgen.Log(self.world.rng, tid, identity, rotate_every=4)
        now = int(time.time() * 1e6)
        year = 365 * 86400 * 10 ** 6
        for i in range(10):  # 8 years old (seq 1 is log.open: 11 records, two key epochs)
            lg.append(now - 8 * year + i * 10 ** 6, 'app.op', 'OP01001', None, {'action': 'lookup'})
        old = lg.seq
        for i in range(5):  # 6 years old: kept
            lg.append(now - 6 * year + i * 10 ** 6, 'app.op', 'OP01001', None, {'action': 'lookup'})
        status, body = c.post(os.path.join(self.tmp, tid), [l + b'\n' for l in lg.lines])
        self.assertEqual(status, 200, body)
        dry = self.admin('retention', '--dry-run')
        self.assertIn(f'would delete {old} records', dry.stdout)
        p = self.admin('retention')
        self.assertIn(f'deleted {old} records', p.stdout)
        self.assertIn(f'log {lg.id} (terminal {tid}): deleted {old} records up to seq {old}', p.stdout)
        seqs = [r[0] for r in c.sql(f"SELECT seq FROM records WHERE log = '{lg.id}' ORDER BY seq")]
        self.assertEqual(seqs, list(range(old + 1, lg.seq + 1)), 'nothing younger deleted')
        hist = self.admin('history', lg.id).stdout
        self.assertIn('retention', hist)
        self.assertIn(f'seq <= {old}', hist)
        # What remains still verifies from the anchor, and the terminal's next records are still accepted.
        v = self.admin('verify', check=False)
        self.assertIn(f'log {lg.id} (terminal {tid}): {lg.seq} records, intact', v.stdout)
        lg.append(now, 'app.op', 'OP01001', None, {'action': 'lookup'})
        status, body = c.post(os.path.join(self.tmp, tid), [lg.lines[-1] + b'\n'])
        self.assertEqual(status, 200, body)
        # A second run has nothing older left.
        self.assertIn('deleted 0 records', self.admin('retention').stdout)


if __name__ == '__main__':
    unittest.main(verbosity=2)
