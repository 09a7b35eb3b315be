#!/usr/bin/python3
# tools/dev demo: a centre and a counter terminal on this machine, the whole story in about a minute.
"""The README's first command. Each step does one thing of a real deployment with the real programs
(mamori-admin, mamori-collector, mamorid, mamori-uploader, pam_mamori.so through pamtester,
mamorictl), checks that it happened and prints one line saying so. Only the hardware is simulated:
a private pcscd with vsmartcard's vpcd reader and mamori's virtual PIV card, a private system bus
with a mock logind whose desktop session answers LockSession. A step that does not do what it
says ends the demo with "FAILED at step N", the last lines of every daemon, and exit status 1.
Everything it starts it stops; its files live in one temporary directory (MAMORI_KEEP_TMP=1 keeps
it). Each step is one small function of Demo, in the order of STEPS (test_demo.py checks each
line appears)."""
import contextlib
import datetime
import json
import os
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentproc  # noqa: E402
import bench  # noqa: E402
import enroltool  # noqa: E402
import indep_verify  # noqa: E402

PIN = '123456'
OFFICE = 'chuo'
TERMINAL = 'T-0001'
OPERATOR = 'OP0001'
OPERATOR_NAME = '守森 花子'
COUNTER = 'counter'  # the terminal's desktop account, in group mamori-counter
PAM_SERVICE = 'mamori-demo'
POLL_SEC = 1  # [Collector] PollSec=: how often the terminal asks the centre for a new policy

# nss_wrapper's account files for pamtester: the counter account is governed by the card.
NSS_PASSWD = f'root:x:0:0:root:/root:/bin/sh\n{COUNTER}:x:1000:1000:counter:/nonexistent:/bin/sh\n'
NSS_GROUP = f'root:x:0:\n{COUNTER}:x:1000:\nmamori-counter:x:990:{COUNTER}\n'


def source_dir():
    return os.environ.get('MAMORI_SOURCE_DIR') or os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))


def exe(*parts):
    return os.path.join(bench.build_dir(), *parts)


def short(card_id):
    return f'{card_id[:4]}…{card_id[-2:]}'


class StepFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise StepFailed(what)


class Daemon:
    """A process whose stderr lines are kept (and written to NAME.log) for waiting and for a failure report."""

    def __init__(self, tmp, name, args, env=None):
        self.name = name
        self.log_path = os.path.join(tmp, f'{name}.log')
        env = dict(env or os.environ)
        env.pop('JOURNAL_STREAM', None)
        env.pop('NOTIFY_SOCKET', None)
        self.proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.lines = bench.LineWatcher(self.proc.stderr, self.log_path)

    def stop(self):
        if self.proc:
            bench.stop_process(self.proc, timeout=10)
            self.lines.join()
            self.proc.stderr.close()
            self.proc = None


class Demo:
    def __init__(self, tmp):
        self.tmp = tmp
        self.cleanups = []
        self.agent = None
        self.published = False
        self.logs = {}  # name -> log path, shown when a step fails
        self.today = datetime.date.today().isoformat()

    # ---- helpers -------------------------------------------------------------------------

    def later(self, fn, *args):
        self.cleanups.append((fn, args))

    def close(self):
        while self.cleanups:
            fn, args = self.cleanups.pop()
            try:
                fn(*args)
            except Exception as e:  # keep stopping the rest
                print(f'   (while stopping: {e})', file=sys.stderr)

    def enter(self, cm):
        obj = cm.__enter__()
        self.later(cm.__exit__, None, None, None)
        return obj

    def run(self, args, env=None, stdin=None, ok=True):
        p = bench.run(args, env=env, input=stdin, timeout=120)
        if ok and p.returncode != 0:
            raise StepFailed(f'{" ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(args))} '
                             f'exited with {p.returncode}: {(p.stderr or p.stdout).strip()}')
        return p

    def admin(self, *args, ok=True):
        return self.run([exe('collector', 'mamori-admin'), '--config', self.centre_conf, *args], ok=ok)

    def ctl(self, *args, ok=True):
        return self.run([exe('agent', 'mamorictl'), *args], env=self.bus.client_env(), ok=ok)

    def write(self, path, text, mode=0o644):
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def agent_sections(self, enrolled):
        """agent.conf: before enrolment only where its files live; after it, what the centre answered."""
        state = os.path.join(self.tmp, 'terminal')
        s = {
            'Terminal': {'IdentityKey': os.path.join(state, 'keys', 'identity.pem')},
            'Card': {'TrustAnchors': self.pki.ca_path},
            'Session': {'LockVerifySec': '1'},
            'Secrets': {'PasswordDirectory': os.path.join(state, 'passwords')},
            'Finger': {'PrintsDirectory': os.path.join(state, 'prints')},
            'Log': {'Directory': os.path.join(state, 'log')},
            'Policy': {'Directory': os.path.join(state, 'policy'),
                       'SignerKey': os.path.join(state, 'policy-signer.pub')},
        }
        if enrolled:
            e = self.enrolment
            s['Terminal'].update({'Id': TERMINAL, 'Office': OFFICE})
            s['Collector'] = {'URL': f'https://127.0.0.1:{self.port}', 'CA': e['collector-ca.pem'],
                              'ClientCert': e['client.pem'], 'ClientKey': e['client.key'],
                              'ReceiptKey': e['receipt.pub'], 'PollSec': str(POLL_SEC)}
        return s

    def start_mamorid(self, enrolled):
        if self.agent:
            self.agent.stop()
        env = self.pcscd.client_env(self.bus.client_env())
        self.agent = agentproc.Mamorid(self.tmp, env, name='terminal')
        self.agent.sections = self.agent_sections(enrolled)  # exactly these keys: no Id before enrolment
        agentproc.write_config(self.agent.config, self.agent.sections)
        for d in (self.agent.sections['Log']['Directory'], self.agent.sections['Policy']['Directory']):
            os.makedirs(d, exist_ok=True)  # what the package's tmpfiles.d makes
        for d in (self.agent.sections['Secrets']['PasswordDirectory'],
                  self.agent.sections['Finger']['PrintsDirectory']):
            os.makedirs(d, mode=0o700, exist_ok=True)  # root-only, as tmpfiles.d makes them
            os.chmod(d, 0o700)
        self.agent.start()
        self.logs['mamorid'] = self.agent.log_path
        self.later(self.agent.stop)
        bench.wait_until(lambda: self.conn.name_has_owner('org.mamori.Agent1'), timeout=10,
                         what='mamorid on the bus')

    def prop(self, name):
        import dbus
        obj = self.conn.get_object('org.mamori.Agent1', '/org/mamori/Agent1')
        return dbus.Interface(obj, dbus.PROPERTIES_IFACE).Get('org.mamori.Agent1', name)

    def last_seq(self):
        """Records mamorid has committed so far (whole lines of its segment files)."""
        d = self.agent.sections['Log']['Directory']
        count = 0
        for name in os.listdir(d):
            if name.startswith('seg-') and name.endswith('.log'):
                with open(os.path.join(d, name), 'rb') as f:
                    count += f.read().count(b'\n')
        return count

    def acked(self):
        try:
            with open(self.cursor) as f:
                return json.load(f)['acked']
        except (FileNotFoundError, ValueError, KeyError):
            return 0

    def wait_uploaded(self):
        """Every record mamorid has written so far is acknowledged by the collector's receipt."""
        last = self.last_seq()
        bench.wait_until(lambda: self.acked() >= last, timeout=30, interval=0.1,
                         what=f'the collector to acknowledge seq {last} (cursor at {self.acked()})')
        return last

    def publish(self, *args):
        """mamori-admin policy publish; returns the seconds until mamorid loaded the new bundle."""
        t0 = time.monotonic()
        serial = json.loads(self.admin('policy', 'show').stdout)['serial'] + 1 if self.published else 1
        self.admin('policy', 'publish', *args)
        self.published = True
        self.agent.wait_event('policy.load', timeout=POLL_SEC + 20, serial=str(serial))
        return time.monotonic() - t0

    def pam_env(self):
        env = self.bus.client_env()
        preload = ['libpam_wrapper.so', 'libnss_wrapper.so']
        asan = asan_runtime(self.pam_module)
        if asan:  # the test suite's sanitizer build: pamtester is not, so the runtime goes first
            preload.insert(0, asan)
            env['ASAN_OPTIONS'] = 'detect_leaks=0'
        env.update({'LD_PRELOAD': ':'.join(preload), 'PAM_WRAPPER': '1',
                    'PAM_WRAPPER_SERVICE_DIR': self.pam_dir,
                    'NSS_WRAPPER_PASSWD': self.nss_passwd, 'NSS_WRAPPER_GROUP': self.nss_group})
        return env

    def pam_login(self):
        """pamtester as the greeter would: auth + account for the counter account, the PIN typed."""
        return self.run(['pamtester', '-v', PAM_SERVICE, COUNTER, 'authenticate', 'acct_mgmt'],
                        env=self.pam_env(), stdin=PIN + '\n', ok=False)

    # ---- the steps -------------------------------------------------------------------------

    def centre_set_up(self):
        """mamori-admin init, then mamori-collector serving HTTPS with client certificates."""
        centre = os.path.join(self.tmp, 'centre')
        os.makedirs(centre)
        self.port = free_port()
        # The card issuer's CA (a test CA here): terminals trust the operator cards it signs, and
        # `card issue` at the centre refuses a certificate that does not chain to it.
        self.pki = bench.TestPKI(self.tmp)
        self.centre_conf = self.write(os.path.join(centre, 'collector.conf'),
                                      f'[Collector]\nListen=127.0.0.1:{self.port}\n'
                                      f'Database={centre}/collector.db\nStateDirectory={centre}/state\n'
                                      f'[Admin]\nDirectory={centre}/admin\n'
                                      f'[Cards]\nOperatorCA={self.pki.ca_path}\n')
        self.admin('init')
        self.collector = Daemon(self.tmp, 'mamori-collector',
                                [exe('collector', 'mamori-collector'), '--config', self.centre_conf])
        self.logs['mamori-collector'] = self.collector.log_path
        self.later(self.collector.stop)
        self.collector.lines.wait(r'listening on 127\.0\.0\.1 port', timeout=30)
        return (f'mamori-admin init (database, policy signing key, terminal CA, collector certificate); '
                f'mamori-collector serves https://127.0.0.1:{self.port}')

    def terminal_enrolled(self):
        """A fresh terminal makes its identity key; the centre registers it and answers with its files."""
        self.bus = self.enter(bench.SystemBus(self.tmp))
        self.logind = self.enter(bench.MockLogind(self.bus))  # the desktop session, answers LockSession
        self.conn = self.bus.connect()
        self.later(self.conn.close)
        self.pcscd = self.enter(bench.Pcscd(self.tmp, bench.free_vpcd_port(), debug=False))  # the reader
        # Installed with what every terminal trusts: the card issuer's CA and the centre's policy key.
        state = os.path.join(self.tmp, 'terminal')
        os.makedirs(state)
        self.write(os.path.join(state, 'policy-signer.pub'), self.admin('policy', 'signer').stdout)
        self.start_mamorid(enrolled=False)  # not enrolled yet: makes its identity key, records nothing
        check(self.last_seq() == 0, 'mamorid wrote records before it had a terminal id')
        identity_key = self.agent.sections['Terminal']['IdentityKey']
        bench.wait_until(lambda: os.path.exists(identity_key), timeout=10, what='the identity key')
        self.identity_pub = self.write(os.path.join(self.tmp, f'{TERMINAL}.pub'),
                                       self.ctl('identity', '--config', self.agent.config).stdout)
        out = os.path.join(self.tmp, 'enrolment')
        # Enrolment by request (DESIGN §11): the TLS key is made here, one file comes back.
        enroltool.enrol(lambda *a: self.admin(*a), TERMINAL, OFFICE, self.identity_pub, out)
        self.enrolment = {n: os.path.join(out, n) for n in os.listdir(out)}
        for name in ('client.pem', 'client.key', 'collector-ca.pem', 'receipt.pub'):
            check(name in self.enrolment, f'mamori-admin terminal add wrote no {name}')
        self.start_mamorid(enrolled=True)  # now with its id: the log starts
        self.cursor = os.path.join(self.tmp, 'terminal', 'upload', 'cursor')
        os.makedirs(os.path.dirname(self.cursor))
        self.uploader = Daemon(self.tmp, 'mamori-uploader', [exe('agent', 'mamori-uploader'), '--config',
                                                              self.agent.config, '--cursor', self.cursor])
        self.logs['mamori-uploader'] = self.uploader.log_path
        self.later(self.uploader.stop)
        seq = self.wait_uploaded()
        return (f'mamorid made its identity key, the terminal a TLS key and a request; mamori-admin terminal '
                f'add --request answered {TERMINAL} with one file (its certificate, the collector CA, the '
                f'receipt key, the policy signer key); the collector acknowledged its first {seq} records')

    def card_issued(self):
        """A virtual PIV card with a certificate of the issuer's CA, registered and published."""
        card = self.pki.issue(OPERATOR, 'p256')
        self.admin('operator', 'add', OPERATOR, '--name', OPERATOR_NAME, '--office', OFFICE)
        self.card_id = self.admin('card', 'issue', '--cert', card.cert, '--operator', OPERATOR).stdout.strip()
        check(self.card_id == card.card_id, f'card issue printed {self.card_id!r}, not the card id')
        took = self.publish()
        self.vcard = self.enter(bench.VCard(self.pcscd.port, card.key, card.cert, PIN, tries=3, trace=False,
                                            log_dir=self.tmp))
        self.agent.wait_event('card.inserted', timeout=20, card=self.card_id)
        return (f'{OPERATOR} ({OPERATOR_NAME}) with card {short(self.card_id)} (a virtual PIV card); policy '
                f'serial 1 published and at the terminal in {took:.1f} s; the card is in the reader')

    def login_through_pam(self):
        """The shipped PAM profile's lines in a service file, pamtester as the greeter."""
        self.pam_module = exe('auth', 'pam_mamori.so')
        self.pam_dir = os.path.join(self.tmp, 'pam.d')
        os.makedirs(self.pam_dir)
        profile = os.path.join(source_dir(), 'packaging', 'pam-configs', 'mamori')
        self.write(os.path.join(self.pam_dir, PAM_SERVICE), pam_service_from_profile(profile, self.pam_module))
        self.nss_passwd = self.write(os.path.join(self.tmp, 'passwd'), NSS_PASSWD)
        self.nss_group = self.write(os.path.join(self.tmp, 'group'), NSS_GROUP)
        t0 = time.monotonic()
        p = self.pam_login()
        took = time.monotonic() - t0
        check(p.returncode == 0 and 'successfully authenticated' in p.stdout,
              f'pamtester exited with {p.returncode}: {p.stdout.strip()} {p.stderr.strip()}')
        check(str(self.prop('State')) == 'active' and str(self.prop('Operator')) == OPERATOR,
              f'mamorid is {self.prop("State")} with operator {self.prop("Operator")!r}')
        ev = self.agent.wait_event('auth.ok', timeout=5, op=OPERATOR)
        self.logind.set_locked_hint(False)  # the screen locker unlocks after PAM's success
        return (f'pamtester → pam_mamori.so (the shipped PAM profile) → mamorid: PIN accepted, {OPERATOR} '
                f'logged in ({ev["method"]}, {ev["exchanges"]} card exchanges, {took * 1000:.0f} ms)')

    def pull_locks(self):
        """The operator pulls the card: the session ends and logind locks the desktop session."""
        self.logind.clear_calls()
        self.vcard.pull()
        ev = self.agent.wait_event('lock', timeout=10, reason='card-removed')
        bench.wait_until(lambda: self.logind.calls('LockSession'), timeout=5, what='LockSession at logind')
        check(str(self.prop('State')) == 'locked', f'mamorid is {self.prop("State")} after the pull')
        check(bool(self.logind.session_property('LockedHint')), 'the desktop did not lock')
        self.agent.wait_event('session.end', timeout=5, after=0, reason='card-removed', op=OPERATOR)
        return (f'session ended (card-removed), desktop session {ev["session"]} locked '
                f'{int(ev["latency_us"]) / 1000:.1f} ms after the pull was seen')

    def records_verified(self):
        """The collector's copy, checked without any terminal code against the key registered at enrolment."""
        last = self.wait_uploaded()
        lines = [l for l in self.admin('export').stdout.encode().split(b'\n') if l]
        check(len(lines) >= last, f'the collector exports {len(lines)} records, the terminal wrote {last}')
        try:
            count = indep_verify.verify_lines(lines, indep_verify.load_identity(self.identity_pub))
        except indep_verify.Broken as e:
            raise StepFailed(f'the collector\'s records do not verify: {e}')
        events = [json.loads(l)['ev'] for l in lines]
        for ev in ('log.open', 'auth.ok', 'session.start', 'card.removed', 'session.end', 'lock'):
            check(ev in events, f'no {ev} record at the collector')
        self.admin('verify')
        return (f'{count} records (login, session, pull, lock …); every signature and link checked by '
                f'tests/integration/indep_verify.py (written from DESIGN.md alone) with the identity key '
                f'registered at enrolment')

    def suspended_refused(self):
        """card suspend + policy publish at the centre; the next login at the terminal is refused."""
        self.vcard.insert()
        self.agent.wait_event('card.inserted', timeout=20, card=self.card_id)
        self.admin('card', 'suspend', self.card_id, '--reason', 'lost at the counter')
        took = self.publish()
        p = self.pam_login()
        check(p.returncode != 0, f'pamtester logged in with a suspended card: {p.stdout.strip()}')
        words = 'Card suspended — call your security manager'
        check(words in p.stderr, f'pamtester did not show "{words}": {p.stderr.strip()}')
        self.agent.wait_event('auth.fail', timeout=5, reason='card-suspended')
        check(str(self.prop('State')) == 'locked', f'mamorid is {self.prop("State")} after the refusal')
        return (f'mamori-admin card suspend + policy publish, at the terminal in {took:.1f} s; '
                f'the next PAM login says "{words}"')

    def emergency(self):
        """An emergency at the centre locks every terminal until it is cleared there."""
        took = self.publish('--emergency', '--reason', 'leak suspected (demo)')
        self.agent.wait_event('emergency.lock', timeout=10, after=0)
        check(bool(self.prop('Emergency')), 'mamorid does not report the emergency')
        status = self.ctl('status').stdout
        check('Emergency lock: yes' in status, f'mamorictl status says: {status}')
        return (f'mamori-admin policy publish --emergency; the terminal locked within {took:.1f} s '
                f'(mamorictl status: "Emergency lock: yes") and refuses every login until mamori-admin '
                f'emergency clear')

    def ledger(self):
        """What just happened, from the records the collector stored: the ledger and the audit findings."""
        self.wait_uploaded()
        csv_text = self.admin('ledger', '--office', OFFICE, '--from', self.today, '--to', self.today,
                              '--format', 'csv').stdout
        rows = [r for r in csv_text.splitlines() if r.strip()]
        check(len(rows) >= 2 and any(OPERATOR in r and 'card-removed' in r for r in rows[1:]),
              f'the ledger has no card-removed session of {OPERATOR}: {csv_text}')
        audit = json.loads(self.admin('audit', '--from', self.today, '--to', self.today, '--format',
                                      'json').stdout)
        for kind in ('suspended-card-used', 'emergency'):
            check(audit['counts'].get(kind), f'the audit found no {kind}: {audit["counts"]}')
        counts = ', '.join(f'{k} {n}' for k, n in sorted(audit['counts'].items()) if n)
        table = '\n'.join('      ' + r for r in rows)
        return (f'mamori-admin ledger --office {OFFICE} (one row per session):\n'
                f'{table}\n   mamori-admin audit (findings): {counts}')


STEPS = [
    ('centre set up', Demo.centre_set_up),
    ('terminal enrolled', Demo.terminal_enrolled),
    ('operator card issued', Demo.card_issued),
    ('login through PAM with the PIN', Demo.login_through_pam),
    ('card pulled, terminal locked', Demo.pull_locks),
    ('records at the collector, verified independently', Demo.records_verified),
    ('card suspended at the centre, refused at the terminal', Demo.suspended_refused),
    ('emergency', Demo.emergency),
    ('the ledger of what just happened', Demo.ledger),
]


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def asan_runtime(module):
    """libasan to preload when the module is sanitized (pamtester is not), else None."""
    if 'libasan' not in bench.run(['ldd', module]).stdout:
        return None
    path = bench.run(['gcc', '-print-file-name=libasan.so']).stdout.strip()
    return os.path.realpath(path) if path and os.path.exists(path) else None


def pam_service_from_profile(profile, module):
    """The pam-auth-update profile's Auth and Account lines as one PAM service file: the module by its
    path, "end" (pam-auth-update's jump past the primary block) as "done"; after the primary auth
    line what pam-auth-update puts after every primary block (pam_deny), before the additional
    account line pam_permit standing for pam_unix."""
    sections, current = {}, None
    with open(profile, encoding='utf-8') as f:
        for line in f:
            if line[:1].isspace() and current and line.strip():
                sections.setdefault(current, []).append(line.strip())
            elif ':' in line:
                current = line.split(':', 1)[0]
    auth, account = sections.get('Auth'), sections.get('Account')
    if not auth or not account:
        raise StepFailed(f'{profile} has no Auth or Account lines')

    def line(phase, text):
        return f'{phase} {text.replace("success=end", "success=done").replace("pam_mamori.so", module)}\n'
    return (''.join(line('auth', a) for a in auth) + 'auth requisite pam_deny.so\n'
            'account required pam_permit.so\n' + ''.join(line('account', a) for a in account))


def show_logs(demo):
    for name, path in demo.logs.items():
        with contextlib.suppress(OSError), open(path, encoding='utf-8', errors='replace') as f:
            tail = f.read().splitlines()[-12:]
        print(f'--- last lines of {name} ({path}) ---', file=sys.stderr)
        for line in tail:
            print('   ' + line, file=sys.stderr)


def main():
    t0 = time.monotonic()
    print(f'mamori demo: a centre and a counter terminal on this machine, in {len(STEPS)} steps', flush=True)
    failed = None
    with bench.TempDir(prefix='mamori-demo-') as tmp:
        print(f'work directory {tmp} (removed at the end; MAMORI_KEEP_TMP=1 keeps it)', flush=True)
        demo = Demo(tmp)
        try:
            for i, (title, step) in enumerate(STEPS, 1):
                try:
                    detail = step(demo)
                except Exception as e:
                    failed = (i, title, e)
                    break
                print(f'{i}. {title}: {detail}', flush=True)
            if failed:
                i, title, e = failed
                print(f'FAILED at step {i} ({title}): {e}', file=sys.stderr)
                if not isinstance(e, (StepFailed, TimeoutError)):
                    traceback.print_exception(e, file=sys.stderr)
                show_logs(demo)
        finally:
            demo.close()
    if failed:
        return 1
    print(f'demo finished in {time.monotonic() - t0:.1f} s; every process it started is stopped', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
