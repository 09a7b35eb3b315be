# Runs mamorid (and later its companions) for integration tests: config file, env, event lines.
"""Start mamorid under a test: it writes a config into the test directory, points PC/SC (and, when
given, D-Bus) at the bench's private services, and collects its stderr event lines.

    with agentproc.Mamorid(tmp, pcscd.client_env(), {'Terminal': {'Id': 'T-0001'}}) as agent:
        agent.events.wait(r'^card\\.inserted .*card=' + card.card_id)
"""

import os
import re
import signal
import subprocess
import time

import bench


def mamorid_exe():
    return os.path.join(bench.build_dir(), 'agent', 'mamorid')


def write_config(path, sections):
    """sections: {'Section': {'Key': 'value'}} → systemd-style file."""
    with open(path, 'w', encoding='utf-8') as f:
        for section, keys in sections.items():
            f.write(f'[{section}]\n')
            for k, v in keys.items():
                f.write(f'{k}={v}\n')


def parse_event(line):
    """'card.removed reader="Virtual PCD 00 00" card=ab mono_us=5' → ('card.removed', {...})."""
    name, _, rest = line.partition(' ')
    fields = {}
    for m in re.finditer(r'(\w+)=("((?:[^"\\]|\\.)*)"|\S*)', rest):
        fields[m.group(1)] = m.group(3) if m.group(3) is not None else m.group(2)
    return name, fields


def default_sections(tmp, name='agent'):
    """Every path mamorid writes or trusts, inside the test directory (never /var/lib/mamori)."""
    state = os.path.join(tmp, f'{name}-state')
    return {
        'Terminal': {'Id': 'T-0001', 'Office': 'chuo', 'IdentityKey': os.path.join(state, 'keys', 'identity.pem')},
        'Card': {'TrustAnchors': os.path.join(tmp, 'operator-ca', 'ca.pem')},
        'Log': {'Directory': os.path.join(state, 'log')},
        'Policy': {'Directory': os.path.join(state, 'policy'), 'SignerKey': os.path.join(tmp, 'policy-signer.pub')},
    }


def merge_sections(base, override):
    out = {k: dict(v) for k, v in base.items()}
    for section, keys in (override or {}).items():
        out.setdefault(section, {}).update(keys)
    return out


class Mamorid:
    def __init__(self, tmp, env, sections=None, name='agent'):
        self.tmp = tmp
        self.env = dict(env)
        self.env.pop('JOURNAL_STREAM', None)
        self.env.pop('NOTIFY_SOCKET', None)
        self.config = os.path.join(tmp, f'{name}.conf')
        self.sections = merge_sections(default_sections(tmp, name), sections)
        for d in (self.sections['Log']['Directory'], self.sections['Policy']['Directory']):
            os.makedirs(d, exist_ok=True)
        write_config(self.config, self.sections)
        self.log_path = os.path.join(tmp, f'{name}.log')
        self.proc = None
        self.events = None

    def start(self):
        self.proc = subprocess.Popen([mamorid_exe(), '--config', self.config], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.events = bench.LineWatcher(self.proc.stderr, self.log_path, echo_prefix='mamorid: ')
        self.events.wait(r'^agent\.start ', timeout=10)
        return self

    def wait_event(self, name, timeout=10.0, after=None, **fields):
        """Waits for an event line named name whose fields include the given ones."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.events.wait(r'^' + re.escape(name) + r'( |$)', timeout=max(0.01, deadline - time.monotonic()),
                                 after=after)
            after = None
            _, got = parse_event(m.string)
            if all(got.get(k) == v for k, v in fields.items()):
                return got

    def stop(self, sig=signal.SIGTERM):
        """Stops mamorid; a sanitizer report (leak, overflow, UB) in its output fails the test."""
        rc = None
        if self.proc:
            rc = bench.stop_process(self.proc, sig=sig)
            self.events.join()
            self.proc.stderr.close()
            self.proc = None
            reports = [line for line in self.events.lines if 'Sanitizer' in line or 'runtime error:' in line]
            if reports:
                raise AssertionError(f'mamorid sanitizer report (see {self.log_path}): {reports[:3]}')
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
