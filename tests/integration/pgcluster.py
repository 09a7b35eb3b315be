#!/usr/bin/python3
# A private PostgreSQL 15 cluster per test run (DESIGN §10): initdb into a temp dir, Unix socket only.
"""As a module: Cluster().start() → .create_db(name) gives a libpq conninfo, .sql(db, query) rows,
.stop(). As a program: pgcluster.py run CMD ARGS… starts a cluster with one database, runs CMD with
MAMORI_TEST_STORE_URL set to its conninfo, stops the cluster and exits with CMD's status (77, a
skip for meson, when PostgreSQL is not installed).

The server runs as an unprivileged user (the Debian package's `postgres` when the tests run as
root: PostgreSQL refuses root), listens on no TCP address (`listen_addresses=''`) and only on a
socket in the cluster's directory; clients authenticate with `trust`, as user `mamori`. Tests run
it with fsync off (speed: no test pulls the power); MAMORI_TEST_PG_FSYNC=on (the benches) keeps
PostgreSQL's default, so that a COMMIT costs what it costs in production.

Cluster(tuned=True) runs the server as the capacity plan (README) deploys the centre's PostgreSQL,
beyond its defaults: shared memory in huge pages (reserved here for the cluster's life when run as
root, `vm.nr_hugepages`; PostgreSQL's documentation recommends them) and glibc keeping the server's
heap between statements (CENTRE_MALLOC_ENV, in the server's environment: Debian's
/etc/postgresql/15/main/environment). Without them, each batch's COPY costs PostgreSQL its memory
anew: freed to the kernel after the statement and paged in again by the next one. It also keeps
TUNED_WAL_SETTINGS: 1 GiB of WAL segments recycled at each checkpoint rather than removed, so that a
loaded server writes WAL into old segments instead of making and zero-filling new ones.

warm() brings a fresh cluster to the state of a centre that has run a while (the benches call it
before they measure): every shared buffer used once (with huge pages, each 2 MiB page is cleared by
the kernel when first touched) and the WAL pool full of recycled segments. A new cluster pays both
once, in its first minutes; a bench that did not warm its cluster would count them in its first runs."""
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile

SUPERUSER = 'mamori'
# glibc's malloc for the server (mallopt(3)): at most 64 MiB of free heap kept rather than 128 KiB, blocks
# of up to 32 MiB from the heap rather than their own mappings, and the heap grown 8 MiB at a time.
CENTRE_MALLOC_ENV = {'MALLOC_TRIM_THRESHOLD_': str(64 << 20), 'MALLOC_MMAP_THRESHOLD_': str(32 << 20),
                     'MALLOC_TOP_PAD_': str(8 << 20)}
NR_HUGEPAGES = '/proc/sys/vm/nr_hugepages'
# The capacity plan's WAL pool (README): segments up to min_wal_size are kept and reused after a checkpoint.
TUNED_WAL_SETTINGS = ['-c', 'min_wal_size=1GB', '-c', 'max_wal_size=2GB']
WAL_SEGMENT_BYTES = 16 << 20


def bindir():
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'))
    return os.path.dirname(found[-1]) if found else None


class Cluster:
    def __init__(self, fsync=None, tuned=False):
        self.fsync = fsync if fsync is not None else os.environ.get('MAMORI_TEST_PG_FSYNC') == 'on'
        self.tuned = tuned
        self.huge_pages = False  # tuned: whether the server's shared memory is in huge pages
        self._hugepages_before = None
        self.bin = bindir()
        self.dir = None
        self.running = False
        self.runas = []

    def available(self):
        return self.bin is not None

    def _run(self, args, **kw):
        return subprocess.run(self.runas + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=kw.pop('timeout', 120), **kw)

    def start(self):
        if not self.available():
            raise RuntimeError('PostgreSQL is not installed (Debian postgresql-15): cannot start a cluster')
        self.dir = tempfile.mkdtemp(prefix='mamori-pg-')
        if os.geteuid() == 0:
            pw = pwd.getpwnam('postgres')
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.runas = ['runuser', '-u', 'postgres', '--']
        data = os.path.join(self.dir, 'data')
        p = self._run([os.path.join(self.bin, 'initdb'), '-D', data, '-U', SUPERUSER, '--auth=trust',
                       '--locale=C', '-E', 'UTF8', '--no-sync'])
        if p.returncode != 0:
            raise RuntimeError(f'initdb failed: {p.stderr}')
        settings = (['-c', 'max_connections=200'] + ([] if self.fsync else ['-c', 'fsync=off'])
                    + (TUNED_WAL_SETTINGS if self.tuned else []))
        options = f"-k {self.dir} -c listen_addresses='' " + ' '.join(settings)
        env = None
        if self.tuned:
            env = dict(os.environ, **CENTRE_MALLOC_ENV)
            self.huge_pages = self._reserve_huge_pages(data, settings)
            options += ' -c huge_pages=' + ('on' if self.huge_pages else 'off')
        p = self._run([os.path.join(self.bin, 'pg_ctl'), 'start', '-w', '-D', data, '-l',
                       os.path.join(self.dir, 'server.log'), '-o', options], env=env)
        if p.returncode != 0:
            self._give_back_huge_pages()
            log = open(os.path.join(self.dir, 'server.log')).read() if os.path.exists(
                os.path.join(self.dir, 'server.log')) else ''
            raise RuntimeError(f'pg_ctl start failed: {p.stderr} {log}')
        self.running = True
        return self

    def _reserve_huge_pages(self, data, settings):
        """As root: vm.nr_hugepages raised by what the server needs with settings (given back at stop).
        Whether it was."""
        p = self._run([os.path.join(self.bin, 'postgres'), '-D', data] + settings
                      + ['-C', 'shared_memory_size_in_huge_pages'])
        try:
            need = int(p.stdout.strip())
            with open(NR_HUGEPAGES) as f:
                before = int(f.read())
            with open(NR_HUGEPAGES, 'w') as f:
                f.write(str(before + need))
            with open(NR_HUGEPAGES) as f:
                if int(f.read()) < before + need:  # the kernel found fewer free 2 MiB blocks
                    raise OSError('not enough contiguous memory')
        except (ValueError, OSError):
            self._give_back_huge_pages()
            return False
        self._hugepages_before = before
        return True

    def _give_back_huge_pages(self):
        if self._hugepages_before is not None:
            with open(NR_HUGEPAGES, 'w') as f:
                f.write(str(self._hugepages_before))
            self._hugepages_before = None

    def warm(self):
        """Every shared buffer used once and the WAL pool filled with recycled segments (module doc), in a
        scratch database dropped after. Plain INSERT … SELECT: COPY and CREATE TABLE AS would go through a
        small ring of buffers. Rows of ~1.8 kB, four a page, stay uncompressed (under TOAST's 2 kB); the table
        outgrows shared_buffers by a quarter."""
        buffers = int(self.psql('postgres', "SELECT pg_size_bytes(current_setting('shared_buffers'))"))
        self.psql('postgres', 'CREATE DATABASE mamori_warm')
        self.psql('mamori_warm', 'CREATE TABLE warm (x text);'
                  f"INSERT INTO warm SELECT repeat('w', 1800) FROM generate_series(1, {buffers * 5 // 4 // 8192 * 4})")
        pool = int(self.psql('postgres', "SELECT pg_size_bytes(current_setting('min_wal_size'))"))
        for _ in range(pool // WAL_SEGMENT_BYTES):  # each switch ends a segment; the next is made new
            self.psql('mamori_warm', 'INSERT INTO warm VALUES (NULL); SELECT pg_switch_wal()')
        self.psql('postgres', 'DROP DATABASE mamori_warm')
        self.checkpoint()

    def checkpoint(self):
        """A checkpoint now: dirty buffers written, WAL segments before it recycled (up to min_wal_size)."""
        self.psql('postgres', 'CHECKPOINT')

    def conninfo(self, db, user=SUPERUSER):
        return f'host={self.dir} user={user} dbname={db}'

    def create_db(self, name, owner=None):
        """A database; owner: a role made for it (LOGIN, no other right), which owns it and connects in the
        conninfo returned (PostgreSQL 15: only the database's owner may create in its schema public)."""
        if owner:
            self.psql('postgres', f'CREATE ROLE "{owner}" LOGIN')
            self.psql('postgres', f'CREATE DATABASE "{name}" OWNER "{owner}"')
            return self.conninfo(name, owner)
        self.psql('postgres', f'CREATE DATABASE "{name}"')
        return self.conninfo(name)

    def psql(self, db, query, user=SUPERUSER, check=True):
        """psql's output of query, as user; check=False: the CompletedProcess, whatever its status."""
        p = subprocess.run([os.path.join(self.bin, 'psql'), '-X', '-q', '-At', '-F', '\t', '-v', 'ON_ERROR_STOP=1',
                            '-d', self.conninfo(db, user), '-c', query],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        if not check:
            return p
        if p.returncode != 0:
            raise RuntimeError(f'psql {query!r}: {p.stderr}')
        return p.stdout

    def sql(self, db, query):
        """Rows of query as tuples of strings (None for NULL is not distinguished: '')."""
        out = self.psql(db, query)
        return [tuple(line.split('\t')) for line in out.splitlines()]

    def stop(self):
        if self.running:
            self._run([os.path.join(self.bin, 'pg_ctl'), 'stop', '-w', '-m', 'fast', '-D',
                       os.path.join(self.dir, 'data')])
            self.running = False
        self._give_back_huge_pages()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


_shared = {}


def shared(tuned=False):
    """One cluster (of each kind) for the whole test process, stopped when the process exits."""
    if tuned not in _shared:
        import atexit
        _shared[tuned] = Cluster(tuned=tuned).start()
        atexit.register(_shared[tuned].stop)
    return _shared[tuned]


def stop_shared():
    for c in _shared.values():
        c.stop()


def main():
    if len(sys.argv) < 3 or sys.argv[1] != 'run':
        sys.exit(__doc__)
    c = Cluster()
    if not c.available():
        print('pgcluster: PostgreSQL is not installed (Debian postgresql-15): skipped', file=sys.stderr)
        sys.exit(77)
    with c:
        url = c.create_db('mamori')
        env = dict(os.environ, MAMORI_TEST_STORE_URL=url)
        sys.exit(subprocess.run(sys.argv[2:], env=env).returncode)


if __name__ == '__main__':
    main()
