"""Python side of `dos-compare scale`: one timed disk-objectstore operation per process.

Usage: scale_bench.py OP --container DIR [--list FILE] [--source DIR] [--memory-limit-mb MB]

OP is one of ls, status, has, validate, meta, delete-repack, pack, add-pack, clean; every one opens the
existing container DIR (the scale benchmark's base, or for delete-repack, pack and clean a copy of
it). FILE holds one key per line (has, meta, delete-repack). Only the operation is timed; reading
the list and the checks afterwards are not. The result, with the same fields the dos side
(`dos-compare scale-child`) prints, is printed as one JSON line:

- ls: `list_all_objects()` iterated and counted.
- status: `count_objects()` and `get_total_size()`.
- has: `has_objects(keys)`.
- validate: `validate()` (the full one, as `dostore validate`).
- meta: `get_objects_meta(keys)`, iterated.
- delete-repack: `delete_objects(keys)`, then `repack()` (each phase timed too, in `phases`).
- pack: `pack_all_loose()` (compress=False, validate_objects=True, do_fsync=True: the defaults).
- add-pack: `add_objects_to_pack(contents)` (compress=False, no_holes=False: the defaults) of the
  loose objects of the container --source, read into memory first (untimed).

After the operations that write packs (delete-repack, pack, add-pack), `fsync_seconds` is the
time of `os.fsync` of every pack file, which disk-objectstore 1.5 skips on Linux (see
dos_bench.py); it is not part of `seconds`.
- clean: `clean_storage(vacuum=True)`.

--memory-limit-mb sets the process's address-space limit (RLIMIT_AS; 0: none), so that an
operation that would need more memory than the machine has fails with MemoryError instead of
pushing it into the OOM killer (disk-objectstore's repack peaks at 2.3 GB at 10^6 objects).
"""

import argparse
import json
import os
import resource
import sys
import time

import disk_objectstore

from dos_bench import fsync_packs, op_end, op_start, read_lines


def read_loose_contents(folder):
    """The contents of every loose object of the container `folder`, in path order."""
    loose = os.path.join(folder, "loose")
    paths = []
    for shard in os.listdir(loose):
        d = os.path.join(loose, shard)
        if os.path.isdir(d):
            paths.extend(os.path.join(d, f) for f in os.listdir(d))
    out = []
    for path in sorted(paths):
        with open(path, "rb") as fh:
            out.append(fh.read())
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument(
        "op",
        choices=[
            "ls",
            "status",
            "has",
            "validate",
            "meta",
            "delete-repack",
            "pack",
            "add-pack",
            "clean",
        ],
    )
    p.add_argument("--container", required=True)
    p.add_argument("--list")
    p.add_argument("--source")
    p.add_argument("--memory-limit-mb", type=int, default=0)
    a = p.parse_args()
    if a.memory_limit_mb > 0:
        limit = a.memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    out = {"side": "python", "op": a.op, "version": disk_objectstore.__version__}
    items = read_lines(a.list) if a.list else []
    contents = read_loose_contents(a.source) if a.op == "add-pack" else None
    c = disk_objectstore.Container(a.container)

    mem = op_start()
    t0 = time.perf_counter()
    if a.op == "ls":
        n = 0
        for _ in c.list_all_objects():
            n += 1
        secs = time.perf_counter() - t0
        out["objects"] = n
    elif a.op == "status":
        counts = c.count_objects()
        sizes = c.get_total_size()
        secs = time.perf_counter() - t0
        out["objects"] = counts.packed + counts.loose
        out["packed"] = counts.packed
        out["loose"] = counts.loose
        out["pack_files"] = counts.pack_files
        out["packed_bytes"] = sizes.total_size_packed
        out["loose_bytes"] = sizes.total_size_loose
        out["index_bytes"] = sizes.total_size_packindexes_on_disk
    elif a.op == "has":
        found = c.has_objects(items)
        secs = time.perf_counter() - t0
        out["objects"] = len(found)
        out["true_count"] = sum(1 for f in found if f)
    elif a.op == "validate":
        issues = c.validate()
        secs = time.perf_counter() - t0
        out["problems"] = (
            len(issues.invalid_hashes_loose)
            + len(issues.invalid_hashes_packed)
            + len(issues.invalid_sizes_packed)
            + len(issues.overlapping_packed)
        )
    elif a.op == "meta":
        kinds = {"packed": 0, "loose": 0, "missing": 0}
        n = 0
        for _key, meta in c.get_objects_meta(items, skip_if_missing=False):
            kinds[meta.type.value] += 1
            n += 1
        secs = time.perf_counter() - t0
        out["objects"] = n
        out.update(kinds)
    elif a.op == "delete-repack":
        deleted = c.delete_objects(items)
        t1 = time.perf_counter()
        c.repack()  # compress_mode=KEEP; rewrites every pack, then VACUUMs
        secs = time.perf_counter() - t0
        out["deleted"] = len(deleted)
        out["phases"] = {"delete": t1 - t0, "repack": secs - (t1 - t0)}
    elif a.op == "pack":
        c.pack_all_loose()
        secs = time.perf_counter() - t0
    elif a.op == "add-pack":
        keys = c.add_objects_to_pack(contents)
        secs = time.perf_counter() - t0
        out["objects"] = len(keys)
    else:  # clean
        c.clean_storage(vacuum=True)
        secs = time.perf_counter() - t0
        out["vacuumed"] = True

    out["seconds"] = secs
    out.update(op_end(mem))
    if a.op in ("delete-repack", "pack", "add-pack"):
        out["fsync_seconds"] = fsync_packs(a.container)
    if a.op in ("delete-repack", "pack", "add-pack", "clean"):
        counts = c.count_objects()
        out["packed_after"] = counts.packed
        out["loose_after"] = counts.loose
    c.close()
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
