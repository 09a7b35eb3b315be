#!/usr/bin/python3
# Several collectors, one PostgreSQL: one log posted to two collector processes at once is stored once.
"""Two mamori-collector processes on one database of a private PostgreSQL cluster (pgcluster.py),
sharing one StateDirectory (one receipt key per deployment). Independent clients — records signed
in Python (auditgen.Log), receipts checked in Python (indep_verify.py) — post the same logs to both
collectors at the same moment, each in its own random batch cuts, resending from the acknowledged
seq after a 409 as the uploader does. Every record must be stored exactly once, no fork or gap
raised, every 200 carry a receipt that verifies with the one receipt key and names the client's own
record, and both collectors acknowledge the whole log in the end."""
import copy
import hashlib
import http.client
import json
import os
import random
import threading
import unittest

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import auditgen
import bench
import enroltool
import indep_verify
import pgcluster
from test_collector import Centre

TERMS = 4
RECORDS = 240


class TwoCollectorsOnePostgres(unittest.TestCase):
    def setUp(self):
        if not pgcluster.Cluster().available():
            self.skipTest('PostgreSQL is not installed (Debian postgresql-15)')
        self._tmp = bench.TempDir('mamori-multi-')
        self.tmp = self._tmp.__enter__()
        self.centre = Centre(self.tmp, store='postgresql')
        rng = random.Random(15)
        self.logs = []
        for i in range(TERMS):
            tid = f'T-{i + 1:04d}'
            identity = Ed25519PrivateKey.from_private_bytes(rng.getrandbits(256).to_bytes(32, 'big'))
            pub = os.path.join(self.tmp, tid + '.pub')
            with open(pub, 'wb') as f:
                f.write(identity.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
            enroltool.enrol(self.centre.admin, tid, 'chuo', pub, os.path.join(self.tmp, tid))
            lg = auditgen.Log(rng, tid, identity, rotate_every=37)
            for k in range(RECORDS):  # + log.open and the key.rotate records
                lg.append(1_760_000_000_000_000 + k * 1_000_000, 'app.op', 'OP0001', None, {'n': k})
            self.logs.append(lg)
        self.collectors = [self.centre, copy.copy(self.centre)]
        for c in self.collectors:
            c.start()
        self.receipt_key = self.centre.receipt_key()

    def tearDown(self):
        for c in getattr(self, 'collectors', []):
            c.stop()
        if hasattr(self, '_tmp'):
            self._tmp.__exit__(None, None, None)

    def upload(self, collector, lg, seed, answers):
        """An uploader of lg bound to one collector: random batch cuts, resend from acked + 1."""
        rng = random.Random(seed)
        hashes = [None] + [hashlib.sha256(l).hexdigest() for l in lg.lines]
        conn = http.client.HTTPSConnection('127.0.0.1', collector.port, timeout=120,
                                           context=collector.context(os.path.join(self.tmp, lg.term)))
        nxt = 1
        try:
            while nxt <= lg.seq:
                end = min(lg.seq, nxt + rng.randint(1, 40) - 1)
                body = b''.join(l + b'\n' for l in lg.lines[nxt - 1:end])
                conn.request('POST', '/v1/records', body=body, headers={'Content-Type': 'application/x-ndjson'})
                r = conn.getresponse()
                data = r.read()
                answer = json.loads(data)
                answers.append((r.status, answer))
                if r.status == 200:
                    rc = indep_verify.check_receipt(answer['receipt'], self.receipt_key)
                    assert rc['log'] == lg.id and rc['acked'] == answer['acked'], (rc, answer)
                    assert rc['acked'] >= end, ('acknowledged less than was sent', rc, end)
                    assert rc['line'] == hashes[rc['acked']], ('receipt names another record', rc)
                    nxt = rc['acked'] + 1
                elif r.status == 409 and 'error' not in answer:
                    nxt = answer['acked'] + 1  # a gap: the other collector has not stored yet
                else:
                    raise AssertionError(f'{lg.term}: {r.status} {answer}')
        finally:
            conn.close()

    def test_same_logs_posted_to_both_collectors_at_once(self):
        answers, errors, threads = [], [], []

        def run(*args):
            try:
                self.upload(*args)
            except Exception as e:  # reported below, in the test's thread
                errors.append(e)

        for i, lg in enumerate(self.logs):
            for j, c in enumerate(self.collectors):
                threads.append(threading.Thread(target=run, args=(c, lg, i * 10 + j, answers)))
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        self.assertEqual(errors, [])
        self.assertGreater(sum(1 for s, _ in answers if s == 200), len(threads))
        c = self.centre
        rows = c.sql('SELECT log, count(*), count(DISTINCT seq), min(seq), max(seq) FROM records GROUP BY log'
                     ' ORDER BY log')
        want = sorted((lg.id, lg.seq, lg.seq, 1, lg.seq) for lg in self.logs)
        self.assertEqual(rows, want, 'every record stored once, none missing')
        # The stored bytes are the sent ones (the store keeps no hash beside the line: made here from it).
        rows = c.sql("SELECT log, seq, encode(sha256(convert_to(line, 'UTF8')), 'hex') FROM records")
        stored = dict(((lg, seq), h) for lg, seq, h in rows)
        for lg in self.logs:
            for seq, line in enumerate(lg.lines, 1):
                self.assertEqual(stored[(lg.id, seq)], hashlib.sha256(line).hexdigest())
        self.assertEqual(c.alerts(), [], 'no fork, gap or chain alert from the race')
        # Both collectors acknowledge the whole log, with the same receipt contents.
        for lg in self.logs:
            seen = []
            for col in self.collectors:
                status, body, _ = col.request(os.path.join(self.tmp, lg.term), 'GET', f'/v1/logs/{lg.id}/acked')
                self.assertEqual(status, 200, body)
                rc = indep_verify.check_receipt(body['receipt'], self.receipt_key)
                seen.append((rc['acked'], rc['line'], rc['key']))
            self.assertEqual(seen[0], seen[1])
            self.assertEqual(seen[0][0], lg.seq)


if __name__ == '__main__':
    unittest.main()
