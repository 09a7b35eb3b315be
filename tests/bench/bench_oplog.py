#!/usr/bin/python3
"""Operation-log benchmark driver: runs oplog-bench (committed records/s with 1 and 8 writers beside
the bare write+fdatasync rate on the same file system, signing/verify cost per record, in-process
verify rate), then times `mamorictl log verify` and the independent Python verifier on the log it
wrote. Usage: bench_oplog.py [BUILD_DIR [DIR_ON_FS_TO_MEASURE [SECONDS]]] (default /var/tmp, 3 s).
Use a build without sanitizers for figures (meson setup B -Dbuildtype=release)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import indep_verify  # noqa: E402

from cryptography.hazmat.primitives import serialization  # noqa: E402


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../../build")
    fs = sys.argv[2] if len(sys.argv) > 2 else "/var/tmp"
    seconds = sys.argv[3] if len(sys.argv) > 3 else "3"
    root = tempfile.mkdtemp(prefix="mamori-bench-", dir=fs)
    try:
        out = subprocess.run([os.path.join(build, "tests/bench/oplog-bench"), root, seconds],
                             capture_output=True, text=True, check=True).stdout
        print(out, end="")
        bench_root = re.search(r"^BENCH_ROOT (.*)$", out, re.M).group(1)
        log = os.path.join(bench_root, "log")
        key = serialization.load_pem_private_key(
            open(os.path.join(bench_root, "keys/identity.pem"), "rb").read(), password=None)
        pub = os.path.join(bench_root, "identity.pub")
        with open(pub, "wb") as f:
            f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
        t0 = time.monotonic()
        r = subprocess.run([os.path.join(build, "agent/mamorictl"), "log", "verify", log, "--identity", pub],
                           capture_output=True, text=True, check=True)
        dt = time.monotonic() - t0
        n = int(r.stdout.split()[1])
        print("mamorictl log verify (CLI)            %9.0f records/s (%d records)" % (n / dt, n))
        t0 = time.monotonic()
        n = indep_verify.verify_dir(log, pub)
        print("independent Python verifier           %9.0f records/s" % (n / (time.monotonic() - t0)))
    finally:
        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
