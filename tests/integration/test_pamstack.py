# The PAM stack that pam-auth-update really writes from the shipped profile, tried in a throwaway root against mamorid and a virtual card.
"""DESIGN.md §4 (which accounts mamori governs) on the real Debian stack, not on a hand-written one.

The test process moves itself into a private mount namespace (``unshare(CLONE_NEWNS)``, then
every mount made private, as ``unshare --mount --propagation private`` does) and, in there only,
lays overlays (upper layers in the test directory) over /etc, /home, /var/log,
/var/lib/pam, /usr/share/pam-configs and the PAM module directory. In there it does what the
packages and the README do: ``systemd-sysusers`` with the shipped sysusers file (mamori-agent's
postinst), the shipped profile into /usr/share/pam-configs and the built pam_mamori.so into the
module directory (libpam-mamori), ``pam-auth-update --package`` (its postinst) and
``pam-auth-update --enable mamori`` (README), then ``useradd``/``usermod -aG mamori-counter``.
Nothing of the host's /etc is touched; the test refuses to mount anything unless its mount
namespace differs from the one it was started in.

Accounts: ``alice`` (ordinary), ``admin`` (administrator, in sudo), ``counter`` (in
mamori-counter, with a unix password that must never unlock it), root with a known password.
mamorid runs with a private pcscd, the virtual PIV card and a private bus (tests/integration/
terminal.py), as in test_session.py. pamtester drives the real services: ``su`` as alice with the
setuid-like credentials of /bin/su (real uid alice, effective uid 0), ``passwd`` likewise, and the
greeter-like ``other`` service as root. When the module under test is built with ASan, libasan
(and libcrypt, whose interceptor must be bound at start) go into the throwaway /etc/ld.so.preload
for the pamtester runs only (LD_PRELOAD is ignored for set-uid-like credentials).

MAMORI_PAMSTACK_MODULE, MAMORI_PAMSTACK_PROFILE and MAMORI_PAMSTACK_SYSUSERS replace the module,
profile and sysusers file under test (to run these assertions against another version)."""

import contextlib
import ctypes
import glob
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import terminal  # noqa: E402

PIN = terminal.PIN
WRONG_PIN = '654321'
PASSWORDS = {'root': 'root-Pw-4711', 'alice': 'alice-Pw-4711', 'admin': 'admin-Pw-4711',
             'counter': 'counter-Pw-4711'}
NEW_ALICE = 'alice-New-0815'
GREETER = 'mamori-greeter'  # no /etc/pam.d file of that name: libpam uses "other" = the common-* stack

OVERLAID = ['/etc', '/home', '/var/log', '/var/lib/pam', '/usr/share/pam-configs']
SYSTEM_BUS_DIR = '/run/dbus'


def source_dir():
    return os.environ.get('MAMORI_SOURCE_DIR') or os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))


def module_under_test():
    return os.environ.get('MAMORI_PAMSTACK_MODULE') or os.path.join(bench.build_dir(), 'auth', 'pam_mamori.so')


def profile_under_test():
    return os.environ.get('MAMORI_PAMSTACK_PROFILE') or os.path.join(source_dir(), 'packaging', 'pam-configs',
                                                                     'mamori')


def sysusers_under_test():
    return os.environ.get('MAMORI_PAMSTACK_SYSUSERS') or os.path.join(source_dir(), 'systemd',
                                                                      'sysusers-mamori.conf')


def pam_module_dir():
    found = sorted({os.path.dirname(os.path.realpath(p)) for p in
                    glob.glob('/usr/lib/*/security/pam_unix.so') + glob.glob('/lib/*/security/pam_unix.so')})
    return found[0] if len(found) == 1 else None


CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 0x40000


def enter_private_mount_namespace():
    """This process (and all it starts from now on) gets its own mount namespace in which no mount
    propagates back to the host. Returns the namespace it left."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    before = os.readlink('/proc/self/ns/mnt')
    if libc.unshare(CLONE_NEWNS) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f'unshare(CLONE_NEWNS): {os.strerror(e)}')
    if libc.mount(None, b'/', None, MS_REC | MS_PRIVATE, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f'making / private in the new mount namespace: {os.strerror(e)}')
    return before


def run(args, **kw):
    kw.setdefault('stdout', subprocess.PIPE)
    kw.setdefault('stderr', subprocess.PIPE)
    kw.setdefault('text', True)
    kw.setdefault('timeout', 120)
    return subprocess.run(args, check=False, **kw)


def must(args, **kw):
    r = run(args, **kw)
    if r.returncode != 0:
        raise AssertionError(f'{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}')
    return r


def preload_libs():
    """What /etc/ld.so.preload must hold for the module under test to load (ASan build), else []."""
    ldd = run(['ldd', module_under_test()]).stdout
    if 'libasan' not in ldd:
        return []
    asan = run(['gcc', '-print-file-name=libasan.so']).stdout.strip()
    crypt = [p for p in glob.glob('/usr/lib/*/libcrypt.so.1') + glob.glob('/lib/*/libcrypt.so.1')]
    return [os.path.realpath(asan)] + [os.path.realpath(crypt[0])] if crypt else [os.path.realpath(asan)]


class ThrowawayRoot:
    """The overlays, the packages' steps and the accounts (see the module docstring)."""

    def __init__(self, tmp, host_ns):
        self.tmp = tmp
        self.host_ns = host_ns
        self.mounted = []
        self.log = []
        self.sysusers_made_group = False

    def mount_overlays(self):
        if not self.host_ns or os.readlink('/proc/self/ns/mnt') == self.host_ns:
            raise AssertionError('not in a private mount namespace: refusing to lay overlays over the host')
        moddir = pam_module_dir()
        if not moddir:
            raise AssertionError('cannot tell the PAM module directory (pam_unix.so not found once)')
        self.moddir = moddir
        for i, d in enumerate(OVERLAID + [moddir]):
            if not os.path.isdir(d):
                os.makedirs(d)
            upper = os.path.join(self.tmp, 'root', f'{i}-upper')
            work = os.path.join(self.tmp, 'root', f'{i}-work')
            os.makedirs(upper)
            os.makedirs(work)
            must(['mount', '-t', 'overlay', 'overlay', '-o', f'lowerdir={d},upperdir={upper},workdir={work}', d])
            self.mounted.append(d)
        # su and passwd run with set-uid credentials, so libsystemd ignores DBUS_SYSTEM_BUS_ADDRESS
        # (secure_getenv): the test's bus must be where the system bus is.
        os.makedirs(SYSTEM_BUS_DIR, exist_ok=True)
        must(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', SYSTEM_BUS_DIR])
        self.mounted.append(SYSTEM_BUS_DIR)

    def system_bus(self, address):
        link = os.path.join(SYSTEM_BUS_DIR, 'system_bus_socket')
        if os.path.lexists(link):
            os.unlink(link)
        if address:
            assert address.startswith('unix:path='), address
            os.symlink(address[len('unix:path='):].split(',')[0], link)

    def unmount(self):
        for d in reversed(self.mounted):
            run(['umount', d])
        self.mounted = []

    def install(self):
        # mamori-agent's postinst: systemd-sysusers with the shipped file.
        must(['systemd-sysusers', sysusers_under_test()])
        self.sysusers_made_group = run(['getent', 'group', 'mamori-counter']).returncode == 0
        if not self.sysusers_made_group:
            must(['groupadd', '--system', 'mamori-counter'])  # so the PAM assertions still run
        # libpam-mamori: the module and the profile, then its postinst and the README's command.
        shutil.copy(module_under_test(), os.path.join(self.moddir, 'pam_mamori.so'))
        shutil.copy(profile_under_test(), '/usr/share/pam-configs/mamori')
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        self.log.append(must(['pam-auth-update', '--package'], env=env).stdout)
        self.enable()

    def enable(self):
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        must(['pam-auth-update', '--enable', 'mamori'], env=env)

    def disable(self):
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        must(['pam-auth-update', '--disable', 'mamori'], env=env)

    def set_password(self, user, password):
        # usermod -p with a hash made by openssl: no PAM involved in setting up.
        hashed = must(['openssl', 'passwd', '-6', password]).stdout.strip()
        must(['usermod', '-p', hashed, user])

    def accounts(self):
        for user in ('alice', 'admin', 'counter'):
            must(['useradd', '-M', '-s', '/bin/sh', user])
        if run(['getent', 'group', 'sudo']).returncode == 0:
            must(['usermod', '-aG', 'sudo', 'admin'])
        must(['usermod', '-aG', 'mamori-counter', 'counter'])  # the README's step
        for user, password in PASSWORDS.items():
            self.set_password(user, password)

    def stack(self, name):
        with open(f'/etc/pam.d/{name}', encoding='utf-8') as f:
            return [line.rstrip('\n') for line in f if line.strip() and not line.startswith('#')]

    def preload(self, libs):
        path = '/etc/ld.so.preload'
        if libs:
            with open(path, 'w', encoding='ascii') as f:
                f.write('\n'.join(libs) + '\n')
        elif os.path.exists(path):
            os.unlink(path)


class RootCase(unittest.TestCase):
    """What the PAM stack suites share (this one and test_pambio.py): the throwaway root, made once for
    the class; a terminal whose bus is the system bus in there; pamtester's environment and verdicts.
    Holds no tests itself."""

    TMP_PREFIX = 'mamori-pamstack-'
    TOOLS = ('mount', 'pam-auth-update', 'pamtester', 'useradd', 'systemd-sysusers', 'openssl')

    @classmethod
    def setUpClass(cls):
        missing = [t for t in cls.TOOLS if not shutil.which(t)]
        if missing:
            raise AssertionError(f'missing tools (tools/dev deps): {missing}')
        host_ns = enter_private_mount_namespace()
        cls.tmpdir = bench.TempDir(prefix=cls.TMP_PREFIX)
        cls.tmp = cls.tmpdir.__enter__()
        cls.root = ThrowawayRoot(cls.tmp, host_ns)
        try:
            cls.root.mount_overlays()
            cls.root.install()
            cls.root.accounts()
        except BaseException:
            cls.root.unmount()
            cls.tmpdir.__exit__(None, None, None)
            raise
        cls.preload_libs = preload_libs()

    @classmethod
    def tearDownClass(cls):
        cls.root.preload([])
        cls.root.unmount()
        cls.tmpdir.__exit__(None, None, None)

    def use_terminal(self, t):
        """t's bus becomes the system bus of the root (reachable by alice, as the system bus is)."""
        os.chmod(t.tmp, 0o755)
        self.root.system_bus(t.bus.address)
        self.addCleanup(self.root.system_bus, None)
        self.term = t
        return t

    def pamtester_env(self, lang='C'):
        """The environment of a pamtester run: no wrappers, the conversation in lang, the terminal's bus
        (when there is none, a bus that is not there)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(('LD_PRELOAD', 'PAM_WRAPPER', 'LC_', 'LANG'))}
        env.update({'ASAN_OPTIONS': 'detect_leaks=0', 'LANG': lang, 'LC_ALL': lang,
                    'DBUS_SYSTEM_BUS_ADDRESS': self.term.bus.address if getattr(self, 'term', None) else
                    'unix:path=/nonexistent'})
        return env

    @contextlib.contextmanager
    def preloaded(self):
        """/etc/ld.so.preload holds what the module under test needs (ASan) while the block runs."""
        self.root.preload(self.preload_libs)
        try:
            yield
        finally:
            self.root.preload([])

    def assertAuthenticated(self, p, msg=''):
        self.assertEqual(p.returncode, 0, f'{msg}\nstdout: {p.stdout}\nstderr: {p.stderr}')
        self.assertIn('successfully authenticated', p.stdout)

    def assertRefused(self, p, msg=''):
        self.assertNotEqual(p.returncode, 0, f'{msg}: authenticated!\nstdout: {p.stdout}\nstderr: {p.stderr}')


@unittest.skipUnless(os.geteuid() == 0, 'needs root (mount namespace, overlays, useradd)')
class PamStack(RootCase):
    """Each test: one counter terminal (private bus, mock logind, pcscd, virtual card, mamorid)."""

    TOOLS = RootCase.TOOLS + ('setpriv',)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.uids = {u: int(must(['id', '-u', u]).stdout) for u in ('alice', 'admin', 'counter')}
        cls.gids = {u: int(must(['id', '-g', u]).stdout) for u in ('alice', 'admin', 'counter')}
        for name in ('common-auth', 'common-account', 'common-password'):
            print(f'--- {name} as pam-auth-update wrote it', *cls.root.stack(name), sep='\n    ', file=sys.stderr)

    # --- the terminal -------------------------------------------------------------------------

    def terminal(self, card=True, agent=True):
        t = self.use_terminal(terminal.Terminal(self))
        if card:
            c = t.insert('OP0001')
        if agent:
            t.start_agent()
            if card:
                t.wait_card_seen(c)
        return t

    def state(self):
        return str(self.term.prop('State'))

    def records(self, name):
        return [line for line in list(self.term.agent.events.lines) if line.startswith(name + ' ')]

    # --- PAM ---------------------------------------------------------------------------------

    def pam(self, service, user, op, answers, as_user=None):
        """pamtester SERVICE USER OP with answers on stdin; as_user: real uid that user, effective uid 0."""
        prefix = []
        if as_user:
            prefix = ['setpriv', f'--ruid={self.uids[as_user]}', f'--rgid={self.gids[as_user]}', '--init-groups']
        with self.preloaded():
            p = run(prefix + ['pamtester', '-v', service, user, op], input=''.join(a + '\n' for a in answers),
                    env=self.pamtester_env(), timeout=120)
        self.assertNotIn('Sanitizer', p.stderr, p.stderr)
        return p

    def assertAccountOk(self, p, msg=''):
        self.assertEqual(p.returncode, 0, f'{msg}\nstdout: {p.stdout}\nstderr: {p.stderr}')
        self.assertIn('account management done', p.stdout)

    # --- the stack pam-auth-update wrote -----------------------------------------------------

    def test_packaging_creates_the_group_and_the_stack_ends_at_mamori(self):
        self.assertTrue(self.root.sysusers_made_group, 'systemd-sysusers with the shipped file made no mamori-counter')
        auth = self.root.stack('common-auth')
        mamori = [i for i, line in enumerate(auth) if 'pam_mamori.so' in line]
        unix = [i for i, line in enumerate(auth) if 'pam_unix.so' in line]
        self.assertEqual(len(mamori), 1, auth)
        self.assertLess(mamori[0], unix[0], 'pam_mamori must come before pam_unix')
        self.assertIn('ignore=ignore', auth[mamori[0]])
        self.assertIn('default=die', auth[mamori[0]])

    # --- accounts mamori does not govern ------------------------------------------------------

    def test_su_root_with_an_operator_card_is_refused(self):
        """Finding 2: an operator card + right PIN typed at su's prompt is only a wrong root password."""
        self.terminal()
        p = self.pam('su', 'root', 'authenticate', [PIN], as_user='alice')
        self.assertRefused(p, 'su root with the card and its PIN')
        self.assertNotIn('PIN', p.stderr)  # the card was never asked for
        self.assertEqual(self.state(), 'locked')
        self.assertEqual(self.records('auth.ok'), [])
        self.assertEqual(self.records('unlock'), [])
        # The same su with root's password works, the card in the reader or not.
        self.assertAuthenticated(self.pam('su', 'root', 'authenticate', [PASSWORDS['root']], as_user='alice'),
                                 'su root with root\'s password')
        self.assertEqual(self.state(), 'locked')

    def test_administrator_password_login_works_with_the_card_in_the_reader(self):
        self.terminal()
        p = self.pam(GREETER, 'admin', 'authenticate', [PASSWORDS['admin']])
        self.assertAuthenticated(p, 'admin with the admin password')
        self.assertNotIn('PIN', p.stderr)
        self.assertAccountOk(self.pam(GREETER, 'admin', 'acct_mgmt', []), 'admin account step')
        self.assertRefused(self.pam(GREETER, 'admin', 'authenticate', [PIN]), 'admin with the card PIN')
        self.assertEqual(self.state(), 'locked')
        self.assertEqual(self.records('auth.ok'), [])

    def passwd_transcript(self, old, new):
        p = self.pam('passwd', 'alice', 'chauthtok', [old, new, new], as_user='alice')
        self.assertEqual(p.returncode, 0, f'passwd for alice\nstdout: {p.stdout}\nstderr: {p.stderr}')
        self.assertIn('authentication token altered successfully', p.stdout)
        # The new password is alice's password now; the old one is not.
        self.assertAuthenticated(self.pam(GREETER, 'alice', 'authenticate', [new]), 'alice with her new password')
        self.assertRefused(self.pam(GREETER, 'alice', 'authenticate', [old]), 'alice with her old password')
        return p.stderr

    def test_passwd_for_an_ordinary_user_works_as_without_mamori(self):
        """Finding 3: passwd asks alice what pam_unix alone asks, and changes her password."""
        self.terminal()
        with_mamori = self.passwd_transcript(PASSWORDS['alice'], NEW_ALICE)
        self.assertNotIn('PIN', with_mamori)
        self.assertEqual(self.records('auth.ok'), [])
        # The same change on the stack without the profile: the same conversation.
        self.root.set_password('alice', PASSWORDS['alice'])
        self.root.disable()
        try:
            without = self.passwd_transcript(PASSWORDS['alice'], NEW_ALICE)
        finally:
            self.root.enable()
            self.root.set_password('alice', PASSWORDS['alice'])
        self.assertEqual(with_mamori, without)

    # --- the counter account --------------------------------------------------------------------

    def test_counter_wrong_pin_is_refused_and_its_password_is_never_asked(self):
        self.terminal()
        # The password on the next line is what pam_unix would read if the stack went on.
        p = self.pam(GREETER, 'counter', 'authenticate', [WRONG_PIN, PASSWORDS['counter']])
        self.assertRefused(p, 'counter with a wrong PIN, then its password')
        self.assertIn('PIN wrong', p.stderr)
        self.assertNotIn('Password:', p.stderr)
        self.assertEqual(self.state(), 'locked')

    def test_counter_password_alone_never_authenticates(self):
        self.terminal()
        p = self.pam(GREETER, 'counter', 'authenticate', [PASSWORDS['counter']] * 4)
        self.assertRefused(p, 'counter with its unix password at every prompt')
        self.assertNotIn('Password:', p.stderr)
        self.assertEqual(self.state(), 'locked')

    def test_counter_with_the_agent_down_is_refused(self):
        self.terminal(card=True, agent=False)
        # Only the password: that is what a password module after a card module that gave up reads.
        p = self.pam(GREETER, 'counter', 'authenticate', [PASSWORDS['counter']])
        self.assertRefused(p, 'counter with mamorid not running')
        self.assertNotIn('Password:', p.stderr)

    def test_counter_without_a_card_is_refused(self):
        """No card within the module's default timeout (60 s): refused, and no password asked then."""
        self.terminal(card=False)
        p = self.pam(GREETER, 'counter', 'authenticate', [PASSWORDS['counter']])
        self.assertRefused(p, 'counter without a card')
        self.assertIn('Insert your operator card', p.stdout + p.stderr)
        self.assertIn('No card was inserted', p.stderr)
        self.assertNotIn('Password:', p.stderr)
        self.assertEqual(self.state(), 'locked')

    def test_counter_with_card_and_right_pin_logs_in(self):
        self.terminal()
        p = self.pam(GREETER, 'counter', 'authenticate', [PIN])
        self.assertAuthenticated(p, 'counter with card and PIN')
        self.assertEqual(self.state(), 'active')
        self.assertEqual(str(self.term.prop('Operator')), 'OP0001')
        self.assertAccountOk(self.pam(GREETER, 'counter', 'acct_mgmt', []), 'counter account step')


if __name__ == '__main__':
    unittest.main(verbosity=2)
