#!/usr/bin/python3
"""Independent verifier of a mamori operation-log directory, written from DESIGN.md §6 alone.

It shares no code with the C implementation: its own RFC 8785 (JCS) serialiser, Ed25519 from
pyca/cryptography, its own reading of segment files (seg-<first seq, 20 digits>.log, lines split
on b"\\n" only). A pruned log (first segment after seq 1) verifies from its first record through
the collector's receipt of DESIGN.md §7, taken from the upload cursor file and checked against the
receipt key: the hash chain up to the receipt's seq must end at its line hash, later records are
checked with its key and the key.rotate records that follow.
Usage: indep_verify.py DIR IDENTITY.pem [CURSOR RECEIPT-KEY.pem]  -> "OK <records>" or
"OK <records> from seq X using receipt for N" (exit 0), or "BROKEN <reason>" (exit 1).
"""
import base64
import hashlib
import json
import os
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FIELDS = {"v", "log", "seq", "ts", "boot", "mono", "term", "ev", "op", "card", "data", "prev", "sig"}
EVENTS = {
    "agent.start", "agent.stop", "log.open", "key.rotate", "reader.added", "reader.lost",
    "card.inserted", "card.removed", "card.left", "auth.ok", "auth.fail", "session.start",
    "session.end", "lock", "unlock", "pin.change", "pin.blocked", "password.change", "enroll",
    "policy.load", "policy.reject", "policy.stale", "emergency.lock", "app.op", "clock.jump",
}
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
SEGMENT = re.compile(r"^seg-(\d{20})\.log$")


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class Broken(Exception):
    pass


# ---- RFC 8785 ----

def jcs_string(s):
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif c < 0x20:
            out.append("\\u%04x" % c)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jcs(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return jcs_string(v)
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(jcs_string(k) + ":" + jcs(v[k]) for k in keys) + "}"
    raise Broken("value of a type JCS records cannot carry: %r" % type(v))


def no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise Broken("duplicate key %r" % k)
        d[k] = v
    return d


def no_float(s):
    raise Broken("non-integer number %s" % s)


# ---- the chain ----

def raw_public(b64):
    raw = base64.b64decode(b64, validate=True)
    if len(raw) != 32 or base64.b64encode(raw).decode() != b64:
        raise Broken("data.key is not canonical base64 of 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def check_record(line, rec_no):
    try:
        text = line.decode("utf-8")
        r = json.loads(text, object_pairs_hook=no_duplicates, parse_float=no_float)
    except (UnicodeDecodeError, ValueError) as e:
        raise Broken("record %d: not JSON (%s)" % (rec_no, e))
    if not isinstance(r, dict) or set(r) != FIELDS:
        raise Broken("record %d: fields are not exactly those of §6" % rec_no)
    if jcs(r).encode("utf-8") != line:
        raise Broken("record %d: line is not the JCS form of its record" % rec_no)
    if r["v"] != 1 or not isinstance(r["seq"], int) or isinstance(r["seq"], bool):
        raise Broken("record %d: bad v or seq" % rec_no)
    for k in ("ts", "mono"):
        if not isinstance(r[k], int) or isinstance(r[k], bool) or r[k] < 0:
            raise Broken("record %d: bad %s" % (rec_no, k))
    if not (isinstance(r["log"], str) and HEX32.match(r["log"]) and isinstance(r["boot"], str)
            and HEX32.match(r["boot"]) and isinstance(r["prev"], str) and HEX64.match(r["prev"])):
        raise Broken("record %d: bad log, boot or prev" % rec_no)
    if not isinstance(r["term"], str) or r["ev"] not in EVENTS:
        raise Broken("record %d: bad term or ev" % rec_no)
    if r["op"] is not None and not isinstance(r["op"], str):
        raise Broken("record %d: bad op" % rec_no)
    if r["card"] is not None and not (isinstance(r["card"], str) and HEX64.match(r["card"])):
        raise Broken("record %d: bad card" % rec_no)
    if not isinstance(r["data"], dict) or not isinstance(r["sig"], str):
        raise Broken("record %d: bad data or sig" % rec_no)
    return r


RECEIPT_FIELDS = {"v", "collector", "log", "acked", "line", "key", "ts", "sig"}
COLLECTOR = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_receipt(rc, receipt_key):
    """A receipt object (dict) of §7, signed by receipt_key (Ed25519PublicKey). Returns it."""
    if not isinstance(rc, dict) or set(rc) != RECEIPT_FIELDS:
        raise Broken("receipt: members are not exactly those of §7")
    if rc["v"] != 1 or not is_int(rc["v"]):
        raise Broken("receipt: v is not 1")
    if not isinstance(rc["collector"], str) or not COLLECTOR.match(rc["collector"]):
        raise Broken("receipt: bad collector")
    if not isinstance(rc["log"], str) or not HEX32.match(rc["log"]):
        raise Broken("receipt: bad log")
    if not is_int(rc["acked"]) or not 0 <= rc["acked"] <= 2**53 - 1:
        raise Broken("receipt: bad acked")
    if not isinstance(rc["line"], str) or not HEX64.match(rc["line"]):
        raise Broken("receipt: bad line")
    if not is_int(rc["ts"]) or not 0 <= rc["ts"] <= 2**53 - 1:
        raise Broken("receipt: bad ts")
    if not isinstance(rc["key"], str):
        raise Broken("receipt: bad key")
    raw_public(rc["key"])
    sig_b64 = rc["sig"]
    if not isinstance(sig_b64, str):
        raise Broken("receipt: bad sig")
    try:
        sig = base64.b64decode(sig_b64, validate=True)
    except ValueError:
        raise Broken("receipt: sig is not base64")
    if len(sig) != 64 or base64.b64encode(sig).decode() != sig_b64:
        raise Broken("receipt: sig is not canonical base64 of 64 bytes")
    body = {k: v for k, v in rc.items() if k != "sig"}
    try:
        receipt_key.verify(sig, jcs(body).encode("utf-8"))
    except InvalidSignature:
        raise Broken("receipt: not signed by the receipt key")
    return rc


def verify_lines(lines, identity, first_seq=1, receipt=None):
    """lines: list of bytes without "\\n", the first of seq first_seq; a pruned log (first_seq > 1)
    needs receipt (a checked §7 receipt). Returns the number of records."""
    prev_hash = "0" * 64
    log_id = None
    key = None
    anchor = 0
    if first_seq > 1:
        if receipt is None:
            raise Broken("records 1..%d are missing and no receipt vouches for them" % (first_seq - 1))
        anchor = receipt["acked"]
        log_id = receipt["log"]
        if anchor < first_seq - 1:
            raise Broken("records %d..%d are missing: the receipt covers only seq %d"
                         % (anchor + 1, first_seq - 1, anchor))
        if lines:
            prev_hash = check_record(lines[0], first_seq)["prev"]
        if anchor == first_seq - 1:
            if prev_hash != receipt["line"]:
                raise Broken("seq %d: prev is not the receipt's line hash" % first_seq)
            key = raw_public(receipt["key"])
    for i, line in enumerate(lines):
        seq = first_seq + i
        r = check_record(line, seq)
        if r["seq"] != seq:
            raise Broken("seq %d where %d was expected" % (r["seq"], seq))
        if log_id is not None and r["log"] != log_id:
            raise Broken("seq %d: another log id" % seq)
        log_id = r["log"]
        if r["prev"] != prev_hash:
            raise Broken("seq %d: prev is not the hash of the previous line" % seq)
        body = dict(r)
        sig_b64 = body.pop("sig")
        try:
            sig = base64.b64decode(sig_b64, validate=True)
        except ValueError:
            raise Broken("seq %d: sig is not base64" % seq)
        if len(sig) != 64 or base64.b64encode(sig).decode() != sig_b64:
            raise Broken("seq %d: sig is not canonical base64 of 64 bytes" % seq)
        signer = identity if seq == 1 else key
        if seq == 1 and r["ev"] != "log.open":
            raise Broken("seq 1 is not log.open")
        if seq > 1 and r["ev"] == "log.open":
            raise Broken("seq %d: log.open again" % seq)
        if seq > anchor:  # up to the receipt, the hash chain that must end at its line holds them
            try:
                signer.verify(sig, jcs(body).encode("utf-8"))
            except InvalidSignature:
                raise Broken("seq %d (%s): bad signature" % (seq, r["ev"]))
        if r["ev"] in ("log.open", "key.rotate"):
            if not isinstance(r["data"].get("key"), str):
                raise Broken("seq %d: no data.key" % seq)
            try:
                key = raw_public(r["data"]["key"])
            except ValueError:
                raise Broken("seq %d: data.key is not base64" % seq)
        prev_hash = hashlib.sha256(line).hexdigest()
        if anchor and seq == anchor:
            if prev_hash != receipt["line"]:
                raise Broken("seq %d: its line hash is not the receipt's" % seq)
            key = raw_public(receipt["key"])
    if not lines:
        raise Broken("no records")
    if anchor > first_seq - 1 + len(lines):
        raise Broken("the receipt acknowledges seq %d but the log ends at seq %d"
                     % (anchor, first_seq - 1 + len(lines)))
    return len(lines)


def read_dir_from(d):
    """(seq of the first record, lines) of the segments in d."""
    names = sorted(n for n in os.listdir(d) if SEGMENT.match(n))
    lines = []
    first = int(SEGMENT.match(names[0]).group(1)) if names else 1
    for n in names:
        data = read_bytes(os.path.join(d, n))
        if not data:
            continue
        if not data.endswith(b"\n"):
            raise Broken("%s: last line is not terminated (torn)" % n)
        seg_lines = data[:-1].split(b"\n")
        if int(SEGMENT.match(n).group(1)) != first + len(lines):
            raise Broken("%s: starts at the wrong seq (expected %d)" % (n, first + len(lines)))
        lines.extend(seg_lines)
    return first, lines


def read_dir(d):
    first, lines = read_dir_from(d)
    if first != 1:
        raise Broken("seg-%020d.log: starts at the wrong seq (expected 1)" % first)
    return lines


def load_identity(path):
    pem = read_bytes(path)
    try:
        k = serialization.load_pem_public_key(pem)
    except ValueError:
        k = serialization.load_pem_private_key(pem, password=None)
        if isinstance(k, Ed25519PrivateKey):
            k = k.public_key()
    if not isinstance(k, Ed25519PublicKey):
        raise SystemExit("identity is not an Ed25519 key")
    return k


def load_public(path):
    k = serialization.load_pem_public_key(read_bytes(path))
    if not isinstance(k, Ed25519PublicKey):
        raise SystemExit("%s is not an Ed25519 public key" % path)
    return k


def cursor_receipt(cursor_path, receipt_key_path):
    """The receipt in an upload cursor file ({"log":L,"acked":N,"receipt":{…}}), checked."""
    try:
        c = json.loads(read_bytes(cursor_path), object_pairs_hook=no_duplicates, parse_float=no_float)
    except ValueError as e:
        raise Broken("cursor: not JSON (%s)" % e)
    if not isinstance(c, dict) or "receipt" not in c:
        raise Broken("cursor: no receipt")
    rc = check_receipt(c["receipt"], load_public(receipt_key_path))
    if rc["log"] != c.get("log") or rc["acked"] != c.get("acked"):
        raise Broken("cursor: its receipt is for another log or seq")
    return rc


def verify_dir(d, identity_path, cursor=None, receipt_key=None):
    first, lines = read_dir_from(d)
    receipt = cursor_receipt(cursor, receipt_key) if first > 1 and cursor else None
    return verify_lines(lines, load_identity(identity_path), first, receipt)


def main():
    if len(sys.argv) not in (3, 5):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        first, lines = read_dir_from(sys.argv[1])
        receipt = None
        if first > 1 and len(sys.argv) == 5:
            receipt = cursor_receipt(sys.argv[3], sys.argv[4])
        n = verify_lines(lines, load_identity(sys.argv[2]), first, receipt)
    except Broken as e:
        print("BROKEN", e)
        return 1
    if receipt:
        print("OK %d from seq %d using receipt for %d" % (n, first, receipt["acked"]))
    else:
        print("OK", n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
