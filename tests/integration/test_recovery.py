#!/usr/bin/python3
"""mamorid at start with a damaged log or no terminal id (issue 10, items 6 and 7): one changed byte in
the last record (still valid JSON) or a flipped bit in the middle of the last segment is never built
upon — mamorid stays locked, refuses logins as log-damaged, names the segment and line and the next
step, writes nothing; `mamorictl log quarantine` keeps the old log for the auditors and starts a new
one that names it, and logins work again. A terminal without [Terminal] Id refuses logins as
terminal-unconfigured and records nothing; after enrolment its first upload is accepted."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import enroltool  # noqa: E402
import agentproc  # noqa: E402
import bench  # noqa: E402
from terminal import Terminal  # noqa: E402
from test_collector import Centre, exe  # noqa: E402
from test_upload import Terminal as UploadTerminal, free_port, public_pem  # noqa: E402

AGENT = 'org.mamori.Agent1'
PATH = '/org/mamori/Agent1'
SEG_RE = re.compile(r'^seg-\d{20}\.log$')


def segments(d):
    return sorted(n for n in os.listdir(d) if SEG_RE.match(n))


def snapshot(d):
    """Every segment's bytes: what must not change while the log is refused."""
    out = {}
    for n in segments(d):
        with open(os.path.join(d, n), 'rb') as f:
            out[n] = f.read()
    return out


def dbus_error(call):
    try:
        call()
    except Exception as e:  # dbus.exceptions.DBusException
        return e.get_dbus_name(), e.get_dbus_message()
    raise AssertionError('the call succeeded')


def change_last_record(path):
    """One changed digit in the last record's ts: still valid JSON, still canonical."""
    with open(path, 'rb') as f:
        lines = f.read().split(b'\n')
    assert lines[-1] == b''
    last = lines[-2]
    i = last.index(b'"ts":') + 5 + 3
    digit = last[i:i + 1]
    last = last[:i] + (b'7' if digit != b'7' else b'3') + last[i + 1:]
    json.loads(last)
    lines[-2] = last
    with open(path, 'wb') as f:
        f.write(b'\n'.join(lines))
    return len(lines) - 1  # the 1-based line number of the last record


def ctl(*args, **kw):
    return bench.run([os.path.join(bench.build_dir(), 'agent', 'mamorictl'), *args], timeout=120, **kw)


class RecoveryTest(unittest.TestCase):
    def test_changed_byte_locks_then_quarantine_restores_logins(self):
        t = Terminal(self)
        card = t.insert('OP0001')
        agent = t.start_agent()
        t.wait_card_seen(card)
        self.assertEqual(t.login(), 'OP0001')
        t.iface().Lock()
        agent.stop()
        log_dir = agent.sections['Log']['Directory']
        seg = segments(log_dir)[-1]
        line = change_last_record(os.path.join(log_dir, seg))
        before = snapshot(log_dir)

        agent = t.start_agent()
        where = f'{log_dir}/{seg}:{line}'
        m = agent.events.wait(r'operation log damaged at (\S+): (.*)', timeout=10, after=0)
        self.assertEqual(m.group(1), where)
        self.assertIn('signature', m.group(2))
        self.assertIn('mamorictl log quarantine', m.string)
        self.assertNotIn('Bad message', '\n'.join(agent.events.lines))
        t.wait_card_seen(card)
        name, msg = dbus_error(lambda: t.iface().StartLogin('counter'))
        self.assertEqual(name, 'org.mamori.Agent1.Error.LogDamaged')
        self.assertTrue(msg.startswith('log-damaged'), msg)
        self.assertEqual(str(t.prop('State')), 'locked')
        self.assertFalse(bool(t.prop('LogWritable')))
        agent.stop()
        self.assertEqual(snapshot(log_dir), before, 'mamorid wrote on top of a damaged log')

        r = ctl('log', 'quarantine', '--config', agent.config)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        old_log = json.loads(before[seg].split(b'\n')[0])['log']
        qdir = os.path.join(log_dir, 'quarantine', old_log)
        self.assertIn(qdir, r.stdout)
        self.assertEqual(snapshot(qdir), before, 'the quarantined log must be kept byte for byte')
        with open(os.path.join(qdir, 'quarantine.json')) as f:
            info = json.load(f)
        self.assertEqual((info['file'], info['line'], info['seq']), (seg, line, line - 1 + int(seg[4:24]) - 1))
        first = json.loads(snapshot(log_dir)['seg-%020d.log' % 1].split(b'\n')[0])
        self.assertEqual(first['ev'], 'log.open')
        self.assertNotEqual(first['log'], old_log)
        self.assertEqual(first['term'], 'T-0001')
        self.assertEqual(first['data']['previous'],
                         {'log': old_log, 'seq': info['seq'], 'hash': info['hash'], 'reason': 'quarantine'})
        self.assertEqual(info['new_log'], first['log'])

        agent = t.start_agent()
        t.wait_card_seen(card)
        self.assertEqual(t.login(), 'OP0001')
        agent.stop()
        pub = public_pem(agent.sections['Terminal']['IdentityKey'], os.path.join(t.tmp, 'id.pub'))
        r = ctl('log', 'verify', log_dir, '--identity', pub)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('intact', r.stdout)
        r = ctl('log', 'verify', qdir, '--identity', pub)
        self.assertIn(f'{seg} line {line}', r.stdout + r.stderr)
        self.assertIn(f'{info["seq"]} records', r.stdout + r.stderr)
        self.assertIn(f'the break is that damage: the records up to seq {info["seq"]} verify', r.stderr)
        # Nothing left to do: a second quarantine refuses.
        r = ctl('log', 'quarantine', '--config', agent.config)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('nothing to quarantine', r.stderr)

    def test_flipped_bit_mid_segment_names_file_and_line(self):
        with bench.TempDir('mamori-recovery-') as tmp:
            ut = UploadTerminal(tmp)
            ut.append(400)  # oplog appender: term T-CRASH, key.rotate every 200
            seg = segments(ut.log)[-1]
            path = os.path.join(ut.log, seg)
            with open(path, 'rb') as f:
                data = bytearray(f.read())
            offsets = [0] + [i + 1 for i, b in enumerate(data) if b == 0x0a][:-1]
            mid = len(offsets) // 2
            pos = offsets[mid] + data[offsets[mid]:].index(b'"op":"') + 8
            data[pos] ^= 0x01
            with open(path, 'wb') as f:
                f.write(data)
            before = snapshot(ut.log)
            sections = {'Terminal': {'Id': 'T-CRASH', 'IdentityKey': ut.identity}, 'Log': {'Directory': ut.log}}
            env = dict(os.environ, PCSCLITE_CSOCK_NAME=os.path.join(tmp, 'no-pcscd.comm'))
            agent = agentproc.Mamorid(tmp, env, sections)
            with agent:
                m = agent.events.wait(r'operation log damaged at (\S+):(\d+): (.*)', timeout=10, after=0)
            self.assertEqual(m.group(1), path)
            self.assertIn(int(m.group(2)), (mid + 1, mid + 2), m.string)  # the changed line or the next
            self.assertIn('mamorictl log quarantine', m.string)
            self.assertNotIn('Bad message', '\n'.join(agent.events.lines))
            self.assertEqual(snapshot(ut.log), before)

    def test_unconfigured_refuses_then_enrolled_uploads(self):
        with bench.TempDir('mamori-recovery-') as tmp:
            centre = Centre(tmp)
            with open(centre.conf) as f:
                conf = f.read()
            with open(centre.conf, 'w') as f:
                f.write(conf.replace('Listen=127.0.0.1:0', f'Listen=127.0.0.1:{free_port()}'))
            ut = UploadTerminal(tmp)
            bus = bench.SystemBus(tmp).start()
            self.addCleanup(bus.stop)
            logind = bench.MockLogind(bus).__enter__()
            self.addCleanup(logind.__exit__, None, None, None)
            env = bus.client_env()
            env['PCSCLITE_CSOCK_NAME'] = os.path.join(tmp, 'no-pcscd.comm')
            sections = {'Terminal': {'IdentityKey': ut.identity}, 'Log': {'Directory': ut.log},
                        'Policy': {'Directory': ut.policy}}
            agent = agentproc.Mamorid(tmp, env, sections)
            # As the package installs it: no [Terminal] Id yet.
            del agent.sections['Terminal']['Id']
            agentproc.write_config(agent.config, agent.sections)
            conn = bus.connect()
            with agent:
                agent.events.wait(r'terminal-unconfigured', timeout=10, after=0)
                bench.wait_until(lambda: conn.name_has_owner(AGENT), timeout=10, what='mamorid on the bus')
                iface = bench_iface(conn)
                name, msg = dbus_error(lambda: iface.StartLogin('counter'))
                self.assertEqual(name, 'org.mamori.Agent1.Error.TerminalUnconfigured')
                self.assertTrue(msg.startswith('terminal-unconfigured'), msg)
            self.assertEqual(segments(ut.log), [], 'records written before the terminal has its id')

            # Enrolment: the identity key mamorid made, registered at the centre; then Id= is set.
            r = ctl('identity', '--config', agent.config)
            self.assertEqual(r.returncode, 0, r.stderr)
            pub = os.path.join(tmp, 'T-0001.pub')
            with open(pub, 'w') as f:
                f.write(r.stdout)
            cert_dir = os.path.join(tmp, 'T-0001')
            enroltool.enrol(centre.admin, 'T-0001', 'chuo', pub, cert_dir)
            centre.start()
            self.addCleanup(centre.stop)
            agent.sections['Terminal']['Id'] = 'T-0001'
            agentproc.write_config(agent.config, agent.sections)
            with agent:
                agent.events.wait(r'operation log [0-9a-f]{32}: last records checked', timeout=10, after=0)
            ut.configure(centre, cert_dir)
            with open(ut.conf) as f:
                c = f.read()
            with open(ut.conf, 'w') as f:
                f.write(c.replace('Id=T-CRASH', 'Id=T-0001'))
            ut.start()
            self.addCleanup(ut.stop)
            last = ut.last_seq()
            self.assertGreaterEqual(last, 3)
            ut.wait_acked(last, timeout=60)
            ut.stop()
            for l in ut.lines().splitlines():
                self.assertEqual(json.loads(l)['term'], 'T-0001')
            self.assertEqual(centre.admin('export').stdout.encode(), ut.lines())
            # No 422 answer (a word of its own: a log id in hex may hold the digits 422).
            self.assertIsNone(re.search(r'\b422\b', '\n'.join(ut.watch.lines)), '\n'.join(ut.watch.lines))

    def test_quarantine_keeps_pushing_the_old_logs_good_part(self):
        with bench.TempDir('mamori-recovery-') as tmp:
            centre = Centre(tmp)
            with open(centre.conf) as f:
                conf = f.read()
            with open(centre.conf, 'w') as f:
                f.write(conf.replace('Listen=127.0.0.1:0', f'Listen=127.0.0.1:{free_port()}'))
            ut = UploadTerminal(tmp)
            ut.append(300)
            pub = public_pem(ut.identity, os.path.join(tmp, 'term.pub'))
            cert_dir = os.path.join(tmp, 'T-CRASH')
            enroltool.enrol(centre.admin, 'T-CRASH', 'chuo', pub, cert_dir)
            centre.start()
            self.addCleanup(centre.stop)
            ut.configure(centre, cert_dir)
            ut.start()
            self.addCleanup(ut.stop)
            ut.wait_acked(ut.last_seq())
            ut.stop()
            uploaded = ut.acked()
            # More records the collector has not seen, then damage in the very last one.
            ut.append(100)
            seg = segments(ut.log)[-1]
            line = change_last_record(os.path.join(ut.log, seg))
            old = json.loads(ut.lines().splitlines()[0])['log']
            good = ut.last_seq() - 1
            ctl_conf = os.path.join(tmp, 'ctl.conf')
            agentproc.write_config(ctl_conf, {'Terminal': {'Id': 'T-CRASH', 'IdentityKey': ut.identity},
                                              'Log': {'Directory': ut.log}})
            r = ctl('log', 'quarantine', '--config', ctl_conf)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn(f'{seg}:{line}', r.stdout)
            self.assertGreater(good, uploaded)

            ut.start()
            ut.watch.wait(r'pushing its good records up to seq %d' % good, timeout=30)
            new = json.loads(ut.lines().splitlines()[0])['log']
            def cursor_log():
                with open(ut.cursor) as f:
                    return json.load(f)['log']
            try:
                bench.wait_until(lambda: cursor_log() == new and ut.acked() >= 1, timeout=60,
                                 what='the new log acknowledged')
            except TimeoutError:
                raise AssertionError('uploader: ' + '\n'.join(ut.watch.lines[-20:]))
            ut.stop()
            exported = [json.loads(l) for l in centre.admin('export').stdout.splitlines()]
            self.assertEqual(sorted(r['seq'] for r in exported if r['log'] == old), list(range(1, good + 1)),
                             'the old log\'s good records all reached the centre, the damaged one did not')
            opened = [r for r in exported if r['log'] == new and r['seq'] == 1]
            self.assertEqual(opened[0]['data']['previous']['log'], old)
            self.assertEqual(opened[0]['data']['previous']['seq'], good)
            self.assertIn('intact', centre.admin('verify').stdout)


def bench_iface(conn):
    import dbus
    return dbus.Interface(conn.get_object(AGENT, PATH), AGENT)


if __name__ == '__main__':
    unittest.main(verbosity=2)
