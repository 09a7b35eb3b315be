# One counter terminal on the integration bench: bus, mock logind, pcscd, virtual cards, policy, mamorid.
"""Shared by the session tests and the benchmarks. ``test`` is anything with addCleanup(fn, *args)
(a unittest.TestCase, or a contextlib.ExitStack wrapped by Cleanups below)."""
import os

import agentproc
import bench
import policytool

PIN = '123456'
AGENT = 'org.mamori.Agent1'
PATH = '/org/mamori/Agent1'


class Cleanups:
    """addCleanup() for scripts: runs the callbacks in reverse order on close()."""

    def __init__(self):
        self._callbacks = []

    def addCleanup(self, fn, *args):
        self._callbacks.append((fn, args))

    def close(self):
        while self._callbacks:
            fn, args = self._callbacks.pop()
            try:
                fn(*args)
            except Exception as e:  # keep cleaning up
                print(f'cleanup: {e}')


class Terminal:
    """One counter terminal on the bench: bus + logind + pcscd + card + signed policy + mamorid."""

    def __init__(self, test, desktop_locks=True, session=None, cards=('OP0001',), card_status=None, kind='p256'):
        import dbus
        self.dbus = dbus
        self.test = test
        self.tmpdir = bench.TempDir()
        self.tmp = self.tmpdir.__enter__()
        test.addCleanup(self.tmpdir.__exit__, None, None, None)
        self.pki = bench.TestPKI(self.tmp)
        self.cards = {op: self.pki.issue(op, kind) for op in cards}
        self.signer = policytool.Signer.generate(self.tmp)
        self.bus = self.enter(bench.SystemBus(self.tmp))
        self.logind = self.enter(bench.MockLogind(self.bus, desktop_locks=desktop_locks))
        self.port = bench.free_vpcd_port()
        self.pcscd = self.enter(bench.Pcscd(self.tmp, self.port, debug=False))
        self.vcard = None
        self.agent = None
        self.session_conf = {'IdleLockSec': '300', 'LockVerifySec': '1', 'CardLeftSec': '1h'}
        self.session_conf.update(session or {})
        self.agent_env = {}  # extra environment for mamorid (e.g. fake evdev devices)
        self.publish(serial=1, card_status=card_status or {})

    def enter(self, cm):
        obj = cm.__enter__()
        self.test.addCleanup(cm.__exit__, None, None, None)
        return obj

    def publish(self, serial, card_status=None, emergency=False, op_status=None, op_offices=None):
        card_status = card_status or {}
        op_status = op_status or {}
        op_offices = op_offices or {}
        b = policytool.bundle(serial, 'chuo', 'T-0001',
                              [policytool.operator(op, op_offices.get(op, ['chuo']), op_status.get(op, 'active'))
                               for op in self.cards],
                              [policytool.card(c.card_id, op, card_status.get(op, 'active'))
                               for op, c in self.cards.items()], emergency=emergency,
                              offices=sorted({'chuo'}.union(*op_offices.values())))
        policytool.install(os.path.join(self.tmp, 'agent-state', 'policy'), self.signer.sign(b))

    def insert(self, op):
        """Puts op's card in the reader (the previous card is pulled first)."""
        if self.vcard:
            self.vcard.stop()
        card = self.cards[op]
        self.vcard = bench.VCard(self.port, card.key, card.cert, PIN, tries=3)
        self.vcard.start()
        self.test.addCleanup(self.vcard.stop)
        return card

    def start_agent(self):
        env = self.pcscd.client_env(self.bus.client_env())
        env.update(self.agent_env)
        self.agent = agentproc.Mamorid(self.tmp, env, {'Session': self.session_conf})
        self.agent.start()
        self.test.addCleanup(self.agent.stop)
        self.conn = self.bus.connect()
        bench.wait_until(lambda: self.conn.name_has_owner(AGENT), timeout=10, what='mamorid on the bus')
        return self.agent

    def iface(self):
        return self.dbus.Interface(self.conn.get_object(AGENT, PATH), AGENT)

    def prop(self, name):
        props = self.dbus.Interface(self.conn.get_object(AGENT, PATH), self.dbus.PROPERTIES_IFACE)
        return props.Get(AGENT, name)

    def login(self, pin=PIN):
        card_id, _ = self.iface().StartLogin('counter')
        return str(self.iface().AnswerPin(pin))

    def wait_card_seen(self, card):
        self.agent.wait_event('card.inserted', card=card.card_id, timeout=20, after=0)
        bench.wait_until(lambda: bool(self.prop('CardPresent')), timeout=5, what='CardPresent')
