#!/usr/bin/env python3
"""A mixed soak of one container: Python and dos writers, readers in both, maintenance in a loop.

Usage: scripts/soak.py --seconds 60 [--work DIR] [--dos target/release/dos] [--json OUT]

For the given time, at once, on one container (made by dos):
  - py-loose: disk_objectstore add_object, one object at a time;
  - py-pack (only with --python-pack-writer): disk_objectstore add_objects_to_pack, batches of
    10. Off by default: disk-objectstore 1.5's lock_pack deletes the winner's lock file when it
    fails to take it, so a Python pack writer next to any other pack writer (Python or dos) can
    end up appending to a pack at the same time as it, and then records wrong offsets for its
    own objects (docs/durability.md); dos's own writes are safe (a kernel lock on the pack file
    besides the lock file), Python's are not;
  - dos-add: `dos add --pack` and `dos add` of batches of 10 files;
  - py-read: disk_objectstore get_objects_content of 20 recorded keys, each checked byte-exact;
  - dos-read: `dos cat` of a recorded key, checked byte-exact;
  - maint: `dos pack --clean-loose` in a loop; every 3rd round `dos repack`, every 4th `dos clean`,
    every 5th `dos backup DIR/backups --keep 2`, and `dos delete` of objects written only to be
    deleted (by py-doomed), never of recorded ones.
Every writer records a key only once its call returned (the object is then committed). At the
end: every recorded key must read back byte-exact (through disk_objectstore), dos's and Python's
validate must be clean, and the newest backup must validate in Python. A maintenance command
refused because another one holds the container (exit 2, "another dos operation") is counted as
busy, not as an error. The report is one JSON object; the exit code is 1 if anything was lost,
wrong or failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def content(worker: str, i: int) -> bytes:
    """Deterministic, distinct content of a worker's i-th object (sizes 0 B to 200 kB)."""
    rnd = random.Random(f'{worker}:{i}')
    size = rnd.choice((0, 10, 300, 4000, 30000, 200000))
    head = f'{worker} {i}\n'.encode()
    return head + rnd.randbytes(max(0, size - len(head)))


def record(log: Path, pairs) -> None:
    with open(log, 'a') as fh:
        for key, data in pairs:
            fh.write(f'{key}\t{hashlib.sha256(data).hexdigest()}\n')


def recorded(work: Path) -> dict[str, str]:
    out = {}
    for log in work.glob('log-*.tsv'):
        if log.name.startswith('log-doomed'):
            continue
        for line in log.read_text().splitlines():
            if '\t' in line:
                k, h = line.split('\t')
                out[k] = h
    return out


def worker(kind: str, c: Path, work: Path, dos: str, deadline: float) -> dict:
    from disk_objectstore import Container  # pylint: disable=import-outside-toplevel

    stats = {'ops': 0, 'errors': [], 'busy': 0, 'checked': 0}
    log = work / f'log-{kind}.tsv'
    i = 0
    rnd = random.Random(kind)

    def dos_run(*args):
        return subprocess.run([dos, '-q', '-p', str(c), *args], capture_output=True, text=True)

    def failed(what, r):
        if r.returncode == 2 and 'another dos operation' in r.stderr:
            stats['busy'] += 1
        else:
            stats['errors'].append(f'{what}: exit {r.returncode}: {r.stderr.strip()[:300]}')

    while time.time() < deadline:
        try:
            if kind in ('py-loose', 'doomed'):
                with Container(c) as cont:
                    data = content(kind, i)
                    record(log, [(cont.add_object(data), data)])
                i += 1
            elif kind == 'py-pack':
                batch = [content(kind, i + j) for j in range(10)]
                with Container(c) as cont:
                    keys = cont.add_objects_to_pack(batch)
                record(log, zip(keys, batch))
                i += 10
            elif kind == 'dos-add':
                with tempfile.TemporaryDirectory(dir=work) as tmp:
                    batch = [content(kind, i + j) for j in range(10)]
                    paths = []
                    for j, data in enumerate(batch):
                        p = Path(tmp) / f'f{j}'
                        p.write_bytes(data)
                        paths.append(str(p))
                    args = ['add', '--json'] + (['--pack'] if (i // 10) % 2 == 0 else []) + paths
                    r = dos_run(*args)
                    if r.returncode != 0:
                        failed('dos add', r)
                    else:
                        keys = [o['hashkey'] for o in json.loads(r.stdout)]
                        record(log, zip(keys, batch))
                i += 10
            elif kind == 'py-read':
                known = recorded(work)
                if known:
                    keys = rnd.sample(sorted(known), min(20, len(known)))
                    with Container(c) as cont:
                        got = cont.get_objects_content(keys, skip_if_missing=False)
                    for k in keys:
                        data = got.get(k)
                        if data is None or hashlib.sha256(data).hexdigest() != known[k]:
                            stats['errors'].append(f'py-read {k}: {"missing" if data is None else "wrong content"}')
                        stats['checked'] += 1
                else:
                    time.sleep(0.05)
            elif kind == 'dos-read':
                known = recorded(work)
                if known:
                    k = rnd.choice(sorted(known))
                    r = subprocess.run([dos, '-q', '-p', str(c), 'cat', k], capture_output=True)
                    if r.returncode != 0 or hashlib.sha256(r.stdout).hexdigest() != known[k]:
                        stats['errors'].append(f'dos cat {k}: exit {r.returncode} {r.stderr[:200]!r}')
                    stats['checked'] += 1
                else:
                    time.sleep(0.05)
            elif kind == 'maint':
                r = dos_run('pack', '--clean-loose')
                if r.returncode != 0:
                    failed('dos pack', r)
                if i % 3 == 2:
                    r = dos_run('repack')
                    if r.returncode != 0:
                        failed('dos repack', r)
                if i % 4 == 3:
                    r = dos_run('clean')
                    if r.returncode != 0:
                        failed('dos clean', r)
                if i % 5 == 4:
                    r = dos_run('backup', str(work / 'backups'), '--keep', '2')
                    if r.returncode != 0:
                        failed('dos backup', r)
                doomed = work / 'log-doomed.tsv'
                if doomed.exists():
                    keys = [line.split('\t')[0] for line in doomed.read_text().splitlines() if line]
                    if keys:
                        r = dos_run('delete', *keys[-20:])
                        if r.returncode not in (0, 1):
                            failed('dos delete', r)
                i += 1
                time.sleep(0.2)
            stats['ops'] += 1
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            stats['errors'].append(f'{kind}: {type(exc).__name__}: {exc}'[:400])
            time.sleep(0.05)
    return stats


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seconds', type=float, default=60)
    p.add_argument('--work', type=Path)
    p.add_argument('--dos', default=str(ROOT / 'target/release/dos'))
    p.add_argument('--json', type=Path)
    p.add_argument('--python-pack-writer', action='store_true')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    p.add_argument('--deadline', type=float, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.work / 'c', a.work, a.dos, a.deadline)))
        return 0
    work = a.work or Path(tempfile.mkdtemp(prefix='dos-soak-'))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    c = work / 'c'
    subprocess.run([a.dos, '-q', '-p', str(c), 'init', '--pack-size-target', str(4 << 20)], check=True,
                   capture_output=True)
    deadline = time.time() + a.seconds
    kinds = ['py-loose', 'dos-add', 'py-read', 'dos-read', 'maint', 'doomed']
    if a.python_pack_writer:
        kinds.append('py-pack')
    procs = {k: subprocess.Popen([sys.executable, __file__, '--worker', k, '--work', str(work), '--dos', a.dos,
                                  '--deadline', str(deadline)], stdout=subprocess.PIPE, text=True)
             for k in kinds}
    report = {'seconds': a.seconds, 'workers': {}}
    for k, proc in procs.items():
        out, _ = proc.communicate()
        try:
            report['workers'][k] = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            report['workers'][k] = {'ops': 0, 'errors': [f'worker exited {proc.returncode} without a report']}
    # The final check: everything recorded is there, byte-exact; both validates clean.
    from disk_objectstore import Container  # pylint: disable=import-outside-toplevel

    known = recorded(work)
    lost = []
    with Container(c) as cont:
        got = cont.get_objects_content(sorted(known), skip_if_missing=False)
        for k, h in known.items():
            data = got.get(k)
            if data is None or hashlib.sha256(data).hexdigest() != h:
                lost.append(k)
        py_valid = cont.validate().is_valid()
    dos_valid = subprocess.run([a.dos, '-q', '-p', str(c), 'validate'], capture_output=True).returncode == 0
    backups = sorted((work / 'backups').glob('backup_*_*')) if (work / 'backups').exists() else []
    backup_valid = None
    if backups:
        with Container(backups[-1]) as b:
            backup_valid = b.validate().is_valid()
    errors = sum(len(w.get('errors', [])) for w in report['workers'].values())
    report.update({
        'objects_recorded': len(known),
        'objects_lost': len(lost),
        'lost': lost[:20],
        'errors': errors,
        'dos_validate_clean': dos_valid,
        'python_validate_clean': py_valid,
        'backups': len(backups),
        'newest_backup_valid': backup_valid,
        'reads_checked': sum(w.get('checked', 0) for w in report['workers'].values()),
        'operations': sum(w.get('ops', 0) for w in report['workers'].values()),
    })
    text = json.dumps(report, indent=2)
    print(text)
    if a.json:
        a.json.write_text(text)
    ok = not lost and errors == 0 and dos_valid and py_valid and backup_valid is not False
    if ok and not a.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
