#!/usr/bin/python3
# Centre custody and enrolment by request (DESIGN.md §11): two machines' worth of directories on 127.0.0.1.
"""A centre (mamori-admin + mamori-collector, its own directory) and a terminal (its own directory:
agent.conf, keys, log written by the C oplog appender, mamori-uploader) talk over real TLS on
127.0.0.1 — the same programs as on two machines, but one host and one user (root), so the files
cross by copy, as an administrator carries them. What is checked:
  - mamorictl enroll-request → mamori-admin terminal add --request → mamorictl enroll-install →
    the uploader's first upload is stored, and the policy signed at the centre is fetched; no file
    that crossed holds a private key;
  - terminal retire → 403 terminal-retired at once, from the running collector; the uploader says so;
  - terminal rekey → the old certificate refused at once, the new one accepted;
  - collector renew → new names, same collector CA; init on an initialised centre changes nothing;
  - custody: the admin keys are out of the collector's state directory and its user cannot open them
    (the collector runs as that user here), an older centre's keys are moved out with a message;
  - the shipped collector.conf and the collector/README.md example pass --check-config."""
import hashlib
import http.client
import json
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import enroltool  # noqa: E402
from test_collector import Centre, exe  # noqa: E402
from test_upload import Terminal, free_port  # noqa: E402

TERM = 'T-CRASH'  # the oplog appender's terminal id
SRC = os.path.normpath(os.path.join(HERE, '..', '..'))
PRIVATE = b'PRIVATE KEY'


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def read(path, mode='r'):
    with open(path, mode) as f:
        return f.read()


class Site:
    """The centre and one terminal, each in its own directory."""

    def __init__(self, tmp, names=('127.0.0.1', 'centre.example')):
        self.tmp = tmp
        self.port = free_port()
        self.centre_dir = os.path.join(tmp, 'centre')
        os.makedirs(self.centre_dir)
        self.centre = Centre(self.centre_dir, init_args=[a for n in names for a in ('--name', n)])
        with open(self.centre.conf) as f:
            conf = f.read()
        with open(self.centre.conf, 'w') as f:
            f.write(conf.replace('Listen=127.0.0.1:0', f'Listen=127.0.0.1:{self.port}'))
        self.term = Terminal(tmp, 'terminal')
        self.etc = os.path.join(self.term.dir, 'etc')
        os.makedirs(self.etc)
        self.paths = {
            'IdentityKey': self.term.identity,
            'CA': os.path.join(self.etc, 'collector-ca.pem'),
            'ClientCert': os.path.join(self.term.keys, 'client.pem'),
            'ClientKey': os.path.join(self.term.keys, 'client.key'),
            'ReceiptKey': os.path.join(self.etc, 'receipt.pub'),
            'SignerKey': os.path.join(self.etc, 'policy-signer.pub'),
        }
        # No Id=, no URL=: what enroll-install writes in agent.conf.d/ is all the terminal learns.
        with open(self.term.conf, 'w') as f:
            f.write(f'[Terminal]\nIdentityKey={self.paths["IdentityKey"]}\n[Log]\nDirectory={self.term.log}\n'
                    f'[Collector]\nCA={self.paths["CA"]}\nClientCert={self.paths["ClientCert"]}\n'
                    f'ClientKey={self.paths["ClientKey"]}\nReceiptKey={self.paths["ReceiptKey"]}\nPollSec=1\n'
                    f'[Policy]\nDirectory={self.term.policy}\nSignerKey={self.paths["SignerKey"]}\n')

    def ctl(self, *args, check=True):
        p = bench.run([exe('agent', 'mamorictl'), *args], timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f'mamorictl {" ".join(args)}: {p.returncode} {p.stdout} {p.stderr}')
        return p

    def request(self, name='request.json'):
        """On the terminal: its key and request; the request crosses to the centre."""
        out = os.path.join(self.term.dir, name)
        self.ctl('enroll-request', '--config', self.term.conf, '--id', TERM, '--out', out)
        crossed = os.path.join(self.centre_dir, name)
        shutil.copy(out, crossed)
        return crossed

    def install(self, enrolment):
        """The centre's answer crosses to the terminal and is installed there."""
        crossed = os.path.join(self.term.dir, os.path.basename(enrolment))
        shutil.copy(enrolment, crossed)
        return self.ctl('enroll-install', '--config', self.term.conf, crossed)

    def enrol(self):
        req = self.request()
        enr = os.path.join(self.centre_dir, f'{TERM}.enrolment')
        self.centre.admin('terminal', 'add', '--request', req, '--office', 'chuo', '--out', enr)
        self.install(enr)
        return req, enr

    def https(self, method, path, cert=None, key=None, server_hostname='127.0.0.1'):
        """One request with the terminal's files (or cert/key), the collector's name checked."""
        ctx = ssl.create_default_context(cafile=self.paths['CA'])
        ctx.load_cert_chain(cert or self.paths['ClientCert'], key or self.paths['ClientKey'])
        conn = http.client.HTTPSConnection(server_hostname, self.port, context=ctx, timeout=30)
        conn.sock = ctx.wrap_socket(socket.create_connection(('127.0.0.1', self.port), 30),
                                    server_hostname=server_hostname)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()


class EnrolmentTest(unittest.TestCase):
    def setUp(self):
        self._tmp = bench.TempDir('mamori-enrol-')
        self.tmp = self._tmp.__enter__()
        self.site = Site(self.tmp)
        self.site.term.append(5)  # the identity key (mamorid makes it at its first start) and a log

    def tearDown(self):
        self.site.term.stop()
        self.site.centre.stop()
        self._tmp.__exit__(None, None, None)

    def enrolled_and_uploading(self):
        s = self.site
        req, enr = s.enrol()
        s.centre.admin('operator', 'add', 'OP0001', '--office', 'chuo')
        s.centre.admin('policy', 'publish')
        s.centre.start()
        s.term.start()
        s.term.wait_acked(s.term.last_seq(), timeout=60)
        return req, enr

    def test_request_enrolment_install_first_upload(self):
        s = self.site
        req, enr = self.enrolled_and_uploading()
        # Private keys never travel: neither file holds one, and the terminal's key was made there.
        self.assertNotIn(PRIVATE, read(req, 'rb'))
        self.assertNotIn(PRIVATE, read(enr, 'rb'))
        self.assertEqual(os.stat(s.paths['ClientKey']).st_mode & 0o777, 0o600)
        self.assertFalse(os.path.exists(s.paths['ClientKey'] + '.new'), 'the new key was moved into place')
        e = json.loads(read(enr))
        self.assertEqual(set(e), {'v', 'type', 'terminal', 'office', 'url', 'certificate', 'collector_ca',
                                  'receipt_key', 'policy_signer'})
        self.assertEqual(e['url'], f'https://127.0.0.1:{s.port}')
        # Installed at agent.conf's paths, and Id/Office/URL in the drop-in.
        self.assertEqual(read(s.paths['CA']), read(os.path.join(s.centre_dir, 'admin', 'collector-ca.pem')))
        self.assertEqual(read(s.paths['SignerKey']), read(os.path.join(s.centre_dir, 'admin', 'policy-signer.pub')))
        self.assertEqual(read(s.paths['ReceiptKey']), read(os.path.join(s.centre_dir, 'state', 'receipt.pub')))
        dropin = read(s.term.conf + '.d/10-enrolment.conf')
        self.assertIn(f'Id={TERM}\nOffice=chuo\n', dropin)
        self.assertIn(f'URL=https://127.0.0.1:{s.port}\n', dropin)
        # First upload: the centre holds exactly the terminal's log; the policy signed there arrived.
        self.assertEqual(s.centre.admin('export').stdout.encode(), s.term.lines())
        bench.wait_until(lambda: os.path.exists(os.path.join(s.term.policy, 'policy.json')), timeout=30,
                         what='the policy bundle fetched with the installed signer key')
        self.assertIn(TERM, [t['id'] for t in json.loads(read(os.path.join(s.term.policy, 'policy.json')))['terminals']])
        # A request made elsewhere (another key) is not installed here.
        other = os.path.join(self.tmp, 'other')
        os.makedirs(other)
        enroltool.make_request('T-0002', self._pub(), os.path.join(other, 'k'),
                               os.path.join(other, 'req.json'))
        s.centre.admin('terminal', 'add', '--request', os.path.join(other, 'req.json'), '--office', 'chuo',
                       '--out', os.path.join(other, 'T-0002.enrolment'))
        p = s.ctl('enroll-install', '--config', s.term.conf, os.path.join(other, 'T-0002.enrolment'), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn('is for terminal T-0002, but this terminal is T-CRASH', p.stderr)

    def _pub(self):
        out = os.path.join(self.tmp, 'identity.pub')
        with open(out, 'w') as f:
            f.write(self.site.ctl('identity', '--config', self.site.term.conf).stdout)
        return out

    def test_retire_is_403_at_once(self):
        s = self.site
        self.enrolled_and_uploading()
        self.assertEqual(s.https('GET', '/v1/policy')[0], 200)
        s.centre.admin('terminal', 'retire', TERM, '--reason', 'stolen from the counter')
        # The running collector, no restart: the next request is refused.
        status, body = s.https('GET', '/v1/policy')
        self.assertEqual((status, json.loads(body)), (403, {'error': 'terminal-retired'}))
        s.term.append(3)
        s.term.watch.wait(r'terminal-retired', timeout=30)
        self.assertIn('retire\tstolen from the counter', s.centre.admin('history', TERM).stdout)
        # Out of the next policy, and its id is not given out again.
        s.centre.admin('policy', 'publish')
        bundle = json.loads(s.centre.admin('policy', 'show').stdout)
        self.assertNotIn(TERM, [t['id'] for t in bundle['terminals']])
        req = s.request('again.json')
        p = s.centre.admin('terminal', 'add', '--request', req, '--office', 'chuo', '--out',
                           os.path.join(self.tmp, 'x'), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn('is retired; ids are never reused', p.stderr)

    def test_rekey_old_refused_new_accepted(self):
        s = self.site
        self.enrolled_and_uploading()
        old_cert, old_key = os.path.join(self.tmp, 'old.pem'), os.path.join(self.tmp, 'old.key')
        shutil.copy(s.paths['ClientCert'], old_cert)
        shutil.copy(s.paths['ClientKey'], old_key)
        req = s.request('rekey.json')
        enr = os.path.join(s.centre_dir, 'rekey.enrolment')
        s.centre.admin('terminal', 'rekey', '--request', req, '--out', enr)
        status, body = s.https('GET', '/v1/policy', cert=old_cert, key=old_key)
        self.assertEqual((status, json.loads(body)), (403, {'error': 'certificate-replaced'}))
        s.install(enr)
        self.assertNotEqual(sha(s.paths['ClientKey']), sha(old_key), 'a new TLS key')
        self.assertEqual(s.https('GET', '/v1/policy')[0], 200)
        s.term.stop()
        s.term.append(4)
        s.term.start()
        s.term.wait_acked(s.term.last_seq(), timeout=60)
        self.assertEqual(s.centre.admin('export').stdout.encode(), s.term.lines())
        # A rekey keeps the identity key: a request with another one is refused.
        other = os.path.join(self.tmp, 'other')
        os.makedirs(other)
        subprocess.run(['openssl', 'genpkey', '-algorithm', 'ed25519', '-out', os.path.join(other, 'id.pem')], check=True)
        subprocess.run(['openssl', 'pkey', '-in', os.path.join(other, 'id.pem'), '-pubout', '-out',
                        os.path.join(other, 'id.pub')], check=True)
        enroltool.make_request(TERM, os.path.join(other, 'id.pub'), os.path.join(other, 'k'), os.path.join(other, 'r.json'))
        p = s.centre.admin('terminal', 'rekey', '--request', os.path.join(other, 'r.json'), '--out',
                           os.path.join(other, 'e'), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn('identity key is not the one registered', p.stderr)

    def test_renew_keeps_ca_and_init_twice_changes_nothing(self):
        s = self.site
        self.enrolled_and_uploading()
        admin = os.path.join(s.centre_dir, 'admin')
        before = {n: sha(os.path.join(admin, n)) for n in os.listdir(admin)}
        p = s.centre.admin('init', '--name', 'other.example', check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn('initialised already', p.stderr)
        self.assertIn('mamori-admin collector renew --name HOST', p.stderr)
        self.assertEqual(before, {n: sha(os.path.join(admin, n)) for n in os.listdir(admin)})
        old = read(os.path.join(s.centre_dir, 'state', 'collector.pem'))
        out = s.centre.admin('collector', 'renew', '--name', 'collector.chuo.example', '--name', '127.0.0.1').stdout
        self.assertIn('same collector CA', out)
        self.assertIn('systemctl restart mamori-collector', out)
        self.assertNotEqual(old, read(os.path.join(s.centre_dir, 'state', 'collector.pem')))
        self.assertEqual(before, {n: sha(os.path.join(admin, n)) for n in os.listdir(admin)}, 'same CAs')
        s.centre.stop()
        s.centre.start()
        # The terminal's installed collector CA still verifies it, now under the new name …
        self.assertEqual(s.https('GET', '/v1/policy', server_hostname='collector.chuo.example')[0], 200)
        # … and the old one is gone from the certificate.
        with self.assertRaises(ssl.SSLCertVerificationError):
            s.https('GET', '/v1/policy', server_hostname='centre.example')
        s.term.append(2)
        s.term.wait_acked(s.term.last_seq(), timeout=60)


class CustodyTest(unittest.TestCase):
    def setUp(self):
        self._tmp = bench.TempDir('mamori-custody-')
        self.tmp = self._tmp.__enter__()
        os.chmod(self.tmp, 0o755)
        self.centre = Centre(self.tmp)

    def tearDown(self):
        self.centre.stop()
        self._tmp.__exit__(None, None, None)

    def as_user(self, user, *cmd):
        pw = pwd.getpwnam(user)

        def drop():
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
        return subprocess.run(cmd, preexec_fn=drop, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=60)

    def test_collector_user_cannot_open_admin_keys(self):
        admin, state = os.path.join(self.tmp, 'admin'), os.path.join(self.tmp, 'state')
        keys = ['policy.key', 'terminal-ca.key', 'collector-ca.key']
        for k in keys:
            self.assertTrue(os.path.exists(os.path.join(admin, k)), k)
            self.assertFalse(os.path.exists(os.path.join(state, k)), f'{k} in the collector state directory')
        self.assertEqual(os.stat(admin).st_mode & 0o777, 0o700)
        self.assertEqual(sorted(n for n in os.listdir(state) if n.endswith('.key')), ['collector.key', 'receipt.key'])
        # The collector's user: the owner of its state directory (its unit's StateDirectory=).
        user = 'nobody'
        pw = pwd.getpwnam(user)
        for root, dirs, files in os.walk(state):
            for n in [root] + [os.path.join(root, f) for f in files]:
                os.chown(n, pw.pw_uid, pw.pw_gid)
        for k in keys:
            p = self.as_user(user, '/usr/bin/python3', '-c', f'open({os.path.join(admin, k)!r}, "rb")')
            self.assertNotEqual(p.returncode, 0, f'{user} opened {k}')
            self.assertIn('PermissionError', p.stderr)
        # The collector runs as that user with what it holds: listening, and its own check passes.
        p = self.as_user(user, exe('collector', 'mamori-collector'), '--config', self.centre.conf, '--check-config')
        self.assertEqual((p.returncode, p.stderr), (0, ''))

    def test_older_centre_keys_are_moved_out(self):
        admin, state = os.path.join(self.tmp, 'admin'), os.path.join(self.tmp, 'state')
        keys = ['policy.key', 'terminal-ca.key', 'collector-ca.key']
        # A centre initialised before: every key in the collector's state directory.
        for k in keys:
            shutil.move(os.path.join(admin, k), os.path.join(state, k))
        shutil.rmtree(admin)
        before = {k: sha(os.path.join(state, k)) for k in keys}
        p = bench.run([exe('collector', 'mamori-collector'), '--config', self.centre.conf, '--check-config'])
        self.assertEqual(p.returncode, 1)
        self.assertIn("policy.key is mamori-admin's key and must not be the collector's", p.stderr)
        p = self.centre.admin('policy', 'publish')
        self.assertIn('moved 3 private key(s)', p.stderr)
        self.assertIn('InaccessiblePaths=', p.stderr)
        for k in keys:
            self.assertFalse(os.path.exists(os.path.join(state, k)), k)
            self.assertEqual(sha(os.path.join(admin, k)), before[k], f'{k} moved unchanged')
        self.assertEqual(os.stat(admin).st_mode & 0o777, 0o700)
        # The bundle is signed with the moved key: the signer the terminals trust is unchanged.
        self.assertEqual(self.centre.admin('policy', 'signer').stdout, read(os.path.join(admin, 'policy-signer.pub')))
        p = bench.run([exe('collector', 'mamori-collector'), '--config', self.centre.conf, '--check-config'])
        self.assertEqual((p.returncode, p.stderr), (0, ''))


class CentreConfigTest(unittest.TestCase):
    def check(self, text, tmp):
        path = os.path.join(tmp, 'collector.conf')
        with open(path, 'w') as f:
            f.write(text)
        # The test's own directories in a drop-in, as an administrator would override.
        os.makedirs(path + '.d', exist_ok=True)
        with open(path + '.d/50-test.conf', 'w') as f:
            f.write(f'[Admin]\nDirectory={tmp}/admin\n[Collector]\nStateDirectory={tmp}/state\n'
                    f'Database={tmp}/state/collector.db\n')
        return path

    def test_shipped_collector_conf_works_as_installed(self):
        with bench.TempDir() as tmp:
            path = self.check(read(os.path.join(SRC, 'systemd', 'collector.conf')), tmp)
            p = bench.run([exe('collector', 'mamori-collector'), '--config', path, '--check-config'])
            self.assertEqual(p.returncode, 1)  # not initialised yet: says what to run
            self.assertNotRegex(p.stderr, r'collector\.conf:\d+: (error|warning)')
            self.assertIn('run mamori-admin init', p.stderr)
            self.assertEqual(bench.run([exe('collector', 'mamori-admin'), '--config', path, 'init']).returncode, 0)
            p = bench.run([exe('collector', 'mamori-collector'), '--config', path, '--check-config'])
            self.assertEqual((p.returncode, p.stderr), (0, ''))

    def test_readme_example_parses(self):
        text = read(os.path.join(SRC, 'collector', 'README.md'))
        m = re.search(r'## collector\.conf\n.*?\n```\n(.*?)```', text, re.S)
        self.assertTrue(m, 'the example block in collector/README.md')
        with bench.TempDir() as tmp:
            path = self.check(m.group(1), tmp)
            p = bench.run([exe('collector', 'mamori-collector'), '--config', path, '--check-config'])
            self.assertNotRegex(p.stderr, r'collector\.conf:\d+: (error|warning)', p.stderr)


if __name__ == '__main__':
    unittest.main()
