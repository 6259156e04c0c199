#!/usr/bin/env python3
"""A mixed soak of one container: Python and dos writers, readers in both, maintenance in a loop.

Usage: scripts/soak.py --seconds 60 [--work DIR] [--dos target/release/dos] [--json OUT]
                       [--max-live-mb 1500] [--retire random|oldest] [--python-pack-writer]
                       [--remote s3://BUCKET/PREFIX --s3-env FILE]

For the given time, at once, on one container (made by dos):
  - py-loose: disk_objectstore add_object, one object at a time;
  - py-pack (only with --python-pack-writer): disk_objectstore add_objects_to_pack, batches of
    10. Off by default: disk-objectstore 1.5's lock_pack deletes the winner's lock file when it
    fails to take it, so a Python pack writer next to any other pack writer (Python or dos) can
    end up appending to a pack at the same time as it, and then records wrong offsets for its
    own objects (docs/durability.md); dos's own writes are safe (a kernel lock on the pack file
    besides the lock file), Python's are not;
  - dos-add: `dos add --pack` and `dos add` of batches of 10 files;
  - py-read: disk_objectstore get_objects_content of 20 recorded keys, each checked byte-exact
    (disk-objectstore's reader does not support a concurrent repack: when the pack it looked up
    was removed by one before it opened it, it raises FileNotFoundError; counted as
    upstream_reader_repack_races and read again);
  - dospy-read: the same through dos_objectstore, which looks moved objects up again: any
    failure is an error;
  - dos-read: `dos cat` of a recorded key, checked byte-exact;
  - doomed: disk_objectstore add_object of objects written only to be deleted;
  - maint: `dos pack --clean-loose` in a loop; each round it retires recorded objects (below),
    `dos delete`s every doomed object written since the last round, and `dos repack`s after a
    retire and every 3rd round; every 4th round `dos clean`, every 5th
    `dos backup DIR/backups --keep 2` (the folder is checked never to hold more than 3 backups).
With --remote (an S3 location; --s3-env names a file of KEY=VALUE lines with S3_ENDPOINT,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, as scripts/ceph-s3.sh writes), maint also offloads
every pack no writer holds (`dos offload --include-small`) every 2nd round and brings them all back
(`dos fetch-packs --all`) every 7th, so repacks, deletes, cleans and backups meet offloaded packs
and readers read them remotely; disk_objectstore's reads of an offloaded pack fail (counted as
upstream_reader_offloaded, not errors: it cannot read them), dos's and dos_objectstore's must not.
At the end everything is fetched back for the final check, and `dos clean --remote-grace 0s` must
leave no object under the prefix.

Every writer records a key (log-WRITER.tsv: key, sha256, size, time) only once its call returned
(the object is then committed).

Bounded live data (--max-live-mb N, default 1500, 0: keep everything): when the recorded, not yet
retired objects exceed N MB, maint retires some down to 70 % of N (--retire random, the default:
random ones, so packs get holes that the next repack reclaims and some objects live through many
repacks; --retire oldest: the oldest, which empties whole packs, and dos repack removes a pack
without rows only once it is 10 minutes old, so about 10 minutes of writes stay on disk). It
appends their keys to retire-intent.tsv first, then `dos delete`s them, and only the keys the
delete reports deleted go to retire-done.tsv. Readers pick keys among the recorded ones not in retire-intent.tsv; a read that
fails (missing object, or an exception) is not an error if, checked after the failure, its key is in
retire-intent.tsv (it was being deleted). Any other failed read is an error (py-read then reads
the same keys again, up to 5 times, dos-read once, to show whether they are intact); a wrong
content is always an error. A retired key that `dos delete` says is not in the container was lost:
it is reported and stays in the final check.

At the end: every recorded key not in retire-done.tsv must read back byte-exact (through
disk_objectstore), dos's and Python's validate must be clean, and the newest backup must validate
in Python. A maintenance command refused because another one holds the container (exit 2,
"another dos operation") is counted as busy, not as an error. The main process samples the size
of the work folder (container, backups, inputs, logs; hard links counted once) every 2 s. The
report is one JSON object; the exit code is 1 if anything was lost, wrong or failed.
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
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RETIRE_INTENT = 'retire-intent.tsv'  # keys about to be deleted (written before `dos delete`)
RETIRE_DONE = 'retire-done.tsv'  # keys `dos delete` reported deleted
KEEP_BACKUPS = 2
MAX_ERRORS_LISTED = 100
MB = 1 << 20


def content(worker: str, i: int) -> bytes:
    """Deterministic, distinct content of a worker's i-th object (sizes 0 B to 200 kB)."""
    rnd = random.Random(f'{worker}:{i}')
    size = rnd.choice((0, 10, 300, 4000, 30000, 200000))
    head = f'{worker} {i}\n'.encode()
    return head + rnd.randbytes(max(0, size - len(head)))


def record(log: Path, pairs) -> None:
    now = time.time()
    with open(log, 'a') as fh:
        fh.write(''.join(f'{key}\t{hashlib.sha256(data).hexdigest()}\t{len(data)}\t{now:.6f}\n'
                         for key, data in pairs))


def append_keys(path: Path, keys) -> None:
    with open(path, 'a') as fh:
        fh.write(''.join(f'{k}\n' for k in keys))


class Tail:
    """Complete lines appended to a file since the last call (a partly written line waits)."""

    def __init__(self, path: Path):
        self.path = path
        self.pos = 0

    def lines(self) -> list[str]:
        try:
            with open(self.path, 'rb') as fh:
                fh.seek(self.pos)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b'\n') + 1
        self.pos += end
        return chunk[:end].decode().splitlines()


class Logs:
    """The recorded keys and the retire logs, read incrementally.

    live: recorded keys not in retire-intent -> (sha256, size, time); pending: keys in
    retire-intent but not (yet) in retire-done -> the same; retiring: every key in retire-intent;
    retired: every key in retire-done. The final check covers live and pending.
    """

    def __init__(self, work: Path):
        self.work = work
        self.tails: dict[Path, Tail] = {}
        self.intent = Tail(work / RETIRE_INTENT)
        self.done = Tail(work / RETIRE_DONE)
        self.live: dict[str, tuple[str, int, float]] = {}
        self.pending: dict[str, tuple[str, int, float]] = {}
        self.retiring: set[str] = set()
        self.retired: set[str] = set()
        self.recorded = 0

    def refresh(self) -> None:
        # Writer logs first, then the intents: a key is in a writer log before it is retired.
        for log in sorted(self.work.glob('log-*.tsv')):
            if log.name.startswith('log-doomed'):
                continue
            tail = self.tails.setdefault(log, Tail(log))
            for line in tail.lines():
                parts = line.split('\t')
                if len(parts) < 2:
                    continue
                k = parts[0]
                if k in self.live or k in self.pending or k in self.retiring:
                    continue  # the same key recorded twice (never with distinct contents)
                self.recorded += 1
                entry = (parts[1], int(parts[2]) if len(parts) > 2 else 0,
                         float(parts[3]) if len(parts) > 3 else 0.0)
                if k in self.retired:
                    continue
                if k in self.retiring:
                    self.pending[k] = entry
                else:
                    self.live[k] = entry
        for k in self.intent.lines():
            self.retiring.add(k)
            entry = self.live.pop(k, None)
            if entry is not None and k not in self.retired:
                self.pending[k] = entry
        for k in self.done.lines():
            self.retired.add(k)
            self.pending.pop(k, None)
            self.live.pop(k, None)

    def to_check(self) -> dict[str, tuple[str, int, float]]:
        return {**self.live, **self.pending}


def disk_usage(work: Path) -> dict[str, int]:
    """Bytes allocated under each top-level entry of work (hard links counted once overall)."""
    seen: set[tuple[int, int]] = set()
    parts: dict[str, int] = {}
    try:
        top = list(os.scandir(work))
    except OSError:
        return parts
    for entry in top:
        total = 0
        stack = [entry]
        while stack:
            e = stack.pop()
            try:
                if e.is_dir(follow_symlinks=False):
                    with os.scandir(e.path) as it:
                        stack.extend(it)
                    continue
                st = e.stat(follow_symlinks=False)
            except OSError:  # removed while we walk
                continue
            if st.st_nlink > 1:
                ino = (st.st_dev, st.st_ino)
                if ino in seen:
                    continue
                seen.add(ino)
            total += st.st_blocks * 512
        parts[entry.name] = total
    return parts


def chunks(seq, n):
    seq = list(seq)
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def worker(kind: str, c: Path, work: Path, dos: str, deadline: float, max_live_mb: float,
           retire_order: str = 'random', remote: bool = False) -> dict:
    from disk_objectstore import Container  # pylint: disable=import-outside-toplevel
    from dos_objectstore import Container as DosContainer  # pylint: disable=import-outside-toplevel

    UpstreamContainer = Container

    stats: dict = {'ops': 0, 'errors': [], 'error_count': 0, 'busy': 0, 'checked': 0}
    log = work / f'log-{kind}.tsv'
    i = 0
    rnd = random.Random(kind)
    logs = Logs(work)

    def dos_run(*args):
        return subprocess.run([dos, '-q', '-p', str(c), *args], capture_output=True, text=True)

    def error(msg):
        stats['error_count'] += 1
        if len(stats['errors']) < MAX_ERRORS_LISTED:
            stats['errors'].append(msg[:400])

    def failed(what, r):
        if r.returncode == 2 and 'another dos operation' in r.stderr:
            stats['busy'] += 1
        else:
            error(f'{what}: exit {r.returncode}: {r.stderr.strip()[:300]}')

    def bump(name, n=1):
        stats[name] = stats.get(name, 0) + n

    # maint's state
    doomed_tail = Tail(work / 'log-doomed.tsv')
    doomed_todo: list[str] = []
    gone: set[str] = set()  # retired keys `dos delete` did not find (lost; not retried)
    uncertain: set[str] = set()  # keys of a delete that failed (it may have deleted some)

    def retire() -> bool:
        """Retire recorded objects above the limit (and retry pending ones); True if any was deleted."""
        logs.refresh()
        if max_live_mb > 0:
            live_bytes = sum(e[1] for e in logs.live.values()) + sum(e[1] for e in logs.pending.values())
            stats['live_mb_max'] = max(stats.get('live_mb_max', 0), round(live_bytes / MB, 1))
            if live_bytes > max_live_mb * MB:
                target = 0.7 * max_live_mb * MB
                new = []
                if retire_order == 'random':
                    order = list(logs.live.items())
                    rnd.shuffle(order)
                else:
                    order = sorted(logs.live.items(), key=lambda kv: kv[1][2])
                for k, e in order:
                    if live_bytes <= target:
                        break
                    new.append(k)
                    live_bytes -= e[1]
                # The intent is on file before the delete starts: a reader that fails on one of
                # these keys finds it there.
                append_keys(work / RETIRE_INTENT, new)
                bump('retire_rounds')
                logs.refresh()
        deleted_any = False
        for chunk in chunks((k for k in logs.pending if k not in gone), 1000):
            r = dos_run('delete', '--json', *chunk)
            if r.returncode in (0, 1):
                try:
                    deleted = json.loads(r.stdout)['deleted']
                except (ValueError, KeyError, TypeError):
                    error(f'dos delete: exit {r.returncode}, unreadable output {r.stdout[:200]!r}')
                    uncertain.update(chunk)
                    break
                done = set(deleted)
                for k in set(chunk) - done:
                    if k in uncertain:  # deleted by the earlier call that failed
                        done.add(k)
                    else:
                        gone.add(k)
                        error(f'retire: dos delete of recorded key {k}: not in the container')
                append_keys(work / RETIRE_DONE, sorted(done))
                bump('retired', len(deleted))
                deleted_any = deleted_any or bool(deleted)
            else:
                failed('dos delete (retire)', r)
                if not (r.returncode == 2 and 'another dos operation' in r.stderr):
                    uncertain.update(chunk)
                break
        logs.refresh()
        return deleted_any

    def delete_doomed() -> bool:
        doomed_todo.extend(line.split('\t')[0] for line in doomed_tail.lines() if line)
        deleted_any = False
        while doomed_todo:
            chunk = doomed_todo[:1000]
            r = dos_run('delete', '--json', *chunk)
            if r.returncode in (0, 1):
                del doomed_todo[:len(chunk)]
                deleted = set(json.loads(r.stdout)['deleted'])
                bump('doomed_deleted', len(deleted))
                deleted_any = deleted_any or bool(deleted)
                for k in set(chunk) - deleted:
                    error(f'dos delete of doomed key {k}: not in the container')
            else:
                failed('dos delete (doomed)', r)
                break
        return deleted_any

    def check_backups():
        names = [p.name for p in (work / 'backups').iterdir()]
        n = sum(1 for name in names if name.startswith('backup_'))
        stats['backups_max'] = max(stats.get('backups_max', 0), n)
        if n > KEEP_BACKUPS + 1:
            error(f'backups folder holds {n} backups with --keep {KEEP_BACKUPS}: {sorted(names)}')
        extra = [name for name in names if not name.startswith('backup_') and name != 'last-backup']
        if extra:
            error(f'backups folder has leftovers after a successful backup: {sorted(extra)}')

    def exc_text(exc):
        return f'{type(exc).__name__}: {exc}'

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
            elif kind in ('py-read', 'dospy-read'):
                reader = 'upstream' if kind == 'py-read' else 'dos'
                Container = UpstreamContainer if reader == 'upstream' else DosContainer
                logs.refresh()
                if logs.live:
                    keys = rnd.sample(list(logs.live), min(20, len(logs.live)))
                    want = {k: logs.live[k][0] for k in keys}
                    last = ''
                    for attempt in range(5):
                        try:
                            with Container(c) as cont:
                                got = cont.get_objects_content(keys, skip_if_missing=False)
                            break
                        except Exception as exc:  # noqa: BLE001 - excused only for retired keys
                            logs.refresh()
                            still = [k for k in keys if k not in logs.retiring]
                            last = exc_text(exc)
                            if reader == 'upstream' and remote and isinstance(
                                    exc, (IsADirectoryError, NotADirectoryError)):
                                # disk-objectstore cannot read an offloaded pack (its stub is a
                                # directory): not an error of the store, nothing to check here.
                                bump('upstream_reader_offloaded')
                                got = None
                                break
                            if reader == 'upstream' and isinstance(exc, FileNotFoundError) \
                                    and '/packs/' in str(exc):
                                # disk-objectstore's reader opens a pack by the path it looked up;
                                # a dos repack may have moved the objects and removed that pack in
                                # between (disk-objectstore does not support reading during a
                                # repack). Counted, and read again; dos_objectstore looks up again.
                                bump('upstream_reader_repack_races')
                                continue
                            if len(still) == len(keys):
                                # Not excused; read the same keys again to see whether they are
                                # intact (a loss shows there, or in the final check).
                                error(f'py-read of {len(keys)} recorded, non-retired keys: {last}'
                                      f' (attempt {attempt + 1}; read again)')
                                bump('read_failures_not_retired')
                                time.sleep(0.1)
                                continue
                            bump('skipped_retired', len(keys) - len(still))
                            bump('exceptions_on_retired')
                            stats['last_exception_on_retired'] = last[:300]
                            keys = still
                    else:
                        raise RuntimeError(f'get_objects_content failed 5 times, last: {last}')
                    for k in (keys if got is not None else []):
                        data = got.get(k)
                        if data is None:
                            logs.refresh()
                            if k in logs.retiring:
                                bump('skipped_retired')
                                continue
                            error(f'py-read {k}: missing')
                        elif hashlib.sha256(data).hexdigest() != want[k]:
                            error(f'py-read {k}: wrong content')
                        stats['checked'] += 1
                else:
                    time.sleep(0.05)
            elif kind == 'dos-read':
                logs.refresh()
                if logs.live:
                    k = rnd.choice(list(logs.live))
                    want = logs.live[k][0]
                    r = subprocess.run([dos, '-q', '-p', str(c), 'cat', k], capture_output=True)
                    if r.returncode != 0:
                        logs.refresh()
                        if k in logs.retiring:
                            bump('skipped_retired')
                            stats['last_failure_on_retired'] = f'exit {r.returncode} {r.stderr[:200]!r}'
                        else:
                            again = subprocess.run([dos, '-q', '-p', str(c), 'cat', k], capture_output=True)
                            intact = again.returncode == 0 and hashlib.sha256(again.stdout).hexdigest() == want
                            error(f'dos cat {k}: exit {r.returncode} {r.stderr[:200]!r}'
                                  f' (read again: {"byte-exact" if intact else f"exit {again.returncode}, wrong"})')
                            bump('read_failures_not_retired')
                            stats['checked'] += 1
                    else:
                        if hashlib.sha256(r.stdout).hexdigest() != want:
                            error(f'dos cat {k}: wrong content')
                        stats['checked'] += 1
                else:
                    time.sleep(0.05)
            elif kind == 'maint':
                r = dos_run('pack', '--clean-loose')
                if r.returncode != 0:
                    failed('dos pack', r)
                holes = retire()
                holes = delete_doomed() or holes
                if holes or i % 3 == 2:
                    r = dos_run('repack')
                    if r.returncode != 0:
                        failed('dos repack', r)
                    else:
                        bump('repacks')
                if i % 4 == 3:
                    r = dos_run('clean')
                    if r.returncode != 0:
                        failed('dos clean', r)
                    else:
                        bump('cleans')
                if remote and i % 2 == 1:
                    r = dos_run('offload', '--include-small')
                    if r.returncode != 0:
                        failed('dos offload', r)
                    else:
                        bump('offloads')
                if remote and i % 7 == 6:
                    r = dos_run('fetch-packs', '--all')
                    if r.returncode != 0:
                        failed('dos fetch-packs', r)
                    else:
                        bump('fetches')
                if i % 5 == 4:
                    r = dos_run('backup', str(work / 'backups'), '--keep', str(KEEP_BACKUPS))
                    if r.returncode != 0:
                        failed('dos backup', r)
                    else:
                        bump('backups_made')
                        check_backups()
                i += 1
                time.sleep(0.2)
            stats['ops'] += 1
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            error(f'{kind}: {exc_text(exc)}')
            time.sleep(0.05)
    return stats


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seconds', type=float, default=60)
    p.add_argument('--work', type=Path)
    p.add_argument('--dos', default=str(ROOT / 'target/release/dos'))
    p.add_argument('--json', type=Path)
    p.add_argument('--max-live-mb', type=float, default=1500,
                   help='retire (delete) the oldest recorded objects above this many MB, down to '
                        '70 %% of it (0: keep everything)')
    p.add_argument('--retire', choices=('oldest', 'random'), default='random',
                   help='which recorded objects to retire: the oldest (whole packs empty out; dos '
                        'repack removes a pack without rows only once it is 10 minutes old) or '
                        'random ones (holes everywhere, which repack reclaims at once; older '
                        'objects survive many repacks)')
    p.add_argument('--python-pack-writer', action='store_true')
    p.add_argument('--remote', help='an s3://BUCKET/PREFIX to offload packs to and fetch them from')
    p.add_argument('--s3-env', type=Path, help='KEY=VALUE lines: S3_ENDPOINT, AWS_ACCESS_KEY_ID, ...')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    p.add_argument('--deadline', type=float, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.work / 'c', a.work, a.dos, a.deadline, a.max_live_mb, a.retire,
                                bool(a.remote))))
        return 0
    work = a.work or Path(tempfile.mkdtemp(prefix='dos-soak-'))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    c = work / 'c'
    if a.s3_env:
        env = dict(line.split('=', 1) for line in a.s3_env.read_text().split() if '=' in line)
        os.environ['AWS_ENDPOINT_URL'] = env['S3_ENDPOINT']
        for k in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION'):
            if k in env:
                os.environ[k] = env[k]
    subprocess.run([a.dos, '-q', '-p', str(c), 'init', '--pack-size-target', str(4 << 20)], check=True,
                   capture_output=True)
    if a.remote:
        subprocess.run([a.dos, '-q', '-p', str(c), 'remote', 'set', a.remote], check=True, capture_output=True)

    # Disk use of the work folder, sampled while the workers run.
    peak = {'total': 0, 'c': 0, 'backups': 0}
    samples = []
    stop = threading.Event()

    def sample():
        parts = disk_usage(work)
        total = sum(parts.values())
        peak['total'] = max(peak['total'], total)
        peak['c'] = max(peak['c'], parts.get('c', 0))
        peak['backups'] = max(peak['backups'], parts.get('backups', 0))
        samples.append(total)
        return parts

    def sampler():
        while not stop.wait(2.0):
            sample()

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()

    deadline = time.time() + a.seconds
    kinds = ['py-loose', 'dos-add', 'py-read', 'dospy-read', 'dos-read', 'maint', 'doomed']
    if a.python_pack_writer:
        kinds.append('py-pack')
    procs = {k: subprocess.Popen([sys.executable, __file__, '--worker', k, '--work', str(work), '--dos', a.dos,
                                  '--deadline', str(deadline), '--max-live-mb', str(a.max_live_mb),
                                  '--retire', a.retire] + (['--remote', a.remote] if a.remote else []),
                                 stdout=subprocess.PIPE, text=True)
             for k in kinds}
    report = {'seconds': a.seconds, 'max_live_mb': a.max_live_mb, 'retire': a.retire, 'workers': {}}
    for k, proc in procs.items():
        out, _ = proc.communicate()
        try:
            report['workers'][k] = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            report['workers'][k] = {'ops': 0, 'errors': [f'worker exited {proc.returncode} without a report'],
                                    'error_count': 1}
    stop.set()
    thread.join()
    sample()
    remote_left = None
    if a.remote:
        # Everything back, so that disk_objectstore can check it; then nothing may stay remote.
        r = subprocess.run([a.dos, '-q', '-p', str(c), 'fetch-packs', '--all'], capture_output=True, text=True)
        if r.returncode != 0:
            report['fetch_at_end'] = r.stderr.strip()[:300]
    # The final check: everything recorded and not retired is there, byte-exact; both validates clean.
    from disk_objectstore import Container  # pylint: disable=import-outside-toplevel

    logs = Logs(work)
    logs.refresh()
    known = logs.to_check()
    lost = []
    with Container(c) as cont:
        for chunk in chunks(sorted(known), 500):
            got = cont.get_objects_content(chunk, skip_if_missing=False)
            for k in chunk:
                data = got.get(k)
                if data is None or hashlib.sha256(data).hexdigest() != known[k][0]:
                    lost.append(k)
        py_valid = cont.validate().is_valid()
    dos_valid = subprocess.run([a.dos, '-q', '-p', str(c), 'validate'], capture_output=True).returncode == 0
    backups = sorted((work / 'backups').glob('backup_*_*')) if (work / 'backups').exists() else []
    backup_valid = None
    if backups and a.remote:
        # A backup keeps offloaded packs as stubs: dos validates it (reading them remotely).
        backup_valid = subprocess.run([a.dos, '-q', '-p', str(backups[-1]), 'validate'],
                                      capture_output=True).returncode == 0
    elif backups:
        with Container(backups[-1]) as b:
            backup_valid = b.validate().is_valid()
    if a.remote:
        r = subprocess.run([a.dos, '-q', '-p', str(c), 'clean', '--remote-grace', '0s', '--json'],
                           capture_output=True, text=True)
        try:
            rem = json.loads(r.stdout)['remote']
            remote_left = rem['objects_too_young']
            report['remote_objects_deleted_at_end'] = rem['objects_deleted']
        except (ValueError, KeyError, TypeError):
            report['clean_at_end'] = r.stderr.strip()[:300]
            remote_left = -1
    parts = sample()
    st = subprocess.run([a.dos, '-q', '-p', str(c), 'status', '--json'], capture_output=True, text=True)
    try:
        size = json.loads(st.stdout)['size']
        pack_files, packed = size['total_size_packfiles_on_disk'], size['total_size_packed_on_disk']
    except (ValueError, KeyError, TypeError):
        pack_files = packed = None
    errors = sum(w.get('error_count', len(w.get('errors', []))) for w in report['workers'].values())
    report.update({
        'objects_recorded': logs.recorded,
        'objects_retired': len(logs.retired),
        'objects_checked_at_end': len(known),
        'live_mb_at_end': round(sum(e[1] for e in known.values()) / MB, 1),
        'objects_lost': len(lost),
        'lost': lost[:20],
        'errors': errors,
        'dos_validate_clean': dos_valid,
        'python_validate_clean': py_valid,
        'backups': len(backups),
        'newest_backup_valid': backup_valid,
        'remote': a.remote,
        'remote_objects_left': remote_left,
        'reads_checked': sum(w.get('checked', 0) for w in report['workers'].values()),
        'operations': sum(w.get('ops', 0) for w in report['workers'].values()),
        'disk_peak_mb': round(peak['total'] / MB, 1),
        'container_peak_mb': round(peak['c'] / MB, 1),
        'backups_peak_mb': round(peak['backups'] / MB, 1),
        'container_bytes': parts.get('c', 0),
        'backup_bytes': parts.get('backups', 0),
        'disk_samples': len(samples),
        # Pack bytes no live object uses at the end (holes, and packs emptied by deletes that
        # repack leaves until they are 10 minutes old).
        'pack_files_mb_at_end': None if pack_files is None else round(pack_files / MB, 1),
        'dead_pack_mb_at_end': None if pack_files is None else round((pack_files - packed) / MB, 1),
    })
    text = json.dumps(report, indent=2)
    print(text)
    if a.json:
        a.json.write_text(text)
    ok = (not lost and errors == 0 and dos_valid and py_valid and backup_valid is not False
          and remote_left in (None, 0))
    if ok and not a.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
