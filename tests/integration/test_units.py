#!/usr/bin/python3
"""Deployment files: the systemd units verify and are hardened (exposure scores asserted), sysusers
and tmpfiles create the users and the /var/lib/mamori tree with the right owners and modes, the
D-Bus policy lets only root own org.mamori.Agent1 and everyone call it (checked on a real
dbus-daemon), and the .deb packages hold every file where it belongs."""
import gzip
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.environ.get("MAMORI_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
SOURCE = os.environ.get("MAMORI_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))


def shipped_units():
    """Every unit the project ships, named by its source in systemd/ (NAME.service.in, NAME.timer):
    a unit added there is verified here without anyone listing it."""
    d = os.path.join(SOURCE, "systemd")
    return sorted(n[:-len(".in")] if n.endswith(".in") else n for n in os.listdir(d)
                  if n.endswith((".service.in", ".timer")))


def source_of(unit):
    """The file to edit for unit: systemd/NAME.service.in or systemd/NAME.timer."""
    name = unit + ".in" if os.path.exists(os.path.join(SOURCE, "systemd", unit + ".in")) else unit
    return os.path.join("systemd", name)


UNITS = shipped_units()
# Highest acceptable `systemd-analyze security` exposure (0 = fully locked down, 10 = none); every
# shipped service must have one (test_every_service_has_an_exposure_bound).
EXPOSURE_MAX = {"mamorid.service": 1.5, "mamori-uploader.service": 2.0, "mamori-collector.service": 2.5,
                "mamori-policy-refresh.service": 2.0, "mamori-retention.service": 2.0}


def read(path):
    with open(path) as f:
        return f.read()


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)


class Installed:
    """One `meson install --destdir` of the build under test, shared by all tests."""

    tmp = None
    root = None

    @classmethod
    def get(cls):
        if cls.root is None:
            cls.tmp = tempfile.TemporaryDirectory(prefix="mamori-units-")
            cls.root = os.path.join(cls.tmp.name, "root")
            r = run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet", "--destdir", cls.root])
            if r.returncode != 0:
                raise AssertionError(f"meson install failed: {r.stdout}{r.stderr}")
        return cls.root

    @classmethod
    def find(cls, name):
        """Installed path (inside the destdir) of the file called name; exactly one must exist."""
        hits = []
        for d, _, files in os.walk(cls.get()):
            if name in files:
                hits.append(os.path.join(d, name))
        if len(hits) != 1:
            raise AssertionError(f"{name}: expected one installed copy, found {hits}")
        return hits[0]

    @classmethod
    def cleanup(cls):
        if cls.tmp:
            cls.tmp.cleanup()
            cls.tmp = cls.root = None


def tearDownModule():
    Installed.cleanup()


class UnitFiles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        root = Installed.get()
        cls.tmp = tempfile.TemporaryDirectory(prefix="mamori-verify-")
        cls.unitdir = os.path.join(cls.tmp.name, "units")
        os.makedirs(cls.unitdir)
        missing = []
        for unit in UNITS:
            text = read(Installed.find(unit))
            # Point ExecStart= at the installed tree; every program a unit starts must be installed.
            def repl(m):
                path = m.group(2)
                if not os.access(root + path, os.X_OK):
                    missing.append(f"{unit}: {path}")
                return m.group(1) + root + path

            text = re.sub(r"^(Exec\w+=[-@:+!]*)(/\S+)", repl, text, flags=re.M)
            with open(os.path.join(cls.unitdir, unit), "w") as f:
                f.write(text)
        if missing:
            cls.tmp.cleanup()
            raise AssertionError(f"programs the units start are not installed by meson: {missing}")
        mandirs = {os.path.dirname(os.path.dirname(Installed.find(p))) for p in ("mamorid.8", "agent.conf.5")}
        cls.env = dict(os.environ, MANPATH=":".join(sorted(mandirs)), SYSTEMD_LOG_COLOR="0")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_mamorid_is_installed_and_referenced(self):
        root = Installed.get()
        unit = read(os.path.join(self.unitdir, "mamorid.service"))
        m = re.search(r"^ExecStart=(\S+)", unit, re.M)
        self.assertTrue(m.group(1).startswith(root) and m.group(1).endswith("/sbin/mamorid"), m.group(1))

    def test_verify(self):
        for unit in UNITS:
            with self.subTest(unit=source_of(unit)):
                r = run(["systemd-analyze", "verify", "--man=yes", os.path.join(self.unitdir, unit)],
                        env=self.env)
                # Every diagnostic about our unit counts (unknown keys, bad values, missing man pages).
                ours = [l for l in r.stderr.splitlines() if l.startswith(unit)]
                self.assertEqual(r.returncode, 0, f"{source_of(unit)}: {r.stderr}")
                self.assertEqual(ours, [], f"{source_of(unit)}: {r.stderr}")

    def test_every_service_has_an_exposure_bound(self):
        services = [u for u in UNITS if u.endswith(".service")]
        self.assertIn("mamorid.service", services)
        self.assertEqual(sorted(EXPOSURE_MAX), services,
                         "each shipped service (systemd/*.service.in) needs a bound in EXPOSURE_MAX")

    def test_policy_refresh_timer(self):
        """§8 lifecycle: a timer starts `mamori-admin policy refresh` often enough (at least hourly)
        that a bundle is re-signed long before half of its validity has passed."""
        timer = read(os.path.join(self.unitdir, "mamori-policy-refresh.timer"))
        service = read(os.path.join(self.unitdir, "mamori-policy-refresh.service"))
        self.assertRegex(timer, r"(?m)^OnCalendar=hourly$")
        self.assertRegex(timer, r"(?m)^Persistent=true$")
        self.assertRegex(timer, r"(?m)^WantedBy=timers.target$")
        self.assertRegex(service, r"(?m)^ExecStart=\S+/mamori-admin --config /etc/mamori/collector.conf policy refresh$")
        self.assertRegex(service, r"(?m)^PrivateNetwork=yes$")

    def test_collector_cannot_see_admin_keys(self):
        """DESIGN §11: the collector's unit makes mamori-admin's directory inaccessible; the refresh
        service (root) reads the policy key there and may move an older centre's keys into it."""
        collector = read(os.path.join(self.unitdir, "mamori-collector.service"))
        self.assertRegex(collector, r"(?m)^InaccessiblePaths=-?/var/lib/mamori-admin$")
        refresh = read(os.path.join(self.unitdir, "mamori-policy-refresh.service"))
        self.assertRegex(refresh, r"(?m)^StateDirectory=mamori-admin$")
        self.assertRegex(refresh, r"(?m)^StateDirectoryMode=0700$")
        self.assertRegex(refresh, r"(?m)^ConditionPathExists=\|/var/lib/mamori-admin/policy.key$")

    def security(self, unit):
        r = run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                 os.path.join(self.unitdir, unit)], env=self.env)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        return float(m.group(1)), r.stdout

    def test_exposure(self):
        for unit in EXPOSURE_MAX:
            with self.subTest(unit=source_of(unit)):
                score, out = self.security(unit)
                print(f"{unit}: exposure {score}", file=sys.stderr)
                self.assertLessEqual(score, EXPOSURE_MAX[unit], f"{source_of(unit)}:\n{out}")

    def test_mamorid_has_no_network_and_no_capabilities(self):
        _, out = self.security("mamorid.service")
        passed = {l.split()[1] for l in out.splitlines() if l.startswith("✓")}
        for check in ["PrivateNetwork=", "RestrictAddressFamilies=~AF_(INET|INET6)",
                      "RestrictAddressFamilies=~AF_NETLINK", "CapabilityBoundingSet=~CAP_SYS_ADMIN",
                      "NoNewPrivileges=", "ProtectHome=", "ProtectSystem=",
                      "SystemCallFilter=~@privileged"]:
            self.assertIn(check, passed, out)
        unit = read(os.path.join(self.unitdir, "mamorid.service"))
        self.assertRegex(unit, r"(?m)^CapabilityBoundingSet=$")
        self.assertRegex(unit, r"(?m)^Type=notify$")
        self.assertRegex(unit, r"(?m)^WatchdogSec=\d+")
        self.assertRegex(unit, r"(?m)^ReadWritePaths=/var/lib/mamori$")
        self.assertRegex(unit, r"(?m)^DeviceAllow=char-input r$")

    def test_uploader_cannot_reach_keys(self):
        unit = read(os.path.join(self.unitdir, "mamori-uploader.service"))
        self.assertRegex(unit, r"(?m)^User=mamori-upload$")
        self.assertRegex(unit, r"(?m)^InaccessiblePaths=.*/var/lib/mamori/keys")
        self.assertRegex(unit, r"(?m)^ReadOnlyPaths=/var/lib/mamori/log$")
        rw = re.findall(r"(?m)^ReadWritePaths=(.*)$", unit)
        self.assertEqual(sorted(" ".join(rw).split()), ["/var/lib/mamori/policy", "/var/lib/mamori/upload"])
        _, out = self.security("mamori-uploader.service")
        passed = {l.split()[1] for l in out.splitlines() if l.startswith("✓")}
        for check in ["User=/DynamicUser=", "PrivateUsers=", "PrivateDevices=", "CapabilityBoundingSet=~CAP_SYS_ADMIN"]:
            self.assertIn(check, passed, out)


class SysusersTmpfiles(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="mamori-sysroot-")
        self.root = self.tmp.name
        os.makedirs(os.path.join(self.root, "etc"))

    def tearDown(self):
        self.tmp.cleanup()

    def sysusers(self):
        files = self.conf_files("sysusers.d")
        r = run(["systemd-sysusers", f"--root={self.root}", *files])
        self.assertEqual(r.returncode, 0, r.stderr)
        users = {}
        for line in read(os.path.join(self.root, "etc/passwd")).splitlines():
            f = line.split(":")
            users[f[0]] = f
        groups = {}
        for line in read(os.path.join(self.root, "etc/group")).splitlines():
            f = line.split(":")
            groups[f[0]] = f
        return users, groups

    @staticmethod
    def conf_files(kind):
        out = []
        for d, _, files in os.walk(Installed.get()):
            if d.endswith("/" + kind):
                out += [os.path.join(d, f) for f in sorted(files)]
        return out

    def test_sysusers_creates_system_users(self):
        users, groups = self.sysusers()
        for name in ["mamori-upload", "mamori-collector"]:
            self.assertIn(name, users)
            uid = int(users[name][2])
            self.assertLess(uid, 1000, "must be a system user")
            self.assertGreater(uid, 0)
            self.assertEqual(users[name][6], "/usr/sbin/nologin")
            self.assertIn(name, groups)
        self.assertIn("mamori-apps", groups)
        # The accounts pam_mamori governs (DESIGN.md §4): a system group, empty until the
        # administrator adds the counter account.
        self.assertIn("mamori-counter", groups)
        self.assertLess(int(groups["mamori-counter"][2]), 1000)
        self.assertEqual(groups["mamori-counter"][3], "")

    def test_tmpfiles_modes_and_owners(self):
        users, groups = self.sysusers()
        conf = [p for p in self.conf_files("tmpfiles.d") if p.endswith("/mamori.conf")]
        self.assertEqual(len(conf), 1)
        r = run(["systemd-tmpfiles", "--create", f"--root={self.root}", conf[0]])
        self.assertEqual(r.returncode, 0, r.stderr)
        up_uid = int(users["mamori-upload"][2])
        up_gid = int(groups["mamori-upload"][2])
        want = {  # path: (mode, uid, gid)
            "var/lib/mamori": (0o755, 0, 0),
            "var/lib/mamori/log": (0o2750, 0, up_gid),
            "var/lib/mamori/keys": (0o700, 0, 0),
            "var/lib/mamori/prints": (0o700, 0, 0),
            "var/lib/mamori/passwords": (0o700, 0, 0),
            "var/lib/mamori/policy": (0o755, up_uid, up_gid),
            "var/lib/mamori/upload": (0o755, up_uid, up_gid),
            "var/lib/mamori/cache": (0o700, 0, 0),
            "run/mamori": (0o755, 0, 0),
        }
        for path, (mode, uid, gid) in want.items():
            with self.subTest(path=path):
                st = os.lstat(os.path.join(self.root, path))
                self.assertTrue(stat.S_ISDIR(st.st_mode))
                self.assertEqual(oct(stat.S_IMODE(st.st_mode)), oct(mode))
                self.assertEqual((st.st_uid, st.st_gid), (uid, gid))

    def test_uploader_user_can_read_log_but_not_keys(self):
        """The directory modes, exercised as the uploader's uid: log readable, keys not."""
        users, groups = self.sysusers()
        conf = [p for p in self.conf_files("tmpfiles.d") if p.endswith("/mamori.conf")][0]
        self.assertEqual(run(["systemd-tmpfiles", "--create", f"--root={self.root}", conf]).returncode, 0)
        os.chmod(self.root, 0o755)
        lib = os.path.join(self.root, "var/lib/mamori")
        with open(os.path.join(lib, "keys/identity.pem"), "w") as f:
            f.write("secret")
        # A file mamorid writes into log/ inherits the group (setgid dir); mode 0640 as oplog uses.
        seg = os.path.join(lib, "log/seg-1.jsonl")
        fd = os.open(seg, os.O_CREAT | os.O_WRONLY, 0o640)
        os.close(fd)
        uid, gid = int(users["mamori-upload"][2]), int(groups["mamori-upload"][2])
        probe = ("import os,sys\n"
                 "os.setgroups([]); os.setgid(%d); os.setuid(%d)\n"
                 "def can(p):\n"
                 "    try: open(p).read(); return 'y'\n"
                 "    except PermissionError: return 'n'\n"
                 "print(can(sys.argv[1]) + can(sys.argv[2]))\n") % (gid, uid)
        r = run([sys.executable, "-c", probe, seg, os.path.join(lib, "keys/identity.pem")])
        self.assertEqual(r.stdout.strip(), "yn", r.stderr)
        self.assertEqual(os.stat(seg).st_gid, gid)


DBUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  {include}
</busconfig>
"""

# Stands in for mamorid on the bus: owns the name, answers Ping and the Properties interface.
SERVICE = r"""
import sys, dbus, dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib
DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(sys.argv[1])
class Agent(dbus.service.Object):
    @dbus.service.method("org.mamori.Agent1", out_signature="s")
    def Ping(self): return "pong"
    @dbus.service.method("org.mamori.Other", out_signature="s")
    def Secret(self): return "leaked"
    @dbus.service.method("org.freedesktop.DBus.Properties", in_signature="ss", out_signature="v")
    def Get(self, i, p): return dbus.String("locked")
    @dbus.service.method("org.freedesktop.DBus.Properties", in_signature="s", out_signature="a{sv}")
    def GetAll(self, i): return {"State": dbus.String("locked")}
    @dbus.service.method("org.freedesktop.DBus.Properties", in_signature="ssv")
    def Set(self, i, p, v): pass
try:
    name = dbus.service.BusName("org.mamori.Agent1", bus, do_not_queue=True)
except dbus.exceptions.DBusException as e:
    print("own-failed " + e.get_dbus_name(), flush=True); sys.exit(1)
Agent(bus, "/org/mamori/Agent1")
print("ready", flush=True)
GLib.MainLoop().run()
"""


class DBusPolicy(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="mamori-dbus-")
        os.chmod(self.tmp.name, 0o755)
        self.procs = []
        self.policy = Installed.find("org.mamori.Agent1.conf")
        self.nobody = pwd.getpwnam("nobody")

    def tearDown(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        self.tmp.cleanup()

    def start_bus(self, with_policy=True):
        sock = os.path.join(self.tmp.name, "bus")
        conf = os.path.join(self.tmp.name, "bus.conf")
        with open(conf, "w") as f:
            f.write(DBUS_CONF.format(sock=sock, include=f"<include>{self.policy}</include>" if with_policy else ""))
        p = subprocess.Popen(["dbus-daemon", f"--config-file={conf}", "--nofork", "--print-address=1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        line = p.stdout.readline().strip()
        self.assertTrue(line.startswith("unix:"), f"dbus-daemon did not start: {line} {p.stderr.read() if p.poll() is not None else ''}")
        self.addr = line
        return line

    def start_service(self):
        p = subprocess.Popen(["/usr/bin/python3", "-c", SERVICE, self.addr],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p.stdout.readline().strip()

    def call(self, method, *args, as_nobody=True, dest="org.mamori.Agent1"):
        def drop():
            os.setgroups([])
            os.setgid(self.nobody.pw_gid)
            os.setuid(self.nobody.pw_uid)

        r = run(["dbus-send", f"--bus={self.addr}", "--print-reply", f"--dest={dest}",
                 "/org/mamori/Agent1" if dest == "org.mamori.Agent1" else "/org/freedesktop/DBus",
                 method, *args], preexec_fn=drop if as_nobody else None, timeout=30)
        return r.returncode, r.stdout + r.stderr

    def test_root_owns_everyone_calls(self):
        self.start_bus()
        self.assertEqual(self.start_service(), "ready")
        rc, out = self.call("org.mamori.Agent1.Ping")
        self.assertEqual(rc, 0, out)
        self.assertIn('"pong"', out)
        rc, out = self.call("org.freedesktop.DBus.Properties.Get", "string:org.mamori.Agent1", "string:State")
        self.assertEqual(rc, 0, out)
        rc, out = self.call("org.freedesktop.DBus.Properties.GetAll", "string:org.mamori.Agent1")
        self.assertEqual(rc, 0, out)
        rc, out = self.call("org.freedesktop.DBus.Introspectable.Introspect")
        self.assertEqual(rc, 0, out)
        self.assertIn("org.mamori.Agent1", out)

    def test_nobody_may_not_set_own_or_use_other_interfaces(self):
        self.start_bus()
        self.assertEqual(self.start_service(), "ready")
        rc, out = self.call("org.freedesktop.DBus.Properties.Set", "string:org.mamori.Agent1",
                            "string:State", "variant:string:active")
        self.assertNotEqual(rc, 0)
        self.assertIn("AccessDenied", out)
        rc, out = self.call("org.mamori.Other.Secret")
        self.assertIn("AccessDenied", out)
        self.assertNotIn("leaked", out)
        rc, out = self.call("org.freedesktop.DBus.RequestName", "string:org.mamori.Agent1", "uint32:4",
                            dest="org.freedesktop.DBus")
        self.assertIn("AccessDenied", out)
        # root may set properties (mamorid itself decides what a caller may change).
        rc, out = self.call("org.freedesktop.DBus.Properties.Set", "string:org.mamori.Agent1",
                            "string:State", "variant:string:active", as_nobody=False)
        self.assertEqual(rc, 0, out)

    def test_without_the_policy_nothing_is_allowed(self):
        """Control: the same bus without our file refuses the name, so the checks above are its doing."""
        self.start_bus(with_policy=False)
        self.assertEqual(self.start_service(), "own-failed org.freedesktop.DBus.Error.AccessDenied")


class DebianPackages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [t for t in ("dpkg-buildpackage", "dh", "dpkg-deb") if not shutil.which(t)]
        if missing or not os.path.exists("/usr/share/perl5/Debian/Debhelper/Sequence/installsysusers.pm"):
            raise unittest.SkipTest(f"debhelper/dpkg-dev not installed ({missing})")
        cls.tmp = tempfile.TemporaryDirectory(prefix="mamori-debs-")
        t0 = time.monotonic()
        r = run([os.path.join(SOURCE, "packaging/build-deb.sh"), cls.tmp.name], timeout=600,
                env=dict(os.environ, TMPDIR=cls.tmp.name))
        print(f"build-deb.sh: {time.monotonic() - t0:.1f}s", file=sys.stderr)
        if r.returncode != 0:
            cls.tmp.cleanup()
            raise AssertionError(f"build-deb.sh failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
        cls.debs = {}
        for f in os.listdir(cls.tmp.name):
            if f.endswith(".deb") and "-dbgsym" not in f:
                cls.debs[f.split("_")[0]] = os.path.join(cls.tmp.name, f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def contents(self, pkg):
        r = run(["dpkg-deb", "-c", self.debs[pkg]])
        self.assertEqual(r.returncode, 0, r.stderr)
        files = {}
        for line in r.stdout.splitlines():
            f = line.split()
            files[f[5].lstrip(".")] = (f[0], f[1])
        return files

    def field(self, pkg, name):
        return run(["dpkg-deb", "-f", self.debs[pkg], name]).stdout.strip()

    def member(self, pkg, path):
        """The bytes of one file of a package."""
        r = subprocess.run(f"dpkg-deb --fsys-tarfile {shlex.quote(self.debs[pkg])} | tar -xOf - .{path}",
                           shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_packages_carry_the_deploying_walkthrough(self):
        """The README (with its two-machine Deploying section) is in both packages an administrator installs."""
        for pkg in ("mamori-agent", "mamori-collector"):
            path = f"/usr/share/doc/{pkg}/README.md.gz"
            self.assertIn(path, self.contents(pkg))
            text = gzip.decompress(self.member(pkg, path)).decode()
            self.assertEqual(text, read(os.path.join(SOURCE, "README.md")))
            self.assertIn("### A centre and a terminal on two machines, from package install to first upload", text)

    def test_packages_built(self):
        self.assertEqual(sorted(self.debs), ["libpam-mamori", "mamori-agent", "mamori-collector"])

    def test_agent_files(self):
        files = self.contents("mamori-agent")
        for path in ["/usr/sbin/mamorid", "/usr/bin/mamorictl", "/lib/systemd/system/mamorid.service",
                     "/lib/systemd/system/mamori-uploader.service", "/usr/lib/sysusers.d/mamori.conf",
                     "/usr/lib/tmpfiles.d/mamori.conf", "/usr/share/dbus-1/system.d/org.mamori.Agent1.conf",
                     "/etc/mamori/agent.conf", "/usr/share/man/man8/mamorid.8.gz",
                     "/usr/share/man/man1/mamorictl.1.gz", "/usr/share/man/man5/agent.conf.5.gz",
                     "/usr/share/man/man8/mamori-uploader.8.gz", "/usr/lib/systemd/catalog/mamori.catalog",
                     "/usr/share/bash-completion/completions/mamorictl",
                     "/usr/share/locale/ja/LC_MESSAGES/mamori.mo"]:  # the operator's words in Japanese
            self.assertIn(path, files)
        self.assertEqual(files["/usr/sbin/mamorid"], ("-rwxr-xr-x", "root/root"))
        self.assertNotIn("/lib/systemd/system/mamori-collector.service", files)
        # Test tools never ship.
        self.assertFalse([f for f in files if "vcard" in f or "card-probe" in f], files)

    def test_no_test_tool_dependency(self):
        for pkg in self.debs:
            deps = " ".join(self.field(pkg, f) for f in ("Depends", "Recommends", "Suggests", "Pre-Depends"))
            self.assertNotIn("vsmartcard", deps, pkg)
            self.assertNotIn("vpcd", deps, pkg)
        self.assertIn("pcscd", self.field("mamori-agent", "Depends"))

    def test_maintainer_scripts(self):
        ctl = tempfile.mkdtemp(dir=self.tmp.name)
        self.assertEqual(run(["dpkg-deb", "-e", self.debs["mamori-agent"], ctl]).returncode, 0)
        postinst = read(os.path.join(ctl, "postinst"))
        users = postinst.find("systemd-sysusers")
        dirs = postinst.find("systemd-tmpfiles")
        self.assertGreaterEqual(users, 0, postinst)
        self.assertGreater(dirs, users, "users must exist before tmpfiles chowns to them")
        self.assertIn("mamorid.service", postinst)
        self.assertIn("/etc/mamori/agent.conf", read(os.path.join(ctl, "conffiles")))
        self.assertNotIn("rm -rf /var/lib/mamori", read(os.path.join(ctl, "postrm")))

    def test_pam_module_and_profile_together(self):
        files = self.contents("libpam-mamori")
        module = [f for f in files if f.endswith("/security/pam_mamori.so")]
        profile = "/usr/share/pam-configs/mamori" in files
        self.assertEqual(bool(module), profile, "a PAM profile without its module would break logins")
        if module:
            self.assertTrue(module[0].startswith(("/usr/lib/x86_64-linux-gnu/security", "/lib/")), module)

    def test_collector_files(self):
        files = self.contents("mamori-collector")
        self.assertIn("/lib/systemd/system/mamori-collector.service", files)
        self.assertIn("/usr/lib/sysusers.d/mamori-collector.conf", files)
        for path in ["/usr/share/man/man8/mamori-collector.8.gz", "/usr/share/man/man8/mamori-admin.8.gz",
                     "/usr/share/man/man5/collector.conf.5.gz", "/usr/share/bash-completion/completions/mamori-admin"]:
            self.assertIn(path, files)
        # §8 lifecycle: the centre re-signs the bundle on a timer.
        self.assertIn("/lib/systemd/system/mamori-policy-refresh.service", files)
        self.assertIn("/lib/systemd/system/mamori-policy-refresh.timer", files)
        self.assertNotIn("/usr/sbin/mamorid", files)
        # A commented collector.conf that works as installed; the admin key directory, root only.
        self.assertIn("/etc/mamori/collector.conf", files)
        self.assertIn("/usr/lib/tmpfiles.d/mamori-collector.conf", files)

    # Every file in systemd/, by name: which package ships it and where. A file added to systemd/ without
    # a row here, or a row whose file the package lost, fails naming the file.
    SHIPPED = {
        "mamorid.service.in": ("mamori-agent", "/lib/systemd/system/mamorid.service"),
        "mamori-uploader.service.in": ("mamori-agent", "/lib/systemd/system/mamori-uploader.service"),
        "agent.conf": ("mamori-agent", "/etc/mamori/agent.conf"),
        "org.mamori.Agent1.conf": ("mamori-agent", "/usr/share/dbus-1/system.d/org.mamori.Agent1.conf"),
        "sysusers-mamori.conf": ("mamori-agent", "/usr/lib/sysusers.d/mamori.conf"),
        "tmpfiles-mamori.conf": ("mamori-agent", "/usr/lib/tmpfiles.d/mamori.conf"),
        "mamori.catalog": ("mamori-agent", "/usr/lib/systemd/catalog/mamori.catalog"),
        "mamori-collector.service.in": ("mamori-collector", "/lib/systemd/system/mamori-collector.service"),
        "mamori-policy-refresh.service.in": ("mamori-collector",
                                             "/lib/systemd/system/mamori-policy-refresh.service"),
        "mamori-policy-refresh.timer": ("mamori-collector", "/lib/systemd/system/mamori-policy-refresh.timer"),
        "mamori-retention.service.in": ("mamori-collector", "/lib/systemd/system/mamori-retention.service"),
        "mamori-retention.timer": ("mamori-collector", "/lib/systemd/system/mamori-retention.timer"),
        "collector.conf": ("mamori-collector", "/etc/mamori/collector.conf"),
        "sysusers-mamori-collector.conf": ("mamori-collector", "/usr/lib/sysusers.d/mamori-collector.conf"),
        "tmpfiles-mamori-collector.conf": ("mamori-collector", "/usr/lib/tmpfiles.d/mamori-collector.conf"),
    }

    def test_every_systemd_source_is_shipped(self):
        sources = sorted(n for n in os.listdir(os.path.join(SOURCE, "systemd")) if n != "meson.build")
        self.assertEqual(sources, sorted(self.SHIPPED),
                         "systemd/ and SHIPPED differ: add the new file to SHIPPED with its package and path")
        for source, (pkg, path) in sorted(self.SHIPPED.items()):
            with self.subTest(source=f"systemd/{source}"):
                self.assertIn(path, self.contents(pkg), f"systemd/{source} is not in {pkg} as {path}")

    def test_every_installed_file_is_packaged_once(self):
        """What `meson install` produces is exactly what the packages hold (man pages gzipped)."""
        root = Installed.get()
        installed = set()
        for d, _, names in os.walk(root):
            for n in names:
                path = os.path.join(d, n)[len(root):]
                installed.add(path + ".gz" if "/share/man/" in path else path)
        # The build under test may use another prefix (tools/dev: /usr/local); the packages use /usr.
        def debian_path(p):
            if p.startswith("/usr/local/etc/"):
                return p[len("/usr/local"):]
            if p.startswith("/usr/local/"):
                return "/usr" + p[len("/usr/local"):]
            return p

        installed = {debian_path(p) for p in installed}
        packaged = {}
        for pkg in self.debs:
            for path, (mode, _) in self.contents(pkg).items():
                if not mode.startswith("d") and "/usr/share/doc/" not in path:
                    packaged.setdefault(path, []).append(pkg)
        twice = {p: v for p, v in packaged.items() if len(v) > 1}
        self.assertEqual(twice, {})
        if not any("/security/pam_mamori.so" in p for p in installed):
            installed.discard("/usr/share/pam-configs/mamori")
        self.assertEqual(sorted(installed - set(packaged)), [], "installed but not packaged")
        self.assertEqual(sorted(set(packaged) - installed), [], "packaged but not installed")

    def test_lintian(self):
        if not shutil.which("lintian"):
            self.skipTest("lintian not installed")
        r = run(["lintian", "--tag-display-limit", "0", *sorted(self.debs.values())], timeout=300)
        errors = [l for l in r.stdout.splitlines() if l.startswith("E:")]
        self.assertEqual(errors, [], r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
