"""`dos backup` against disk-objectstore's own backup (`dostore backup`: rsync with
`--link-dest`, the index through Python's sqlite3 backup), on the same container.

Usage: backup_bench.py --source CONTAINER --work DIR [--dos target/release/dos] [--repeat 2]
       [--grow 0.01] [--json OUT]

The source container is copied into DIR once per repetition (untimed). Then, for each side in
turn (the order alternates between repetitions): a first backup into an empty folder; then the
copy grows by `--grow` of its objects (half added loose, half appended to its packs, by
disk-objectstore itself, untimed) and each side makes a second, incremental backup into its own
folder. Timed: the whole backup process. Bytes written: the disk's own counter of sectors written
(/sys/block/<disk>/stat, after `sync` before and after, so it includes metadata and journal
writes; the machine must be otherwise idle). Every backup is then opened and validated by
disk-objectstore, and its key set compared with the source's (untimed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent

CHECK = r'''
import hashlib, json, sys
from disk_objectstore import Container
with Container(sys.argv[1]) as c:
    keys = sorted(c.list_all_objects())
    ok = c.validate().is_valid()
print(json.dumps({'objects': len(keys), 'valid': ok,
                  'digest': hashlib.sha256('\n'.join(keys).encode()).hexdigest()}))
'''

GROW = r'''
import os, sys
from disk_objectstore import Container
frac, seed = float(sys.argv[2]), int(sys.argv[3])
with Container(sys.argv[1]) as c:
    n = max(2, int(c.count_objects().packed * frac))
    rnd = __import__('random').Random(seed)
    data = [rnd.randbytes(rnd.choice((500, 4_000, 16_000, 60_000))) for _ in range(n)]
    c.add_objects_to_pack(data[: n // 2])
    for d in data[n // 2:]:
        c.add_object(d)
    print(sum(len(d) for d in data))
'''


def disk_of(path: Path) -> str:
    dev = os.stat(path).st_dev
    major, minor = os.major(dev), os.minor(dev)
    name = Path(f'/sys/dev/block/{major}:{minor}').resolve().name
    # A partition counts into its disk's stat as well; use the partition's own.
    return name


def sectors_written(disk: str) -> int:
    for cand in (Path(f'/sys/block/{disk}/stat'), *Path('/sys/block').glob(f'*/{disk}/stat')):
        if cand.exists():
            return int(cand.read_text().split()[6])
    raise SystemExit(f'no stat file for block device {disk}')


def timed(cmd: list, disk: str) -> tuple[float, int]:
    subprocess.run(['sync'], check=True)
    before = sectors_written(disk)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    subprocess.run(['sync'], check=True)
    return secs, (sectors_written(disk) - before) * 512


def check(folder: Path) -> dict:
    r = subprocess.run([sys.executable, '-c', CHECK, str(folder)], capture_output=True, text=True)
    if r.returncode != 0:
        return {'objects': None, 'valid': False, 'digest': None,
                'error': (r.stderr.strip().splitlines() or ['?'])[-1]}
    return json.loads(r.stdout)


def backup_cmd(side: str, src: Path, dest: Path, dos: Path) -> list:
    if side == 'python':
        return [BIN / 'dostore', '--path', str(src), 'backup', str(dest)]
    return [str(dos), '-q', '-p', str(src), 'backup', str(dest), '--json']


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--source', type=Path, required=True)
    p.add_argument('--work', type=Path, required=True)
    p.add_argument('--dos', type=Path, default=Path(__file__).resolve().parents[2] / 'target/release/dos')
    p.add_argument('--repeat', type=int, default=2)
    p.add_argument('--grow', type=float, default=0.01)
    p.add_argument('--json', type=Path)
    a = p.parse_args()
    if shutil.which('rsync') is None:
        raise SystemExit('rsync is required (Debian package rsync)')
    a.work.mkdir(parents=True, exist_ok=True)
    disk = disk_of(a.work)
    runs = []
    problems = []
    # What is wrong with disk-objectstore's own backups (reported, not a failure of this run).
    upstream_notes = []
    for rep in range(a.repeat):
        src = a.work / 'src'
        shutil.rmtree(src, ignore_errors=True)
        subprocess.run(['cp', '-a', str(a.source), str(src)], check=True)
        order = ('python', 'dos') if rep % 2 == 0 else ('dos', 'python')
        dests = {side: a.work / f'bk-{side}' for side in order}
        for d in dests.values():
            shutil.rmtree(d, ignore_errors=True)
        r = {'rep': rep + 1}
        for side in order:
            secs, written = timed(backup_cmd(side, src, dests[side], a.dos), disk)
            r[f'{side}_first_s'], r[f'{side}_first_written'] = secs, written
            print(f'  {side:<6} first backup: {secs:.2f} s, {written / 1e6:.1f} MB written', file=sys.stderr)
        grown = subprocess.run([sys.executable, '-c', GROW, str(src), str(a.grow), str(rep)],
                               capture_output=True, text=True, check=True)
        r['new_bytes'] = int(grown.stdout.strip())
        for side in order:
            secs, written = timed(backup_cmd(side, src, dests[side], a.dos), disk)
            r[f'{side}_second_s'], r[f'{side}_second_written'] = secs, written
            print(f'  {side:<6} second backup: {secs:.2f} s, {written / 1e6:.1f} MB written '
                  f'({r["new_bytes"] / 1e6:.1f} MB new)', file=sys.stderr)
        want = check(src)
        for side in order:
            for folder in sorted(dests[side].glob('backup_*_*')):
                got = check(folder)
                if not got['valid']:
                    msg = f"{side} {folder.name}: disk-objectstore cannot validate it: {got.get('error', 'invalid')}"
                    (problems if side == 'dos' else upstream_notes).append(msg)
            last = check((dests[side] / 'last-backup').resolve())
            if (last['objects'], last['digest']) != (want['objects'], want['digest']):
                problems.append(f'{side}: the last backup holds other objects than the source')
        r['objects'] = want['objects']
        runs.append(r)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != 'rep'}
    print(f"\n{med['objects']:.0f} objects, {sum(f.stat().st_size for f in a.source.rglob('*') if f.is_file()) / 1e6:.0f} MB "
          f"container; second backup after +{a.grow:.0%} ({med['new_bytes'] / 1e6:.1f} MB new); median of {a.repeat}\n")
    print('| backup | dostore s | dos s | ratio | dostore MB written | dos MB written |')
    print('|---|---:|---:|---:|---:|---:|')
    for which in ('first', 'second'):
        ps, ds = med[f'python_{which}_s'], med[f'dos_{which}_s']
        print(f"| {which} | {ps:.2f} | {ds:.2f} | {ps / ds:.1f}× | {med[f'python_{which}_written'] / 1e6:.1f} | "
              f"{med[f'dos_{which}_written'] / 1e6:.1f} |")
    if upstream_notes:
        print('\nDisk-objectstore\'s own backups:\n  ' + '\n  '.join(upstream_notes))
    if problems:
        print('\nWRONG:\n  ' + '\n  '.join(problems))
    if a.json:
        a.json.write_text(json.dumps({'runs': runs, 'median': med, 'problems': problems,
                                      'upstream_notes': upstream_notes, 'disk': disk}, indent=2))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
