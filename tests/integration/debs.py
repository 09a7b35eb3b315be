# Builds mamori's .debs with packaging/build-deb.sh once per source state (cached by a hash of the sources).
"""debs.build() → {'mamori-agent': PATH, 'libpam-mamori': PATH, 'mamori-collector': PATH}

The cache lives in $MAMORI_BUILD_DIR/debs/<hash>, where the hash covers the path and bytes of
every file build-deb.sh packs (git's tracked and untracked-not-ignored files, no build*/), except
tests/ (the packages are built with -Dtests=false, so nothing there reaches them): a second test
run on the same sources reuses the packages, any edit of what they are built from rebuilds them. Older cache
entries are removed. A lock file serialises concurrent builds.
"""

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess

PACKAGES = ('mamori-agent', 'libpam-mamori', 'mamori-collector')


def source_hash(top):
    files = subprocess.run(['git', '-C', top, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                           stdout=subprocess.PIPE, check=True).stdout.split(b'\0')
    h = hashlib.sha256()
    for f in sorted(x for x in files if x and not x.split(b'/')[0].startswith(b'build') and not x.startswith(b'tests/')):
        path = os.path.join(top.encode(), f)
        if not os.path.isfile(path):
            continue
        h.update(f + b'\0')
        st = os.stat(path)
        h.update(b'x' if st.st_mode & 0o111 else b'-')
        with open(path, 'rb') as fp:
            h.update(hashlib.sha256(fp.read()).digest())
    return h.hexdigest()[:16]


def build(top=None, build_dir=None, timeout=900):
    top = top or os.environ['MAMORI_SOURCE_DIR']
    build_dir = build_dir or os.environ['MAMORI_BUILD_DIR']
    base = os.path.join(build_dir, 'debs')
    os.makedirs(base, exist_ok=True)
    with open(os.path.join(base, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        key = source_hash(top)
        out = os.path.join(base, key)
        found = {p: glob.glob(os.path.join(out, f'{p}_*.deb')) for p in PACKAGES}
        if not all(len(v) == 1 for v in found.values()):
            for old in glob.glob(os.path.join(base, '*')):
                if os.path.isdir(old):
                    shutil.rmtree(old, ignore_errors=True)
            tmp = out + '.tmp'
            p = subprocess.run([os.path.join(top, 'packaging', 'build-deb.sh'), tmp], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=timeout)
            if p.returncode != 0:
                raise RuntimeError(f'packaging/build-deb.sh failed ({p.returncode}):\n{p.stdout[-4000:]}')
            os.rename(tmp, out)
            print(f'debs: built {key} in {out}')
        else:
            print(f'debs: reusing {out}')
        return {p: glob.glob(os.path.join(out, f'{p}_*.deb'))[0] for p in PACKAGES}
