#!/usr/bin/env python3
"""Old and new builds side by side: run `dos-compare child OP` of two builds alternately on the
same inputs and report each side's median time, the median of the per-pair ratios and peak RSS.

The inputs are those a `dos-compare` run left in its data folder (the runs folder of the data
set: input lists, base containers, the `pack` / `pack-z` containers to read, the archive), so
run `dos-compare --n N --data-dir D --ops ...` once first. For example:

    scripts/ab.py --old /tmp/old/dos-compare --new target/release/dos-compare \\
        --data-dir bench-data --n 100000 --ops import,import-z --repeat 10 --json ab.json

Write operations get a fresh folder per run (copies of a base container where the operation
starts from one); they are all deleted at the end, because ext4 creates files slowly for a
while after many were deleted. `sync` runs before every child; the archive is read into the
page cache before every import.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

OPS = {
    'pack': dict(op='pack', list='files-all.txt'),
    'pack-dedup': dict(op='pack', list='files-all.txt', flags=['--dedup']),
    'pack-z': dict(op='pack', list='files-all.txt', flags=['--compress']),
    'pack-files': dict(op='pack-files', list='files-all.txt'),
    'read': dict(op='read', list='keys-unique.txt', container='pack-dos'),
    'read-z': dict(op='read', list='keys-unique.txt', container='pack-z-dos'),
    'has': dict(op='has', list='keys-has.txt', container='pack-dos'),
    'pack-loose': dict(op='pack-loose', base='base-loose', keys=True),
    'pack-loose-z': dict(op='pack-loose', base='base-loose', keys=True, flags=['--compress']),
    'validate': dict(op='validate', container='pack-dos'),
    'validate-z': dict(op='validate', container='pack-z-dos'),
    'repack': dict(op='repack', base='base-packed', delete=True),
    'import': dict(op='import', archive=True),
    'import-z': dict(op='import', archive=True, flags=['--compress']),
}


class Runner:
    def __init__(self, args):
        self.bins = {'old': args.old, 'new': args.new}
        self.runs = os.path.join(args.data_dir, f'runs-n{args.n}-s{args.seed}')
        self.archive = os.path.join(args.data_dir, f'dataset-n{args.n}-s{args.seed}', 'archive-l6.aiida')
        self.count = 0

    def path(self, name):
        return os.path.join(self.runs, name)

    def run(self, side, name, spec):
        """One child of `side`; returns (seconds, peak RSS MB)."""
        self.count += 1
        exe = self.bins[side]
        if 'container' in spec:
            cont = self.path(spec['container'])
        else:
            cont = self.path(f'ab-{name}-{self.count}')
            if 'base' in spec:
                subprocess.run(['cp', '-a', self.path(spec['base']), cont], check=True)
            if spec.get('delete'):
                subprocess.run(
                    [exe, 'child', 'delete', '--container', cont, '--list', self.path('keys-delete.txt')],
                    check=True,
                    capture_output=True,
                )
        cmd = [exe, 'child', spec['op'], '--container', cont]
        if 'list' in spec:
            cmd += ['--list', self.path(spec['list'])]
        if spec.get('keys'):
            cmd += ['--keys', self.path('keys-unique.txt')]
        if spec.get('archive'):
            with open(self.archive, 'rb') as f:
                while f.read(1 << 24):
                    pass
            cmd += ['--archive', self.archive]
        cmd += spec.get('flags', [])
        subprocess.run(['sync'], check=True)
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        result = json.loads([line for line in out.splitlines() if line.startswith('{')][-1])
        return result['seconds'], result.get('peak_rss_kb', 0) // 1024

    def clean(self):
        for entry in os.listdir(self.runs):
            if entry.startswith('ab-'):
                shutil.rmtree(self.path(entry), ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--old', required=True, help='dos-compare of the old build')
    parser.add_argument('--new', required=True, help='dos-compare of the new build')
    parser.add_argument('--data-dir', required=True, help='the data folder of a dos-compare run')
    parser.add_argument('--n', type=int, default=100000)
    parser.add_argument('--seed', type=int, default=42)
    parser.add_argument('--ops', required=True, help=f'comma-separated: {",".join(OPS)}')
    parser.add_argument('--repeat', type=int, default=5, help='runs per build and operation')
    parser.add_argument('--json', help='write every run to this file')
    args = parser.parse_args()
    ops = [op for op in args.ops.split(',') if op]
    unknown = [op for op in ops if op not in OPS]
    if unknown:
        sys.exit(f'ab.py: unknown operations: {", ".join(unknown)}')
    runner = Runner(args)
    results = {}
    try:
        print('| operation | runs each | old median s | new median s | new / old, median of pairs | old / new peak RSS MB |')
        print('|---|---:|---:|---:|---:|---:|')
        for name in ops:
            times = {'old': [], 'new': []}
            rss = {'old': [], 'new': []}
            for rep in range(args.repeat):
                for side in ('old', 'new') if rep % 2 == 0 else ('new', 'old'):
                    seconds, peak = runner.run(side, name, OPS[name])
                    times[side].append(seconds)
                    rss[side].append(peak)
            ratio = statistics.median(n / o for o, n in zip(times['old'], times['new']))
            print(
                f'| {name} | {args.repeat} | {statistics.median(times["old"]):.3f} | '
                f'{statistics.median(times["new"]):.3f} | {ratio:.2f} | {max(rss["old"])} / {max(rss["new"])} |',
                flush=True,
            )
            results[name] = {'old': times['old'], 'new': times['new'], 'old_rss_mb': rss['old'], 'new_rss_mb': rss['new']}
    finally:
        runner.clean()
    if args.json:
        with open(args.json, 'w', encoding='utf8') as f:
            json.dump({'old': args.old, 'new': args.new, 'n': args.n, 'runs': results}, f, indent=1)


if __name__ == '__main__':
    main()
