#!/usr/bin/python3
# Independent reference for mamori's record vectors: own RFC 8785 serialiser + pyca/cryptography Ed25519.
#
# Usage: gen-records.py DIR          write records.jsonl, records-signed.txt, records-hashes.txt,
#                                    receipts.jsonl, receipts-signed.txt, keys.txt
#        gen-records.py --check DIR  regenerate in memory and compare with the committed files
#
# Nothing here shares code with the C implementation: JCS is written from RFC 8785 §3.2 and the
# ECMAScript JSON.stringify rules, so the C test that reproduces these bytes checks two readings
# of the spec against each other.
import base64
import hashlib
import os
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

MAX_SAFE = 2**53 - 1
SHORT_ESCAPES = {'\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r', '"': '\\"', '\\': '\\\\'}


def jcs_string(s):
    out = ['"']
    for ch in s:
        if ch in SHORT_ESCAPES:
            out.append(SHORT_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append('\\u%04x' % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return ''.join(out)


def jcs(v):
    if v is None:
        return 'null'
    if v is True:
        return 'true'
    if v is False:
        return 'false'
    if isinstance(v, int):
        if abs(v) > MAX_SAFE:
            raise ValueError('integer outside the I-JSON range')
        return str(v)
    if isinstance(v, str):
        return jcs_string(v)
    if isinstance(v, list):
        return '[' + ','.join(jcs(x) for x in v) + ']'
    if isinstance(v, dict):
        # RFC 8785 §3.2.3: sort by UTF-16 code units; big-endian UTF-16 bytes sort the same way.
        keys = sorted(v, key=lambda k: k.encode('utf-16-be'))
        return '{' + ','.join(jcs_string(k) + ':' + jcs(v[k]) for k in keys) + '}'
    raise TypeError(type(v))


def self_test():
    # RFC 8785 §3.2.3 sorting example.
    d = {'\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh',
         '1': 'One', '\U0001f600': 'Emoji: Grinning Face', '\u0080': 'Control',
         '\u00f6': 'Latin Small Letter O With Diaeresis'}
    order = [k for k in sorted(d, key=lambda k: k.encode('utf-16-be'))]
    assert order == ['\r', '1', '\u0080', '\u00f6', '\u20ac', '\U0001f600', '\ufb33'], order
    # RFC 8785 §3.2.2 example, minus its floats.
    s = {'string': '\u20ac$\u000F\u000aA\'\u0042\u0022\u005c\\"/', 'literals': [None, True, False]}
    assert jcs(s) == '{"literals":[null,true,false],"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}', jcs(s)


def seed(label):
    return hashlib.sha256(label.encode()).digest()


def raw_pub(key):
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


IDENTITY = Ed25519PrivateKey.from_private_bytes(seed('mamori test vector: terminal identity key'))
EPOCH0 = Ed25519PrivateKey.from_private_bytes(seed('mamori test vector: log key epoch 0'))
EPOCH1 = Ed25519PrivateKey.from_private_bytes(seed('mamori test vector: log key epoch 1'))
RECEIPT = Ed25519PrivateKey.from_private_bytes(seed('mamori test vector: collector receipt key'))

LOG = '5f1c0e2a9b3d4c6e8f7a1b2c3d4e5f60'
BOOT = 'c0ffee0012345678c0ffee0012345678'
TERM = 'T-0001'
CARD = hashlib.sha256(b'mamori test vector: card certificate').hexdigest()
B64 = lambda b: base64.b64encode(b).decode()

# (ev, op, card, data, signing key); ts/mono grow by fixed steps.
RECORDS = [
    ('log.open', None, None, {'key': B64(raw_pub(EPOCH0))}, IDENTITY),
    ('card.inserted', None, CARD, {'reader': 'Virtual PCD 00 00'}, EPOCH0),
    ('key.rotate', None, None, {'key': B64(raw_pub(EPOCH1))}, EPOCH0),
    ('auth.fail', 'OP0001', CARD,
     {'reason': 'pin-wrong', 'tries_left': 2,
      'note': 'tab\there "quoted" back\\slash\nline \u0001\u001f\u007f \u00e9 \u65e5\u672c \U0001f600 \u2028/',
      '\u20ac': 1, '\U0001f600': 2, '\uff61': 3, 'a': [True, None, -7, {}]},
     EPOCH1),
    ('session.start', 'OP0001', CARD, {'method': 'card+pin', 'latency_us': 412345}, EPOCH1),
]


# DESIGN.md §7 receipts for this log: (acked, key that signs record acked + 1).
RECEIPTS = [(0, IDENTITY), (2, EPOCH0), (3, EPOCH1), (5, EPOCH1)]
COLLECTOR = 'collector-1.example'


def receipts(hashes):
    out, signed = [], []
    for i, (acked, key) in enumerate(RECEIPTS):
        r = {'v': 1, 'collector': COLLECTOR, 'log': LOG, 'acked': acked,
             'line': hashes[acked - 1].decode() if acked else '0' * 64, 'key': B64(raw_pub(key)),
             'ts': 1763880100000000 + i * 1000000}
        body = jcs(r).encode()
        r['sig'] = B64(RECEIPT.sign(body))
        signed.append(body)
        out.append(jcs(r).encode())
    return out, signed


def generate():
    lines, signed, hashes = [], [], []
    prev = '0' * 64
    for i, (ev, op, card, data, key) in enumerate(RECORDS):
        rec = {'v': 1, 'log': LOG, 'seq': i + 1, 'ts': 1763880000000000 + i * 1500000, 'boot': BOOT,
               'mono': 5000000 + i * 1500000, 'term': TERM, 'ev': ev, 'op': op, 'card': card,
               'data': data, 'prev': prev}
        body = jcs(rec).encode()
        rec['sig'] = B64(key.sign(body))
        line = jcs(rec).encode()
        signed.append(body)
        lines.append(line)
        prev = hashlib.sha256(line).hexdigest()
        hashes.append(prev.encode())
    rlines, rsigned = receipts(hashes)
    return {
        'receipts.jsonl': b''.join(l + b'\n' for l in rlines),
        'receipts-signed.txt': b''.join(s + b'\n' for s in rsigned),
        'records.jsonl': b''.join(l + b'\n' for l in lines),
        'records-signed.txt': b''.join(s + b'\n' for s in signed),
        'records-hashes.txt': b''.join(h + b'\n' for h in hashes),
        'keys.txt': ''.join('%s seed=%s public=%s\n' % (name, seed(label).hex(), raw_pub(k).hex())
                            for name, label, k in [
                                ('identity', 'mamori test vector: terminal identity key', IDENTITY),
                                ('epoch0', 'mamori test vector: log key epoch 0', EPOCH0),
                                ('epoch1', 'mamori test vector: log key epoch 1', EPOCH1),
                                ('receipt', 'mamori test vector: collector receipt key', RECEIPT)]).encode(),
    }


def main():
    self_test()
    check = sys.argv[1] == '--check'
    outdir = sys.argv[-1]
    files = generate()
    bad = 0
    for name, content in files.items():
        path = os.path.join(outdir, name)
        if check:
            with open(path, 'rb') as f:
                if f.read() != content:
                    print('%s differs from the reference output' % path)
                    bad += 1
        else:
            with open(path, 'wb') as f:
                f.write(content)
    if check:
        print('%d vector files checked, %d differ' % (len(files), bad))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
