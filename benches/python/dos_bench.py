"""Python side of `dos-compare`: one timed disk-objectstore operation per process.

Usage: dos_bench.py [--impl upstream|dos] OP --container DIR [--list FILE] [--keys FILE]
       [--archive ZIP] [--compress] [--dedup]

--impl picks the Container class: disk_objectstore's (upstream, the default) or dos_objectstore's
(the drop-in on dos-core; `dos-compare --api python` runs both on the same data). OP is one of:
loose, pack, pack-files, read, get-one, get-content, has, list, count, size, pack-loose, validate,
repack, import (upstream only), and the untimed helpers init and delete. Write operations (loose, pack, pack-files, import) initialise a
fresh container in DIR (which must not exist); init only initialises one; the others open an
existing one. FILE holds one path (write ops) or one key (read, has, delete) per line; --keys names
the keys whose packed state pack-loose checks afterwards, or that import reads back and hashes
afterwards. Only the operation itself is timed; loading inputs and the checks after it are not.
The result is printed as one JSON line.

import is the best Python way to bring an AiiDA archive's repository files into packs: open the
archive with zipfile, take the repo/<sha256> entries in archive order (by header offset, so reads
are sequential), and stream them into the container with add_streamed_objects_to_pack in batches
of at most 50 MB (uncompressed) / 5000 objects (the batch limits of aiida-core PR #6417), without
fsync or commit per batch, checking every returned key against the entry name, and commit once at
the end. zipfile checks each entry's CRC-32 as it is read to the end.

disk-objectstore 1.5 never fsyncs the pack files it writes on Linux (`safe_flush_to_disk` with
`use_fullsync=True` takes the F_FULLFSYNC branch, which is `fcntl(fd, 0)` there), so after every
operation that writes packs this script also times `os.fsync` of every pack file and of `packs/`
(reported separately as `fsync_seconds`): the cost Python would pay for the durability dos has.
"""

import argparse
import hashlib
import json
import os
import re
import resource
import sys
import time
import zipfile

import disk_objectstore
from disk_objectstore.utils import LazyOpener


def status_kb(field):
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def maxrss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def op_start():
    """Memory state just before the timed section; resets the peak so the op's own is visible."""
    mem = {
        "peak_before_kb": maxrss_kb(),
        "hwm_before_kb": status_kb("VmHWM"),
        "rss_start_kb": status_kb("VmRSS"),
    }
    mem["reset"] = reset_peak()
    return mem


def op_end(mem):
    """Peak figures after the timed section (the reset above lowers the peaks, so take maxima)."""
    hwm = status_kb("VmHWM")
    return {
        # ru_maxrss also counts the image the process was exec'ed from (the parent's, when it is
        # spawned with vfork), so the peak of this process image comes from VmHWM.
        "ru_maxrss_kb": max(mem["peak_before_kb"], maxrss_kb()),
        "peak_rss_kb": None if hwm is None else max(mem["hwm_before_kb"] or 0, hwm),
        "rss_start_kb": mem["rss_start_kb"],
        "op_peak_rss_kb": hwm if mem["reset"] else None,
    }


def digest(keys):
    h = hashlib.sha256()
    for k in keys:
        h.update(k.encode("ascii"))
        h.update(b"\n")
    return h.hexdigest()


def fsync_packs(folder):
    """Seconds to fsync every pack file and the packs/ folder (see the module docstring)."""
    packs = os.path.join(folder, "packs")
    t0 = time.perf_counter()
    for name in sorted(os.listdir(packs)):
        path = os.path.join(packs, name)
        if not name.isdigit() or not os.path.isfile(path):
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(packs, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - t0


def state(c):
    """Untimed facts about the container after an operation (both sides report the same ones)."""
    counts = c.count_objects()
    sizes = c.get_total_size()
    return {
        "packed_count": counts.packed,
        "packed_bytes": sizes.total_size_packed,
        "packed_on_disk": sizes.total_size_packed_on_disk,
        "packfiles_bytes": sizes.total_size_packfiles_on_disk,
    }


REPO_ENTRY = re.compile(r"repo/[0-9a-f]{64}\Z")
BATCH_BYTES = 50 * 1024 * 1024
BATCH_OBJECTS = 5000


class ZipEntryOpener:
    """Opens one archive entry when add_streamed_objects_to_pack enters it (open_streams=True)."""

    __slots__ = ("zf", "info", "fh")

    def __init__(self, zf, info):
        self.zf = zf
        self.info = info
        self.fh = None

    def __enter__(self):
        self.fh = self.zf.open(self.info)
        return self.fh

    def __exit__(self, *exc):
        self.fh.close()
        self.fh = None


def import_archive(c, path, compress):
    """Import every repo/<sha256> entry of the archive at `path`; returns (keys, bytes, mismatched)."""
    keys = []
    mismatched = 0
    total = 0
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if REPO_ENTRY.match(i.filename)]
        infos.sort(key=lambda i: i.header_offset)

        def flush(batch, last):
            nonlocal mismatched
            new = c.add_streamed_objects_to_pack(
                [ZipEntryOpener(zf, i) for i in batch],
                compress=compress,
                open_streams=True,
                do_fsync=last,
                do_commit=False,
            )
            for info, key in zip(batch, new):
                if key != info.filename[5:]:
                    mismatched += 1
            if len(new) != len(batch):
                mismatched += abs(len(batch) - len(new))
            keys.extend(new)

        batch = []
        batch_bytes = 0
        for info in infos:
            if batch and (
                batch_bytes + info.file_size > BATCH_BYTES or len(batch) >= BATCH_OBJECTS
            ):
                flush(batch, False)
                batch = []
                batch_bytes = 0
            batch.append(info)
            batch_bytes += info.file_size
            total += info.file_size
        flush(batch, True)
    c._get_operation_session().commit()  # pylint: disable=protected-access
    return keys, total, mismatched


def verify_sample(c, keys):
    """Read `keys` back and hash them: (objects hashing to their key, wrong or missing, bytes)."""
    ok = bad = nbytes = 0
    seen = 0
    with c.get_objects_stream_and_meta(keys) as it:
        for key, stream, _meta in it:
            seen += 1
            if stream is None:
                bad += 1
                continue
            h = hashlib.sha256()
            while True:
                chunk = stream.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
                nbytes += len(chunk)
            if h.hexdigest() == key:
                ok += 1
            else:
                bad += 1
    bad += len(keys) - seen
    return ok, bad, nbytes


def read_lines(path):
    with open(path) as fh:
        return [line.rstrip("\n") for line in fh if line.strip()]


def main():
    p = argparse.ArgumentParser()
    p.add_argument(
        "op",
        choices=[
            "init",
            "loose",
            "pack",
            "pack-files",
            "read",
            "get-one",
            "get-content",
            "has",
            "list",
            "count",
            "size",
            "pack-loose",
            "validate",
            "delete",
            "repack",
            "import",
        ],
    )
    p.add_argument("--impl", choices=["upstream", "dos"], default="upstream")
    p.add_argument("--container", required=True)
    p.add_argument("--list")
    p.add_argument("--keys")
    p.add_argument("--archive")
    p.add_argument("--compress", action="store_true")
    p.add_argument("--dedup", action="store_true")
    a = p.parse_args()

    if a.impl == "dos":
        import dos_objectstore  # pylint: disable=import-outside-toplevel

        Container = dos_objectstore.Container
        out = {"side": "dos", "impl": "dos_objectstore", "version": dos_objectstore.__version__}
    else:
        Container = disk_objectstore.Container
        out = {"side": "python", "impl": "disk_objectstore"}
        out["version"] = disk_objectstore.__version__
    out["op"] = a.op
    if a.op == "import" and a.impl != "upstream":
        p.error("import measures disk_objectstore only (dos imports with dos_archive)")

    items = read_lines(a.list) if a.list else []
    c = Container(a.container)
    if a.op in ("init", "loose", "pack", "pack-files", "import"):
        c.init_container()  # defaults: zlib+1, loose_prefix_len 2, 4 GiB packs

    if a.op == "init":
        c.close()
        sys.stdout.write(json.dumps(out) + "\n")
        return
    if a.op == "delete":  # untimed preparation of repack
        deleted = c.delete_objects(items)
        out["deleted"] = len(deleted)
        c.close()
        sys.stdout.write(json.dumps(out) + "\n")
        return

    if a.op == "loose":
        out["bytes"] = 0
        mem = op_start()
        t0 = time.perf_counter()
        keys = []
        for path in items:
            with open(path, "rb") as fh:
                keys.append(c.add_streamed_object(fh))
        secs = time.perf_counter() - t0
        out["objects"] = len(keys)
        out["keys_digest"] = digest(keys)
    elif a.op == "pack":
        contents = []
        for path in items:
            with open(path, "rb") as fh:
                contents.append(fh.read())
        mem = op_start()
        t0 = time.perf_counter()
        keys = c.add_objects_to_pack(contents, compress=a.compress, no_holes=a.dedup)
        secs = time.perf_counter() - t0
        out["fsync_seconds"] = fsync_packs(a.container)
        out["objects"] = len(keys)
        out["bytes"] = sum(len(x) for x in contents)
        out["keys_digest"] = digest(keys)
    elif a.op == "pack-files":
        openers = [LazyOpener(path) for path in items]
        mem = op_start()
        t0 = time.perf_counter()
        keys = c.add_streamed_objects_to_pack(
            openers, compress=a.compress, open_streams=True, no_holes=a.dedup
        )
        secs = time.perf_counter() - t0
        out["fsync_seconds"] = fsync_packs(a.container)
        out["objects"] = len(keys)
        out["keys_digest"] = digest(keys)
    elif a.op == "import":
        mem = op_start()
        t0 = time.perf_counter()
        keys, total, mismatched = import_archive(c, a.archive, a.compress)
        secs = time.perf_counter() - t0
        out["fsync_seconds"] = fsync_packs(a.container)
        # `objects` and `bytes` are the container's afterwards (below); these are the op's.
        out["op_count"] = len(keys)
        out["op_bytes"] = total
        out["problems"] = mismatched
    elif a.op == "read":
        mem = op_start()
        t0 = time.perf_counter()
        total = 0
        count = 0
        with c.get_objects_stream_and_meta(items) as it:
            for _key, stream, _meta in it:
                data = stream.read()
                total += len(data)
                count += 1
        secs = time.perf_counter() - t0
        out["objects"] = count
        out["bytes"] = total
    elif a.op == "get-one":
        mem = op_start()
        t0 = time.perf_counter()
        total = 0
        for key in items:
            total += len(c.get_object_content(key))
        secs = time.perf_counter() - t0
        out["objects"] = len(items)
        out["bytes"] = total
    elif a.op == "get-content":
        mem = op_start()
        t0 = time.perf_counter()
        contents = c.get_objects_content(items)
        secs = time.perf_counter() - t0
        out["objects"] = len(contents)
        out["bytes"] = sum(len(v) for v in contents.values())
        out["missing"] = sum(1 for k in items if contents.get(k) is None)
    elif a.op == "list":
        mem = op_start()
        t0 = time.perf_counter()
        listed = list(c.list_all_objects())
        secs = time.perf_counter() - t0
        out["objects"] = len(listed)
        out["keys_digest"] = digest(sorted(listed))
    elif a.op == "count":
        mem = op_start()
        t0 = time.perf_counter()
        counts = c.count_objects()
        secs = time.perf_counter() - t0
        out["objects"] = counts.packed + counts.loose
    elif a.op == "size":
        mem = op_start()
        t0 = time.perf_counter()
        sizes = c.get_total_size()
        secs = time.perf_counter() - t0
        out["bytes"] = sizes.total_size_packed + sizes.total_size_loose
        counts = c.count_objects()
        out["objects"] = counts.packed + counts.loose
    elif a.op == "pack-loose":
        mem = op_start()
        t0 = time.perf_counter()
        c.pack_all_loose(compress=a.compress)  # validate_objects=True, do_fsync=True (defaults)
        secs = time.perf_counter() - t0
        out["fsync_seconds"] = fsync_packs(a.container)
    elif a.op == "validate":
        mem = op_start()
        t0 = time.perf_counter()
        issues = c.validate()
        secs = time.perf_counter() - t0
        out["problems"] = (
            len(issues.invalid_hashes_loose)
            + len(issues.invalid_hashes_packed)
            + len(issues.invalid_sizes_packed)
            + len(issues.overlapping_packed)
        )
        out["issues"] = {
            k: getattr(issues, k)[:20]
            for k in (
                "invalid_hashes_loose",
                "invalid_hashes_packed",
                "invalid_sizes_packed",
                "overlapping_packed",
            )
        }
    elif a.op == "repack":
        mem = op_start()
        t0 = time.perf_counter()
        c.repack()  # compress_mode=KEEP; rewrites every pack, then VACUUMs
        secs = time.perf_counter() - t0
        out["fsync_seconds"] = fsync_packs(a.container)
    else:  # has
        mem = op_start()
        t0 = time.perf_counter()
        found = c.has_objects(items)
        secs = time.perf_counter() - t0
        out["objects"] = len(found)
        out["true_count"] = sum(1 for f in found if f)

    out["seconds"] = secs
    out.update(op_end(mem))
    if a.op in ("pack-loose", "validate", "repack", "import"):
        out.update(state(c))
        out["objects"] = out["packed_count"]
        out["bytes"] = out["packed_bytes"]
    if a.op == "import":
        if a.keys:
            ok, bad, nbytes = verify_sample(c, read_lines(a.keys))
            out["verified"] = ok
            out["verify_bad"] = bad
            out["verified_bytes"] = nbytes
    if a.op == "pack-loose" and a.keys:
        # Which of the expected keys are now packed (a key both loose and packed is reported packed).
        wanted = read_lines(a.keys)
        packed = sorted(
            k for k, meta in c.get_objects_meta(wanted) if meta.type.value == "packed"
        )
        out["packed_digest"] = digest(packed)
    if a.op in (
        "read",
        "get-one",
        "get-content",
        "has",
        "list",
        "count",
        "size",
        "pack-loose",
        "validate",
        "repack",
        "import",
    ):
        keys = sorted(c.list_all_objects())
        out["keyset_count"] = len(keys)
        out["keyset_digest"] = digest(keys)
    c.close()
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
