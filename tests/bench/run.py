#!/usr/bin/python3
"""mamori benchmarks (tools/dev bench [NAME…]). Each prints its figures — median and p99 — next to
the baseline measured in the same run. Add a benchmark: a function NAME(args) in BENCHES."""
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
import enroltool  # noqa: E402
import agentproc  # noqa: E402
import bench  # noqa: E402
from figures import percentile  # noqa: E402


def report(title, unit, rows):
    """rows: [(label, [samples])] → one line each with n, median, p99, min, max."""
    print(f'\n{title}')
    for label, samples in rows:
        print(f'  {label:<44} n={len(samples):<4} median={statistics.median(samples):8.1f} {unit}  '
              f'p99={percentile(samples, 99):8.1f} {unit}  min={min(samples):8.1f}  max={max(samples):8.1f}')


def removal(pulls=30):
    """Card pull → card.removed logged by mamorid, next to a bare SCardGetStatusChange watcher
    (the pcscd floor) observing the same pulls."""
    floor_exe = os.path.join(bench.build_dir(), 'tests', 'bench', 'pcsc-floor')
    with bench.TempDir(prefix='mamori-bench-') as tmp:
        pki = bench.TestPKI(tmp)
        card = pki.issue('OP-BENCH', 'p256')
        port = bench.free_vpcd_port()
        with bench.Pcscd(tmp, port, debug=False) as pcscd, \
                bench.VCard(port, card.key, card.cert, '123456', trace=False) as vc, \
                agentproc.Mamorid(tmp, pcscd.client_env(), {'Terminal': {'Id': 'T-BENCH'}}) as agent:
            floor = subprocess.Popen([floor_exe, bench.READER0], env=pcscd.client_env(), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            try:
                floor_out = bench.LineWatcher(floor.stdout)
                floor_out.wait(r'^ready$')
                floor_out.wait(r'^inserted ')
                agent.wait_event('card.inserted', card=card.card_id)
                detect, logged, floor_lat = [], [], []
                for _ in range(pulls):
                    # A random phase against pcscd's 400 ms poll, so the figures show its spread.
                    time.sleep(random.uniform(0.1, 0.5))
                    a_mark, f_mark = agent.events.mark(), floor_out.mark()
                    t0 = time.monotonic()
                    vc.pull()
                    ev = agent.wait_event('card.removed', after=a_mark, card=card.card_id)
                    t_logged = time.monotonic()  # the line has been written and read back
                    m = floor_out.wait(r'^removed mono_us=(\d+)', after=f_mark)
                    detect.append((int(ev['mono_us']) / 1e6 - t0) * 1e3)
                    logged.append((t_logged - t0) * 1e3)
                    floor_lat.append((int(m.group(1)) / 1e6 - t0) * 1e3)
                    a_mark, f_mark = agent.events.mark(), floor_out.mark()
                    vc.insert()
                    agent.wait_event('card.inserted', after=a_mark, card=card.card_id)
                    floor_out.wait(r'^inserted ', after=f_mark)
            finally:
                bench.stop_process(floor)
    report(f'card pull → removal reported ({pulls} pulls, vpcd polled by pcscd every 400 ms)', 'ms', [
        ('mamorid card.removed line read by the test', logged),
        ('mamorid detection (mono_us in the event)', detect),
        ('baseline: bare SCardGetStatusChange watcher', floor_lat),
    ])


PAM_PKCS11 = '/usr/lib/x86_64-linux-gnu/security/pam_pkcs11.so'
OPENSC_PKCS11 = '/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so'


def pam_pkcs11_env(tmp, ca_path, base_env, cn, user='root'):
    """A private pam_pkcs11 setup (no /etc): config_file= with OpenSC, the test CA (hash links),
    cert_policy ca,signature and the cn mapper (cn → user); a PAM service 'mamori-bench' in a
    private directory, loaded through pam_wrapper."""
    d = os.path.join(tmp, 'pam')
    services, cadir, crldir = (os.path.join(d, x) for x in ('services', 'cacerts', 'crls'))
    for x in (services, cadir, crldir):
        os.makedirs(x, exist_ok=True)
    shutil.copy(ca_path, os.path.join(cadir, 'ca.pem'))
    subprocess.run(['openssl', 'rehash', cadir], check=True, stdout=subprocess.DEVNULL)
    mapfile = os.path.join(d, 'cn_map')
    with open(mapfile, 'w', encoding='utf-8') as f:
        f.write(f'{cn} -> {user}\n')
    conf = os.path.join(d, 'pam_pkcs11.conf')
    with open(conf, 'w', encoding='utf-8') as f:
        f.write(f"""pam_pkcs11 {{
  nullok = false; debug = false; use_first_pass = false; try_first_pass = false; use_authtok = false;
  card_only = true; wait_for_card = false;
  use_pkcs11_module = opensc;
  pkcs11_module opensc {{
    module = {OPENSC_PKCS11};
    slot_num = 0;
    ca_dir = {cadir};
    crl_dir = {crldir};
    cert_policy = ca,signature;
  }}
  use_mappers = cn;
  mapper cn {{
    debug = false;
    module = internal;
    ignorecase = false;
    mapfile = file://{mapfile};
  }}
}}
""")
    with open(os.path.join(services, 'mamori-bench'), 'w', encoding='utf-8') as f:
        f.write(f'auth required {PAM_PKCS11} config_file={conf}\n')
    env = dict(base_env)
    env.update({'LD_PRELOAD': 'libpam_wrapper.so', 'PAM_WRAPPER': '1', 'PAM_WRAPPER_SERVICE_DIR': services})
    return env


def _pam_login(service, env, pin, user='root'):
    """One pamtester authenticate. The PIN is written the moment the prompt appears (an operator who
    types instantly). Returns (rc, whole process ms, PIN written → exit ms)."""
    t0 = time.monotonic()
    p = subprocess.Popen(['pamtester', service, user, 'authenticate'], env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b''
    while not (b'PIN' in seen and seen.rstrip(b' ').endswith(b':')):
        chunk = os.read(p.stderr.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
    t_pin = time.monotonic()
    try:
        p.stdin.write(pin.encode() + b'\n')
        p.stdin.close()
    except BrokenPipeError:
        pass
    p.stdin = None
    p.communicate(timeout=60)
    t1 = time.monotonic()
    return p.returncode, (t1 - t0) * 1e3, (t1 - t_pin) * 1e3


def _apdus_after_pin(lines):
    """Card exchanges from the first VERIFY that carries a PIN (00 20 00 80, Lc 8) to the end."""
    for i, line in enumerate(lines):
        if re.match(r'^vcard: apdu [01]0 20 00 80 len=13 ', line):
            return len(lines) - i
    return 0


def _login_bench(speed, logins, kind):
    """One vpcd + virtual card (slow: no TCP_QUICKACK, ~44 ms per exchange; fast: QUICKACK), mamorid on
    a private bus; interleaved: pamtester → pam_mamori → mamorid, pamtester → pam_pkcs11 → OpenSC,
    and mamorictl auth-test (the same engine, in-process)."""
    import dbus
    import policytool
    from test_pam import asan_runtime
    pin = '123456'
    ctl = os.path.join(bench.build_dir(), 'agent', 'mamorictl')
    pam_mamori = os.path.join(bench.build_dir(), 'auth', 'pam_mamori.so')
    rows = {k: ([], [], [], []) for k in ('mamori', 'pkcs11', 'ctl')}  # whole, after PIN, APDUs, after-PIN APDUs
    daemon_exchanges = []
    with bench.TempDir(prefix='mamori-bench-') as tmp:
        pki = bench.TestPKI(tmp)
        card = pki.issue('OP0001', kind)
        signer = policytool.Signer.generate(tmp)
        state = os.path.join(tmp, 'state')
        policy_dir = os.path.join(state, 'policy')
        os.makedirs(policy_dir)
        policytool.install(policy_dir, signer.sign(policytool.bundle(
            1, 'chuo', 'T-BENCH', [policytool.operator('OP0001', ['chuo'])],
            [policytool.card(card.card_id, 'OP0001')])))
        conf = {'Terminal': {'Id': 'T-BENCH', 'Office': 'chuo',
                             'IdentityKey': os.path.join(state, 'keys', 'identity.key')},
                'Card': {'TrustAnchors': pki.ca_path},
                'Policy': {'Directory': policy_dir, 'SignerKey': signer.pub_path},
                'Log': {'Directory': os.path.join(state, 'log')}}
        config = os.path.join(tmp, 'ctl.conf')
        agentproc.write_config(config, conf)
        port = bench.free_vpcd_port()
        extra = ['--slow'] if speed == 'slow' else []
        with bench.SystemBus(tmp) as bus, bench.MockLogind(bus), \
                bench.Pcscd(tmp, port, debug=False) as pcscd, \
                bench.VCard(port, card.key, card.cert, pin, trace=True, extra_args=extra) as vc:
            pcscd.wait_card(True)
            env = pcscd.client_env(bus.client_env())
            pkcs11_env = pam_pkcs11_env(tmp, pki.ca_path, env, 'OP0001')
            services = pkcs11_env['PAM_WRAPPER_SERVICE_DIR']
            with open(os.path.join(services, 'mamori-bench-agent'), 'w', encoding='ascii') as f:
                # The bench logs in as root (as pam_pkcs11 does beside it): group=root makes root an
                # account pam_mamori governs, which it never is under the shipped profile.
                f.write(f'auth required {pam_mamori} group=root\n')
            mamori_env = dict(pkcs11_env)
            asan = asan_runtime()
            if asan:
                mamori_env['LD_PRELOAD'] = asan + ':' + mamori_env['LD_PRELOAD']
                mamori_env['ASAN_OPTIONS'] = 'detect_leaks=0'
            with agentproc.Mamorid(tmp, env, conf) as agent:
                agent.wait_event('card.inserted', card=card.card_id)
                conn = bus.connect()
                iface = dbus.Interface(conn.get_object('org.mamori.Agent1', '/org/mamori/Agent1'), 'org.mamori.Agent1')

                def run_mamori():
                    before, a_mark = len(vc.err.lines), agent.events.mark()
                    rc, whole, after = _pam_login('mamori-bench-agent', mamori_env, pin)
                    if rc != 0:
                        raise RuntimeError(f'pam_mamori login failed (rc {rc})')
                    ev = agent.wait_event('auth.ok', after=a_mark)
                    iface.Lock()
                    time.sleep(0.1)  # the card thread's reset, after the answer: let it finish
                    lines = [x for x in vc.err.lines[before:] if x.startswith('vcard: apdu ')]
                    daemon_exchanges.append(int(ev['exchanges']))
                    return whole, after, len(lines), _apdus_after_pin(lines)

                def run_pkcs11(pin_given=pin):
                    before = len(vc.err.lines)
                    rc, whole, after = _pam_login('mamori-bench', pkcs11_env, pin_given)
                    time.sleep(0.1)
                    lines = [x for x in vc.err.lines[before:] if x.startswith('vcard: apdu ')]
                    return rc, (whole, after, len(lines), _apdus_after_pin(lines))

                def run_ctl():
                    before = len(vc.err.lines)
                    t0 = time.monotonic()
                    r = subprocess.run([ctl, 'auth-test', '--config', config, '--verbose'], env=env,
                                       input=pin + '\n', capture_output=True, text=True, timeout=60)
                    whole = (time.monotonic() - t0) * 1e3
                    if r.returncode != 0 or r.stdout.strip() != 'allow OP0001':
                        raise RuntimeError(f'auth-test failed: {r.stdout} {r.stderr}')
                    m = re.search(r'exchanges=(\d+) elapsed_us=(\d+) after_pin=(\d+)', r.stderr)
                    time.sleep(0.1)
                    lines = [x for x in vc.err.lines[before:] if x.startswith('vcard: apdu ')]
                    return whole, int(m.group(2)) / 1e3, len(lines), int(m.group(3))

                # The baseline must really check the PIN, else its figure means nothing.
                rc, _ = run_pkcs11('654321')
                if rc == 0:
                    raise RuntimeError('pam_pkcs11 accepted a wrong PIN: the baseline is misconfigured')
                # Warm-up: mamori's certificate cache, OpenSC's file cache, the page cache.
                run_mamori()
                run_ctl()
                rc, _ = run_pkcs11()
                if rc != 0:
                    raise RuntimeError('pam_pkcs11 did not authenticate the card')
                def run_pkcs11_ok():
                    rc, res = run_pkcs11()
                    if rc != 0:
                        raise RuntimeError('pam_pkcs11 login failed during the run')
                    return res

                for _ in range(logins):
                    for key, fn in (('mamori', run_mamori), ('pkcs11', run_pkcs11_ok), ('ctl', run_ctl)):
                        for i, v in enumerate(fn()):
                            rows[key][i].append(v)
                conn.close()
    per = {'slow': 'slow card: no TCP_QUICKACK, ~44 ms per exchange', 'fast': 'fast card: TCP_QUICKACK'}[speed]
    report(f'card login through PAM, {per} ({logins} logins each, {kind}, vpcd + pcscd, same card, interleaved)',
           'ms', [
               ('pamtester → pam_mamori → mamorid: whole process', rows['mamori'][0]),
               ('baseline: pamtester → pam_pkcs11 → OpenSC: whole process', rows['pkcs11'][0]),
               ('pamtester → pam_mamori → mamorid: PIN → exit', rows['mamori'][1]),
               ('baseline: pam_pkcs11: PIN → exit', rows['pkcs11'][1]),
               ('mamorictl auth-test (same engine, in-process, cert cache): whole', rows['ctl'][0]),
           ])
    med = statistics.median
    print(f'  mamori / pam_pkcs11, whole process, median: {100 * med(rows["mamori"][0]) / med(rows["pkcs11"][0]):.1f} %')
    report('card exchanges (APDUs answered by the card) per login', 'APDUs', [
        ('pam_mamori → mamorid: all', rows['mamori'][2]),
        ('pam_mamori → mamorid: after the PIN (critical path)', rows['mamori'][3]),
        ('mamorid auth.ok exchanges (its card thread, incl. SELECT)', daemon_exchanges),
        ('baseline: pam_pkcs11 + OpenSC: all', rows['pkcs11'][2]),
        ('baseline: pam_pkcs11 + OpenSC: after the PIN', rows['pkcs11'][3]),
        ('auth-test, cert cache: all', rows['ctl'][2]),
        ('auth-test, cert cache: after the PIN', rows['ctl'][3]),
    ])


def login(logins=30, kind='p256'):
    """Card login through PAM, as the daemon runs it: the whole pamtester process (pam_mamori →
    mamorid) next to pamtester + pam_pkcs11 + OpenSC on the same virtual card in the same run, on a
    slow card (vpcd's delayed ACK, ~44 ms per exchange, DESIGN.md §10) and a fast one; median, p99,
    and the card exchanges after the PIN is typed."""
    for speed in ('slow', 'fast'):
        _login_bench(speed, logins, kind)


EVENTMGR_CONF = """pkcs11_eventmgr {{
    daemon = false;
    debug = false;
    polling_time = 1;
    expire_time = 0;
    pkcs11_module = /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so;
    event card_insert {{ on_error = ignore; action = "/bin/true"; }}
    event card_remove {{
        on_error = ignore;
        action = "busctl --system call org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager LockSession s {session}";
    }}
    event expire_time {{ on_error = ignore; action = "/bin/true"; }}
}}
"""


def _lock_calls(monitor, session_id, after=0):
    """Times (CLOCK_REALTIME, as dbus-monitor stamps them) of LockSession calls for session_id."""
    lines = monitor.lines.lines
    out = []
    for i in range(after, len(lines) - 1):
        m = re.match(r'^method call time=([\d.]+) .*member=LockSession', lines[i])
        if m and lines[i + 1].strip() == f'string "{session_id}"':
            out.append(float(m.group(1)))
    return out


def lock(pulls=50):
    """Card pull → LockSession received by logind: mamorid, next to the pcscd floor (a bare
    SCardGetStatusChange watcher) and pkcs11_eventmgr (libpam-pkcs11 on OpenSC, default 1 s polling,
    running busctl LockSession) on the same pulls."""
    import dbus
    from terminal import Cleanups, Terminal
    floor_exe = os.path.join(bench.build_dir(), 'tests', 'bench', 'pcsc-floor')
    cleanups = Cleanups()
    try:
        t = Terminal(cleanups)
        card = t.insert('OP0001')
        t.start_agent()
        t.wait_card_seen(card)
        # A second session on the mock for pkcs11_eventmgr to lock, so the two locks are told apart.
        mock = dbus.Interface(t.logind.conn.get_object('org.freedesktop.login1', '/org/freedesktop/login1'),
                              'org.freedesktop.DBus.Mock')
        mock.AddSession('em', 'seat0', dbus.UInt32(1001), 'eventmgr', False)
        # dbusmock makes the newest session the seat's active one: give the seat back to c1.
        seat = dbus.Interface(t.logind.conn.get_object('org.freedesktop.login1', '/org/freedesktop/login1/seat/seat0'),
                              dbus.PROPERTIES_IFACE)
        seat.Set('org.freedesktop.login1.Seat', 'ActiveSession',
                 dbus.Struct((dbus.String('c1'), dbus.ObjectPath(t.logind.session_path)), signature='so'))
        conf = os.path.join(t.tmp, 'pkcs11_eventmgr.conf')
        with open(conf, 'w') as f:
            f.write(EVENTMGR_CONF.format(session='em'))
        env = t.pcscd.client_env(t.bus.client_env())
        monitor = bench.DBusMonitor(t.bus, "type='method_call',member='LockSession'")
        monitor.__enter__()
        cleanups.addCleanup(monitor.__exit__, None, None, None)
        em = subprocess.Popen(['pkcs11_eventmgr', 'nodaemon', f'config_file={conf}'], env=env, cwd=t.tmp,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cleanups.addCleanup(bench.stop_process, em)
        floor = subprocess.Popen([floor_exe, bench.READER0], env=env, text=True, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL)
        cleanups.addCleanup(bench.stop_process, floor)
        floor_out = bench.LineWatcher(floor.stdout)
        floor_out.wait(r'^ready$')
        time.sleep(2.0)  # let pkcs11_eventmgr see the card once
        agent_ms, floor_ms, em_ms = [], [], []
        for _ in range(pulls):
            t.logind.set_locked_hint(False)
            t.login()
            time.sleep(random.uniform(0.1, 0.5))
            f_mark, l_mark = floor_out.mark(), monitor.lines.mark()
            t0_wall, t0_mono = time.time(), time.monotonic()
            t.vcard.pull()
            m = floor_out.wait(r'^removed mono_us=(\d+)', after=f_mark)
            bench.wait_until(lambda: _lock_calls(monitor, 'c1', l_mark), timeout=5, what='mamorid lock')
            bench.wait_until(lambda: _lock_calls(monitor, 'em', l_mark), timeout=5, what='eventmgr lock')
            agent_ms.append((_lock_calls(monitor, 'c1', l_mark)[0] - t0_wall) * 1e3)
            em_ms.append((_lock_calls(monitor, 'em', l_mark)[0] - t0_wall) * 1e3)
            floor_ms.append((int(m.group(1)) / 1e6 - t0_mono) * 1e3)
            a_mark = t.agent.events.mark()
            t.vcard.insert()
            t.agent.wait_event('card.inserted', after=a_mark, card=card.card_id)
            time.sleep(1.2)  # pkcs11_eventmgr polls once a second: let it see the card again
    finally:
        cleanups.close()
    report(f'card pull → LockSession received by (mock) logind ({pulls} pulls at random phase)', 'ms', [
        ('mamorid', agent_ms),
        ('floor: bare SCardGetStatusChange watcher (card gone)', floor_ms),
        ('pkcs11_eventmgr (OpenSC, polling_time=1) + busctl', em_ms),
    ])


def switch(switches=30):
    """Operator switch: pull A, insert B, PIN → active (excluding typing), and the same with the
    insertion already seen (the login alone)."""
    from terminal import Cleanups, Terminal
    cleanups = Cleanups()
    insert_to_active, login_only, floor_ms = [], [], []
    floor_exe = os.path.join(bench.build_dir(), 'tests', 'bench', 'pcsc-floor')
    try:
        t = Terminal(cleanups, cards=('OP0001', 'OP0002'))
        card_a = t.insert('OP0001')
        t.start_agent()
        t.wait_card_seen(card_a)
        floor = subprocess.Popen([floor_exe, bench.READER0], env=t.pcscd.client_env(), text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        cleanups.addCleanup(bench.stop_process, floor)
        floor_out = bench.LineWatcher(floor.stdout)
        floor_out.wait(r'^ready$')
        t.login()
        vc_a = t.vcard
        card_b = t.cards['OP0002']
        vc_b = bench.VCard(t.port, card_b.key, card_b.cert, '123456', tries=3, trace=False)
        vc_a.pull()
        vc_b.start()
        cleanups.addCleanup(vc_b.stop)
        current, other = (vc_b, card_b), (vc_a, card_a)
        t.agent.wait_event('card.inserted', card=card_b.card_id, after=0)
        for i in range(switches):
            t.logind.set_locked_hint(False)
            t0 = time.monotonic()
            t.login()
            login_only.append((time.monotonic() - t0) * 1e3)
            # Switch: pull the current card, insert the other, and log in as soon as it is seen.
            vc, _ = current
            vc.pull()
            a_mark, f_mark = t.agent.events.mark(), floor_out.mark()
            nvc, ncard = other
            t0 = time.monotonic()
            nvc.insert()
            t.agent.wait_event('card.inserted', after=a_mark, card=ncard.card_id)
            m = floor_out.wait(r'^inserted mono_us=(\d+)', after=f_mark)
            floor_ms.append((int(m.group(1)) / 1e6 - t0) * 1e3)
            t.logind.set_locked_hint(False)
            t.login()
            insert_to_active.append((time.monotonic() - t0) * 1e3)
            t.iface().Lock()
            current, other = other, current
    finally:
        cleanups.close()
    report(f'operator switch ({switches} switches between two cards, PIN already typed)', 'ms', [
        ('insert B → card seen → StartLogin + AnswerPin → active', insert_to_active),
        ('floor: insert B → bare SCardGetStatusChange sees it', floor_ms),
        ('StartLogin + AnswerPin alone (card already seen)', login_only),
    ])


def rss(cycles=1000):
    """Resident memory of mamorid over login/lock cycles (growth means a leak)."""
    from terminal import Cleanups, Terminal
    cleanups = Cleanups()
    samples = []
    try:
        t = Terminal(cleanups)
        card = t.insert('OP0001')
        t.start_agent()
        t.wait_card_seen(card)
        pid = t.agent.proc.pid

        def vmrss():
            with open(f'/proc/{pid}/status') as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        return int(line.split()[1])
        t0 = time.monotonic()
        for i in range(1, cycles + 1):
            t.login()
            t.iface().Lock()
            if i in (10, 100, 250, 500, 750, cycles):
                samples.append((i, vmrss()))
        elapsed = time.monotonic() - t0
    finally:
        cleanups.close()
    print(f'\nmamorid resident memory over {cycles} login/lock cycles ({elapsed:.1f} s, '
          f'{cycles / elapsed:.0f} cycles/s; sanitizer builds inflate RSS)')
    for i, kb in samples:
        print(f'  after {i:>5} cycles: VmRSS {kb} kB')
    print(f'  growth from cycle 100 to {cycles}: {samples[-1][1] - samples[1][1]} kB')


def upload(records=100000, batch=1000):
    """A backlog of records written by the oplog appender, pushed by mamori-uploader to a collector on
    127.0.0.1 until the cursor says all are durable at the centre; next to the same batches POSTed
    straight to a second collector over one keep-alive TLS connection (the collector's own ingest)."""
    import http.client
    import json
    from test_collector import Centre
    from test_upload import Terminal, free_port, public_pem

    def centre(tmp, name, pub):
        d = os.path.join(tmp, name)
        os.makedirs(d)
        c = Centre(d)
        with open(c.conf) as f:
            conf = f.read()
        with open(c.conf, 'w') as f:
            f.write(conf.replace('Listen=127.0.0.1:0', f'Listen=127.0.0.1:{free_port()}'))
        enroltool.enrol(c.admin, 'T-CRASH', 'chuo', pub, os.path.join(d, 'cert'))
        c.start()
        return c

    with bench.TempDir(prefix='mamori-bench-upload-') as tmp:
        term = Terminal(tmp)
        p = bench.run([os.path.join(bench.build_dir(), 'tests', 'integration', 'oplog-appender'), term.log,
                       term.keys, term.identity, '4', str(records - 1)], timeout=900)
        assert p.returncode == 0, p.stderr
        pub = public_pem(term.identity, os.path.join(tmp, 'term.pub'))
        lines = term.lines().splitlines(keepends=True)
        batches = [b''.join(lines[i:i + batch]) for i in range(0, len(lines), batch)]

        base = centre(tmp, 'baseline', pub)
        try:
            cert = os.path.join(base.tmp, 'cert')
            conn = http.client.HTTPSConnection('127.0.0.1', base.port, context=base.context(cert), timeout=120)
            lat = []
            t0 = time.monotonic()
            for body in batches:
                t = time.monotonic()
                conn.request('POST', '/v1/records', body=body, headers={'Content-Type': 'application/x-ndjson'})
                r = conn.getresponse()
                r.read()
                assert r.status == 200, r.status
                lat.append((time.monotonic() - t) * 1e3)
            direct_s = time.monotonic() - t0
            conn.close()
        finally:
            base.stop()

        c = centre(tmp, 'uploader', pub)
        try:
            term.configure(c, os.path.join(c.tmp, 'cert'), poll=60)
            t0 = time.monotonic()
            term.start('--batch-records', str(batch), '--batch-bytes', str(16 * 1024 * 1024), '--verbose')
            term.wait_acked(len(lines), timeout=900)
            up_s = time.monotonic() - t0
            term.stop()
            cycles = [re.search(r'read_us=(\d+) post_us=(\d+)', line) for line in term.watch.lines]
            cycles = [m for m in cycles if m]
            db_mb = os.path.getsize(c.db) / 1e6
        finally:
            term.stop()
            c.stop()
    n = len(lines)
    print(f'\nupload of a {n}-record backlog ({len(batches)} batches of {batch}), collector on 127.0.0.1')
    print(f'  mamori-uploader end to end (read+fdatasync, POST, verify+commit, cursor): {n / up_s:9.0f} records/s '
          f'({up_s:.1f} s)')
    print(f'  baseline: same batches POSTed directly, one keep-alive connection:       {n / direct_s:9.0f} records/s '
          f'({direct_s:.1f} s)')
    report(f'time per batch of {batch} records', 'ms', [
        ('uploader: read + fdatasync of the segment', [int(m.group(1)) / 1e3 for m in cycles]),
        ('uploader: POST → 200 (verify + commit)', [int(m.group(2)) / 1e3 for m in cycles]),
        ('baseline: direct POST → 200', lat)])
    print(f'  collector database after upload: {db_mb:.1f} MB')


BENCHES = {'removal': removal, 'login': login, 'lock': lock, 'switch': switch, 'rss': rss}
BENCHES['upload'] = upload


def flood(uploads=200, clients=4, records=5):
    """Uploads served per second by the collector, each a new mTLS connection POSTing a batch of
    `records` (what an uploader's poll costs), from `clients` terminals at once: first alone, then
    while 1,000 half-open connections from 127.0.0.2-251 are held (reopened as soon as dropped)."""
    import threading
    from test_collector import Centre
    from test_starving import HALF_OPEN, HalfOpenFlood, raise_fd_limit

    raise_fd_limit(HALF_OPEN + 1024)
    with bench.TempDir(prefix='mamori-bench-flood-') as tmp:
        c = Centre(tmp)
        terms = []
        for i in range(clients):
            term = f'T-{i + 1:04d}'
            cert = c.add_terminal(term, chr(ord('a') + i))
            log = f'{i + 1:032x}'
            terms.append((cert, c.mklog(seed=chr(ord('a') + i), log=log, term=term, count=2 * uploads * records)))
        c.admin('policy', 'publish')
        c.start()
        try:
            def phase(offset):
                lat, errors = [], []

                def client(cert, lines):
                    for k in range(uploads // clients):
                        n = offset + k
                        t = time.monotonic()
                        try:
                            status, body, _ = c.request(cert, 'POST', '/v1/records',
                                                        b''.join(lines[n * records:(n + 1) * records]), timeout=30)
                            if status != 200:
                                errors.append(status)
                        except Exception as e:  # counted, the run goes on
                            errors.append(repr(e))
                        lat.append((time.monotonic() - t) * 1e3)

                threads = [threading.Thread(target=client, args=t) for t in terms]
                t0 = time.monotonic()
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()
                return lat, errors, time.monotonic() - t0

            alone, err_alone, dt_alone = phase(0)
            f = HalfOpenFlood(c.port).start()
            try:
                time.sleep(1)  # all 1,000 connects were issued by start()
                flooded, err_flood, dt_flood = phase(uploads // clients)
                held, opened = f.held, f.opened
            finally:
                f.stop()
        finally:
            c.stop()
    print(f'\ncollector: {uploads} uploads of {records} records, each a new mTLS connection, {clients} terminals at once')
    print(f'  alone:                        {len(alone) / dt_alone:7.1f} uploads/s  errors={len(err_alone)}')
    print(f'  1,000 half-open held:         {len(flooded) / dt_flood:7.1f} uploads/s  errors={len(err_flood)}'
          f'  ({held} held, {opened} opened by the flood)')
    for e in (err_alone + err_flood)[:3]:
        print(f'  error: {e}')
    report('upload latency (connect + TLS + POST + durable commit)', 'ms', [
        ('alone', alone), ('while 1,000 half-open connections are held', flooded)])


BENCHES['flood'] = flood


def oplog():
    """Committed records/s (1 and 8 writers) next to bare fdatasync, sign/verify cost, verify rate."""
    subprocess.run([sys.executable, os.path.join(HERE, 'bench_oplog.py'), bench.build_dir()], check=True)


BENCHES['oplog'] = oplog


def audit():
    # A year of 5 million records for 50 terminals: audit, ledger, trace, watch (tests/bench/audit-bench.py).
    subprocess.run([bench.PYTHON, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'audit-bench.py')], check=True)
BENCHES['audit'] = audit


def store():
    # SQLite and PostgreSQL side by side: MB per million records, year-audit of one office (tests/bench/store-bench.py).
    subprocess.run([bench.PYTHON, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'store-bench.py'), '0.4'],
                   check=True)


BENCHES['store'] = store


def pgfloor():
    # PostgreSQL's own CPU a record by table layout, beside one verification (tests/bench/pg-floor.py).
    subprocess.run([bench.PYTHON, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pg-floor.py')], check=True)


BENCHES['pgfloor'] = pgfloor


def finger():
    """Identify time with 10/100/1000 prints; touch → active for group-card+finger and finger+password."""
    subprocess.run([sys.executable, os.path.join(HERE, 'finger-bench.py')], check=True)


BENCHES['finger'] = finger


def vein():
    """Touch → active for vein+password; identify time with 10/100/1000 vein templates."""
    subprocess.run([sys.executable, os.path.join(HERE, 'vein-bench.py')], check=True)


BENCHES['vein'] = vein


def password(samples=40):
    """One password check (scrypt, EVP_KDF) at the chosen ln=15 (and 14, 16 for scale), beside
    Python's hashlib.scrypt (OpenSSL's scrypt without mamori's code) with the same parameters."""
    import hashlib
    exe = os.path.join(bench.build_dir(), 'tests', 'bench', 'password-bench')
    rows = []
    for ln in (14, 15, 16):
        out = subprocess.run([exe, str(ln), str(samples)], stdout=subprocess.PIPE, text=True, check=True).stdout
        us = [float(m.group(1)) / 1000.0 for m in re.finditer(r'(?m)^us=(\d+)$', out)]
        rows.append((f'mamori check, ln={ln} r=8 p=1 ({128 * 8 * 2 ** ln >> 20} MiB)', us))
    base = []
    for _ in range(samples):
        t0 = time.monotonic()
        hashlib.scrypt(b'correct horse battery staple', salt=b'0123456789abcdef', n=2 ** 15, r=8, p=1, dklen=32,
                       maxmem=64 * 1024 * 1024)
        base.append((time.monotonic() - t0) * 1000.0)
    rows.append(('baseline: Python hashlib.scrypt, ln=15 r=8 p=1', base))
    report('password check (scrypt)', 'ms', rows)


BENCHES['password'] = password


def failures(samples=200, parent='/var/tmp'):
    """One save of the password failure counts (a full file, 64 operators: temporary file, fsync, rename,
    directory fsync), which mamorid makes on its loop before answering a wrong password; beside, in the
    same run and directory, the save without the directory fsync and a bare write+fsync of the same bytes."""
    exe = os.path.join(bench.build_dir(), 'tests', 'bench', 'password-failures-bench')
    out = subprocess.run([exe, parent, str(samples)], stdout=subprocess.PIPE, text=True, check=True).stdout
    head = re.search(r'(?m)^bytes=(\d+) f_type=(0x[0-9a-f]+) dir=(\S+)$', out)
    cols = {k: [int(v) / 1000.0 for v in re.findall(rf'(?m)\b{k}_us=(\d+)', out)]
            for k in ('save', 'nodir', 'fsync')}
    report(f'password failure counts: one save of {head.group(1)} bytes in {os.path.dirname(head.group(3))} '
           f'(f_type {head.group(2)}), {samples} samples, interleaved', 'ms', [
               ('save (fsync, rename, directory fsync)', cols['save']),
               ('baseline: same save, no directory fsync', cols['nodir']),
               ('baseline: bare write+fsync, same bytes', cols['fsync']),
           ])


BENCHES['failures'] = failures


def main(argv):
    names = argv or list(BENCHES)
    for name in names:
        if name not in BENCHES:
            print(f'unknown benchmark {name!r}; known: {", ".join(BENCHES)}', file=sys.stderr)
            return 2
    for name in names:
        BENCHES[name]()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
