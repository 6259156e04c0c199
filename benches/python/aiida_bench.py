"""aiida-core on ``core.sqlite_dos`` against ``dos.sqlite_dos``: ``verdi archive import`` of a
generated archive, then ``verdi storage maintain --full``, each in a fresh profile.

Usage: aiida_bench.py --work DIR [--files 20000] [--repeat 3] [--json OUT]

The archive (DIR/archive-f<files>.aiida) is made once, untimed, by aiida-core itself: a
throw-away profile stores FolderData nodes of 50 files each (text-like files of 0.2-40 kB and one
binary of 0.5-2 MB in every 100 files, all distinct), then ``verdi archive create --all``.

Each run gets a new AIIDA_PATH with a profile from ``verdi presto`` (core.sqlite_dos), switched
to ``dos.sqlite_dos`` for the dos side (``python -m dos_objectstore.aiida switch``), both
untimed. Timed: the whole ``verdi`` process of ``archive import`` and of ``storage maintain --full
--force`` (so both sides pay the same interpreter start-up and aiida-core import, ~1-2 s), its
peak RSS from ``wait4``. Checked after each (untimed, by disk-objectstore itself): the number of
nodes, and the container's key set and packed state; after ``maintain --full`` the container
must validate with no issue and hold every object packed. Sides alternate which goes first.
The result is a JSON document and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent

GEN = r'''
import hashlib, random, sys
from aiida import load_profile, orm
load_profile(sys.argv[1])
files, seed = int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
words = [bytes(rng.choice(b'abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 9))) for _ in range(4000)]
made = 0
while made < files:
    node = orm.FolderData()
    for j in range(min(50, files - made)):
        n = made + j
        if n % 100 == 99:
            size = rng.randint(500_000, 2_000_000)
            data = hashlib.sha256(str(n).encode()).digest() + rng.randbytes(size)
            node.base.repository.put_object_from_bytes(data, f'bin/data-{n}.dat')
        else:
            size = rng.choice((200, 1_000, 4_000, 12_000, 40_000))
            parts = [f'# file {n}\n'.encode()]
            total = 0
            while total < size:
                line = b' '.join(rng.choice(words) for _ in range(12)) + f' {rng.random():.12f}\n'.encode()
                parts.append(line)
                total += len(line)
            node.base.repository.put_object_from_bytes(b''.join(parts), f'out/f{n % 7}/file-{n}.txt')
    node.store()
    made += min(50, files - made)
print(made)
'''

COUNT = r'''
import json, sys
from aiida import load_profile, orm
from aiida.manage import get_manager
load_profile(sys.argv[1])
storage = get_manager().get_profile_storage()
print(json.dumps({'backend': storage.__class__.__name__,
                  'nodes': orm.QueryBuilder().append(orm.Node).count()}))
'''

# Read by disk-objectstore itself, whatever wrote the container.
CONTAINER = r'''
import hashlib, json, sys
from disk_objectstore import Container
with Container(sys.argv[1]) as c:
    keys = sorted(c.list_all_objects())
    counts = c.count_objects()
    out = {'objects': len(keys), 'packed': counts.packed, 'loose': counts.loose,
           'pack_files': counts.pack_files,
           'keys_digest': hashlib.sha256('\n'.join(keys).encode()).hexdigest()}
    if sys.argv[2] == 'validate':
        issues = c.validate()
        out['problems'] = sum(len(getattr(issues, f)) for f in (
            'invalid_hashes_loose', 'invalid_hashes_packed', 'invalid_sizes_packed', 'overlapping_packed'))
print(json.dumps(out))
'''


def run_timed(args, env, cwd):
    """Run a command; returns (stdout, wall seconds, the child's own peak RSS in KiB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # wait4 reaps the child itself, so the pipes are drained by threads meanwhile.
    chunks = {'out': [], 'err': []}

    def drain(pipe, key):
        for block in iter(lambda: pipe.read(65536), b''):
            chunks[key].append(block)

    threads = [threading.Thread(target=drain, args=(proc.stdout, 'out')),
               threading.Thread(target=drain, args=(proc.stderr, 'err'))]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - t0
    for t in threads:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = b''.join(chunks['out']).decode(), b''.join(chunks['err']).decode()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{out}\n{err}")
    return out, secs, usage.ru_maxrss


def environ(aiida_path: Path) -> dict:
    return dict(os.environ, AIIDA_PATH=str(aiida_path))


def make_archive(work: Path, files: int, seed: int) -> Path:
    archive = work / f'archive-f{files}-s{seed}.aiida'
    if archive.exists():
        return archive
    gen = work / 'gen'
    shutil.rmtree(gen, ignore_errors=True)
    gen.mkdir(parents=True)
    env = environ(gen)
    print(f'making {archive.name} (once, untimed)', file=sys.stderr)
    run_timed([BIN / 'verdi', 'presto', '--profile-name', 'gen'], env, gen)
    run_timed([sys.executable, '-c', GEN, 'gen', str(files), str(seed)], env, gen)
    tmp = archive.with_suffix('.part')
    tmp.unlink(missing_ok=True)
    run_timed([BIN / 'verdi', '-p', 'gen', 'archive', 'create', '--all', str(tmp)], env, gen)
    tmp.rename(archive)
    shutil.rmtree(gen, ignore_errors=True)
    return archive


def container_of(aiida_path: Path) -> Path:
    found = list(aiida_path.glob('**/container/config.json'))
    if len(found) != 1:
        raise SystemExit(f'expected one container under {aiida_path}, found {found}')
    return found[0].parent


def one_run(work: Path, side: str, archive: Path) -> dict:
    home = work / f'run-{side}'
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = environ(home)
    run_timed([BIN / 'verdi', 'presto', '--profile-name', 'b'], env, home)
    if side == 'dos':
        run_timed([sys.executable, '-m', 'dos_objectstore.aiida', 'switch', 'b', 'dos'], env, home)
    subprocess.run(['sync'], check=True)
    _, imp_s, imp_rss = run_timed([BIN / 'verdi', '-p', 'b', 'archive', 'import', str(archive)], env, home)
    counted = json.loads(run_timed([sys.executable, '-c', COUNT, 'b'], env, home)[0].strip().splitlines()[-1])
    cont = container_of(home)
    after_import = json.loads(run_timed([sys.executable, '-c', CONTAINER, str(cont), 'count'], env, home)[0])
    subprocess.run(['sync'], check=True)
    _, mnt_s, mnt_rss = run_timed([BIN / 'verdi', '-p', 'b', 'storage', 'maintain', '--full', '--force'], env, home)
    after_maintain = json.loads(run_timed([sys.executable, '-c', CONTAINER, str(cont), 'validate'], env, home)[0])
    shutil.rmtree(home, ignore_errors=True)
    return {
        'side': side,
        'backend': counted['backend'],
        'nodes': counted['nodes'],
        'import_s': imp_s,
        'import_peak_rss_kb': imp_rss,
        'maintain_s': mnt_s,
        'maintain_peak_rss_kb': mnt_rss,
        'after_import': after_import,
        'after_maintain': after_maintain,
    }


def check(runs: list[dict]) -> list[str]:
    bad = []
    ref = runs[0]
    for r in runs:
        a, m = r['after_import'], r['after_maintain']
        if r['nodes'] != ref['nodes']:
            bad.append(f"{r['side']}: {r['nodes']} nodes, {ref['side']} {ref['nodes']}")
        for what, state in (('import', a), ('maintain', m)):
            if state['keys_digest'] != ref['after_import']['keys_digest'] or state['objects'] != ref['after_import']['objects']:
                bad.append(f"{r['side']} after {what}: the key set differs")
        if m.get('problems') != 0:
            bad.append(f"{r['side']}: validate after maintain reports {m.get('problems')} problems")
        if m['loose'] != 0 or m['packed'] != m['objects']:
            bad.append(f"{r['side']}: after maintain --full {m['loose']} loose, {m['packed']} packed of {m['objects']}")
    want = {'core': 'SqliteDosStorage', 'dos': 'DosSqliteDosStorage'}
    for r in runs:
        if r['backend'] != want[r['side']]:
            bad.append(f"{r['side']} ran on {r['backend']}")
    return bad


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--work', type=Path, required=True)
    p.add_argument('--files', type=int, default=20_000)
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--json', type=Path)
    a = p.parse_args()
    import aiida  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    import dos_objectstore  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import

    a.work.mkdir(parents=True, exist_ok=True)
    archive = make_archive(a.work, a.files, a.seed)
    runs = []
    for rep in range(a.repeat):
        for side in (('core', 'dos') if rep % 2 == 0 else ('dos', 'core')):
            r = one_run(a.work, side, archive)
            print(f"  {side:<4} run {rep + 1}: import {r['import_s']:.2f} s, maintain --full {r['maintain_s']:.2f} s",
                  file=sys.stderr)
            runs.append(r)
    bad = check(runs)
    med = {}
    for side in ('core', 'dos'):
        mine = [r for r in runs if r['side'] == side]
        med[side] = {k: statistics.median(r[k] for r in mine)
                     for k in ('import_s', 'maintain_s', 'import_peak_rss_kb', 'maintain_peak_rss_kb')}
    objects = runs[0]['after_import']['objects']
    print(f"\narchive {archive.name}: {archive.stat().st_size / 1e6:.1f} MB, {objects} repository objects, "
          f"{runs[0]['nodes']} nodes; median of {a.repeat} run(s) per side\n")
    print('| verdi command | core.sqlite_dos s | dos.sqlite_dos s | ratio | core / dos peak RSS MB |')
    print('|---|---:|---:|---:|---:|')
    for label, k, rss in (('archive import', 'import_s', 'import_peak_rss_kb'),
                          ('storage maintain --full', 'maintain_s', 'maintain_peak_rss_kb')):
        c, d = med['core'][k], med['dos'][k]
        print(f"| {label} | {c:.2f} | {d:.2f} | {c / d:.2f}× | "
              f"{med['core'][rss] / 1024:.0f} / {med['dos'][rss] / 1024:.0f} |")
    if bad:
        print('\nWRONG RESULTS:\n  ' + '\n  '.join(bad))
    if a.json:
        import aiida as _aiida  # pylint: disable=import-outside-toplevel

        doc = {'archive': archive.name, 'archive_bytes': archive.stat().st_size, 'objects': objects,
               'aiida_core': _aiida.__version__, 'dos_objectstore': dos_objectstore.__version__,
               'repeat': a.repeat, 'median': med, 'runs': runs, 'problems': bad}
        a.json.write_text(json.dumps(doc, indent=2))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
