"""``dos.psql_dos`` against a real PostgreSQL server, and the switch to ``core.psql_dos`` and back.

The test starts its own server: Debian's PostgreSQL binaries (``/usr/lib/postgresql/<v>/bin``,
installed by scripts/test.sh when missing), a fresh cluster in a temporary folder, listening on
127.0.0.1 only, stopped by its pid at the end. It fails, never skips, when it cannot.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest


def _pg_bin() -> Path:
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'), key=lambda p: int(p.split('/')[4]))
    if not found:
        pytest.fail('PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin); scripts/test.sh installs them')
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    """A PostgreSQL server on 127.0.0.1 with database ``aiidadb`` owned by ``aiida`` / ``pw``."""
    bindir = _pg_bin()
    folder = Path(tempfile.mkdtemp(prefix='dos-pg-'))
    as_user: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: the cluster belongs to the postgres user.
        try:
            pwd.getpwnam('postgres')
        except KeyError:
            pytest.fail('running as root and there is no postgres user to own the test cluster')
        shutil.chown(folder, 'postgres')
        as_user = ['runuser', '-u', 'postgres', '--']
    port = _free_port()
    data = folder / 'data'

    def run(*args):
        r = subprocess.run([*as_user, *map(str, args)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            pytest.fail(f'{args[0]} failed ({r.returncode}): {r.stdout}{r.stderr}')
        return r.stdout

    run(bindir / 'initdb', '-D', data, '-A', 'trust', '-U', 'postgres')
    server = subprocess.Popen(
        [*as_user, str(bindir / 'postgres'), '-D', str(data), '-c', 'listen_addresses=127.0.0.1',
         '-p', str(port), '-k', str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / 'log', 'w'),  # pylint: disable=consider-using-with
    )
    try:
        for _ in range(100):
            if (data / 'postmaster.pid').exists() and subprocess.run(
                [str(bindir / 'pg_isready'), '-h', '127.0.0.1', '-p', str(port)], capture_output=True
            ).returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f'PostgreSQL did not start: {(folder / "log").read_text()}')
        psql = ['psql', '-h', '127.0.0.1', '-p', str(port), '-U', 'postgres', '-v', 'ON_ERROR_STOP=1']
        run(*psql, '-c', "CREATE USER aiida WITH PASSWORD 'pw'")
        run(*psql, '-c', 'CREATE DATABASE aiidadb OWNER aiida')
        yield port
    finally:
        # Stopped by its pid (postmaster.pid's first line), then the cluster goes.
        pid = None
        try:
            pid = int((data / 'postmaster.pid').read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
        os.kill(pid or server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)


STORE = '''
import hashlib, json, sys
from aiida import load_profile, orm
assert load_profile('pg').storage_backend == 'dos.psql_dos'
from aiida.manage import get_manager
from dos_objectstore import Container
assert type(get_manager().get_profile_storage().get_repository()._container) is Container
out = {}
for n in range(8):
    f = orm.FolderData()
    f.base.repository.put_object_from_bytes((f'pg {n}\\n' * (n * 300 + 1)).encode(), 'a.txt')
    f.base.repository.put_object_from_bytes(b'', 'empty')
    f.store()
    out[f.uuid] = {k: hashlib.sha256(f.base.repository.get_object_content(k, mode='rb')).hexdigest() for k in ('a.txt', 'empty')}
print(json.dumps(out))
'''

# Run by disk-objectstore itself on a container (live or a backup's).
LISTING = '''
import json, sys
from disk_objectstore import Container
with Container(sys.argv[1]) as c:
    assert c.validate().is_valid()
    print(json.dumps(sorted(c.list_all_objects())))
'''

CHECK = '''
import hashlib, json, sys
from aiida import load_profile, orm
assert load_profile('pg').storage_backend == sys.argv[2], load_profile('pg').storage_backend
want = json.loads(open(sys.argv[1]).read())
for uuid, files in want.items():
    node = orm.load_node(uuid)
    for name, digest in files.items():
        assert hashlib.sha256(node.base.repository.get_object_content(name, mode='rb')).hexdigest() == digest
print(len(want))
'''


def test_psql_dos_profile_round_trip(postgres, impl_name, tmp_path):
    if impl_name != 'dos':
        return  # the plugin is dos's
    env = dict(os.environ, AIIDA_PATH=str(tmp_path))
    verdi = os.path.join(os.path.dirname(sys.executable), 'verdi')

    def run(*args):
        r = subprocess.run(args, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
        if r.returncode != 0:
            pytest.fail(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r.stdout

    run(verdi, 'profile', 'setup', 'dos.psql_dos', '-n', '--profile-name', 'pg', '--email', 'test@dos.invalid',
        '--first-name', 'T', '--last-name', 'D', '--institution', 'dos', '--broker', 'none',
        '--database-hostname', '127.0.0.1', '--database-port', str(postgres), '--database-username', 'aiida',
        '--database-password', 'pw', '--database-name', 'aiidadb', '--repository-uri', (tmp_path / 'repo').as_uri())
    stored = run(sys.executable, '-c', STORE).strip().splitlines()[-1]
    (tmp_path / 'want.json').write_text(stored)
    run(verdi, '-p', 'pg', 'storage', 'maintain', '--force')
    run(verdi, '-p', 'pg', 'storage', 'maintain', '--full', '--force')
    assert run(sys.executable, '-c', CHECK, str(tmp_path / 'want.json'), 'dos.psql_dos').split()[-1] == '8'
    # verdi storage backup: pg_dump + the container copied by dos, twice (the second incremental).
    for _ in range(2):
        run(verdi, '-p', 'pg', 'storage', 'backup', str(tmp_path / 'bk'))
    last = (tmp_path / 'bk' / 'last-backup').resolve()
    backups = sorted(p.name for p in (tmp_path / 'bk').glob('backup_*_*'))
    assert len(backups) == 2 and last.name == backups[-1], backups
    assert (last / 'db.psql').stat().st_size > 0
    live = run(sys.executable, '-c', LISTING, str(tmp_path / 'repo' / 'container'))
    assert run(sys.executable, '-c', LISTING, str(last / 'container')) == live
    packs = sorted((last / 'container' / 'packs').iterdir())
    assert packs and all(p.stat().st_nlink == 2 for p in packs), 'unchanged packs are hard links'
    run(sys.executable, '-m', 'dos_objectstore.aiida', 'switch', 'pg', 'core')
    assert run(sys.executable, '-c', CHECK, str(tmp_path / 'want.json'), 'core.psql_dos').split()[-1] == '8'
    run(sys.executable, '-m', 'dos_objectstore.aiida', 'switch', 'pg', 'dos')
    assert run(sys.executable, '-c', CHECK, str(tmp_path / 'want.json'), 'dos.psql_dos').split()[-1] == '8'
