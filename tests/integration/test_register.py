#!/usr/bin/python3
# The register (発行簿, DESIGN §8/§11): who, when and why for every change; a hash chain; status rules.
"""mamori-admin's register against a real store: every change (operators, cards, groups, PIN resets,
emergency) is a history row with actor (SUDO_USER or the login name), time and reason; the history is
append-only (SQLite refuses UPDATE/DELETE) and hash-chained, and `register verify` names the row where the
chain breaks after rows were changed or deleted behind its back; status moves follow the rules (returned
and retired are final, resume needs a reason); `card issue` checks the certificate against the operator CA
and refuses one issued before; `operator retire` suspends and lists the operator's cards; `cards
--unreturned` and `--unused-since DATE` (no login record since DATE). PIN age at the centre: a pin.change
/ password.change posted to the collector sets pin_changed in the next bundle (publish and refresh), a
reset at the centre is recorded and sets it."""
import datetime
import json
import os
import random
import sqlite3
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import auditgen  # noqa: E402
import bench  # noqa: E402
import enroltool  # noqa: E402
from test_collector import Centre, exe  # noqa: E402


def history(c, *args):
    """Rows of `mamori-admin history`: when, object, id, action, detail, by=ACTOR, reason."""
    return [line.split('\t') for line in c.admin('history', *args).stdout.splitlines()]


class RegisterTest(unittest.TestCase):
    def setUp(self):
        self._tmp = bench.TempDir('mamori-register-')
        self.tmp = self._tmp.__enter__()
        self.addCleanup(self._tmp.__exit__, None, None, None)
        self.c = Centre(self.tmp)
        self.c.admin('operator', 'add', 'OP0001', '--office', 'chuo')

    def as_user(self, user, *args, check=True):
        env = dict(os.environ, SUDO_USER=user)
        p = bench.run([exe('collector', 'mamori-admin'), '--config', self.c.conf, *args], env=env, timeout=120)
        if check:
            self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def issue(self, name, op='OP0001'):
        return self.c.admin('card', 'issue', '--cert', self.c.card_cert(name), '--operator', op).stdout.strip()

    def test_every_change_records_actor_time_and_reason(self):
        c = self.c
        t0 = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        self.as_user('alice', 'operator', 'add', 'OP0002', '--office', 'chuo', '--reason', 'new hire')
        card = c.admin('card', 'issue', '--cert', c.card_cert('a'), '--operator', 'OP0002').stdout.strip()
        self.as_user('bob', 'card', 'suspend', card, '--reason', 'lost on the train')
        self.as_user('carol', 'group', 'add', 'G1', '--office', 'chuo', '--member', 'OP0002', '--reason', 'tax desk')
        self.as_user('dave', 'operator', 'pin-reset', 'OP0002', '--reason', 'PIN blocked, reset with PUK')
        self.as_user('erin', 'policy', 'publish', '--emergency', '--reason', 'leak suspected')
        self.as_user('frank', 'emergency', 'clear', '--reason', 'cause found')
        rows = history(c)
        by = {(r[1], r[3]): r for r in rows}
        self.assertEqual(by[('operator', 'add')][5:], ['by=alice', 'new hire'])
        self.assertEqual(by[('card', 'suspended')][5:], ['by=bob', 'lost on the train'])
        self.assertEqual(by[('group', 'add')][5:], ['by=carol', 'tax desk'])
        self.assertEqual(by[('operator', 'pin-reset')][5:], ['by=dave', 'PIN blocked, reset with PUK'])
        self.assertEqual(by[('emergency', 'set')][5:], ['by=erin', 'leak suspected'])
        self.assertEqual(by[('emergency', 'clear')][5:], ['by=frank', 'cause found'])
        # Without sudo: the login name of the uid that ran it.
        import pwd
        self.assertEqual(by[('card', 'issue')][5], 'by=' + pwd.getpwuid(os.geteuid()).pw_name)
        for r in rows:
            when = datetime.datetime.strptime(r[0], '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)
            self.assertLessEqual(abs((when - t0).total_seconds()), 120, r)
        # A reason that is not one line is refused, and nothing is written.
        n = len(rows)
        p = c.admin('card', 'resume', card, '--reason', 'two\nlines', check=False)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(len(history(c)), n)

    def test_history_is_append_only_and_verify_names_the_break(self):
        c = self.c
        card = self.issue('a')
        c.admin('card', 'suspend', card, '--reason', 'lost')
        c.admin('card', 'resume', card, '--reason', 'found at the counter')
        c.admin('operator', 'add', 'OP0002', '--office', 'chuo')
        p = c.admin('register', 'verify')
        self.assertRegex(p.stdout, r'^register: 5 rows, chain intact; head row 5 hash [0-9a-f]{64}')
        with sqlite3.connect(c.db) as db:
            for sql in ("UPDATE history SET reason = 'x' WHERE id = 2", 'DELETE FROM history WHERE id = 2'):
                with self.assertRaisesRegex(sqlite3.DatabaseError, 'append-only'):
                    db.execute(sql)
        # An attacker with the database file drops the guards and edits the past.
        db = sqlite3.connect(c.db)
        db.execute('DROP TRIGGER history_no_update')
        db.execute('DROP TRIGGER history_no_delete')
        db.execute("UPDATE history SET reason = 'never lost' WHERE id = 3")
        db.commit()
        db.close()
        p = c.admin('register', 'verify', check=False)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn('row 3 (', p.stdout)
        self.assertIn('card ' + card + ' suspended', p.stdout)
        self.assertIn('content does not match its hash', p.stdout)
        self.assertNotIn('row 2 (', p.stdout)
        db = sqlite3.connect(c.db)
        db.execute('DROP TRIGGER IF EXISTS history_no_delete')
        db.execute('DELETE FROM history WHERE id = 4')
        db.commit()
        db.close()
        p = c.admin('register', 'verify', check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn('row 5 (', p.stdout)
        self.assertIn('row 4 is missing before it', p.stdout)
        # The guards are back at the next open.
        with sqlite3.connect(c.db) as db:
            with self.assertRaisesRegex(sqlite3.DatabaseError, 'append-only'):
                db.execute('DELETE FROM history WHERE id = 1')

    def test_status_moves_follow_the_rules(self):
        c = self.c
        card = self.issue('a')
        r = c.admin('card', 'resume', card, check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn('--reason', r.stderr)
        r = c.admin('card', 'resume', card, '--reason', 'x', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('already has that status', r.stderr)
        c.admin('card', 'return', card, '--reason', 'holder left')
        for verb in ('resume', 'suspend'):
            r = c.admin('card', verb, card, '--reason', 'try', check=False)
            self.assertEqual(r.returncode, 1, verb)
            self.assertIn('a returned card is final', r.stderr)
            self.assertIn('mamori-admin card issue', r.stderr)
        r = c.admin('operator', 'resume', 'OP0001', check=False)
        self.assertEqual(r.returncode, 2)
        c.admin('operator', 'suspend', 'OP0001', '--reason', 'leave')
        c.admin('operator', 'resume', 'OP0001', '--reason', 'back from leave')
        c.admin('operator', 'retire', 'OP0001', '--reason', 'left the office')
        r = c.admin('operator', 'resume', 'OP0001', '--reason', 'back', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('a retired operator is final', r.stderr)
        c.admin('policy', 'publish')
        b = json.loads(c.admin('policy', 'show').stdout)
        self.assertEqual([x['status'] for x in b['cards']], ['returned'])
        self.assertEqual([x['status'] for x in b['operators']], ['retired'])
        # Refused moves wrote nothing.
        self.assertEqual([r[3] for r in history(c, card)], ['issue', 'returned'])

    def test_card_issue_checks_the_operator_ca_and_refuses_a_certificate_issued_before(self):
        c = self.c
        c.operator_ca()
        r = c.admin('card', 'issue', '--cert', c.card_cert('self', ca=False), '--operator', 'OP0001', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('does not chain to the operator CA', r.stderr)
        # A certificate of another CA with the same subject: refused too.
        os.makedirs(os.path.join(self.tmp, 'other'))
        other = Centre(os.path.join(self.tmp, 'other'))
        r = c.admin('card', 'issue', '--cert', other.card_cert('a'), '--operator', 'OP0001', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('untrusted', r.stderr)
        # No keyUsage digitalSignature: terminals would refuse it, so it is not issued.
        ca_pem, ca_key = c.operator_ca()
        p = os.path.join(self.tmp, 'nousage.pem')
        bench.run(['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
                   '-subj', '/CN=n', '-keyout', p + '.key', '-out', p + '.csr'])
        with open(p + '.ext', 'w') as f:
            f.write('keyUsage=critical,keyEncipherment\n')
        bench.run(['openssl', 'x509', '-req', '-in', p + '.csr', '-CA', ca_pem, '-CAkey', ca_key, '-CAcreateserial',
                   '-days', '2', '-extfile', p + '.ext', '-out', p])
        r = c.admin('card', 'issue', '--cert', p, '--operator', 'OP0001', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('bad-usage', r.stderr)
        # Without an operator CA: refused, saying where to set it.
        os.rename(ca_pem, ca_pem + '.away')
        r = c.admin('card', 'issue', '--cert', c.card_cert('b', ca=False), '--operator', 'OP0001', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('[Cards] OperatorCA=', r.stderr)
        os.rename(ca_pem + '.away', ca_pem)

        cert = c.card_cert('good')
        card = c.admin('card', 'issue', '--cert', cert, '--operator', 'OP0001').stdout.strip()
        c.admin('operator', 'add', 'OP0002', '--office', 'chuo')
        r = c.admin('card', 'issue', '--cert', cert, '--operator', 'OP0002', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f'already issued as card {card}', r.stderr)
        self.assertIn('to operator OP0001', r.stderr)
        c.admin('card', 'return', card)
        r = c.admin('card', 'issue', '--cert', cert, '--operator', 'OP0001', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('(now returned)', r.stderr)
        # Not to a suspended operator either.
        c.admin('operator', 'suspend', 'OP0002', '--reason', 'inquiry')
        r = c.admin('card', 'issue', '--cert', c.card_cert('c'), '--operator', 'OP0002', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('OP0002 is suspended', r.stderr)

    def test_operator_retire_suspends_and_lists_the_cards(self):
        c = self.c
        a, b, done = self.issue('a'), self.issue('b'), self.issue('c')
        c.admin('card', 'suspend', b, '--reason', 'lost')
        c.admin('card', 'return', done)
        c.admin('operator', 'add', 'OP0002', '--office', 'chuo')
        other = self.issue('d', op='OP0002')
        r = c.admin('operator', 'retire', 'OP0001', '--reason', 'moved to another city')
        self.assertIn(f'card {a} suspended: collect it, then mamori-admin card return {a}', r.stdout)
        self.assertIn(f'card {b} suspended', r.stdout)
        self.assertNotIn(done, r.stdout)
        self.assertNotIn(other, r.stdout)
        rows = history(c, a)
        self.assertEqual([x[3] for x in rows], ['issue', 'suspended'])
        self.assertEqual(rows[1][6], 'operator OP0001 retired: moved to another city')
        c.admin('policy', 'publish')
        cards = {x['id']: x['status'] for x in json.loads(c.admin('policy', 'show').stdout)['cards']}
        self.assertEqual(cards, {a: 'suspended', b: 'suspended', done: 'returned', other: 'active'})
        # The unreturned list shows what is still out, with the operator's status.
        out = c.admin('cards', '--unreturned', '--format', 'json').stdout
        rows = {x['card']: x for x in map(json.loads, out.splitlines())}
        self.assertEqual(set(rows), {a, b, other})
        self.assertEqual(rows[a]['operator_status'], 'retired')
        self.assertEqual(rows[other]['operator_status'], 'active')
        all_cards = c.admin('cards').stdout
        self.assertIn(done, all_cards)
        text = c.admin('cards', '--unreturned').stdout
        self.assertRegex(text, a + r'\toperator OP0001\tsuspended\toperator retired')

    def test_cards_unused_since_a_date(self):
        c = self.c
        used, old, never, gone = self.issue('u'), self.issue('o'), self.issue('n'), self.issue('g')
        c.admin('card', 'return', gone)
        tid = 'T-0009'
        identity = auditgen.Ed25519PrivateKey.generate()
        pub = os.path.join(self.tmp, tid + '.pub')
        with open(pub, 'wb') as f:
            f.write(identity.public_key().public_bytes(auditgen.serialization.Encoding.PEM,
                                                       auditgen.serialization.PublicFormat.SubjectPublicKeyInfo))
        enroltool.enrol(c.admin, tid, 'chuo', pub, os.path.join(self.tmp, tid))
        lg = auditgen.Log(random.Random(5), tid, identity)
        now = int(time.time() * 1e6)
        day = 86400 * 10 ** 6
        lg.append(now - 40 * day, 'auth.ok', 'OP0001', old, {'method': 'card+pin'})
        lg.append(now - 40 * day, 'session.start', 'OP0001', old, {'method': 'card+pin'})
        # A refused login is no use of the card.
        lg.append(now - day, 'auth.fail', None, never, {'method': 'card+pin', 'reason': 'pin-wrong'})
        lg.append(now - day, 'session.start', 'OP0001', used, {'method': 'card+pin'})
        c.start()
        try:
            status, body = c.post(os.path.join(self.tmp, tid), [line + b'\n' for line in lg.lines])
            self.assertEqual(status, 200, body)
        finally:
            c.stop()
        since = (datetime.date.today() - datetime.timedelta(days=10)).isoformat()
        out = c.admin('cards', '--unused-since', since, '--format', 'json').stdout
        self.assertEqual(sorted(json.loads(x)['card'] for x in out.splitlines()), sorted([old, never]))
        since = (datetime.date.today() - datetime.timedelta(days=60)).isoformat()
        out = c.admin('cards', '--unused-since', since, '--format', 'json').stdout
        self.assertEqual([json.loads(x)['card'] for x in out.splitlines()], [never])
        r = c.admin('cards', '--unused-since', 'yesterday', check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn('YYYY-MM-DD', r.stderr)

    def test_an_older_register_is_chained_as_it_was(self):
        # A database written before the chain: the rows are kept and chained at the first open.
        c = self.c
        c.admin('operator', 'add', 'OP0002', '--office', 'chuo')
        with sqlite3.connect(c.db) as db:
            rows = db.execute('SELECT id, ts, object, object_id, action, detail FROM history ORDER BY id').fetchall()
        old = os.path.join(self.tmp, 'old.db')
        with sqlite3.connect(old) as db:
            db.execute('CREATE TABLE history (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, object TEXT NOT NULL,'
                       ' object_id TEXT NOT NULL, action TEXT NOT NULL, detail TEXT)')
            db.executemany('INSERT INTO history VALUES (?,?,?,?,?,?)', rows)
        with open(c.conf) as f:
            conf = f.read()
        with open(c.conf, 'w') as f:
            f.write(conf.replace(f'Database={c.db}', f'Database={old}'))
        c.admin('operator', 'add', 'OP0001', '--office', 'chuo')
        p = c.admin('register', 'verify')
        self.assertIn(f'register: {len(rows) + 1} rows, chain intact', p.stdout)
        self.assertEqual([r[2] for r in history(c)], ['OP0001', 'OP0002', 'OP0001'])


class PinAgeAtCentreTest(unittest.TestCase):
    """pin_changed (DESIGN §8) from what the collector stored, and from a reset at the centre."""

    def setUp(self):
        self._tmp = bench.TempDir('mamori-pinage-')
        self.tmp = self._tmp.__enter__()
        self.addCleanup(self._tmp.__exit__, None, None, None)
        self.c = Centre(self.tmp)
        c = self.c
        for op in ('OP0001', 'OP0002'):
            c.admin('operator', 'add', op, '--office', 'chuo')
        self.tid = 'T-0007'
        self.identity = auditgen.Ed25519PrivateKey.generate()
        pub = os.path.join(self.tmp, self.tid + '.pub')
        with open(pub, 'wb') as f:
            f.write(self.identity.public_key().public_bytes(auditgen.serialization.Encoding.PEM,
                                                            auditgen.serialization.PublicFormat.SubjectPublicKeyInfo))
        enroltool.enrol(c.admin, self.tid, 'chuo', pub, os.path.join(self.tmp, self.tid))
        self.log = auditgen.Log(random.Random(7), self.tid, self.identity)

    def post(self, *records, log=None):
        log = log or self.log
        first = len(log.lines)
        for ts, ev, op in records:
            log.append(ts, ev, op, None, {})
        status, body = self.c.post(os.path.join(self.tmp, self.tid), [l + b'\n' for l in log.lines[first:]])
        self.assertEqual(status, 200, body)

    def ops(self):
        return {o['id']: o for o in json.loads(self.c.admin('policy', 'show').stdout)['operators']}

    def test_an_uploaded_pin_change_shows_in_the_next_bundle(self):
        c = self.c
        c.admin('policy', 'publish')
        self.assertNotIn('pin_changed', self.ops()['OP0001'])
        now = int(time.time() * 1e6)
        c.start()
        try:
            self.post((now - 5000, 'pin.change', 'OP0001'), (now - 4000, 'app.op', 'OP0002'))
        finally:
            c.stop()
        # The timer's refresh re-signs at once when a pin_changed moved, long before half the validity.
        r = c.admin('policy', 'refresh')
        self.assertIn('re-signed as serial 2', r.stdout)
        self.assertIn('PIN age of 1 operator updated', r.stdout)
        ops = self.ops()
        self.assertEqual(ops['OP0001']['pin_changed'], now - 5000)
        self.assertNotIn('pin_changed', ops['OP0002'])
        self.assertIn('nothing to do', c.admin('policy', 'refresh').stdout)
        # A newer password change counts; an older PIN change posted later does not move it back.
        c.start()
        try:
            self.post((now - 1000, 'password.change', 'OP0001'))
            # (a second log of the terminal: one log's clock only grows)
            self.post((now - 9000, 'pin.change', 'OP0001'), (now - 2000, 'pin.change', 'OP0002'),
                      log=auditgen.Log(random.Random(8), self.tid, self.identity))
        finally:
            c.stop()
        c.admin('policy', 'publish')
        ops = self.ops()
        self.assertEqual(ops['OP0001']['pin_changed'], now - 1000)
        self.assertEqual(ops['OP0002']['pin_changed'], now - 2000)

    def test_a_reset_at_the_centre_is_recorded_and_sets_pin_changed(self):
        c = self.c
        c.admin('policy', 'publish')
        r = c.admin('operator', 'pin-reset', 'OP0002', check=False)
        self.assertEqual(r.returncode, 2)
        t0 = int(time.time() * 1e6)
        c.admin('operator', 'pin-reset', 'OP0002', '--reason', 'PIN blocked at the counter')
        c.admin('policy', 'publish')
        self.assertGreaterEqual(self.ops()['OP0002']['pin_changed'], t0)
        rows = [r for r in history(c, 'OP0002') if r[3] == 'pin-reset']
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0][6], 'PIN blocked at the counter')
        # --expired: a PIN the administrator chose must be changed at the next login.
        c.admin('operator', 'pin-reset', 'OP0002', '--reason', 'temporary PIN handed over', '--expired')
        self.assertIn('PIN age of 1 operator updated', c.admin('policy', 'refresh').stdout)
        self.assertEqual(self.ops()['OP0002']['pin_changed'], 0)
        r = c.admin('operator', 'pin-reset', 'NOPE', '--reason', 'x', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('not in the register', r.stderr)


if __name__ == '__main__':
    unittest.main()
