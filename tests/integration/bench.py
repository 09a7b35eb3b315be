# The integration test bench: private pcscd + virtual PIV card, private system bus + mock logind, test PKI.
"""mamori integration bench.

Every class is a context manager that starts one real process and stops it by pid when the
``with`` block ends (also when a test fails).  All state lives under a per-test directory.

    import bench
    with bench.TempDir() as tmp, bench.TestPKI(tmp) as pki:
        card = pki.issue('OP0001', 'p256')                # .key, .cert (paths), .der, .card_id
        port = bench.free_vpcd_port()                     # vpcd needs PORT and PORT+1
        with bench.Pcscd(tmp, port) as pcscd, \\
             bench.VCard(port, card.key, card.cert, '123456', tries=3) as vc:
            env = pcscd.client_env()                      # PCSCLITE_CSOCK_NAME=TMP/pcscd.comm ...
            pcscd.wait_card(True)                         # pcscd reports the card in reader 0
            vc.pull(); pcscd.wait_card(False)
            vc.insert(); pcscd.wait_card(True)
            pcscd.kill(); pcscd.restart()                 # pcscd dies / comes back

    with bench.TempDir() as tmp, bench.SystemBus(tmp) as bus, bench.MockLogind(bus) as logind:
        env = bus.client_env()                            # DBUS_SYSTEM_BUS_ADDRESS=unix:path=...
        logind.set_idle(True, since_usec=...)             # Mock.UpdateProperties on the session
        logind.calls('LockSession')                       # recorded calls (dbusmock GetMethodCalls)
        with bench.DBusMonitor(bus, "type='signal',member='Lock'") as mon:
            ...; mon.lines.wait(r'member=Lock')

Processes: pcscd through ``systemd-socket-activate`` (activated at once by a probe connection,
so vpcd listens before the card connects); ``mamori-vcard`` from $MAMORI_BUILD_DIR; a
``dbus-daemon`` with a deny-by-default system-bus config that includes the shipped
org.mamori.Agent1.conf; ``python3 -m dbusmock --template
logind``.  pcscd 1.9.9 always writes /run/pcscd/pcscd.pid, so only one Pcscd may run at a time
(meson runs the integration suite with is_parallel: false).  vpcd creates two readers per
DEVICENAME: "Virtual PCD 00 00" on PORT (the card) and "Virtual PCD 00 01" on PORT+1 (empty).

``LineWatcher`` collects a process's output lines in a thread; ``wait(regex, timeout)`` waits
for the next matching line (use it for anything a process prints).
"""

import contextlib
import datetime
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

PYTHON = '/usr/bin/python3'
VPCD_DRIVER = '/usr/lib/pcsc/drivers/serial/libifdvpcd.so'
READER_NAME = 'Virtual PCD'
READER0 = READER_NAME + ' 00 00'


def build_dir():
    d = os.environ.get('MAMORI_BUILD_DIR')
    if not d:
        raise RuntimeError('MAMORI_BUILD_DIR is not set (run through meson test, or export it)')
    return d


def vcard_exe():
    return os.path.join(build_dir(), 'tests', 'vcard', 'mamori-vcard')


class TempDir:
    """A per-test directory, removed afterwards unless MAMORI_KEEP_TMP=1 (then its path is printed)."""

    def __init__(self, prefix='mamori-it-'):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        if os.environ.get('MAMORI_KEEP_TMP') == '1' or (exc[0] is not None and os.environ.get('MAMORI_KEEP_FAILED') == '1'):
            print(f'bench: kept {self.path}')
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        return False


# --------------------------------------------------------------------------------------------
# Process helpers


class LineWatcher:
    """Reads a text stream line by line in a thread; optionally copies lines to a log file."""

    def __init__(self, stream, log_path=None, echo_prefix=None):
        self._lines = []
        self._cond = threading.Condition()
        self._closed = False
        self._cursor = 0
        self._log = open(log_path, 'a', encoding='utf-8') if log_path else None
        self._echo = echo_prefix
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream):
        try:
            for raw in iter(stream.readline, ''):
                line = raw.rstrip('\n')
                if self._log:
                    self._log.write(line + '\n')
                    self._log.flush()
                if self._echo is not None and os.environ.get('MAMORI_BENCH_VERBOSE') == '1':
                    print(f'{self._echo}{line}', flush=True)
                with self._cond:
                    self._lines.append(line)
                    self._cond.notify_all()
        except ValueError:
            pass  # stream closed under us
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            if self._log:
                self._log.close()

    @property
    def lines(self):
        with self._cond:
            return list(self._lines)

    def mark(self):
        """Index after the lines seen so far: pass as after= to wait only for newer lines."""
        with self._cond:
            return len(self._lines)

    def wait(self, regex, timeout=10.0, after=None):
        """Waits for a line matching regex (re.search) at index >= after (default: the line after
        the last one a previous wait() returned). Returns the match; raises TimeoutError."""
        pattern = re.compile(regex)
        deadline = time.monotonic() + timeout
        with self._cond:
            i = self._cursor if after is None else after
            while True:
                while i < len(self._lines):
                    m = pattern.search(self._lines[i])
                    i += 1
                    if m:
                        self._cursor = i
                        return m
                if self._closed:
                    raise TimeoutError(f'stream closed before a line matched {regex!r}; last lines: {self._lines[-10:]}')
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f'no line matched {regex!r} within {timeout}s; last lines: {self._lines[-10:]}')
                self._cond.wait(left)

    def join(self, timeout=5.0):
        self._thread.join(timeout)


def stop_process(proc, sig=signal.SIGTERM, timeout=5.0):
    """Signals proc by pid, waits, escalates to SIGKILL. Returns the exit status."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
    return proc.returncode


def wait_until(predicate, timeout=10.0, interval=0.05, what='condition'):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f'timed out after {timeout}s waiting for {what}')
        time.sleep(interval)


def run(args, env=None, timeout=60, check=False, input=None):
    """subprocess.run with text output captured; returns CompletedProcess."""
    return subprocess.run(args, env=env, timeout=timeout, check=check, input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=input is None or isinstance(input, str))


# --------------------------------------------------------------------------------------------
# PC/SC


def _port_bindable(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(('0.0.0.0', port))
        except OSError:
            return False
    return True


def free_vpcd_port():
    """A TCP port P with P and P+1 free on all interfaces (vpcd listens on both, INADDR_ANY)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        if port < 65535 and _port_bindable(port) and _port_bindable(port + 1):
            return port
    raise RuntimeError('no free port pair for vpcd')


def tcp_listening(port):
    """True when some socket listens on TCP port (read from /proc/net/tcp{,6}, no connection made:
    a probe connection to vpcd would be taken for a card)."""
    for name in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(name, encoding='ascii') as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state = fields[1], fields[3]
                    if state == '0A' and int(local.rsplit(':', 1)[1], 16) == port:
                        return True
        except FileNotFoundError:
            continue
    return False


PCSCD_LOCK = '/tmp/mamori-bench-pcscd.lock'
PCSCD_PIDFILE = '/run/pcscd/pcscd.pid'


def _pcscd_pidfile_alive():
    try:
        with open(PCSCD_PIDFILE, encoding='ascii') as f:
            pid = int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


class Pcscd:
    """A private pcscd (socket-activated) with one vpcd reader on port (and port+1)."""

    def __init__(self, tmp, port, debug=True):
        self.tmp = tmp
        self.port = port
        self.debug = debug
        self.socket_path = os.path.join(tmp, 'pcscd.comm')
        self.conf_path = os.path.join(tmp, 'reader.conf')
        self.log_path = os.path.join(tmp, 'pcscd.log')
        self.proc = None
        self.log = None
        self._lock_fd = None
        with open(self.conf_path, 'w', encoding='ascii') as f:
            f.write(f'FRIENDLYNAME "{READER_NAME}"\n'
                    f'DEVICENAME /dev/null:{port}\n'
                    f'LIBPATH {VPCD_DRIVER}\n')

    @property
    def env(self):
        return {'PCSCLITE_CSOCK_NAME': self.socket_path}

    def client_env(self, base=None):
        """Environment for PC/SC clients (opensc-tool, mamorid): this pcscd, a private OpenSC cache."""
        env = dict(os.environ if base is None else base)
        env.update(self.env)
        env['XDG_CACHE_HOME'] = os.path.join(self.tmp, 'cache')
        return env

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def _lock(self, timeout=300.0):
        """Serialises pcscd instances of all bench users on this machine (pcscd's pid file is global)."""
        if self._lock_fd is not None:
            return
        fd = os.open(PCSCD_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise TimeoutError(f'another bench pcscd holds {PCSCD_LOCK}')
                time.sleep(0.2)
        self._lock_fd = fd
        # A pcscd started outside the bench (or a dying one) still owns the pid file: wait it out.
        wait_until(lambda: not _pcscd_pidfile_alive(), timeout=timeout, interval=0.2,
                   what='the pcscd that owns /run/pcscd/pcscd.pid to exit')

    def _unlock(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def start(self):
        self._lock()
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        env = {k: v for k, v in os.environ.items() if not k.startswith(('PCSCLITE', 'DBUS_', 'LISTEN_'))}
        args = ['systemd-socket-activate', '-l', self.socket_path,
                'pcscd', '--foreground', '--config', self.conf_path]
        if self.debug:
            args.append('--debug')
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        self.log = LineWatcher(self.proc.stdout, self.log_path, echo_prefix='pcscd: ')
        self.log.wait(r'Listening on ', timeout=10)
        # Activate now: vpcd must listen before tests time anything.
        wait_until(self._probe, timeout=10, what='pcscd socket')
        wait_until(lambda: tcp_listening(self.port) or self._died(), timeout=15, what=f'vpcd on port {self.port}')
        if self._died():
            raise RuntimeError(f'pcscd exited with {self.proc.returncode}; see {self.log_path}: {self.log.lines[-10:]}')
        return self

    def _probe(self):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(self.socket_path)
            except OSError:
                return False
        return True

    def _died(self):
        return self.proc.poll() is not None

    def stop(self):
        """SIGTERM (clean exit; pcscd removes its pid file)."""
        if self.proc:
            stop_process(self.proc)
            self.log.join()
            self.proc.stdout.close()
            self.proc = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        self._unlock()

    def kill(self):
        """SIGKILL: pcscd dies without cleaning up (reader lost for clients)."""
        if self.proc:
            stop_process(self.proc, sig=signal.SIGKILL)
            self.log.join()
            self.proc.stdout.close()
            self.proc = None

    def restart(self):
        """Stops (if still running) and starts pcscd again on the same socket and port."""
        self.stop()
        return self.start()

    def readers(self):
        """[(name, card_present)] as opensc-tool -l reports them."""
        r = run(['opensc-tool', '--list-readers'], env=self.client_env(), timeout=20)
        out = []
        for line in r.stdout.splitlines():
            m = re.match(r'^\s*\d+\s+(Yes|No)\s+(?:\S+\s+)?(' + re.escape(READER_NAME) + r'.*)$', line)
            if m:
                out.append((m.group(2).strip(), m.group(1) == 'Yes'))
        return out

    def card_present(self, reader=READER0):
        return any(name == reader and present for name, present in self.readers())

    def wait_card(self, present=True, timeout=10.0, reader=READER0):
        """Waits until pcscd reports the card present (or absent). Removal detection through vpcd
        takes up to pcscd's 400 ms poll."""
        wait_until(lambda: self.card_present(reader) == present, timeout=timeout, interval=0.1,
                   what=f'card {"present" if present else "absent"} in {reader}')

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


class VCard:
    """The virtual PIV card (mamori-vcard) connected to vpcd on port. Starts inserted."""

    def __init__(self, port, key, cert, pin, tries=3, fault=None, trace=True, log_dir=None, extra_args=()):
        self.args = [vcard_exe(), '--port', str(port), '--key', str(key), '--cert', str(cert),
                     '--pin', pin, '--tries', str(tries)]
        if fault:
            self.args += ['--fault', fault]
        if trace:
            self.args.append('--trace')
        self.args += list(extra_args)
        self.log_dir = log_dir or os.path.dirname(os.path.abspath(str(cert)))
        self.proc = None
        self.out = None
        self.err = None
        self.returncode = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=15.0):
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.out = LineWatcher(self.proc.stdout, os.path.join(self.log_dir, f'vcard-{self.proc.pid}.out'),
                               echo_prefix='vcard> ')
        self.err = LineWatcher(self.proc.stderr, os.path.join(self.log_dir, f'vcard-{self.proc.pid}.err'),
                               echo_prefix='vcard! ')
        try:
            self.out.wait(r'^inserted$', timeout=timeout)
        except TimeoutError:
            self.stop()
            raise
        return self

    def _signal_and_wait(self, sig, regex, timeout):
        mark = self.out.mark()
        os.kill(self.proc.pid, sig)
        return self.out.wait(regex, timeout=timeout, after=mark)

    def pull(self, timeout=5.0):
        """Pulls the card (closes the vpcd connection); returns once the card says so."""
        self._signal_and_wait(signal.SIGUSR1, r'^pulled$', timeout)

    def insert(self, timeout=15.0):
        """Inserts the card; returns once vpcd has polled it (pcscd sees it at the same moment)."""
        self._signal_and_wait(signal.SIGUSR2, r'^inserted$', timeout)

    def apdu_count(self):
        """APDUs the card answered so far (needs trace=True)."""
        return sum(1 for line in self.err.lines if line.startswith('vcard: apdu '))

    def stop(self):
        if self.proc:
            self.returncode = stop_process(self.proc)
            self.out.join()
            self.err.join()
            self.proc.stdout.close()
            self.proc.stderr.close()
            self.proc = None
        return self.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# --------------------------------------------------------------------------------------------
# D-Bus


# The D-Bus policy the package installs, applied as is on every test bus.
AGENT_BUS_POLICY = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                                 'systemd', 'org.mamori.Agent1.conf'))

# Like Debian's /usr/share/dbus-1/system.conf: nobody may own a name or call a method unless a
# policy file punches the hole. Then the shipped org.mamori.Agent1.conf, and only what the mock
# logind needs (root owns org.freedesktop.login1; root, i.e. mamorid and the test, calls it) and
# root's dbus-monitor.
SYSTEM_BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
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
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
    <allow own="org.freedesktop.login1"/>
    <allow send_destination="org.freedesktop.login1"/>
  </policy>
  <include>{agent_policy}</include>
  <limit name="reply_timeout">60000</limit>
</busconfig>
"""


class SystemBus:
    """A private dbus-daemon configured like the system bus: deny by default, the shipped mamori policy."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.socket_path = os.path.join(tmp, 'system_bus_socket')
        self.conf_path = os.path.join(tmp, 'system-bus.conf')
        self.address = None
        self.proc = None
        with open(self.conf_path, 'w', encoding='utf-8') as f:
            f.write(SYSTEM_BUS_CONF.format(socket=self.socket_path, agent_policy=AGENT_BUS_POLICY))

    @property
    def env(self):
        return {'DBUS_SYSTEM_BUS_ADDRESS': self.address}

    def client_env(self, base=None):
        env = dict(os.environ if base is None else base)
        env.update(self.env)
        return env

    def start(self):
        with open(os.path.join(self.tmp, 'dbus-daemon.log'), 'w', encoding='utf-8') as log:
            self.proc = subprocess.Popen(['dbus-daemon', f'--config-file={self.conf_path}', '--nofork',
                                          '--nopidfile', '--print-address=1'],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                         text=True, start_new_session=True)
        line = self.proc.stdout.readline().strip()
        if not line:
            stop_process(self.proc)
            raise RuntimeError('dbus-daemon did not print its address')
        self.address = line
        return self

    def connect(self):
        """A dbus-python connection to this bus (caller closes it)."""
        import dbus
        return dbus.bus.BusConnection(self.address)

    def stop(self):
        if self.proc:
            stop_process(self.proc)
            self.proc.stdout.close()
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


class DBusMonitor:
    """dbus-monitor on the bus with match rules; .lines is a LineWatcher of its output."""

    def __init__(self, bus, *matches):
        self.bus = bus
        self.matches = list(matches)
        self.proc = None
        self.lines = None

    def __enter__(self):
        self.proc = subprocess.Popen(['dbus-monitor', '--address', self.bus.address] + self.matches,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines = LineWatcher(self.proc.stdout)
        # dbus-monitor prints the NameAcquired/ monitoring signal once it is attached.
        self.lines.wait(r'NameLost|NameAcquired|member=', timeout=10, after=0)
        return self

    def __exit__(self, *exc):
        stop_process(self.proc)
        self.lines.join()
        self.proc.stdout.close()
        return False


LOGIND_BUS = 'org.freedesktop.login1'
LOGIND_PATH = '/org/freedesktop/login1'
LOGIND_MANAGER = 'org.freedesktop.login1.Manager'
LOGIND_SESSION = 'org.freedesktop.login1.Session'
LOGIND_SEAT = 'org.freedesktop.login1.Seat'
MOCK_IFACE = 'org.freedesktop.DBus.Mock'


GET_SESSION_BY_PID = """
try:
    with open('/proc/%d/environ' % args[0], 'rb') as f:
        env = f.read().split(b'\\0')
except OSError:
    env = []
ids = [e.split(b'=', 1)[1].decode() for e in env if e.startswith(b'XDG_SESSION_ID=')]
path = '/org/freedesktop/login1/session/' + ids[0] if ids else ''
if args[0] == 0 or path not in objects:
    raise dbus.exceptions.DBusException('PID %d does not belong to any known session' % args[0],
                                        name='org.freedesktop.login1.NoSessionForPID')
ret = dbus.ObjectPath(path)
"""


def in_session_env(env, session_id='c1'):
    """env for a process of the mock logind's session session_id (GetSessionByPID finds it there)."""
    env = dict(env)
    env['XDG_SESSION_ID'] = session_id
    return env


def outside_session_env(env):
    """env for a process in no logind session (a system service, ssh without pam_systemd)."""
    env = dict(env)
    env.pop('XDG_SESSION_ID', None)
    return env


class MockLogind:
    """python-dbusmock's logind template on bus, with seat0 and one active graphical session.

    LockSession(id) emits Lock on that session (like logind does) and, when desktop_locks is true,
    sets its LockedHint as a screen locker would; UnlockSession emits Unlock and clears LockedHint.
    With desktop_locks=False the desktop "ignores" the Lock (to test LockFallback=)."""

    def __init__(self, bus, session_id='c1', seat='seat0', uid=1000, user='counter', session_type='wayland',
                 desktop_locks=True):
        self.bus = bus
        self.session_id = session_id
        self.seat = seat
        self.uid = uid
        self.user = user
        self.session_type = session_type
        self.desktop_locks = desktop_locks
        self.proc = None
        self.conn = None
        self.session_path = None
        self.log_path = os.path.join(bus.tmp, 'logind-mock.log')

    def start(self):
        import dbus
        with open(self.log_path, 'w', encoding='utf-8') as log:
            self.proc = subprocess.Popen([PYTHON, '-m', 'dbusmock', '--template', 'logind'],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.bus.client_env(), start_new_session=True)
        self.conn = self.bus.connect()
        try:
            wait_until(lambda: self.proc.poll() is not None or self.conn.name_has_owner(LOGIND_BUS), timeout=15,
                       what='mock logind on the bus')
            if self.proc.poll() is not None:
                raise RuntimeError(f'dbusmock exited with {self.proc.returncode}; see {self.log_path}')
            mock = self._iface(LOGIND_PATH, MOCK_IFACE)
            self.session_path = str(mock.AddSession(self.session_id, self.seat, dbus.UInt32(self.uid),
                                                    self.user, True))
            seat_path = f'{LOGIND_PATH}/seat/{self.seat}'
            self._iface(seat_path, MOCK_IFACE).UpdateProperties(
                LOGIND_SEAT, {'CanGraphical': dbus.Boolean(True)})
            self._iface(self.session_path, MOCK_IFACE).UpdateProperties(
                LOGIND_SESSION, {'Type': dbus.String(self.session_type), 'Class': dbus.String('user'),
                                 'Display': dbus.String(':0' if self.session_type == 'x11' else '')})
            prefix = f"objects['{LOGIND_PATH}/session/' + args[0]]"
            locked = f"{prefix}.UpdateProperties('{LOGIND_SESSION}', {{'LockedHint': dbus.Boolean(True)}}); " if self.desktop_locks else ''
            mock.AddMethod(LOGIND_MANAGER, 'LockSession', 's', '',
                           f"{prefix}.EmitSignal('{LOGIND_SESSION}', 'Lock', '', []); {locked}")
            # logind finds a PID's session from its cgroup; the mock reads the XDG_SESSION_ID that
            # pam_systemd gives a session's processes (see in_session_env()). No such session:
            # NoSessionForPID, as logind answers for a system service.
            mock.AddMethod(LOGIND_MANAGER, 'GetSessionByPID', 'u', 'o', GET_SESSION_BY_PID)
            mock.AddMethod(LOGIND_MANAGER, 'UnlockSession', 's', '',
                           f"{prefix}.EmitSignal('{LOGIND_SESSION}', 'Unlock', '', []); "
                           f"{prefix}.UpdateProperties('{LOGIND_SESSION}', {{'LockedHint': dbus.Boolean(False)}})")
        except BaseException:
            self.stop()
            raise
        return self

    def _iface(self, path, iface):
        import dbus
        return dbus.Interface(self.conn.get_object(LOGIND_BUS, path), iface)

    def calls(self, method, path=LOGIND_PATH):
        """Argument lists of the recorded calls of method on path (oldest first)."""
        return [list(c[1]) for c in self._iface(path, MOCK_IFACE).GetMethodCalls(method)]

    def clear_calls(self, path=LOGIND_PATH):
        self._iface(path, MOCK_IFACE).ClearCalls()

    def session_property(self, name):
        import dbus
        props = dbus.Interface(self.conn.get_object(LOGIND_BUS, self.session_path), dbus.PROPERTIES_IFACE)
        return props.Get(LOGIND_SESSION, name)

    def update_session(self, **props):
        """Mock.UpdateProperties on the session (emits PropertiesChanged). Values must be dbus types
        or bool/str; IdleSinceHint* are converted to UInt64."""
        import dbus
        conv = {}
        for k, v in props.items():
            if k.startswith('IdleSinceHint'):
                v = dbus.UInt64(v)
            elif isinstance(v, bool):
                v = dbus.Boolean(v)
            conv[k] = v
        self._iface(self.session_path, MOCK_IFACE).UpdateProperties(LOGIND_SESSION, conv)

    def set_idle(self, idle, since_usec=None, since_monotonic_usec=None):
        """IdleHint/IdleSinceHint(+Monotonic) on the session, as a desktop reports idleness."""
        if since_usec is None:
            since_usec = int(time.time() * 1e6) if idle else 0
        if since_monotonic_usec is None:
            since_monotonic_usec = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6) if idle else 0
        self.update_session(IdleHint=bool(idle), IdleSinceHint=since_usec,
                            IdleSinceHintMonotonic=since_monotonic_usec)

    def set_locked_hint(self, locked):
        self.update_session(LockedHint=bool(locked))

    def stop(self):
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None
        if self.proc:
            stop_process(self.proc)
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# --------------------------------------------------------------------------------------------
# Test PKI


class IssuedCard:
    """Files and facts of one operator card certificate."""

    def __init__(self, name, kind, key_path, cert_path, der, private_key, certificate):
        self.name = name
        self.kind = kind
        self.key = key_path
        self.cert = cert_path
        self.der = der
        self.private_key = private_key
        self.certificate = certificate
        self.card_id = hashlib.sha256(der).hexdigest()  # DESIGN.md §3

    @property
    def public_key(self):
        return self.certificate.public_key()


class TestPKI:
    """A test CA (EC P-384) that issues operator card certificates (P-256, P-384, RSA-2048).

    TestPKI(tmp, name='other-ca') makes a second, unrelated CA in its own subdirectory."""

    KINDS = ('p256', 'p384', 'rsa2048')

    def __init__(self, tmp, name='operator-ca'):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        now = datetime.datetime.now(datetime.timezone.utc)
        self.ca_key = ec.generate_private_key(ec.SECP384R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'mamori test'),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.ca_cert = (x509.CertificateBuilder()
                        .subject_name(subject).issuer_name(subject)
                        .public_key(self.ca_key.public_key())
                        .serial_number(x509.random_serial_number())
                        .not_valid_before(now - datetime.timedelta(days=1))
                        .not_valid_after(now + datetime.timedelta(days=3650))
                        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                                     key_encipherment=False, data_encipherment=False,
                                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                                     encipher_only=False, decipher_only=False), critical=True)
                        .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()),
                                       critical=False)
                        .sign(self.ca_key, hashes.SHA384()))
        self.ca_path = os.path.join(self.dir, 'ca.pem')
        self._write(self.ca_path, self._pem_cert(self.ca_cert))

    @staticmethod
    def _pem_cert(cert):
        from cryptography.hazmat.primitives import serialization
        return cert.public_bytes(serialization.Encoding.PEM)

    @staticmethod
    def _write(path, data, mode=0o644):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)

    @staticmethod
    def new_key(kind):
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        if kind == 'p256':
            return ec.generate_private_key(ec.SECP256R1())
        if kind == 'p384':
            return ec.generate_private_key(ec.SECP384R1())
        if kind == 'rsa2048':
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        raise ValueError(f'unknown key kind {kind!r}')

    def issue(self, name, kind='p256', expired=False, not_yet_valid=False, digital_signature=True,
              days=30, key=None):
        """Issues a card certificate with CN=name; writes NAME.key (PKCS#8 PEM, 0600) and NAME.pem."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = key or self.new_key(kind)
        now = datetime.datetime.now(datetime.timezone.utc)
        if expired:
            start, end = now - datetime.timedelta(days=60), now - datetime.timedelta(days=1)
        elif not_yet_valid:
            start, end = now + datetime.timedelta(days=1), now + datetime.timedelta(days=60)
        else:
            start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'mamori test'),
                                         x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(self.ca_cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                                             key_encipherment=not digital_signature, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=False, crl_sign=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                               critical=False)
                .sign(self.ca_key, hashes.SHA256()))
        key_path = os.path.join(self.dir, f'{name}.key')
        cert_path = os.path.join(self.dir, f'{name}.pem')
        self._write(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()), mode=0o600)
        self._write(cert_path, self._pem_cert(cert))
        der = cert.public_bytes(serialization.Encoding.DER)
        return IssuedCard(name, kind, key_path, cert_path, der, key, cert)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def verify_signature(public_key, signature, data, digest=None, prehashed=True):
    """Verifies a card signature with cryptography. EC: DER or raw r||s; RSA: PKCS#1 v1.5.
    data is the digest when prehashed (digest names its hash: 'sha256' / 'sha384')."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
    algo = {'sha256': hashes.SHA256(), 'sha384': hashes.SHA384()}[digest or 'sha256']
    hash_arg = utils.Prehashed(algo) if prehashed else algo
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        n = (public_key.curve.key_size + 7) // 8
        if len(signature) == 2 * n and signature[0] != 0x30:
            signature = utils.encode_dss_signature(int.from_bytes(signature[:n], 'big'),
                                                   int.from_bytes(signature[n:], 'big'))
        public_key.verify(signature, data, ec.ECDSA(hash_arg))
    else:
        public_key.verify(signature, data, padding.PKCS1v15(), hash_arg)


def leftover_processes(names=('pcscd', 'mamori-vcard', 'dbusmock')):
    """pids of processes whose command line names one of names (for after-test checks)."""
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                cmd = f.read().replace(b'\0', b' ').decode(errors='replace')
            with open(f'/proc/{pid}/stat', encoding='ascii', errors='replace') as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if state == 'Z':
            continue
        if any(n in cmd for n in names):
            found.append((int(pid), cmd.strip()))
    return found


__all__ = ['TempDir', 'LineWatcher', 'stop_process', 'wait_until', 'run', 'free_vpcd_port', 'tcp_listening',
           'Pcscd', 'VCard', 'SystemBus', 'DBusMonitor', 'MockLogind', 'TestPKI', 'IssuedCard', 'in_session_env', 'outside_session_env',
           'verify_signature', 'leftover_processes', 'READER0', 'READER_NAME']
