#!/usr/bin/python3
"""mamorid and systemd: READY=1 and watchdog pings on a test-owned NOTIFY_SOCKET, clean SIGTERM,
and configuration errors that stop the daemon with file:line. No card or pcscd needed."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.environ.get("MAMORI_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
MAMORID = os.path.join(BUILD, "agent", "mamorid")


class NotifySocket:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, tmp):
        self.path = os.path.join(tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def wait_for(self, key, timeout):
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            seen.append(msg)
            if key in msg.split("\n"):
                return seen
        raise AssertionError(f"{key} not received within {timeout}s; got {seen}")

    def close(self):
        self.sock.close()


class MamoridNotifyTest(unittest.TestCase):
    def setUp(self):
        self.tmpdir = tempfile.TemporaryDirectory(prefix="mamori-notify-")
        self.tmp = self.tmpdir.name
        self.conf = os.path.join(self.tmp, "agent.conf")
        state = os.path.join(self.tmp, "state")
        with open(self.conf, "w") as f:
            f.write("[Terminal]\nId=T-0001\nOffice=chuo\n")
        # Keep every path the daemon writes inside the test directory.
        os.mkdir(self.conf + ".d")
        with open(os.path.join(self.conf + ".d", "00-paths.conf"), "w") as f:
            f.write(f"[Terminal]\nIdentityKey={state}/keys/identity.pem\n[Log]\nDirectory={state}/log\n"
                    f"[Policy]\nDirectory={state}/policy\nSignerKey={self.tmp}/none.pub\n")
        self.notify = NotifySocket(self.tmp)
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.notify.close()
        self.tmpdir.cleanup()

    def start(self, **extra_env):
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = self.notify.path
        # No pcscd at this path: the daemon must still start and say the readers are lost.
        env["PCSCLITE_CSOCK_NAME"] = os.path.join(self.tmp, "no-pcscd.comm")
        env.pop("JOURNAL_STREAM", None)
        env.update(extra_env)
        self.proc = subprocess.Popen([MAMORID, "--config", self.conf], env=env,
                                     stderr=subprocess.PIPE, text=True)

    def test_ready_watchdog_and_clean_stop(self):
        self.start(WATCHDOG_USEC="200000")
        self.notify.wait_for("READY=1", 5)
        # Two pings inside a window of a few watchdog periods: it really pings, not only once.
        self.notify.wait_for("WATCHDOG=1", 2)
        self.notify.wait_for("WATCHDOG=1", 2)
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.notify.wait_for("STOPPING=1", 1)
        rc = self.proc.wait(timeout=5)
        elapsed = time.monotonic() - t0
        err = self.proc.stderr.read()
        self.assertEqual(rc, 0, err)
        self.assertLess(elapsed, 1.0, "SIGTERM must stop mamorid within a second")
        lines = err.splitlines()
        self.assertTrue(any(line.startswith("agent.start ") for line in lines), err)
        self.assertIn("reader.lost reader=* reason=pcscd-gone", err)
        self.assertTrue(lines[-1].startswith("agent.stop "), err)

    def test_bad_config_names_file_and_line(self):
        with open(self.conf, "w") as f:
            f.write("[Terminal]\nId=T-0001\n[Session]\nIdleLockSec=99999999999999999999999\n")
        self.start()
        rc = self.proc.wait(timeout=5)
        err = self.proc.stderr.read()
        self.assertEqual(rc, 1)
        self.assertIn(f"{self.conf}:4: bad value for IdleLockSec in [Session]", err)
        self.assertNotIn("agent.start", err, "a daemon with a broken config must not start")

    def test_bad_dropin_stops_startup(self):
        with open(os.path.join(self.conf + ".d", "50-site.conf"), "w") as f:
            f.write("[Session\nIdleLockSec=5\n")
        self.start()
        self.assertEqual(self.proc.wait(timeout=5), 1)
        self.assertIn("50-site.conf:1: section header lacks its closing ']'", self.proc.stderr.read())

    def test_unknown_key_is_only_a_warning(self):
        with open(self.conf, "a") as f:
            f.write("[Session]\nFrobnicate=yes\n")
        self.start()
        self.notify.wait_for("READY=1", 5)
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=5), 0)
        self.assertIn(f"{self.conf}:5: unknown key Frobnicate in [Session]", self.proc.stderr.read())


if __name__ == "__main__":
    unittest.main(verbosity=2)
