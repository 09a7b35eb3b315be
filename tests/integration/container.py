# A throwaway systemd-nspawn container (DESIGN.md §10): real systemd as PID 1, real system bus and logind.
"""Boots the host's own OS as a container and runs commands inside it; the host stays untouched.

    with container.Container(share=tmp) as c:          # boots; raises Unavailable (with why) if it cannot
        c.run(['dpkg', '-i', '/mnt/mamori-test/x.deb'], check=True)
        c.run(['systemctl', 'is-active', 'mamorid'])  # CompletedProcess (text, output captured)
        c.netns_run([...])                            # a host binary inside the container's network only

Layout (systemd-nspawn --volatile=yes -D /): the root is a tmpfs; /usr, /etc and /var are the
host's, each under an overlay whose writable upper layer is a scratch directory of this object,
so `dpkg -i` inside really installs (files into /usr and /etc, its database in /var/lib/dpkg,
maintainer scripts run by the container's systemd) while the host's /usr, /etc and /var never
change. The container has its own network namespace (only lo: 127.0.0.1 is the container's own),
PID, mount, IPC and UTS namespaces, and its own /run and /tmp. ``share`` is bound at
/mnt/mamori-test read-write (files for both sides: packages, keys, scripts).

Commands run with ``nsenter -t PID -a`` into the namespaces of the container's systemd; they are
not its children (systemd-run inside makes a real unit when that matters). Host services that the
tests do not need (the host's enabled *.service and *.timer units besides pcscd) are masked in the
container so that it boots in seconds. The container always ends: poweroff through systemd,
bounded; then SIGTERM to systemd-nspawn; then SIGKILL of the container's PID 1, which ends its
whole PID namespace; then the scratch directory is removed.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time

SHARE_MOUNT = '/mnt/mamori-test'
NSPAWN = '/usr/bin/systemd-nspawn'
KEEP_UNITS = {'pcscd.socket', 'dbus.service', 'dbus.socket', 'systemd-logind.service'}


class Unavailable(Exception):
    """The container could not be started on this machine; str() says why."""


def _children(pid):
    kids = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f'/proc/{pid}/task'):
            with open(f'/proc/{pid}/task/{task}/children') as f:
                kids += [int(x) for x in f.read().split()]
    return kids


def _comm(pid):
    try:
        with open(f'/proc/{pid}/comm') as f:
            return f.read().strip()
    except OSError:
        return None


def _host_units_to_mask():
    """Enabled host services and timers (wants/ links in /etc): not needed in a test container."""
    names = set()
    base = '/etc/systemd/system'
    with contextlib.suppress(OSError):
        for d in os.listdir(base):
            if not d.endswith('.wants'):
                continue
            for n in os.listdir(os.path.join(base, d)):
                if n.endswith(('.service', '.timer')) and n not in KEEP_UNITS:
                    names.add(n)
    return sorted(names)


class Container:
    def __init__(self, share, name=None, boot_timeout=90.0, extra_args=()):
        self.share = share
        self.name = name or f'mamori-it-{os.getpid()}'
        self.boot_timeout = boot_timeout
        self.extra_args = list(extra_args)
        self.scratch = None
        self.proc = None
        self.pid = None  # the container's systemd (PID 1 inside), as seen from the host
        self.log_path = None
        self.boot_seconds = None

    # ---------------------------------------------------------------------------------------
    # Life cycle

    def start(self):
        if not os.path.exists(NSPAWN):
            raise Unavailable(f'{NSPAWN} is missing: apt-get install systemd-container (tools/dev deps)')
        if os.geteuid() != 0:
            raise Unavailable('systemd-nspawn needs root')
        self.scratch = tempfile.mkdtemp(prefix='mamori-nspawn-', dir='/var/tmp')
        upper = {d: os.path.join(self.scratch, d) for d in ('etc', 'usr', 'var')}
        for p in upper.values():
            os.makedirs(p)
        masked = os.path.join(upper['etc'], 'systemd', 'system')
        os.makedirs(masked)
        for unit in _host_units_to_mask():
            os.symlink('/dev/null', os.path.join(masked, unit))
        self.log_path = os.path.join(self.scratch, 'nspawn.log')
        args = [NSPAWN, '-D', '/', '--volatile=yes', '--private-network',
                f'--overlay=/etc:{upper["etc"]}:/etc', f'--overlay=/usr:{upper["usr"]}:/usr',
                f'--overlay=/var:{upper["var"]}:/var', f'--bind={self.share}:{SHARE_MOUNT}',
                '-b', '-M', self.name, '--register=no', '--keep-unit', '--console=pipe',
                *self.extra_args]
        t0 = time.monotonic()
        log = open(self.log_path, 'wb')
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        finally:
            log.close()
        try:
            self._wait_pid1(t0)
            self._wait_booted(t0)
        except Exception:
            self.stop()
            raise
        self.boot_seconds = time.monotonic() - t0
        return self

    def _fail(self, what):
        raise Unavailable(f'{what}; systemd-nspawn said:\n{self.log_tail()}')

    def _wait_pid1(self, t0):
        while time.monotonic() - t0 < self.boot_timeout:
            if self.proc.poll() is not None:
                self._fail(f'systemd-nspawn exited with status {self.proc.returncode}')
            for kid in _children(self.proc.pid):
                if _comm(kid) == 'systemd':
                    self.pid = kid
                    return
            time.sleep(0.05)
        self._fail(f'no systemd inside the container after {self.boot_timeout:.0f} s')

    def _wait_booted(self, t0):
        while True:
            left = self.boot_timeout - (time.monotonic() - t0)
            if left <= 0:
                self._fail(f'the container did not finish booting within {self.boot_timeout:.0f} s')
            if self.proc.poll() is not None:
                self._fail(f'systemd-nspawn exited with status {self.proc.returncode} while booting')
            try:
                p = self.run(['systemctl', 'is-system-running', '--wait'], timeout=max(1.0, left))
            except subprocess.TimeoutExpired:
                continue
            state = p.stdout.strip()
            if state in ('running', 'degraded'):
                return
            if state not in ('initializing', 'starting', ''):
                self._fail(f'the container booted into state {state!r}: {p.stderr.strip()}')
            time.sleep(0.1)

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, 'rb') as f:
                return b'\n'.join(f.read().splitlines()[-lines:]).decode('utf-8', 'replace')
        except (OSError, TypeError):
            return '(no log)'

    def stop(self, timeout=30.0):
        """Powers the container off (bounded), escalating; removes the scratch directory."""
        try:
            if self.proc and self.proc.poll() is None:
                if self.pid:
                    with contextlib.suppress(Exception):
                        self.run(['systemctl', 'poweroff', '--no-block'], timeout=10)
                if not self._wait_exit(timeout):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.proc.pid, signal.SIGTERM)  # nspawn asks the container to halt
                    if not self._wait_exit(10):
                        if self.pid:
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(self.pid, signal.SIGKILL)  # ends the container's PID namespace
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(self.proc.pid, signal.SIGKILL)
                        self._wait_exit(10)
        finally:
            if self.scratch and os.environ.get('MAMORI_KEEP_TMP') != '1':
                shutil.rmtree(self.scratch, ignore_errors=True)
            elif self.scratch:
                print(f'container: kept {self.scratch}')
            self.pid = None

    def _wait_exit(self, timeout):
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # ---------------------------------------------------------------------------------------
    # Commands

    def run(self, args, timeout=60, check=False, input=None, env=None):
        """Runs args inside every namespace of the container, as root, in its root directory."""
        cmd = ['nsenter', '-t', str(self.pid), '-a', '--wdns=/', '--',
               'env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8',
               *[f'{k}={v}' for k, v in (env or {}).items()], *args]
        p = subprocess.run(cmd, stdin=None if input is not None else subprocess.DEVNULL, input=input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f'in the container, {" ".join(args)} exited {p.returncode}:\n'
                                 f'{p.stdout}{p.stderr}')
        return p

    def sh(self, script, timeout=60, check=True):
        return self.run(['sh', '-ec', script], timeout=timeout, check=check)

    def netns_args(self, args):
        """A host command line that runs in the container's network namespace only (host files)."""
        return ['nsenter', '-t', str(self.pid), '-n', '--', *args]

    def unit_pid(self, unit):
        """MainPID of a unit inside, as the host sees it (0 when not running)."""
        p = self.run(['systemctl', 'show', '-p', 'MainPID', '--value', unit], check=True)
        inner = int(p.stdout.strip() or 0)
        return self.host_pid(inner) if inner else 0

    def host_pid(self, inner):
        """The host's pid of the container's process inner (through NSpid in /proc)."""
        for pid in self._descendants():
            try:
                with open(f'/proc/{pid}/status') as f:
                    for line in f:
                        if line.startswith('NSpid:'):
                            ids = line.split()[1:]
                            if len(ids) >= 2 and int(ids[-1]) == inner:
                                return pid
            except OSError:
                continue
        raise LookupError(f'no host pid for container pid {inner}')

    def _descendants(self):
        todo, seen = [self.pid], []
        while todo:
            p = todo.pop()
            seen.append(p)
            todo += _children(p)
        return seen

    def journal(self, unit=None, identifier=None):
        """Messages of a unit (-u) or of a syslog identifier (-t: output of a process that a PAM
        session moved into its session scope is filed under that scope, not under its unit)."""
        args = ['journalctl', '--no-pager', '-o', 'cat']
        args += ['-u', unit] if unit else ['-t', identifier]
        return self.run(args, timeout=30).stdout

    def wait_until(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            v = predicate()
            if v:
                return v
            if time.monotonic() >= deadline:
                raise TimeoutError(f'container: timed out after {timeout}s waiting for {what}')
            time.sleep(0.2)


def required():
    """True when a test must fail (not skip) because the container cannot start: CI, or
    MAMORI_REQUIRE_ALL set (to anything but 0)."""
    v = os.environ.get('MAMORI_REQUIRE_ALL', '')
    return (v not in ('', '0')) or bool(os.environ.get('CI'))
