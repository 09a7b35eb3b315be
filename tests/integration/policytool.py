# Builds and signs policy bundles (DESIGN.md §8) for integration tests, independently of the C codec.
"""Policy bundles for tests.

    signer = policytool.Signer.generate(tmp)           # .key (private), .pub_path (PEM SubjectPublicKeyInfo)
    b = policytool.bundle(serial=1, office='chuo', terminal='T-0001',
                          operators=[policytool.operator('OP0001', offices=['chuo'])],
                          cards=[policytool.card(card_id, 'OP0001')])
    policytool.install(directory, signer.sign(b))       # write temp + rename: policy.json

Signing follows §8: Ed25519 (pyca/cryptography) over the RFC 8785 bytes of the object without
"sig", base64 with padding.  The JCS serialiser is the independent one in tests/vectors/
(gen-records.py), written from the RFC, not the C code under test.
"""

import base64
import importlib.util
import os
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

_HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location('gen_records',
                                               os.path.join(_HERE, '..', 'vectors', 'gen-records.py'))
_gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_gen)

HOUR_US = 3600 * 1000000


def jcs_bytes(obj):
    return _gen.jcs(obj).encode('utf-8')


def now_us():
    return int(time.time() * 1e6)


class Signer:
    """An Ed25519 policy key; pub_path is what [Policy] SignerKey= points at."""

    def __init__(self, key, pub_path):
        self.key = key
        self.pub_path = pub_path

    @classmethod
    def generate(cls, directory, name='policy-signer'):
        key = Ed25519PrivateKey.generate()
        pub_path = os.path.join(directory, f'{name}.pub')
        with open(pub_path, 'wb') as f:
            f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
        return cls(key, pub_path)

    def sign(self, bundle):
        """The bundle as file bytes: JCS including "sig", then a newline."""
        body = {k: v for k, v in bundle.items() if k != 'sig'}
        sig = base64.b64encode(self.key.sign(jcs_bytes(body))).decode('ascii')
        return jcs_bytes(dict(body, sig=sig)) + b'\n'


def operator(op_id, offices, status='active', name=None):
    o = {'id': op_id, 'offices': list(offices), 'status': status, 'roles': ['counter']}
    if name:
        o['name'] = name
    return o


def card(card_id, operator_id, status='active'):
    return {'id': card_id, 'kind': 'individual', 'operator': operator_id, 'status': status}


def bundle(serial, office, terminal, operators, cards, offices=None, emergency=False, issued=None,
           expires=None, groups=None):
    """A §8 bundle: offices default to [office]; expires defaults to a day after issued."""
    issued = now_us() - HOUR_US if issued is None else issued
    expires = issued + 24 * HOUR_US if expires is None else expires
    office_ids = offices or [office]
    return {
        'v': 1,
        'serial': serial,
        'issued': issued,
        'expires': expires,
        'emergency': emergency,
        'offices': [{'id': o} for o in office_ids],
        'terminals': [{'id': terminal, 'office': office}],
        'operators': list(operators),
        'groups': list(groups or []),
        'cards': list(cards),
    }


def install(directory, data, name='policy.json'):
    """Replaces directory/name by rename, as mamori-uploader does (never written in place)."""
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f'.{name}.tmp-{os.getpid()}')
    with open(tmp, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(directory, name))
