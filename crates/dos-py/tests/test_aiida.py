"""The real aiida-core on a ``dos.sqlite_dos`` profile, switched from and back to ``core.sqlite_dos``.

A throw-away profile under its own ``AIIDA_PATH``: ``verdi presto`` makes it (core.sqlite_dos),
``python -m dos_objectstore.aiida switch`` points it at dos, calculation functions store files,
``verdi storage maintain`` (live and ``--full``), ``verdi node repo cat`` and ``verdi archive
create``/``import`` run on it, then the profile switches back and aiida-core's own plugin reads
every file byte-exact. Needs aiida-core in the venv (scripts/test.sh installs it); fails, never
skips, when it is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

STORE = '''
import hashlib, json, sys
from aiida import load_profile, orm
from aiida.engine import calcfunction
profile = load_profile(sys.argv[1])
assert profile.storage_backend == 'dos.sqlite_dos', profile.storage_backend
from dos_objectstore import Container
from aiida.manage import get_manager
repo = get_manager().get_profile_storage().get_repository()
assert type(repo._container) is Container, type(repo._container)

@calcfunction
def make(i):
    f = orm.FolderData()
    n = i.value
    f.base.repository.put_object_from_bytes((f'line {n}\\n' * (n * 40 + 1)).encode(), 'a.txt')
    f.base.repository.put_object_from_bytes(hashlib.sha256(str(n).encode()).digest() * (100 + n), 'sub/b.bin')
    f.base.repository.put_object_from_bytes(b'', 'empty')
    return f

out = {}
for n in range(12):
    node = make(orm.Int(n))
    out[node.uuid] = {name: hashlib.sha256(node.base.repository.get_object_content(name, mode='rb')).hexdigest()
                      for name in ('a.txt', 'sub/b.bin', 'empty')}
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
profile = load_profile(sys.argv[1])
print(profile.storage_backend, file=sys.stderr)
want = json.loads(open(sys.argv[2]).read())
for uuid, files in want.items():
    node = orm.load_node(uuid)
    for name, digest in files.items():
        got = hashlib.sha256(node.base.repository.get_object_content(name, mode='rb')).hexdigest()
        assert got == digest, (uuid, name)
print(len(want))
'''


@pytest.fixture
def aiida_env(tmp_path):
    try:
        import aiida  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        pytest.fail('aiida-core is not installed in this venv (scripts/test.sh installs aiida-core==2.9.4)')
    env = dict(os.environ, AIIDA_PATH=str(tmp_path))
    bindir = os.path.dirname(sys.executable)

    def run(*args, check=True):
        r = subprocess.run(args, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
        if check and r.returncode != 0:
            pytest.fail(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r.stdout

    def verdi(*args):
        return run(os.path.join(bindir, 'verdi'), *args)

    def python(code, *args):
        return run(sys.executable, '-c', code, *args)

    return tmp_path, run, verdi, python


def test_sqlite_dos_profile_round_trip(aiida_env, impl_name):
    tmp, run, verdi, python = aiida_env
    if impl_name != 'dos':
        return  # the plugin is dos's; nothing to compare upstream against here
    verdi('presto', '--profile-name', 'p')
    run(sys.executable, '-m', 'dos_objectstore.aiida', 'switch', 'p', 'dos')
    assert 'dos.sqlite_dos' in verdi('-p', 'p', 'profile', 'show', 'p')
    stored = python(STORE, 'p').strip().splitlines()[-1]
    (tmp / 'want.json').write_text(stored)
    want = json.loads(stored)
    assert len(want) == 12
    verdi('-p', 'p', 'storage', 'maintain', '--force')
    verdi('-p', 'p', 'storage', 'maintain', '--full', '--force')
    uuid = next(iter(want))
    cat = verdi('-p', 'p', 'node', 'repo', 'cat', uuid, 'a.txt')
    assert cat.startswith('line ')
    assert python(CHECK, 'p', str(tmp / 'want.json')).strip().splitlines()[-1] == '12'
    verdi('-p', 'p', 'archive', 'create', '--all', str(tmp / 'p.aiida'))
    # verdi storage backup, twice: the container copied by dos (the second run incremental).
    verdi('-p', 'p', 'storage', 'backup', str(tmp / 'backup'))
    verdi('-p', 'p', 'storage', 'backup', str(tmp / 'backup'))
    last = (tmp / 'backup' / 'last-backup').resolve()
    assert len(list((tmp / 'backup').glob('backup_*_*'))) == 2
    live_container = next(p for p in tmp.glob('**/container/config.json') if 'backup' not in p.parts)
    live = python(LISTING, str(live_container.parent))
    assert python(LISTING, str(last / 'container')) == live
    packs = sorted((last / 'container' / 'packs').iterdir())
    assert packs and all(p.stat().st_nlink == 2 for p in packs), 'unchanged packs are hard links'
    assert (last / 'database.sqlite').is_file(), list(last.iterdir())
    # Back to aiida-core's own plugin: every file reads back, nothing was migrated.
    run(sys.executable, '-m', 'dos_objectstore.aiida', 'switch', 'p', 'core')
    assert 'core.sqlite_dos' in verdi('-p', 'p', 'profile', 'show', 'p')
    assert python(CHECK, 'p', str(tmp / 'want.json')).strip().splitlines()[-1] == '12'
    verdi('-p', 'p', 'storage', 'maintain', '--full', '--force')
    # An archive written on dos imports into a fresh dos profile.
    verdi('presto', '--profile-name', 'q')
    run(sys.executable, '-m', 'dos_objectstore.aiida', 'switch', 'q', 'dos')
    verdi('-p', 'q', 'archive', 'import', str(tmp / 'p.aiida'))
    assert python(CHECK, 'q', str(tmp / 'want.json')).strip().splitlines()[-1] == '12'
