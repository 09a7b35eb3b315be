# pam_mamori.so and mamorictl status/lock/passwd against mamorid on a private system bus (pam_wrapper, pamtester, pypamtest).
"""The PAM module is loaded by pamtester and by pypamtest through pam_wrapper (Debian libpam-wrapper):
LD_PRELOAD=libpam_wrapper.so with PAM_WRAPPER_SERVICE_DIR naming a private service file that loads the
built pam_mamori.so by absolute path. The build is sanitized, so libasan is preloaded first (the PAM
applications are not), with leak detection off (the Python interpreter and pamtester are not clean).
nss_wrapper (Debian libnss-wrapper) gives the test its own user and group files: ``counter`` is in
``mamori-counter`` (the accounts the module governs), ``alice`` is not. The stack pam-auth-update
writes is tested in test_pamstack.py.

Without a daemon: no bus at all, and a bus where nothing owns org.mamori.Agent1 → PAM_AUTHINFO_UNAVAIL.
With mamorid (private pcscd + virtual card, mock logind, signed policy, test PKI): right PIN, wrong PIN
with the tries left in the message, suspended card, old PIN → PAM_NEW_AUTHTOK_REQD, chauthtok changes
the PIN on the card, mamorictl status --json. Each of these fails when mamorid does not serve
the org.mamori.Agent1 interface (found by introspection).

Language: the operator's words in Japanese and in English, chosen by the LANG of the PAM environment
(pam_test_putenv.so puts it there, as a display manager does) or else of the process, from the
catalogue built in build/po (MAMORI_LOCALEDIR); the ja_JP.UTF-8 locale is generated into the test's
directory (LOCPATH) when the system has none."""

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentproc  # noqa: E402
import bench  # noqa: E402
import policytool  # noqa: E402

PIN = '123456'
WRONG = '654321'
NEW_PIN = '24681357'
OFFICE = 'chuo-passport'
TERMINAL = 'T-0001'
SERVICE = 'mamori-test'
USER = 'counter'
OTHER_USER = 'alice'
# nss_wrapper's user and group files: counter is governed (supplementary mamori-counter), alice not.
NSS_PASSWD = ('root:x:0:0:root:/root:/bin/sh\n'
              'counter:x:1000:1000:counter account:/nonexistent:/bin/sh\n'
              'alice:x:1001:1001:alice:/nonexistent:/bin/sh\n'
              'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n')
NSS_GROUP = ('root:x:0:\n'
             'counter:x:1000:\n'
             'alice:x:1001:\n'
             'mamori-counter:x:990:counter\n'
             'nogroup:x:65534:\n')

# Linux-PAM return codes (security/_pam_types.h).
PAM_SUCCESS = 0
PAM_PERM_DENIED = 6
PAM_AUTH_ERR = 7
PAM_AUTHINFO_UNAVAIL = 9
PAM_USER_UNKNOWN = 10
PAM_MAXTRIES = 11
PAM_NEW_AUTHTOK_REQD = 12
PAM_AUTHTOK_ERR = 20
PAM_AUTHTOK_RECOVERY_ERR = 21
PAM_TRY_AGAIN = 24
PAM_IGNORE = 25

AGENT_NAME = 'org.mamori.Agent1'
AGENT_PATH = '/org/mamori/Agent1'
DAY_US = 24 * 3600 * 1000000

# Runs in a child interpreter (so LD_PRELOAD applies): one PAM transaction, expected codes per step.
PYPAMTEST_DRIVER = r'''
import json, sys, pypamtest
req = json.loads(sys.argv[1])
cases = [pypamtest.TestCase(op, expected_rv=rv) for op, rv in req['cases']]
try:
    res = pypamtest.run_pamtest(req['user'], req['service'], cases, req['echo_off'])
    print(json.dumps({'ok': True, 'info': list(res.info), 'errors': list(res.errors)}))
except pypamtest.PamTestError as e:
    print(json.dumps({'ok': False, 'error': str(e)}))
'''


_JA_LOCPATH = {}


def ja_locale_env(tmp):
    """Environment that makes ja_JP.UTF-8 loadable: {} when the system has it, else LOCPATH of a copy
    compiled by localedef (Debian package locales) once per run; None when neither is possible."""
    out = subprocess.run(['locale', '-a'], stdout=subprocess.PIPE, text=True, check=False).stdout.split()
    if any(name.lower().replace('-', '') == 'ja_jp.utf8' for name in out):
        return {}
    if 'dir' not in _JA_LOCPATH:
        d = os.path.join(tmp, 'locale')
        os.makedirs(d, exist_ok=True)
        r = subprocess.run(['localedef', '-i', 'ja_JP', '-f', 'UTF-8', os.path.join(d, 'ja_JP.UTF-8')],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        _JA_LOCPATH['dir'] = d if r.returncode in (0, 1) and os.path.isdir(os.path.join(d, 'ja_JP.UTF-8')) else None
    d = _JA_LOCPATH['dir']
    return None if d is None else {'LOCPATH': d}


def catalogue_env():
    po = os.environ.get('MAMORI_BUILD_PO_DIR') or os.path.join(bench.build_dir(), 'po')
    return {'MAMORI_LOCALEDIR': po}


def pam_module():
    return os.path.join(bench.build_dir(), 'auth', 'pam_mamori.so')


def mamorictl_exe():
    return os.path.join(bench.build_dir(), 'agent', 'mamorictl')


def asan_runtime():
    """libasan to preload when the module is sanitized (it needs the runtime first in the process)."""
    r = subprocess.run(['ldd', pam_module()], stdout=subprocess.PIPE, text=True, check=False)
    if 'libasan' not in r.stdout:
        return None
    path = subprocess.run(['gcc', '-print-file-name=libasan.so'], stdout=subprocess.PIPE, text=True,
                          check=False).stdout.strip()
    return os.path.realpath(path) if path and os.path.exists(path) else None


class PamBase(unittest.TestCase):

    def setUp(self):
        self.tmp = self.enter(bench.TempDir())
        self.service_dir = os.path.join(self.tmp, 'pam.d')
        os.makedirs(self.service_dir)
        self.write_service('debug timeout=3')
        self.nss_passwd = os.path.join(self.tmp, 'passwd')
        self.nss_group = os.path.join(self.tmp, 'group')
        for path, text in ((self.nss_passwd, NSS_PASSWD), (self.nss_group, NSS_GROUP)):
            with open(path, 'w', encoding='ascii') as f:
                f.write(text)
            os.chmod(path, 0o644)
        self.bus_address = 'unix:path=' + os.path.join(self.tmp, 'no-bus-here')
        self.extra_env = {}  # more environment for the PAM application and mamorictl (language tests)

    def use_japanese(self):
        """The built catalogue and a loadable ja_JP.UTF-8 for the PAM application and mamorictl."""
        if not os.path.exists(os.path.join(catalogue_env()['MAMORI_LOCALEDIR'], 'ja', 'LC_MESSAGES', 'mamori.mo')):
            self.fail('po/ja.po was not built into build/po (meson i18n)')
        loc = ja_locale_env(self.locale_tmp())
        if loc is None:
            self.skipTest('no ja_JP.UTF-8 locale and localedef cannot make one (Debian package locales)')
        self.extra_env.update(catalogue_env())
        self.extra_env.update(loc)

    def locale_tmp(self):
        # Shared by every test of the run (the locale is compiled once), removed when the run ends.
        if 'tmp' not in _JA_LOCPATH:
            _JA_LOCPATH['tmp'] = tempfile.mkdtemp(prefix='mamori-test-locale-')
            atexit.register(shutil.rmtree, _JA_LOCPATH['tmp'], True)
        return _JA_LOCPATH['tmp']

    def write_language_service(self, pam_env_values, options='debug timeout=3'):
        """pam_mamori after a module that puts pam_env_values ("LANG=…") into the PAM environment."""
        mod = pam_module()
        putenv = os.environ.get('MAMORI_PAM_TEST_PUTENV') or os.path.join(
            bench.build_dir(), 'tests', 'integration', 'pam_test_putenv.so')
        values = ' '.join(pam_env_values)
        with open(os.path.join(self.service_dir, SERVICE), 'w', encoding='ascii') as f:
            for phase in ('auth', 'account', 'password'):
                if values:
                    f.write(f'{phase} optional {putenv} {values}\n')
                f.write(f'{phase} required {mod} {options}\n')
            f.write('session required pam_permit.so\n')

    def enter(self, cm):
        value = cm.__enter__()
        self.addCleanup(cm.__exit__, None, None, None)
        return value

    def write_service(self, options=''):
        mod = pam_module()
        with open(os.path.join(self.service_dir, SERVICE), 'w', encoding='ascii') as f:
            f.write(f'auth     required {mod} {options}\n'
                    f'account  required {mod} {options}\n'
                    f'password required {mod} {options}\n'
                    f'session  required pam_permit.so\n')

    def write_gate_service(self, options='debug timeout=3'):
        """The shipped profile's actions, with pam_permit standing for the password module after it."""
        mod = pam_module()
        with open(os.path.join(self.service_dir, SERVICE), 'w', encoding='ascii') as f:
            for phase, actions in (('auth', 'success=done ignore=ignore default=die'),
                                   ('account', 'success=ok ignore=ignore default=die'),
                                   ('password', 'success=done ignore=ignore default=die')):
                f.write(f'{phase} [{actions}] {mod} {options}\n{phase} required pam_permit.so\n')
            f.write('session required pam_permit.so\n')

    def pam_env(self):
        env = dict(os.environ)
        preload = ['libpam_wrapper.so', 'libnss_wrapper.so']
        asan = asan_runtime()
        if asan:
            preload.insert(0, asan)
        env.update({
            'LD_PRELOAD': ':'.join(preload),
            'PAM_WRAPPER': '1',
            'PAM_WRAPPER_SERVICE_DIR': self.service_dir,
            'PAM_WRAPPER_DEBUGLEVEL': '2',
            'NSS_WRAPPER_PASSWD': self.nss_passwd,
            'NSS_WRAPPER_GROUP': self.nss_group,
            'ASAN_OPTIONS': 'detect_leaks=0:abort_on_error=0',
            'UBSAN_OPTIONS': 'print_stacktrace=1',
            'DBUS_SYSTEM_BUS_ADDRESS': self.bus_address,
        })
        env.update(self.extra_env)
        return env

    def pamtester(self, *ops, stdin='', user=USER):
        p = subprocess.run(['pamtester', '-v', SERVICE, user] + list(ops), env=self.pam_env(), input=stdin,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding='utf-8',
                           timeout=60, check=False)
        self.assertNotIn('Sanitizer', p.stderr, p.stderr)
        return p

    def pypamtest(self, cases, echo_off=(), user=USER, as_uid=None):
        req = {'user': user, 'service': SERVICE, 'cases': cases, 'echo_off': list(echo_off)}
        # as_uid: run the PAM application unprivileged, as a screen locker in the desktop session does.
        prefix = [] if as_uid is None else ['setpriv', f'--reuid={as_uid}', f'--regid={as_uid}', '--clear-groups']
        # mamorid answers a non-root caller only inside the seat's active session (DESIGN §5).
        env = self.pam_env() if as_uid is None else bench.in_session_env(self.pam_env(), self.logind.session_id)
        p = subprocess.run(prefix + [bench.PYTHON, '-c', PYPAMTEST_DRIVER, json.dumps(req)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60, check=False)
        self.assertNotIn('Sanitizer', p.stderr, p.stderr)
        self.assertEqual(p.returncode, 0, p.stderr)
        res = json.loads(p.stdout)
        res['log'] = p.stderr
        return res

    def assertPam(self, res, msg=None):
        self.assertTrue(res['ok'], f"{res.get('error')}; {msg or ''}\n{res['log'][-3000:]}")

    def ctl(self, *args, stdin=None, env_extra=None):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus_address)
        env.update(self.extra_env)
        env.update(env_extra or {})
        p = subprocess.run([mamorictl_exe()] + list(args), env=env, input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, encoding='utf-8', timeout=60, check=False)
        self.assertNotIn('Sanitizer', p.stderr, p.stderr)
        return p


class PamWithoutAgent(PamBase):
    """No daemon: the module must say "unavailable" so the PAM stack can decide, never success."""

    def test_module_exports_only_pam_sm_and_links_no_crypto(self):
        out = subprocess.run(['nm', '-D', '--defined-only', pam_module()], stdout=subprocess.PIPE, text=True,
                             check=True).stdout
        syms = sorted(line.split()[-1] for line in out.splitlines() if line.strip())
        self.assertEqual(syms, ['pam_sm_acct_mgmt', 'pam_sm_authenticate', 'pam_sm_chauthtok', 'pam_sm_setcred'])
        ldd = subprocess.run(['ldd', pam_module()], stdout=subprocess.PIPE, text=True, check=True).stdout
        for lib in ('libcrypto', 'libssl', 'libpcsclite', 'libcurl'):
            self.assertNotIn(lib, ldd)
        # Built with -Db_lundef=false a module may leave symbols undefined, which ldd does not show:
        # nothing of OpenSSL or PC/SC may be wanted either (libmamori-base, never libmamori-common).
        undefined = subprocess.run(['nm', '-u', pam_module()], stdout=subprocess.PIPE, text=True,
                                   check=True).stdout.split()
        wanted = [s for s in undefined
                  if s.startswith(('EVP_', 'OPENSSL_', 'CRYPTO_', 'X509', 'SSL_', 'BIO_', 'ERR_', 'SCard'))]
        self.assertEqual(wanted, [])

    def test_no_bus(self):
        res = self.pypamtest([[0, PAM_AUTHINFO_UNAVAIL]], [PIN])
        self.assertPam(res)
        self.assertIn('mamorid unreachable', res['log'])
        p = self.pamtester('authenticate', stdin=PIN + '\n')
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('cannot retrieve authentication info', p.stderr)

    def test_nothing_owns_the_name(self):
        bus = self.enter(bench.SystemBus(self.tmp))
        self.bus_address = bus.address
        for step, code in ((0, PAM_AUTHINFO_UNAVAIL), (2, PAM_AUTHINFO_UNAVAIL)):
            res = self.pypamtest([[step, code]], [PIN])
            self.assertPam(res, f'step {step}')
            self.assertIn('has no owner', res['log'])
        # chauthtok's preliminary check fails: the PIN is never asked for.
        self.assertPam(self.pypamtest([[5, PAM_TRY_AGAIN]], [PIN, NEW_PIN, NEW_PIN]))
        p = self.pamtester('authenticate', stdin=PIN + '\n')
        self.assertIn('cannot retrieve authentication info', p.stderr)
        self.assertNotIn('PIN', p.stdout)
        # mamorictl says so, with systemctl's "not running" exit code.
        for verb in (['status'], ['status', '--json'], ['lock']):
            c = self.ctl(*verb)
            self.assertEqual(c.returncode, 3, c)
            self.assertIn('not running', c.stderr)
        c = self.ctl('passwd', stdin=f'{PIN}\n{NEW_PIN}\n{NEW_PIN}\n')
        self.assertEqual(c.returncode, 3, c)

    def test_agent_down_fails_the_governed_and_leaves_others_alone(self):
        """No bus at all: counter's login ends the stack; alice's goes on to the next module."""
        self.write_gate_service()
        res = self.pypamtest([[0, PAM_AUTHINFO_UNAVAIL]], [PIN])
        self.assertPam(res)
        self.assertIn('mamorid unreachable', res['log'])
        res = self.pypamtest([[0, PAM_SUCCESS], [2, PAM_SUCCESS], [5, PAM_SUCCESS]], ['n3w-Pass', 'n3w-Pass'],
                             user=OTHER_USER)
        self.assertPam(res)
        self.assertIn("user 'alice' is not in group 'mamori-counter'", res['log'])
        self.assertNotIn('mamorid unreachable', res['log'])
        # Nobody the user database knows: refused, never handed on.
        res = self.pypamtest([[0, PAM_USER_UNKNOWN]], [PIN], user='ghost')
        self.assertPam(res)
        res = self.pypamtest([[2, PAM_USER_UNKNOWN]], [], user='ghost')
        self.assertPam(res)

    def test_passwd_checks_input_before_calling(self):
        for lines, msg in ((f'{PIN}\n12a456\n', '6 to 8 digits'), (f'{PIN}\n{NEW_PIN}\n13572468\n', 'do not match'),
                           (f'{PIN}\n', 'end of input')):
            c = self.ctl('passwd', stdin=lines)
            self.assertNotEqual(c.returncode, 0, c)
            self.assertIn(msg, c.stderr)

    def test_mamorictl_in_japanese_and_in_english(self):
        self.use_japanese()
        unset = {'LC_ALL': '', 'LC_MESSAGES': '', 'LANGUAGE': ''}
        ja = dict(unset, LANG='ja_JP.UTF-8')
        c = self.ctl('status', env_extra=ja)
        self.assertEqual(c.returncode, 3, c)
        self.assertIn('mamorictl: アクセス制御サービスに接続できません。システム管理者に連絡してください', c.stderr)
        for lines, msg in ((f'{PIN}\n12a456\n', '新しい暗証番号は6〜8桁の数字にしてください。暗証番号は変更されていません'),
                           (f'{PIN}\n{NEW_PIN}\n13572468\n', '新しい暗証番号が一致しません。暗証番号は変更されていません'),
                           (f'{PIN}\n', '暗証番号を読み取れません: 入力が途中で終わりました')):
            c = self.ctl('passwd', stdin=lines, env_extra=ja)
            self.assertNotEqual(c.returncode, 0, c)
            self.assertIn(msg, c.stderr)
        # gettext's LANGUAGE on a C.UTF-8 terminal needs no Japanese locale at all.
        c = self.ctl('status', env_extra=dict(unset, LANG='C.UTF-8', LANGUAGE='ja', LOCPATH=''))
        self.assertIn('アクセス制御サービスに接続できません', c.stderr)
        # C: the English words, and nothing else.
        for lang in ('C', 'C.UTF-8', 'fr_FR.UTF-8'):
            c = self.ctl('status', env_extra=dict(unset, LANG=lang))
            self.assertIn('The access-control agent is not reachable — call your system administrator', c.stderr)
            c = self.ctl('passwd', stdin=f'{PIN}\n12a456\n', env_extra=dict(unset, LANG=lang))
            self.assertIn('the new PIN must be 6 to 8 digits; the PIN was not changed', c.stderr)
            self.assertFalse(re.search('[\u3040-\u30ff\u4e00-\u9fff]', c.stderr), c.stderr)


def agent_interface_exposed(bus_address, timeout=10.0):
    """True when something on the bus serves the org.mamori.Agent1 interface at its object (introspection)."""
    import dbus
    conn = dbus.bus.BusConnection(bus_address)
    try:
        bench.wait_until(lambda: conn.name_has_owner(AGENT_NAME), timeout=timeout, what=f'{AGENT_NAME} on the bus')
        xml = dbus.Interface(conn.get_object(AGENT_NAME, AGENT_PATH),
                             'org.freedesktop.DBus.Introspectable').Introspect()
        return f'interface name="{AGENT_NAME}"' in xml and 'StartLogin' in xml
    except (TimeoutError, dbus.DBusException):
        return False
    finally:
        conn.close()


class PamWithAgent(PamBase):
    """mamorid on the private bus with a virtual card; each test is one operator at the counter."""

    def setUp(self):
        super().setUp()
        self.pki = bench.TestPKI(self.tmp)
        self.signer = policytool.Signer.generate(self.tmp)
        self.state = os.path.join(self.tmp, 'state')
        self.policy_dir = os.path.join(self.state, 'policy')
        os.makedirs(self.policy_dir)
        self.bus = self.enter(bench.SystemBus(self.tmp))
        self.bus_address = self.bus.address
        self.logind = self.enter(bench.MockLogind(self.bus))
        self.port = bench.free_vpcd_port()
        self.pcscd = self.enter(bench.Pcscd(self.tmp, self.port))
        self.vcard = None
        self.serial = 0

    def publish(self, cards, operators=None, **kw):
        self.serial += 1
        ops = operators or [policytool.operator(op, [OFFICE]) for op in sorted({c[1] for c in cards})]
        b = policytool.bundle(self.serial, OFFICE, TERMINAL, ops,
                              [policytool.card(cid, op, status) for cid, op, status in cards], **kw)
        policytool.install(self.policy_dir, self.signer.sign(b))

    def insert(self, card, tries=3):
        self.vcard = self.enter(bench.VCard(self.port, card.key, card.cert, PIN, tries=tries))
        self.pcscd.wait_card(True)

    def start_agent(self, max_age_days=183, secrets=None):
        env = self.pcscd.client_env(self.bus.client_env())
        conf = {
            'Terminal': {'Id': TERMINAL, 'Office': OFFICE,
                         'IdentityKey': os.path.join(self.state, 'keys', 'identity.key')},
            'Card': {'TrustAnchors': self.pki.ca_path},
            'Policy': {'Directory': self.policy_dir, 'SignerKey': self.signer.pub_path, 'StalePolicy': 'deny'},
            'Log': {'Directory': os.path.join(self.state, 'log')},
            'Secrets': dict({'MaxAgeDays': str(max_age_days)}, **(secrets or {})),
        }
        self.agent = self.enter(agentproc.Mamorid(self.tmp, env, conf))
        if not agent_interface_exposed(self.bus.address):
            self.fail('mamorid does not serve org.mamori.Agent1 on the bus (see mamorid: lines above)')
        return self.agent

    def agent_property(self, name):
        import dbus
        conn = self.bus.connect()
        try:
            props = dbus.Interface(conn.get_object(AGENT_NAME, AGENT_PATH), dbus.PROPERTIES_IFACE)
            return props.Get(AGENT_NAME, name)
        finally:
            conn.close()

    def start_login_tries(self):
        """tries_left as StartLogin reports it (the login is cancelled again at once)."""
        import dbus
        conn = self.bus.connect()
        try:
            agent = dbus.Interface(conn.get_object(AGENT_NAME, AGENT_PATH), AGENT_NAME)
            _, tries = agent.StartLogin(USER)
            agent.CancelLogin()
            return int(tries)
        finally:
            conn.close()

    def wait_card_seen(self, present=True):
        bench.wait_until(lambda: bool(self.agent_property('CardPresent')) == present, timeout=10,
                         what=f'agent CardPresent={present}')

    def card_session(self, status='active', operators=None, pin_changed=None, max_age_days=183, secrets=None):
        card = self.pki.issue('OP0001', 'p256')
        ops = operators
        if ops is None:
            op = policytool.operator('OP0001', [OFFICE])
            if pin_changed is not None:
                op['pin_changed'] = pin_changed
            ops = [op]
        self.publish([(card.card_id, 'OP0001', status)], operators=ops)
        self.insert(card)
        self.start_agent(max_age_days=max_age_days, secrets=secrets)
        self.wait_card_seen(True)
        return card

    def test_right_pin_logs_in_and_status_shows_operator(self):
        card = self.card_session()
        res = self.pypamtest([[0, PAM_SUCCESS], [2, PAM_SUCCESS]], [PIN])
        self.assertPam(res)
        self.assertEqual(res['errors'], [])
        self.assertEqual(str(self.agent_property('State')), 'active')
        self.assertEqual(str(self.agent_property('Operator')), 'OP0001')

        c = self.ctl('status', '--json')
        self.assertEqual(c.returncode, 0, c)
        st = json.loads(c.stdout)
        self.assertEqual(st['state'], 'active')
        self.assertEqual(st['operator'], 'OP0001')
        self.assertEqual(st['card'], card.card_id)
        self.assertTrue(st['card_present'])
        self.assertEqual(st['policy_serial'], self.serial)
        self.assertIsNone(st['last_upload'])
        c = self.ctl('status')
        self.assertRegex(c.stdout, r'(?m)^Operator: OP0001$')
        self.assertRegex(c.stdout, r'(?m)^Last upload: unknown$')

        # mamorictl lock ends the session and asks logind to lock.
        c = self.ctl('lock')
        self.assertEqual(c.returncode, 0, c)
        bench.wait_until(lambda: str(self.agent_property('State')) == 'locked', timeout=5, what='locked')
        bench.wait_until(lambda: self.logind.calls('LockSession'), timeout=5, what='LockSession')

    def test_pamtester_right_and_wrong_pin(self):
        self.card_session()
        p = self.pamtester('authenticate', stdin=WRONG + '\n')
        self.assertNotEqual(p.returncode, 0, p)
        self.assertIn('PIN wrong, 2 tries left', p.stderr)
        self.assertIn('Authentication failure', p.stderr)
        self.assertNotEqual(str(self.agent_property('State')), 'active')
        p = self.pamtester('authenticate', stdin=PIN + '\n')
        self.assertEqual(p.returncode, 0, p)
        # pamtester's conversation prompts on stderr; after a wrong PIN the prompt counts down.
        self.assertIn('PIN (2 tries left): ', p.stderr)
        self.assertIn('successfully authenticated', p.stdout)
        self.assertEqual(str(self.agent_property('State')), 'active')

    def test_wrong_pin_counts_down_in_words(self):
        self.card_session()
        res = self.pypamtest([[0, PAM_AUTH_ERR]], [WRONG])
        self.assertPam(res)
        self.assertIn('PIN wrong, 2 tries left', res['errors'])
        res = self.pypamtest([[0, PAM_AUTH_ERR]], [WRONG])
        self.assertPam(res)
        self.assertIn('PIN wrong, 1 try left', res['errors'])
        # The next prompt tells the operator how many tries remain, when StartLogin reports them.
        reported = self.start_login_tries()
        p = self.pamtester('authenticate', stdin=PIN + '\n')
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(reported, 1)
        self.assertIn('PIN (1 try left): ', p.stderr)

    def card_verifies(self):
        """VERIFY commands that carried a PIN to the virtual card (header + Lc + 8 bytes)."""
        return sum(1 for line in list(self.vcard.err.lines) if line.startswith('vcard: apdu 00 20 00 80 len=13 '))

    def test_pin_of_wrong_shape_asks_again_without_a_try(self):
        self.card_session()
        before = self.card_verifies()
        # max_tries (3) PINs of the wrong shape: each refused in words, asked again, then given up.
        res = self.pypamtest([[0, PAM_AUTH_ERR]], ['12a45', '', '12345'])
        self.assertPam(res)
        self.assertEqual(res['errors'], ['The PIN is 6 to 8 digits — type it again'] * 3)
        self.agent.wait_event('auth.fail', reason='pin-format', timeout=10)
        self.assertNotEqual(str(self.agent_property('State')), 'active')
        # Nothing reached the card: the card still reports all its tries.
        self.assertEqual(self.card_verifies(), before)
        self.assertEqual(self.start_login_tries(), 3)

        # A typo, then the right PIN at the second prompt of the same login.
        res = self.pypamtest([[0, PAM_SUCCESS]], ['12a45', PIN])
        self.assertPam(res)
        self.assertEqual(res['errors'], ['The PIN is 6 to 8 digits — type it again'])
        self.assertEqual(str(self.agent_property('State')), 'active')
        bench.wait_until(lambda: self.card_verifies() >= before + 1, timeout=5, what='the VERIFY of the right PIN')
        self.assertEqual(self.card_verifies(), before + 1)  # only the right PIN went to the card
        # Four pin-format refusals of one card within seconds are one cause: the first is recorded
        # in full, the rest are counted into one summary record (repeats) at the end of the 5 s
        # interval (record-limit.c) — every one of them is on record, none more.
        def fails():
            return [agentproc.parse_event(line)[1] for line in list(self.agent.events.lines)
                    if line.startswith('auth.fail ')]

        def counted():
            return sum(int(f.get('repeats', 1)) for f in fails())

        bench.wait_until(lambda: counted() >= 4, timeout=10, what='four pin-format refusals on record')
        self.assertEqual(counted(), 4, fails())
        self.assertEqual({f.get('reason') for f in fails()}, {'pin-format'}, fails())

    def test_blocked_pin_is_maxtries(self):
        card = self.pki.issue('OP0001', 'p256')
        self.publish([(card.card_id, 'OP0001', 'active')])
        self.insert(card, tries=1)
        self.start_agent()
        self.wait_card_seen(True)
        self.pypamtest([[0, PAM_AUTH_ERR]], [WRONG])  # the last try (PinWrong tries=0 or PinBlocked)
        res = self.pypamtest([[0, PAM_MAXTRIES]], [PIN])
        self.assertPam(res)
        self.assertIn('PIN blocked — call your security manager', res['errors'])

    def test_suspended_card_is_refused_in_words(self):
        self.card_session(status='suspended')
        res = self.pypamtest([[0, PAM_AUTH_ERR]], [PIN])
        self.assertPam(res)
        self.assertIn('Card suspended — call your security manager', res['errors'])
        self.assertNotEqual(str(self.agent_property('State')), 'active')

    def test_old_pin_must_be_changed_then_new_pin_logs_in(self):
        old = policytool.now_us() - 200 * DAY_US
        self.card_session(pin_changed=old, max_age_days=183)
        # As a display manager does: authenticate, account says "expired", chauthtok in the same handle.
        res = self.pypamtest([[0, PAM_SUCCESS], [2, PAM_NEW_AUTHTOK_REQD], [5, PAM_SUCCESS]],
                             [PIN, PIN, NEW_PIN, NEW_PIN])
        self.assertPam(res)
        self.assertIn('Your PIN is older than 183 days and must be changed', res['errors'])
        self.assertIn('PIN changed', res['info'])
        self.assertEqual(str(self.agent_property('State')), 'active')

        # The card now holds the new PIN: the old one is wrong, the new one logs in.
        self.ctl('lock')
        res = self.pypamtest([[0, PAM_AUTH_ERR]], [PIN])
        self.assertPam(res)
        self.assertTrue(any(e.startswith('PIN wrong') for e in res['errors']), res['errors'])
        self.assertPam(self.pypamtest([[0, PAM_SUCCESS]], [NEW_PIN]))
        self.assertEqual(str(self.agent_property('State')), 'active')

    def test_pin_changed_here_counts_at_once_and_after_a_restart(self):
        """DESIGN §4: a pin.change in the terminal's own log is newer than the bundle's pin_changed: the
        next login is not asked to change the PIN again, before any new bundle — and not after mamorid
        restarts either (the change is read back from the log)."""
        self.card_session(pin_changed=policytool.now_us() - 200 * DAY_US, max_age_days=183)
        res = self.pypamtest([[0, PAM_SUCCESS], [2, PAM_NEW_AUTHTOK_REQD], [5, PAM_SUCCESS]],
                             [PIN, PIN, NEW_PIN, NEW_PIN])
        self.assertPam(res)
        self.agent.wait_event('pin.change', op='OP0001')
        self.ctl('lock')
        # The bundle still says 200 days; the terminal's own log says today.
        res = self.pypamtest([[0, PAM_SUCCESS], [2, PAM_SUCCESS]], [NEW_PIN])
        self.assertPam(res)
        self.assertFalse(any('must be changed' in e for e in res['errors'] + res['info']), res)
        self.ctl('lock')
        self.agent.stop()
        self.agent.start()
        self.agent.events.wait(r'PIN/password changes found in the operation log', timeout=10)
        self.assertTrue(agent_interface_exposed(self.bus.address), 'mamorid back on the bus')
        self.wait_card_seen(True)
        res = self.pypamtest([[0, PAM_SUCCESS], [2, PAM_SUCCESS]], [NEW_PIN])
        self.assertPam(res)

    def test_warn_days_warns_in_the_conversation(self):
        self.card_session(pin_changed=policytool.now_us() - 175 * DAY_US, max_age_days=183,
                          secrets={'WarnDays': '14'})
        res = self.pypamtest([[0, PAM_SUCCESS], [2, PAM_SUCCESS]], [PIN])
        self.assertPam(res)
        self.assertIn('Your PIN must be changed within 8 days — change it now with `mamorictl passwd` '
                      '(your card stays in the reader)', res['info'])
        self.assertEqual(str(self.agent_property('State')), 'active')

    def test_no_warning_before_warn_days(self):
        self.card_session(pin_changed=policytool.now_us() - 100 * DAY_US, max_age_days=183,
                          secrets={'WarnDays': '14'})
        res = self.pypamtest([[0, PAM_SUCCESS], [2, PAM_SUCCESS]], [PIN])
        self.assertPam(res)
        self.assertFalse(any('must be changed' in m for m in res['info'] + res['errors']), res)

    def test_min_length_refuses_a_short_new_pin(self):
        self.card_session(secrets={'MinLength': '8'})
        self.assertPam(self.pypamtest([[0, PAM_SUCCESS]], [PIN]))
        res = self.pypamtest([[5, PAM_AUTHTOK_ERR]], [PIN, '135790', '135790'])  # 6 digits
        self.assertPam(res)
        # Words that say what to do (it was "The request was refused as invalid").
        self.assertIn('The new PIN is too short — use at least 8 digits', res['errors'], res)
        rec = self.agent.wait_event('auth.fail', reason='pin-too-short')
        self.assertEqual(rec.get('method'), 'pin-change')
        # Nothing reached the card: the PIN is unchanged; 8 digits are accepted.
        self.ctl('lock')
        self.assertPam(self.pypamtest([[0, PAM_SUCCESS]], [PIN]))
        self.assertPam(self.pypamtest([[5, PAM_SUCCESS]], [PIN, NEW_PIN, NEW_PIN]))

    def test_pin_age_is_checked_only_for_governed_accounts(self):
        self.card_session(pin_changed=policytool.now_us() - 200 * DAY_US, max_age_days=183)
        self.write_gate_service()
        self.assertPam(self.pypamtest([[0, PAM_SUCCESS]], [PIN]))
        self.assertEqual(str(self.agent_property('State')), 'active')
        # Another account's account step never asks about the operator's PIN.
        res = self.pypamtest([[2, PAM_SUCCESS]], [], user=OTHER_USER)
        self.assertPam(res)
        self.assertFalse(any('PIN' in m for m in res['errors'] + res['info']), res)
        # The counter account's does.
        res = self.pypamtest([[2, PAM_NEW_AUTHTOK_REQD]], [])
        self.assertPam(res)

    def test_expired_pin_not_changed_locks_again(self):
        """AnswerPin made the session active; a forced change that fails must not leave it open."""
        self.card_session(pin_changed=policytool.now_us() - 200 * DAY_US, max_age_days=183)
        res = self.pypamtest([[0, PAM_SUCCESS], [2, PAM_NEW_AUTHTOK_REQD], [5, PAM_AUTHTOK_ERR]],
                             [PIN, PIN, NEW_PIN, '13572468'])
        self.assertPam(res)
        self.assertTrue(any('do not match' in e for e in res['errors']), res['errors'])
        bench.wait_until(lambda: str(self.agent_property('State')) == 'locked', timeout=5,
                         what='session locked after the PIN change was refused')
        self.assertIn('expired PIN was not changed: locked', res['log'])

    def test_chauthtok_refuses_mismatch_and_wrong_old_pin(self):
        self.card_session()
        self.assertPam(self.pypamtest([[0, PAM_SUCCESS]], [PIN]))
        res = self.pypamtest([[5, PAM_AUTHTOK_ERR]], [PIN, NEW_PIN, '13572468'])
        self.assertPam(res)
        self.assertTrue(any('do not match' in e for e in res['errors']), res['errors'])
        res = self.pypamtest([[5, PAM_AUTHTOK_RECOVERY_ERR]], [WRONG, NEW_PIN, NEW_PIN])
        self.assertPam(res)
        self.assertTrue(any(e.startswith('PIN wrong') for e in res['errors']), res['errors'])
        # mamorictl passwd (lines on stdin) with the right PIN works, and the new PIN logs in.
        c = self.ctl('passwd', stdin=f'{PIN}\n{NEW_PIN}\n{NEW_PIN}\n')
        self.assertEqual(c.returncode, 0, c)
        self.ctl('lock')
        self.assertPam(self.pypamtest([[0, PAM_SUCCESS]], [NEW_PIN]))

    def test_screen_locker_as_desktop_user(self):
        """A screen locker runs PAM as the desktop user, not root: the same auth call must work."""
        self.card_session()
        for path in (self.tmp, self.service_dir):
            os.chmod(path, 0o755)
        os.chmod(os.path.join(self.service_dir, SERVICE), 0o644)
        res = self.pypamtest([[0, PAM_AUTH_ERR]], [WRONG], as_uid=65534)
        self.assertPam(res)
        self.assertIn('PIN wrong, 2 tries left', res['errors'])
        self.assertPam(self.pypamtest([[0, PAM_SUCCESS]], [PIN], as_uid=65534))
        self.assertEqual(str(self.agent_property('State')), 'active')

    def auth_records(self):
        return [line for line in list(self.agent.events.lines) if line.startswith('auth.')]

    def test_only_members_of_the_group_are_governed(self):
        """With the card in and the agent up, alice's login, account and password steps never reach
        the agent: the module answers PAM_IGNORE and the next module decides."""
        self.card_session()
        self.write_gate_service()
        res = self.pypamtest([[0, PAM_SUCCESS], [1, PAM_SUCCESS], [2, PAM_SUCCESS], [5, PAM_SUCCESS]],
                             ['n3w-Pass', 'n3w-Pass'], user=OTHER_USER)
        self.assertPam(res)
        self.assertEqual(self.auth_records(), [])
        self.assertEqual(str(self.agent_property('State')), 'locked')
        # root is nobody special either: the operator's PIN is never asked for root.
        res = self.pypamtest([[0, PAM_SUCCESS]], [], user='root')
        self.assertPam(res)
        self.assertEqual(self.auth_records(), [])
        # A group that does not exist governs nobody, and says so.
        self.write_gate_service('debug timeout=3 group=no-such-group')
        res = self.pypamtest([[0, PAM_SUCCESS]], [], user=USER)
        self.assertPam(res)
        self.assertIn("group 'no-such-group' does not exist", res['log'])
        self.assertEqual(self.auth_records(), [])
        # The counter account: a wrong PIN ends the stack (pam_permit after it is never reached) …
        self.write_gate_service('debug timeout=3 group=mamori-counter')
        res = self.pypamtest([[0, PAM_AUTH_ERR]], [WRONG])
        self.assertPam(res)
        self.assertIn('PIN wrong, 2 tries left', res['errors'])
        # … and the right one logs in.
        self.assertPam(self.pypamtest([[0, PAM_SUCCESS], [2, PAM_SUCCESS]], [PIN]))
        self.assertEqual(str(self.agent_property('State')), 'active')

    def test_no_card_asks_for_one_and_waits(self):
        card = self.pki.issue('OP0001', 'p256')
        self.publish([(card.card_id, 'OP0001', 'active')])
        self.start_agent()
        self.write_service('timeout=20')
        env = self.pam_env()
        req = {'user': USER, 'service': SERVICE, 'cases': [[0, PAM_SUCCESS]], 'echo_off': [PIN]}
        proc = subprocess.Popen([bench.PYTHON, '-c', PYPAMTEST_DRIVER, json.dumps(req)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # The module is waiting for the card: insert it, and the login completes. Insert only
            # once its StartLogin was refused for want of a card, or a slow start races the card in.
            self.agent.wait_event('auth.fail', reason='no-card', timeout=20)
            self.assertIsNone(proc.poll())
            self.insert(card)
            out, err = proc.communicate(timeout=30)
        finally:
            bench.stop_process(proc)
        res = json.loads(out)
        res['log'] = err
        self.assertPam(res)
        self.assertIn('Insert your operator card', res['info'])

    def test_conversation_in_the_language_of_the_pam_environment(self):
        """The greeter's LANG in the PAM environment picks the words; else the process's LANG."""
        card = self.pki.issue('OP0001', 'p256')
        self.publish([(card.card_id, 'OP0001', 'active')])
        self.start_agent()
        self.use_japanese()
        # The PAM application itself runs in C: only the PAM environment says Japanese.
        self.extra_env.update({'LANG': 'C', 'LC_ALL': '', 'LC_MESSAGES': '', 'LANGUAGE': ''})
        self.write_language_service(['LANG=ja_JP.UTF-8'], 'debug timeout=1')
        res = self.pypamtest([[0, PAM_AUTHINFO_UNAVAIL]], [PIN])
        self.assertPam(res)
        self.assertIn('操作者カードをカードリーダーに挿入してください', res['info'])
        self.assertIn('カードが挿入されませんでした。もう一度やり直してください', res['errors'])
        self.assertIn('messages in locale ja_JP.UTF-8', res['log'])

        self.insert(card)
        self.wait_card_seen(True)
        self.write_language_service(['LANG=ja_JP.UTF-8'])
        res = self.pypamtest([[0, PAM_AUTH_ERR]], [WRONG])
        self.assertPam(res)
        self.assertEqual(res['errors'], ['暗証番号が違います（残り2回）'])
        # The prompt counts down in Japanese too (pamtester shows it on stderr); the right PIN logs in.
        p = self.pamtester('authenticate', stdin=PIN + '\n')
        self.assertEqual(p.returncode, 0, p)
        self.assertIn('暗証番号（残り2回）: ', p.stderr)
        self.assertEqual(str(self.agent_property('State')), 'active')
        # mamorictl status in the operator's language; the values stay the agent's words.
        c = self.ctl('status', env_extra={'LANG': 'ja_JP.UTF-8'})
        self.assertRegex(c.stdout, r'(?m)^状態: active$')
        self.assertRegex(c.stdout, r'(?m)^操作者: OP0001$')
        self.assertRegex(c.stdout, r'(?m)^カード挿入中: はい$')
        c = self.ctl('status')
        self.assertRegex(c.stdout, r'(?m)^State: active$')
        self.assertRegex(c.stdout, r'(?m)^Card present: yes$')
        self.assertEqual(self.ctl('lock').returncode, 0)

        # C in the PAM environment wins over a Japanese process: English.
        self.extra_env['LANG'] = 'ja_JP.UTF-8'
        self.write_language_service(['LANG=C'])
        res = self.pypamtest([[0, PAM_AUTH_ERR]], [WRONG])
        self.assertPam(res)
        self.assertEqual(res['errors'], ['PIN wrong, 2 tries left'])
        # Nothing in the PAM environment: the process's own LANG.
        self.write_language_service([])
        res = self.pypamtest([[0, PAM_AUTH_ERR]], [WRONG])
        self.assertPam(res)
        self.assertEqual(res['errors'], ['暗証番号が違います（残り1回）'])
        # A LANG that is not a locale name (a path) is English, never a file lookup.
        self.write_language_service(['LANG=../../../../tmp/x'])
        self.extra_env['LANG'] = 'C'
        res = self.pypamtest([[0, PAM_SUCCESS]], [PIN])
        self.assertPam(res)
        self.assertIn('messages in locale C', res['log'])

    def test_no_card_times_out_unavailable(self):
        card = self.pki.issue('OP0001', 'p256')
        self.publish([(card.card_id, 'OP0001', 'active')])
        self.start_agent()
        self.write_service('timeout=1')
        res = self.pypamtest([[0, PAM_AUTHINFO_UNAVAIL]], [PIN])
        self.assertPam(res)
        self.assertIn('Insert your operator card', res['info'])


if __name__ == '__main__':
    unittest.main(verbosity=2)
