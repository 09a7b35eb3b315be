# Enrolment by request for the tests (DESIGN.md §11): a TLS key and CSR made here (the terminal's
# side, with the openssl CLI), `mamori-admin terminal add|rekey --request`, the answer unpacked.
"""enrol() leaves in out_dir what a terminal holds after `mamorictl enroll-install`: client.pem,
client.key (made here, never sent), collector-ca.pem, receipt.pub and policy-signer.pub. Tests that
drive mamorictl itself use its enroll-request/enroll-install (test_enrolment.py)."""
import json
import os
import subprocess


def make_request(term, identity_pub, key_path, req_path):
    """A TLS key at key_path and an enrolment request for it at req_path."""
    subprocess.run(['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256',
                    '-out', key_path], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key_path, 0o600)
    csr = subprocess.run(['openssl', 'req', '-new', '-key', key_path, '-subj', f'/O=mamori/CN={term}'],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    with open(identity_pub) as f:
        identity = f.read()
    with open(req_path, 'w') as f:
        json.dump({'v': 1, 'type': 'mamori-enrolment-request', 'terminal': term, 'identity': identity,
                   'csr': csr}, f)
    return req_path


def unpack(enrolment_path, out_dir):
    with open(enrolment_path) as f:
        e = json.load(f)
    for name, key in (('client.pem', 'certificate'), ('collector-ca.pem', 'collector_ca'),
                      ('receipt.pub', 'receipt_key'), ('policy-signer.pub', 'policy_signer')):
        with open(os.path.join(out_dir, name), 'w') as f:
            f.write(e[key])
    return e


def enrol(admin, term, office, identity_pub, out_dir, rekey=False):
    """admin(*args) runs mamori-admin and raises on failure. Returns out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    req = make_request(term, identity_pub, os.path.join(out_dir, 'client.key'),
                       os.path.join(out_dir, 'request.json'))
    enr = os.path.join(out_dir, 'enrolment.json')
    if rekey:
        admin('terminal', 'rekey', '--request', req, '--out', enr)
    else:
        admin('terminal', 'add', '--request', req, '--office', office, '--out', enr)
    unpack(enr, out_dir)
    return out_dir
