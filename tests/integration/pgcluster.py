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
PostgreSQL's default, so that a COMMIT costs what it costs in production."""
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile

SUPERUSER = 'mamori'


def bindir():
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'))
    return os.path.dirname(found[-1]) if found else None


class Cluster:
    def __init__(self, fsync=None):
        self.fsync = fsync if fsync is not None else os.environ.get('MAMORI_TEST_PG_FSYNC') == 'on'
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
        p = self._run([os.path.join(self.bin, 'pg_ctl'), 'start', '-w', '-D', data, '-l',
                       os.path.join(self.dir, 'server.log'),
                       '-o', f"-k {self.dir} -c listen_addresses='' -c max_connections=200"
                       + ('' if self.fsync else ' -c fsync=off')])
        if p.returncode != 0:
            log = open(os.path.join(self.dir, 'server.log')).read() if os.path.exists(
                os.path.join(self.dir, 'server.log')) else ''
            raise RuntimeError(f'pg_ctl start failed: {p.stderr} {log}')
        self.running = True
        return self

    def conninfo(self, db):
        return f'host={self.dir} user={SUPERUSER} dbname={db}'

    def create_db(self, name):
        self.psql('postgres', f'CREATE DATABASE "{name}"')
        return self.conninfo(name)

    def psql(self, db, query):
        p = subprocess.run([os.path.join(self.bin, 'psql'), '-X', '-q', '-At', '-F', '\t', '-v', 'ON_ERROR_STOP=1',
                            '-d', self.conninfo(db), '-c', query],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
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
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


_shared = None


def shared():
    """One cluster for the whole test process, stopped when the process exits."""
    global _shared
    if _shared is None:
        import atexit
        _shared = Cluster().start()
        atexit.register(_shared.stop)
    return _shared


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
