#!/usr/bin/python3
# A year of realistic, signed operation logs for several offices, with planted violations of every §12 kind.
"""Generator of audit test data, written from DESIGN.md §6/§8/§12 alone (no mamori C code): its own JCS
(json.dumps with sorted keys and no whitespace is RFC 8785 for mamori's integer/ASCII-key records), its own
Ed25519 signing and key rotation (pyca/cryptography), its own session scheduling.

World(seed, days, end_date) plans the year: offices with hours, terminals, operators (roles), individual and
group cards, a suspended and a returned card; every weekday each terminal boots, serves sessions
(card+pin, group-card+finger, finger+password), and shuts down. Planted violations are recorded in
world.expected as {"kind", "term", "records": [[log, seq], …]} — what mamori-admin audit must find.

Two ways out: World.register(admin) + World.post(post_fn) (the integration test: real collector API), or
write_store() (the bench: straight into the SQLite store, records well-formed and chained but with a fixed
dummy signature — the audit does not re-verify stored records, `mamori-admin verify` would refuse them).
"""
import base64
import datetime
import hashlib
import json
import os
import random
import sqlite3

import enroltool
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

try:
    from zoneinfo import ZoneInfo
except ImportError:  # pragma: no cover
    ZoneInfo = None

TZ = 'Asia/Tokyo'
MIN = 60 * 1000000
SEC = 1000000
sqlite3_connect = sqlite3.connect
DUMMY_SIG = base64.b64encode(bytes(64)).decode()


def jcs(obj):
    # RFC 8785 for what these records hold: ASCII keys (code-point order = UTF-16 order), integers, strings
    # (json.dumps escapes exactly " \\ and control characters, with lowercase \\u00xx, like JCS).
    return json.dumps(obj, sort_keys=True, separators=(',', ':'), ensure_ascii=False)


def raw_pub(key):
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def b64(b):
    return base64.b64encode(b).decode()


class Log:
    """One terminal log: seq, prev hash, forward-secure key epochs (§6)."""

    def __init__(self, rng, term, identity, sign=True, rotate_every=1000):
        self.id = '%032x' % rng.getrandbits(128)
        self.term = term
        self.identity = identity
        self.sign = sign
        self.rng = rng
        self.rotate_every = rotate_every
        self.seq = 0
        self.prev = '0' * 64
        self.key = None
        self.in_epoch = 0
        self.epochs = 0
        self.lines = []  # bytes without "\n"
        self.boot = '0' * 32
        self.boot_ts = 0
        self.last_ts = 0
        self.epoch_keys = {}  # seq of first record signed by a key → key (for forks in tests)
        self.sink = None  # sink(log, seq, hash, line) instead of keeping lines (the bench's 5 million)
        self.pub = None

    def _new_key(self):
        if self.sign:
            return Ed25519PrivateKey.from_private_bytes(self.rng.getrandbits(256).to_bytes(32, 'big'))
        return None

    def _pub(self, key):
        self.pub = raw_pub(key) if key is not None else hashlib.sha256(b'%d' % self.epochs).digest()
        return b64(self.pub)

    def new_boot(self, ts):
        self.boot = '%032x' % self.rng.getrandbits(128)
        self.boot_ts = ts - 30 * SEC

    def _write(self, ts, ev, op, card, data, key):
        ts = max(ts, self.last_ts)  # CLOCK_REALTIME in one log only grows here
        self.last_ts = ts
        self.seq += 1
        rec = {'v': 1, 'log': self.id, 'seq': self.seq, 'ts': ts, 'boot': self.boot,
               'mono': max(0, ts - self.boot_ts), 'term': self.term, 'ev': ev, 'op': op, 'card': card,
               'data': data, 'prev': self.prev}
        body = jcs(rec)
        if self.sign and key is not None:
            rec['sig'] = b64(key.sign(body.encode()))
            line = jcs(rec).encode()
        else:  # bench fast path: "sig" sorts between "seq" and "term" (data never holds a "term" key)
            line = body.replace(',"term":', ',"sig":"' + DUMMY_SIG + '","term":', 1).encode()
        self.prev = hashlib.sha256(line).hexdigest()
        if self.sink:
            self.sink(self, self.seq, self.prev, line)
        else:
            self.lines.append(line)
        return self.seq

    def append(self, ts, ev, op=None, card=None, data=None):
        if self.seq == 0:
            self.key = self._new_key()
            self.epochs = 1
            self.epoch_keys[2] = self.key
            self._write(ts, 'log.open', None, None, {'key': self._pub(self.key)}, self.identity)
        elif self.in_epoch >= self.rotate_every:
            nxt = self._new_key()
            self.epochs += 1
            self._write(ts, 'key.rotate', None, None, {'key': self._pub(nxt)}, self.key)
            self.key = nxt
            self.epoch_keys[self.seq + 1] = nxt
            self.in_epoch = 0
        self.in_epoch += 1
        return self._write(ts, ev, op, card, data or {}, self.key)

    def key_for(self, seq):
        best = None
        for first, k in sorted(self.epoch_keys.items()):
            if first <= seq:
                best = k
        return best


class World:
    def __init__(self, seed=1, days=365, end_date=None, offices=3, terms_per_office=2, ops_per_office=6,
                 sessions_per_day=5, app_ops=(2, 8), sign=True, plant=True):
        self.rng = random.Random(seed)
        self.tz = ZoneInfo(TZ)
        end = end_date or (datetime.datetime.now(self.tz).date() - datetime.timedelta(days=1))
        self.today = end + datetime.timedelta(days=1)
        self.start_date = end - datetime.timedelta(days=days - 1)
        self.end_date = end
        self.days = days
        self.sign = sign
        self.sessions_per_day = sessions_per_day
        self.app_ops = app_ops
        self.expected = []
        self.offices = []
        self.terms = {}  # id → dict(office, identity, logs[])
        self.ops = {}  # id → dict(office, role, cards[])
        self.cards = {}  # card id → dict(pem, operator | group, status)
        self.groups = {}
        letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'
        for o in range(offices):
            oid = 'office-%s' % letters[o % 26].lower() + ('' if o < 26 else str(o))
            # days: working days (Python weekday numbers, 0 = Monday); holidays: day indexes of the year.
            self.offices.append({'id': oid, 'hours': '08:30-17:15', 'terms': [], 'ops': [], 'days': set(range(5)),
                                 'holidays': set()})
            for t in range(terms_per_office):
                tid = 'T-%02d%02d' % (o + 1, t + 1)
                identity = Ed25519PrivateKey.from_private_bytes(self.rng.getrandbits(256).to_bytes(32, 'big'))
                self.terms[tid] = {'office': oid, 'identity': identity, 'logs': [], 'log': None}
                self.offices[-1]['terms'].append(tid)
            for i in range(ops_per_office):
                op = 'OP%02d%03d' % (o + 1, i + 1)
                role = 'supervisor' if i == 0 else 'counter'
                self.ops[op] = {'office': oid, 'role': role, 'cards': []}
                self.offices[-1]['ops'].append(op)
                self._card(operator=op)
            # One group card per office; every counter is a member (a member identifies by fingerprint).
            gid = 'G-%s' % oid
            members = [op for op in self.offices[-1]['ops'] if self.ops[op]['role'] == 'counter']
            self.groups[gid] = {'office': oid, 'members': members}
            self.offices[-1]['group'] = gid
            self.offices[-1]['group_card'] = self._card(group=gid)
        self.busy = {}  # card or op → list of (start, end)
        self.plant = plant
        self.sink = None  # see Log.sink

    # ---- registry ----

    def _operator_ca(self):
        """The operator CA every card chains to (mamori-admin card issue checks it: [Cards] OperatorCA=)."""
        if getattr(self, 'ca_key', None) is None:
            # Not from self.rng: the world's plan must not depend on it.
            self.ca_key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'auditgen operator CA')])
            now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
            self.ca_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                            .public_key(self.ca_key.public_key()).serial_number(1).not_valid_before(now)
                            .not_valid_after(now + datetime.timedelta(days=3650))
                            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                         key_encipherment=False, data_encipherment=False,
                                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                                         encipher_only=False, decipher_only=False), critical=True)
                            .sign(self.ca_key, hashes.SHA256()))
        return self.ca_key, self.ca_cert

    def _card(self, operator=None, group=None, status='active'):
        key = ec.derive_private_key(self.rng.getrandbits(200) + 1, ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, operator or group)])
        now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
        ca_key, ca_cert = self._operator_ca()
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_cert.subject)
                .public_key(key.public_key())
                .serial_number(self.rng.getrandbits(64) + 1).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=3650))
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .sign(ca_key, hashes.SHA256()))
        der = cert.public_bytes(serialization.Encoding.DER)
        cid = hashlib.sha256(der).hexdigest()
        self.cards[cid] = {'pem': cert.public_bytes(serialization.Encoding.PEM).decode(), 'operator': operator,
                           'group': group, 'status': status}
        if operator:
            self.ops[operator]['cards'].append(cid)
        return cid

    def card_of(self, op):
        return self.ops[op]['cards'][0]

    def register(self, admin, tmp):
        """Registers everything through mamori-admin (admin(*args) runs it). The operator CA goes to
        tmp/operator-ca.pem, where test_collector.Centre's collector.conf points [Cards] OperatorCA=."""
        with open(os.path.join(tmp, 'operator-ca.pem'), 'wb') as f:
            f.write(self._operator_ca()[1].public_bytes(serialization.Encoding.PEM))
        for o in self.offices:
            for tid in o['terms']:
                pub = os.path.join(tmp, tid + '.pub')
                with open(pub, 'wb') as f:
                    f.write(self.terms[tid]['identity'].public_key().public_bytes(
                        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
                enroltool.enrol(admin, tid, o['id'], pub, os.path.join(tmp, tid))
            admin('office', 'hours', o['id'], o['hours'])
            if o['days'] != set(range(5)):
                names = ('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun')
                admin('office', 'days', o['id'], *(names[d] for d in sorted(o['days'])))
            if o['holidays']:
                admin('office', 'holidays', o['id'],
                      *((self.start_date + datetime.timedelta(days=d)).isoformat() for d in sorted(o['holidays'])))
            for op in o['ops']:
                admin('operator', 'add', op, '--name', 'operator ' + op, '--office', o['id'])
                admin('operator', 'roles', op, self.ops[op]['role'])
            admin('group', 'add', o['group'], '--office', o['id'], *self.groups[o['group']]['members'])
        for cid, c in self.cards.items():
            path = os.path.join(tmp, cid[:16] + '.pem')
            with open(path, 'w') as f:
                f.write(c['pem'])
            if c['operator']:
                admin('card', 'issue', '--cert', path, '--operator', c['operator'])
            else:
                admin('card', 'issue', '--cert', path, '--group', c['group'])
            if c['status'] == 'suspended':
                admin('card', 'suspend', cid, '--reason', 'lost at the counter')
            elif c['status'] == 'returned':
                admin('card', 'return', cid, '--reason', 'replaced')

    # ---- time ----

    def at(self, day, hh, mm, ss=0):
        d = self.start_date + datetime.timedelta(days=day)
        dt = datetime.datetime(d.year, d.month, d.day, hh, mm, ss, tzinfo=self.tz)
        return int(dt.timestamp()) * SEC

    def weekday(self, day):
        return (self.start_date + datetime.timedelta(days=day)).weekday() < 5

    def works(self, o, day):
        """Whether office o works on day: one of its days and none of its holidays."""
        return (self.start_date + datetime.timedelta(days=day)).weekday() in o['days'] and day not in o['holidays']

    def free(self, key, a, b):
        return all(b + MIN <= s or a >= e + MIN for s, e in self.busy.get(key, ()))

    def take(self, key, a, b):
        self.busy.setdefault(key, []).append((a, b))

    # ---- one terminal's records ----

    def log(self, tid):
        t = self.terms[tid]
        if t['log'] is None:
            t['log'] = Log(self.rng, tid, t['identity'], sign=self.sign)
            t['log'].sink = self.sink
            t['logs'].append(t['log'])
        return t['log']

    def expect(self, kind, term, refs, **extra):
        e = {'kind': kind, 'term': term, 'records': [list(r) for r in refs]}
        e.update(extra)
        self.expected.append(e)

    def session(self, tid, start, end, op, card, method='card+pin', pin_fail=False, ops=None, end_reason='card-removed',
                card_left=False, pin_change=False):
        """One session as mamorid records it; returns {name: (log, seq)} of its key records."""
        lg = self.log(tid)
        reader = {'reader': 'Virtual PCD 00 00'}
        out = {}
        t = start - 10 * SEC
        if card:
            lg.append(t, 'card.inserted', None, card, dict(reader))
        if pin_fail:
            lg.append(t + 3 * SEC, 'auth.fail', None, card, {'method': method, 'reason': 'pin-wrong', 'tries': '2'})
        if method == 'finger+password' and pin_fail:
            pass
        lg.append(start - 2 * SEC, 'auth.ok', op, card,
                  {'method': method, 'exchanges': '3', 'elapsed_us': str(self.rng.randint(5000, 9000))})
        out['start'] = (lg.id, lg.append(start, 'session.start', op, card, {'method': method}))
        lg.append(start + 20000, 'unlock', op, card, {})
        n = ops if ops is not None else self.rng.randint(*self.app_ops)
        span = max(1, end - start - 2 * SEC)
        times = sorted(start + SEC + self.rng.randrange(span) for _ in range(n))
        for i, ts in enumerate(times):
            s = lg.append(ts, 'app.op', op, card, {'action': self.rng.choice(('lookup', 'lookup', 'print', 'update')),
                                                   'target': 'R%06d' % self.rng.randrange(10 ** 6)})
            if i == 0:
                out['first_op'] = (lg.id, s)
            out['last_op'] = (lg.id, s)
        if pin_change:
            lg.append(end - 30 * SEC, 'pin.change' if card else 'password.change', op, card, {})
        if end_reason == 'card-removed':
            lg.append(end, 'card.removed', None, card, dict(reader, mono_us=str(end - lg.boot_ts)))
            lg.append(end + 500, 'session.end', op, card, {'reason': 'card-removed'})
            lg.append(end + 2000, 'lock', None, None, {'method': 'LockSession', 'session': 'c1',
                                                       'reason': 'card-removed', 'latency_us': '1650'})
        else:
            out['end'] = (lg.id, lg.append(end, 'session.end', op, card, {'reason': end_reason}))
            lg.append(end + 2000, 'lock', None, None, {'method': 'LockSession', 'session': 'c1',
                                                       'reason': end_reason, 'latency_us': '1700'})
            if card_left and card:
                out['card_left'] = (lg.id, lg.append(end + 60 * SEC, 'card.left', op, card,
                                                     dict(reader, reason='after-lock')))
            if card:
                lg.append(end + 5 * MIN, 'card.removed', None, card, dict(reader, mono_us='0'))
        return out

    def boot(self, tid, ts):
        lg = self.log(tid)
        lg.new_boot(ts)
        lg.append(ts, 'agent.start', None, None, {'version': '0.1.0'})
        lg.append(ts + SEC, 'policy.load', None, None, {'serial': '1'})
        lg.append(ts + 2 * SEC, 'reader.added', None, None, {'reader': 'Virtual PCD 00 00'})

    def shutdown(self, tid, ts):
        self.log(tid).append(ts, 'agent.stop', None, None, {'reason': 'shutdown'})

    # ---- the year ----

    def generate(self):
        """Plans each office-day (planted events first, then ordinary sessions around them), then writes each
        terminal's day in time order: boot, the day's actions, shutdown."""
        rng = self.rng
        offices = self.offices
        a, b, c = offices[0], offices[1 % len(offices)], offices[2 % len(offices)]
        weekdays = [d for d in range(self.days) if self.weekday(d)]
        pick = lambda frac: weekdays[int(len(weekdays) * frac)]
        pin_due = {op: rng.randint(15, 60) for op in self.ops}
        self.never_changes = a['ops'][2]  # secret-overdue
        self.heavy = b['ops'][3]  # app-ops-unusual
        silent_term = b['terms'][-1]
        silent_from, silent_to = pick(0.30), pick(0.30) + 20
        gap_term = a['terms'][-1]
        gap_day = pick(0.55)
        gap_prev = weekdays[weekdays.index(gap_day) - 1]  # the last working day of the old log
        emergency_day = pick(0.7)
        plants = {}  # day → list of fn(day) → (actions [(tid, ts, run)], blocked [(tid, a, b)])
        W = 'Virtual PCD 00 00'

        def plant(frac, fn):
            plants.setdefault(pick(frac), []).append(fn)

        if self.plant:
            # Office c works on Saturdays too (its Saturday sessions are inside its hours); office a has a
            # holiday on a weekday (no ordinary sessions then: the office is closed).
            c['days'] = set(range(6))
            holiday = pick(0.83)
            a['holidays'].add(holiday)
            saturday = next(d for d in range(pick(0.12), self.days)
                            if (self.start_date + datetime.timedelta(days=d)).weekday() == 5)

            def closed_day(day):
                # Someone comes in on a day office a does not work, within the clock hours: outside hours.
                tid, op = a['terms'][1], a['ops'][3]
                s = self.at(day, 10, 15)

                def run():
                    r = self.session(tid, s, s + 25 * MIN, op, self.card_of(op))
                    self.expect('outside-hours', tid, [r['start']], op=op)
                return [(tid, s, run)], []
            plants.setdefault(saturday, []).append(closed_day)
            plants.setdefault(holiday, []).append(closed_day)

            def night(day):
                tid, op = a['terms'][0], a['ops'][1]
                s = self.at(day, 21, 30)

                def run():
                    self.boot(tid, s - 5 * MIN)
                    r = self.session(tid, s, s + 15 * MIN, op, self.card_of(op))
                    self.shutdown(tid, s + 20 * MIN)
                    self.expect('outside-hours', tid, [r['start']], op=op)
                return [(tid, s, run)], []
            plant(0.1, night)

            def two(day):
                op = a['ops'][4]
                t1, t2 = a['terms'][0], a['terms'][1]
                s1, s2 = self.at(day, 10, 0), self.at(day, 10, 10)
                self.take(op, s1, s1 + 40 * MIN)
                got = {}

                def run1():
                    got['1'] = self.session(t1, s1, s1 + 40 * MIN, op, self.card_of(op))

                def run2():
                    r2 = self.session(t2, s2, s2 + 10 * MIN, op, self.card_of(op))
                    self.expect('card-on-two-terminals', t2, [got['1']['start'], r2['start']], op=op)
                return [(t1, s1, run1), (t2, s2, run2)], [(t1, s1, s1 + 41 * MIN), (t2, s2, s2 + 11 * MIN)]
            plant(0.15, two)

            susp_op, ret_op = b['ops'][1], c['ops'][1]
            susp = self._card(operator=susp_op, status='suspended')
            ret = self._card(operator=ret_op, status='returned')
            for op, cid in ((susp_op, susp), (ret_op, ret)):
                cards = self.ops[op]['cards']
                cards.remove(cid)
                cards.append(cid)

            def refused(tid, cid, reason, kind):
                def fn(day):
                    s = self.at(day, 11, 5)

                    def run():
                        lg = self.log(tid)
                        lg.append(s, 'card.inserted', None, cid, {'reader': W})
                        seq = lg.append(s + 2 * SEC, 'auth.fail', None, cid, {'method': 'card+pin', 'reason': reason})
                        lg.append(s + 20 * SEC, 'card.removed', None, cid, {'reader': W, 'mono_us': '0'})
                        self.expect(kind, tid, [(lg.id, seq)])
                    return [(tid, s, run)], [(tid, s - MIN, s + MIN)]
                return fn
            plant(0.2, refused(b['terms'][0], susp, 'card-suspended', 'suspended-card-used'))
            plant(0.25, refused(c['terms'][0], ret, 'card-returned', 'returned-card-used'))

            def pin_burst(day):
                tid, op = b['terms'][0], b['ops'][2]
                cid = self.card_of(op)
                s = self.at(day, 13, 20)

                def run():
                    lg = self.log(tid)
                    lg.append(s, 'card.inserted', None, cid, {'reader': W})
                    refs = [(lg.id, lg.append(s + (i + 1) * 15 * SEC, 'auth.fail', None, cid,
                                              {'method': 'card+pin', 'reason': 'pin-wrong', 'tries': tries}))
                            for i, tries in enumerate(('2', '1'))]
                    lg.append(s + 45 * SEC, 'pin.blocked', None, cid, {})
                    refs.append((lg.id, lg.append(s + 45 * SEC, 'auth.fail', None, cid,
                                                  {'method': 'card+pin', 'reason': 'pin-blocked'})))
                    lg.append(s + 60 * SEC, 'card.removed', None, cid, {'reader': W, 'mono_us': '0'})
                    self.expect('pin-failures-burst', tid, refs)
                return [(tid, s, run)], [(tid, s - MIN, s + 2 * MIN)]
            plant(0.35, pin_burst)

            def pin_burst_folded(day):
                # mamorid's record limiter folds a flood into one summary (data.repeats): one refusal in full,
                # then "4 more" — 5 failures in two records, which must count as 5, not 2.
                tid, op = b['terms'][1], b['ops'][5]
                cid = self.card_of(op)
                s = self.at(day, 13, 40)

                def run():
                    lg = self.log(tid)
                    lg.append(s, 'card.inserted', None, cid, {'reader': W})
                    refs = [(lg.id, lg.append(s + 10 * SEC, 'auth.fail', None, cid,
                                              {'method': 'card+pin', 'reason': 'pin-wrong', 'tries': '2'}))]
                    refs.append((lg.id, lg.append(s + 15 * SEC, 'auth.fail', None, cid,
                                                  {'method': 'card+pin', 'reason': 'pin-wrong', 'tries': '2',
                                                   'repeats': 4, 'after_us': 400000, 'period_us': 3600000})))
                    lg.append(s + 60 * SEC, 'card.removed', None, cid, {'reader': W, 'mono_us': '0'})
                    self.expect('pin-failures-burst', tid, refs)
                return [(tid, s, run)], [(tid, s - MIN, s + 2 * MIN)]
            plant(0.78, pin_burst_folded)

            def finger_burst(day):
                tid, op = c['terms'][1], c['ops'][3]
                s = self.at(day, 14, 2)

                def run():
                    lg = self.log(tid)
                    refs = [(lg.id, lg.append(s + i * 20 * SEC, 'auth.fail', op, None,
                                              {'method': 'finger+password', 'reason': 'finger-mismatch'}))
                            for i in range(5)]
                    self.expect('finger-failures-burst', tid, refs)
                return [(tid, s, run)], [(tid, s - MIN, s + 3 * MIN)]
            plant(0.4, finger_burst)

            def left(day):
                tid, op = a['terms'][1], a['ops'][5]
                s = self.at(day, 15, 0)
                self.take(op, s, s + 20 * MIN)

                def run():
                    r = self.session(tid, s, s + 20 * MIN, op, self.card_of(op), end_reason='idle', card_left=True)
                    self.expect('card-left', tid, [r['card_left']], op=op)
                return [(tid, s, run)], [(tid, s - MIN, s + 27 * MIN)]
            plant(0.45, left)

            def group(day):
                tid, cid = b['terms'][0], b['group_card']
                s = self.at(day, 9, 40)
                self.take(cid, s, s + 10 * MIN)

                def run():
                    r = self.session(tid, s, s + 10 * MIN, None, cid, method='group-card+pin')
                    self.expect('group-without-member', tid, [r['start']])
                return [(tid, s, run)], [(tid, s - MIN, s + 11 * MIN)]
            plant(0.5, group)

            def lending(day):
                tid = c['terms'][0]
                s = self.at(day, 10, 31)
                cid = self.card_of(c['ops'][2])

                def run():
                    lg = self.log(tid)
                    lg.append(s, 'card.inserted', None, cid, {'reader': W})
                    seq = lg.append(s + 5 * SEC, 'auth.fail', c['ops'][4], cid,
                                    {'method': 'card+pin+finger', 'reason': 'lending-suspected'})
                    lg.append(s + 30 * SEC, 'card.removed', None, cid, {'reader': W, 'mono_us': '0'})
                    self.expect('lending-suspected', tid, [(lg.id, seq)])
                return [(tid, s, run)], [(tid, s - MIN, s + MIN)]
            plant(0.6, lending)

            def bypass(day):
                tid = b['terms'][0]
                s = self.at(day, 12, 1)

                def run():
                    lg = self.log(tid)
                    seq = lg.append(s, 'lock', None, None, {'method': 'LockSession', 'session': 'c1',
                                                            'reason': 'bypass', 'latency_us': '2100'})
                    self.expect('lock-bypassed', tid, [(lg.id, seq)])
                return [(tid, s, run)], [(tid, s - MIN, s + MIN)]
            plant(0.65, bypass)

        for day in range(self.days):
            if not any(self.works(o, day) for o in offices) and day not in plants:
                continue
            horizon = self.at(day, 0, 0) - 86400 * SEC  # what ended before yesterday can no longer clash
            for k in self.busy:
                self.busy[k] = [x for x in self.busy[k] if x[1] > horizon]
            actions, blocked = [], []
            for fn in plants.get(day, []):
                acts, blk = fn(day)
                actions += acts
                blocked += blk
            for o in offices:
                if not self.works(o, day):
                    continue
                stop = self.at(day, 16, 50)
                if self.plant and day == emergency_day and o is c:
                    stop = self.at(day, 14, 50)
                for tid in o['terms']:
                    if self.plant and tid == silent_term and silent_from <= day < silent_to:
                        continue
                    t = self.at(day, 8, 50) + rng.randrange(10 * MIN)
                    slot = (stop - t) // max(1, self.sessions_per_day)
                    while t < stop:
                        end = t + (rng.randrange(slot // 3, slot * 2 // 3) if slot > 6 * MIN else 5 * MIN)
                        if end > stop:
                            break
                        clash = [x for x in blocked if x[0] == tid and not (end + MIN <= x[1] or t >= x[2] + MIN)]
                        if clash:
                            t = max(x[2] for x in clash) + 2 * MIN
                            continue
                        use_group = rng.random() < 0.15
                        cands = [op for op in o['ops'] if self.free(op, t, end)]
                        if use_group:
                            cands = [op for op in cands if op in self.groups[o['group']]['members']]
                            if not self.free(o['group_card'], t, end):
                                cands = []
                        if not cands:
                            t = end + 3 * MIN
                            continue
                        op = rng.choice(cands)
                        card = o['group_card'] if use_group else self.card_of(op)
                        change = False
                        if not use_group and day >= pin_due[op] and not (self.plant and op == self.never_changes):
                            change = True
                            pin_due[op] = day + rng.randint(80, 140)
                        n_ops = rng.randint(*self.app_ops) * (8 if self.plant and op == self.heavy else 1)
                        self.take(op, t, end)
                        if use_group:
                            self.take(o['group_card'], t, end)
                        kw = dict(method='group-card+finger' if use_group else 'card+pin', ops=n_ops,
                                  pin_fail=(not use_group and rng.random() < 0.03), pin_change=change)
                        actions.append((tid, t, (lambda tid=tid, t=t, end=end, op=op, card=card, kw=kw:
                                                 self.session(tid, t, end, op, card, **kw))))
                        t = end + rng.randrange(2 * MIN, 12 * MIN)
                    if self.plant and day == emergency_day and o is c:
                        def em(tid=tid, s=self.at(day, 15, 0)):
                            lg = self.log(tid)
                            self.expect('emergency', tid, [(lg.id, lg.append(s, 'emergency.lock', None, None,
                                                                            {'serial': '7'}))])
                        actions.append((tid, self.at(day, 15, 0), em))
            for o in offices:
                for tid in o['terms']:
                    if self.plant and tid == silent_term and silent_from <= day < silent_to:
                        continue
                    if self.plant and tid == gap_term and day == gap_day:
                        # The terminal's disk died yesterday afternoon: that log is lost from there, a new log begins.
                        old = self.log(tid)
                        self.terms[tid]['log'] = None
                        new = self.log(tid)
                        self.expect('log-gap', tid, [(old.id, old.seq), (new.id, 1)])
                    mine = sorted((x for x in actions if x[0] == tid), key=lambda x: x[1])
                    if not mine and not self.works(o, day):
                        continue  # the office is closed: the terminal stays off
                    early = [x for x in mine if x[1] < self.at(day, 17, 0)]
                    late = [x for x in mine if x[1] >= self.at(day, 17, 0)]
                    self.boot(tid, self.at(day, 7, 55) + rng.randrange(5 * MIN))
                    for _, ts, run in early:
                        if self.plant and tid == gap_term and day == gap_prev and ts >= self.at(day, 13, 0):
                            continue  # lost with the disk
                        run()
                    if self.plant and tid == gap_term and day == gap_prev:
                        continue  # no agent.stop reached the centre
                    self.shutdown(tid, self.at(day, 17, 30) + rng.randrange(10 * MIN))
                    for _, ts, run in late:
                        run()
        if self.plant:
            self._post_hoc(silent_term, self.at(silent_from, 0, 0), self.at(silent_to, 0, 0))

    def _all_records(self):
        for tid, t in self.terms.items():
            for lg in t['logs']:
                for line in lg.lines:
                    yield json.loads(line)

    def _post_hoc(self, silent_term, a, b):
        """Expectations that depend on the time order of everything written: computed from the records."""
        recs = sorted(self._all_records(), key=lambda r: (r['ts'], r['log'], r['seq']))
        owner = {cid: c['operator'] for cid, c in self.cards.items()}
        # secret-overdue: the first login of the operator who never changes the PIN more than 183 days
        # after the first record that names them (their op or their card).
        p = self.never_changes
        first = None
        for r in recs:
            if r['op'] == p or owner.get(r['card']) == p:
                first = first if first is not None else r['ts']
                if r['ev'] == 'session.start' and r['ts'] - first > 183 * 86400 * SEC:
                    self.expect('secret-overdue', r['term'], [(r['log'], r['seq'])], op=p)
                    break
        else:
            raise AssertionError('the year is too short for secret-overdue (needs > 183 days)')
        # app-ops-unusual: the first and last app.op of the busy operator.
        ops = [r for r in recs if r['ev'] == 'app.op' and r['op'] == self.heavy]
        self.expect('app-ops-unusual', ops[-1]['term'], [(ops[0]['log'], ops[0]['seq']),
                                                         (ops[-1]['log'], ops[-1]['seq'])], op=self.heavy)
        # terminal-silent: its last record before the silence and the first after.
        mine = [r for r in recs if r['term'] == silent_term]
        before = [r for r in mine if r['ts'] < a][-1]
        after = [r for r in mine if r['ts'] >= b][0]
        self.expect('terminal-silent', silent_term, [(before['log'], before['seq']), (after['log'], after['seq'])])

    def records(self):
        return sum(len(l.lines) for t in self.terms.values() for l in t['logs'])

    # ---- out ----

    def post_all(self, post, batch=2000):
        """post(tid, lines_with_newlines) → (status, body); every batch must be 200."""
        for tid, t in self.terms.items():
            for lg in t['logs']:
                for i in range(0, len(lg.lines), batch):
                    chunk = [l + b'\n' for l in lg.lines[i:i + batch]]
                    status, body = post(tid, chunk)
                    if status != 200:
                        raise AssertionError(f'POST {tid} {lg.id} [{i}:{i + batch}]: {status} {body}')

    def plant_fork_and_bad_signature(self, post):
        """After everything is stored: a forked record and a badly signed one, as a broken terminal sends them."""
        a = self.offices[0]['terms'][0]
        lg = self.terms[a]['logs'][0]
        k = len(lg.lines) // 2
        rec = json.loads(lg.lines[k - 1])
        rec['data'] = dict(rec['data'], forged='1')
        del rec['sig']
        rec['sig'] = b64(lg.key_for(k).sign(jcs(rec).encode()))
        status, body = post(a, [jcs(rec).encode() + b'\n'])
        assert status == 409 and body.get('error') == 'fork', (status, body)
        self.expect('log-fork', a, [(lg.id, k)])
        b_ = self.offices[1 % len(self.offices)]['terms'][0]
        lg = self.terms[b_]['logs'][0]
        seq = lg.append(self.at(self.days - 1, 17, 50), 'app.op', None, None, {'action': 'late'})
        line = lg.lines[-1]
        rec = json.loads(line)
        sig = bytearray(base64.b64decode(rec['sig']))
        sig[10] ^= 1
        rec['sig'] = b64(bytes(sig))
        status, body = post(b_, [jcs(rec).encode() + b'\n'])
        assert status == 422, (status, body)
        self.expect('log-bad-signature', b_, [(lg.id, seq)])
        status, body = post(b_, [line + b'\n'])
        assert status == 200, (status, body)


if __name__ == '__main__':
    import sys
    w = World(days=int(sys.argv[1]) if len(sys.argv) > 1 else 365)
    w.generate()
    print(w.records(), 'records;', len(w.expected), 'planted findings')
    for e in w.expected:
        print(e['kind'], e['term'], e['records'])
