#!/usr/bin/python3
"""Operation log end to end: the independent verifier accepts what the writer and mamorid write;
tampering (flipped byte, removed/swapped lines, torn tail, re-signing with the identity key after a
rotation) is caught by `mamorictl log verify`; SIGKILL at random moments never loses an
acknowledged record; a full disk leaves no half record, makes the writer unwritable, and appends
resume when space returns."""
import base64
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import indep_verify  # noqa: E402
from indep_verify import read_bytes  # noqa: E402

from cryptography.hazmat.primitives import serialization  # noqa: E402

BUILD = os.environ.get("MAMORI_BUILD_DIR", os.path.join(HERE, "../../build"))
APPENDER = os.path.join(BUILD, "tests", "integration", "oplog-appender")
MAMORICTL = os.path.join(BUILD, "agent", "mamorictl")
MAMORID = os.path.join(BUILD, "agent", "mamorid")
ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")


def segments(d):
    return sorted(n for n in os.listdir(d) if re.match(r"^seg-\d{20}\.log$", n))


def all_lines(d):
    out = []
    for n in segments(d):
        data = read_bytes(os.path.join(d, n))
        out.extend((n, l) for l in data.split(b"\n")[:-1])
    return out


class Log:
    """A log directory with its keys, written by tests/integration/oplog-appender."""

    def __init__(self, root, pubdir=None):
        self.root = root
        self.pubdir = pubdir or root
        self.dir = os.path.join(root, "log")
        self.keys = os.path.join(root, "keys")
        self.identity = os.path.join(self.keys, "identity.pem")

    def append(self, threads=1, count=10, rotate=1000, segment=0, timeout=60):
        p = subprocess.run([APPENDER, self.dir, self.keys, self.identity, str(threads), str(count),
                            str(rotate), str(segment)], capture_output=True, text=True, env=ENV,
                           timeout=timeout)
        if p.returncode != 0:
            raise AssertionError("appender failed: %s %s" % (p.stdout[-500:], p.stderr[-2000:]))
        return p.stdout

    def public_pem(self):
        path = os.path.join(self.pubdir, "identity.pub")
        key = serialization.load_pem_private_key(read_bytes(self.identity), password=None)
        with open(path, "wb") as f:
            f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
        return path

    def ctl_verify(self, d=None):
        return subprocess.run([MAMORICTL, "log", "verify", d or self.dir, "--identity", self.public_pem()],
                              capture_output=True, text=True, env=ENV, timeout=120)


class OplogTest(unittest.TestCase):
    def setUp(self):
        self.tmpdir = tempfile.TemporaryDirectory(prefix="mamori-oplog-")
        self.tmp = self.tmpdir.name
        self.log = Log(self.tmp)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
        self.tmpdir.cleanup()

    def assert_intact(self, log, d=None):
        r = log.ctl_verify(d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("intact", r.stdout)
        n = indep_verify.verify_dir(d or log.dir, log.public_pem())
        self.assertEqual(int(r.stdout.split()[1]), n)
        return n

    def assert_broken(self, d, what):
        r = self.log.ctl_verify(d)
        self.assertEqual(r.returncode, 1, "%s not detected: %s %s" % (what, r.stdout, r.stderr))
        self.assertIn("BROKEN", r.stderr)
        with self.assertRaises(indep_verify.Broken, msg=what):
            indep_verify.verify_dir(d, self.log.public_pem())
        return r.stderr

    # ---- the independent verifier accepts the agent's log ----

    def test_independent_verifier_accepts_writer(self):
        self.log.append(threads=4, count=400, rotate=25, segment=8192)
        self.log.append(threads=2, count=50, rotate=25, segment=8192)  # a second run continues the chain
        n = self.assert_intact(self.log)
        rotations = sum(1 for _, l in all_lines(self.log.dir) if b'"ev":"key.rotate"' in l)
        self.assertEqual(n - rotations, 1 + 400 + 1 + 50 + 1)  # log.open, appends, 2× agent.stop
        self.assertGreaterEqual(rotations, 450 // 25 - 1)
        self.assertGreater(len(segments(self.log.dir)), 3)
        # Exactly one epoch key survives: every older one was destroyed.
        self.assertEqual(len([k for k in os.listdir(self.log.keys) if k.startswith("log-key-")]), 1)
        self.assertEqual(os.stat(self.log.identity).st_mode & 0o777, 0o600)
        # export prints the same lines as JSON.
        out = subprocess.run([MAMORICTL, "log", "export", self.log.dir], capture_output=True, env=ENV,
                             check=True).stdout
        exported = out.split(b"\n")[:-1]
        self.assertEqual(exported, [l for _, l in all_lines(self.log.dir)])
        self.assertEqual(json.loads(exported[0])["ev"], "log.open")

    def test_independent_verifier_accepts_mamorid(self):
        conf = os.path.join(self.tmp, "agent.conf")
        with open(conf, "w") as f:
            f.write("[Terminal]\nId=T-0042\nIdentityKey=%s\n[Log]\nDirectory=%s\nKeyRotateRecords=2\n"
                    "[Policy]\nDirectory=%s\n" % (self.log.identity, self.log.dir, os.path.join(self.tmp, "policy")))
        env = dict(ENV, PCSCLITE_CSOCK_NAME=os.path.join(self.tmp, "no-pcscd.comm"))
        env.pop("NOTIFY_SOCKET", None)
        for _ in range(2):
            p = subprocess.Popen([MAMORID, "--config", conf], stderr=subprocess.PIPE, text=True, env=env)
            self.procs.append(p)
            time.sleep(1.0)
            p.send_signal(signal.SIGTERM)
            p.communicate(timeout=10)
        r = subprocess.run([MAMORICTL, "identity", "--config", conf], capture_output=True, text=True, env=ENV)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, read_bytes(self.log.public_pem()).decode())
        self.assert_intact(self.log)
        recs = [json.loads(l) for _, l in all_lines(self.log.dir)]
        evs = [r["ev"] for r in recs]
        self.assertEqual(evs[0], "log.open")
        starts = [r for r in recs if r["ev"] == "agent.start"]
        self.assertEqual([s["data"]["previous"] for s in starts], ["new", "clean"])
        self.assertEqual(evs.count("agent.stop"), 2)
        self.assertIn("key.rotate", evs)
        self.assertTrue(all(r["term"] == "T-0042" for r in recs))

    def test_identity_missing_is_reported(self):
        conf = os.path.join(self.tmp, "agent.conf")
        with open(conf, "w") as f:
            f.write("[Terminal]\nId=T-1\nIdentityKey=%s/none.pem\n" % self.tmp)
        r = subprocess.run([MAMORICTL, "identity", "--config", conf], capture_output=True, text=True, env=ENV)
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not exist", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "none.pem")))

    # ---- tampering ----

    def tampered_copy(self, name, mutate):
        d = os.path.join(self.tmp, name)
        shutil.copytree(self.log.dir, d)
        mutate(d)
        return d

    def test_tampering_detected(self):
        self.log.append(threads=1, count=120, rotate=10, segment=6000)
        self.assert_intact(self.log)
        segs = segments(self.log.dir)
        self.assertGreater(len(segs), 2)
        mid = segs[1]

        def rewrite(d, seg, fn):
            path = os.path.join(d, seg)
            lines = read_bytes(path).split(b"\n")[:-1]
            lines = fn(lines)
            with open(path, "wb") as f:
                f.write(b"".join(l + b"\n" for l in lines))

        def flip(d):
            path = os.path.join(d, mid)
            data = bytearray(read_bytes(path))
            pos = random.Random(7).randrange(len(data) // 3, len(data) - 2)
            if data[pos] == ord("\n"):
                pos += 1
            data[pos] ^= 0x04
            with open(path, "wb") as f:
                f.write(bytes(data))

        why = self.assert_broken(self.tampered_copy("flip", flip), "flipped byte")
        self.assertIn(mid, why)
        why = self.assert_broken(self.tampered_copy("removed", lambda d: rewrite(d, mid, lambda ls: ls[:3] + ls[4:])),
                                 "removed line")
        self.assertIn("line 4", why)
        why = self.assert_broken(self.tampered_copy(
            "swapped", lambda d: rewrite(d, mid, lambda ls: ls[:2] + [ls[3], ls[2]] + ls[4:])), "swapped lines")
        self.assertIn("line 3", why)

        def truncate(d):
            path = os.path.join(d, segments(d)[-1])
            size = os.path.getsize(path)
            os.truncate(path, size - 17)
        why = self.assert_broken(self.tampered_copy("truncated", truncate), "truncated tail")
        self.assertIn("truncated", why)

        def remove_segment(d):
            os.unlink(os.path.join(d, mid))
        self.assert_broken(self.tampered_copy("nosegment", remove_segment), "removed segment")

        # A thief with the identity key rewrites a record written after a key rotation.
        identity = serialization.load_pem_private_key(read_bytes(self.log.identity), password=None)

        def resign(d):
            def fn(lines):
                r = json.loads(lines[5])
                self.assertNotEqual(r["ev"], "log.open")
                r["op"] = "INTRUDER"
                del r["sig"]
                r["sig"] = base64.b64encode(identity.sign(indep_verify.jcs(r).encode())).decode()
                lines[5] = indep_verify.jcs(r).encode()
                return lines
            rewrite(d, segs[-1], fn)
        why = self.assert_broken(self.tampered_copy("resigned", resign), "re-signed with the identity key")
        self.assertIn("signature", why)

    # ---- crashes ----

    @staticmethod
    def read_until_ack(p, timeout):
        """Raw stdout of an appender up to its first complete "ack N" line (or EOF, or timeout)."""
        got = b""
        end = time.monotonic() + timeout
        while not re.search(rb"(^|\n)ack \d+\n", got):
            left = end - time.monotonic()
            if left <= 0 or not select.select([p.stdout], [], [], left)[0]:
                break
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                break
            got += chunk
        return got

    def test_kill9_never_loses_acknowledged_records(self):
        kills = int(os.environ.get("MAMORI_OPLOG_KILLS", "200"))
        rng = random.Random(int(os.environ.get("MAMORI_OPLOG_SEED", "4242")))
        acked = set()
        torn_seen = 0
        deadline = time.monotonic() + 170
        done = 0
        for i in range(kills):
            self.assertLess(time.monotonic(), deadline, "crash test took too long after %d kills" % i)
            p = subprocess.Popen([APPENDER, self.log.dir, self.log.keys, self.log.identity, "4", "-1", "15", "8192"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, bufsize=0)
            self.procs.append(p)
            first = p.stdout.readline().decode()
            m = re.match(r"open previous=(\d) last=(\d+) torn=(\d+)", first)
            if not m:
                p.kill()
                self.fail("appender did not open: " + first + p.communicate()[1].decode()[-2000:])
            last = int(m.group(2))
            if int(m.group(3)):
                torn_seen += 1
            # Every record acknowledged before any earlier kill is still there after recovery.
            if acked:
                self.assertGreaterEqual(last, max(acked), "acknowledged records lost at restart %d" % i)
            if i > 0:
                self.assertEqual(int(m.group(1)), 2, "previous run should read as a crash")
            # Kill only once this run has acknowledged a record, so every kill lands while appending
            # however loaded the machine is; then a random moment later.
            early = self.read_until_ack(p, 20)
            time.sleep(rng.uniform(0.002, 0.04))
            p.kill()
            out, _ = p.communicate()
            out = early + out
            self.procs.remove(p)
            for line in out.decode().splitlines():
                if line.startswith("ack "):
                    acked.add(int(line[4:]))
            done += 1
            if i % 10 == 9:  # a full signature check costs ~1 s at this size under ASan
                self.assert_intact(self.log)
        # Final recovery, then the whole log verifies and holds every acknowledged seq.
        self.log.append(count=1)
        n = self.assert_intact(self.log)
        self.assertGreaterEqual(n, max(acked))
        present = set(json.loads(l)["seq"] for _, l in all_lines(self.log.dir))
        self.assertTrue(acked <= present)
        self.assertGreaterEqual(done, 200 if "MAMORI_OPLOG_KILLS" not in os.environ else kills)
        self.assertGreater(len(acked), kills)  # the kills really landed while appending
        print("crash test: %d kills, %d acknowledged records, %d torn tails recovered, %d records"
              % (done, len(acked), torn_seen, n), file=sys.stderr)

    # ---- disk full ----

    def test_disk_full(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        mnt = os.path.join(self.tmp, "small")
        os.mkdir(mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", mnt], check=True)
        try:
            self._disk_full(mnt)
        finally:
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            subprocess.run(["umount", mnt], check=True)

    def _disk_full(self, mnt):
        log = Log(mnt, pubdir=self.tmp)
        log.append(count=5)
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:  # leave a little room only
            try:
                f.write(b"\0" * (512 * 1024))
            except OSError:
                pass
        p = subprocess.Popen([APPENDER, log.dir, log.keys, log.identity, "2", "-1", "50"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        self.procs.append(p)
        fails = 0
        acks_before = 0
        while fails < 5:
            line = p.stdout.readline().decode()
            if not line:
                self.fail("appender exited: " + p.stderr.read().decode()[-2000:])
            if line.startswith("fail"):
                fails += 1
                self.assertRegex(line, r"^fail 28 .* writable=0")  # ENOSPC, and the health state says so
            elif line.startswith("ack"):
                acks_before += 1
        # No half-written record: every segment ends with a complete line and the log verifies.
        # The appender keeps retrying while we look, and a retry that hits ENOSPC leaves a partial
        # line until it cuts it back: a tail that is torn at every look (10 over ~1 s) is a real one.
        for attempt in range(10):
            try:
                for n in segments(log.dir):
                    data = read_bytes(os.path.join(log.dir, n))
                    self.assertTrue(not data or data.endswith(b"\n"), n)
                self.assert_intact(log)
                break
            except (AssertionError, indep_verify.Broken):
                if attempt == 9:
                    raise
                time.sleep(0.1)
        # Space returns: appends resume.
        os.unlink(filler)
        acks_after = 0
        t0 = time.monotonic()
        while acks_after < 20 and time.monotonic() - t0 < 20:
            line = p.stdout.readline().decode()
            if line.startswith("ack"):
                acks_after += 1
        self.assertEqual(acks_after, 20, "appends did not resume after space returned")
        p.kill()
        p.communicate()
        log.append(count=1)
        self.assert_intact(log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
