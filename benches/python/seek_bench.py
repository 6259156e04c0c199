"""Random access inside one large packed object: dos_objectstore against disk-objectstore.

    seek_bench.py [--size-mb 256] [--reads 1000] [--h5-reads 200] [--workdir DIR]
                  [--python-budget SECONDS] [--json OUT]

Makes an HDF5 file of about --size-mb MB (trajectory-like float64 datasets, deterministic),
stores it as one packed object in containers of both libraries (uncompressed and zlib+1; dos
also zstd+3), then, each case in a fresh process, reads it through ``get_object_stream``:

- ``reads``: --reads random 4 KiB reads (``seek(offset)`` then ``read(4096)``), each checked
  against the file;
- ``h5py``: ``h5py.File`` opened on the stream, --h5-reads random slices of random datasets,
  each checked against the same slice of the file.

For each case: wall time, peak RSS of the process (VmHWM, reset once the libraries are imported;
and its RSS at that point),
bytes the process wrote to disk (``/proc/self/io`` write_bytes: a loose copy of the object shows
here), reads done. The packs and the model file are read once before each case (untimed), so
both libraries read from the page cache. disk-objectstore restarts decoding at every backward seek, so its ``reads``
case stops after --python-budget seconds and reports the reads it finished.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)


def write_bytes():
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_kb():
    return status_kb("VmRSS")


def reset_peak():
    """Reset VmHWM (ru_maxrss carries the parent's peak across fork and exec)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def make_h5(path, size_mb, seed=7):
    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = 1 << 19  # 512Ki rows x 3 float64 = 12 MiB per dataset
    n = max(1, (size_mb << 20) // (rows * 24))
    with h5py.File(path, "w") as h:
        for i in range(n):
            steps = rng.normal(0, 0.01, size=(rows, 3))
            traj = np.round(np.cumsum(steps, axis=0) + i, 4)
            h.create_dataset(f"traj_{i:03d}", data=traj)
    return n


def open_container(impl, folder):
    if impl == "upstream":
        from disk_objectstore import Container
    else:
        from dos_objectstore import Container
    return Container(folder)


def setup(args):
    os.makedirs(args.workdir, exist_ok=True)
    h5 = os.path.join(args.workdir, "traj.h5")
    if not os.path.exists(h5):
        make_h5(h5, args.size_mb)
    with open(h5, "rb") as f:
        content = f.read()
    cases = []
    for impl, algo in [
        ("upstream", None),
        ("upstream", "zlib+1"),
        ("dos", None),
        ("dos", "zlib+1"),
        ("dos", "zstd+3"),
    ]:
        folder = os.path.join(args.workdir, f"{impl}-{algo or 'raw'}")
        if os.path.exists(folder):
            shutil.rmtree(folder)
        c = open_container(impl, folder)
        c.init_container(compression_algorithm=algo or "zlib+1")
        (key,) = c.add_objects_to_pack([content], compress=algo is not None)
        c.close()
        cases.append({"impl": impl, "compression": algo or "none", "container": folder, "key": key})
    return h5, len(content), cases


def run_case(a):
    import h5py  # noqa: F401  (imported before the baseline RSS is taken)
    import numpy  # noqa: F401

    c = open_container(a.impl, a.container)
    rng = random.Random(11)
    size = os.path.getsize(a.model)
    model = os.open(a.model, os.O_RDONLY)
    reset_peak()
    base_rss = rss_kb()
    w0 = write_bytes()
    t0 = time.perf_counter()
    done = 0
    stopped = False
    with c.get_object_stream(a.key) as f:
        if a.pattern == "reads":
            for _ in range(a.reads):
                off = rng.randrange(0, size - 4096)
                f.seek(off)
                got = f.read(4096)
                if got != os.pread(model, 4096, off):
                    raise SystemExit(f"wrong bytes at {off}")
                done += 1
                if a.budget and time.perf_counter() - t0 > a.budget:
                    stopped = True
                    break
        else:
            import h5py

            ref = h5py.File(a.model, "r")
            h = h5py.File(f, "r")
            names = sorted(h.keys())
            for _ in range(a.reads):
                name = rng.choice(names)
                rows = h[name].shape[0]
                start = rng.randrange(0, rows - 512)
                got = h[name][start : start + 512]
                if not (got == ref[name][start : start + 512]).all():
                    raise SystemExit(f"wrong slice {name}[{start}:]")
                done += 1
                if a.budget and time.perf_counter() - t0 > a.budget:
                    stopped = True
                    break
            h.close()
    seconds = time.perf_counter() - t0
    c.close()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "done": done,
                "stopped_by_budget": stopped,
                "per_read_ms": 1000 * seconds / max(done, 1),
                "peak_rss_mb": status_kb("VmHWM") / 1024,
                "rss_before_mb": base_rss / 1024,
                "written_mb": (write_bytes() - w0) / 1e6,
            }
        )
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size-mb", type=int, default=256)
    p.add_argument("--reads", type=int, default=1000)
    p.add_argument("--h5-reads", type=int, default=200)
    p.add_argument("--workdir", default="bench-data/seek")
    p.add_argument("--python-budget", type=float, default=120)
    p.add_argument("--json")
    p.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--impl")
    p.add_argument("--container")
    p.add_argument("--key")
    p.add_argument("--pattern")
    p.add_argument("--model")
    p.add_argument("--budget", type=float, default=0)
    a = p.parse_args()
    if a.case:
        return run_case(a)
    h5, size, cases = setup(a)
    results = []
    print(f"object: {size / 1e6:.1f} MB HDF5 ({h5})", file=sys.stderr)
    for case in cases:
        for pattern, n in [("reads", a.reads), ("h5py", a.h5_reads)]:
            budget = a.python_budget if case["impl"] == "upstream" else 0
            subprocess.run(["sync"], check=True)
            # Untimed: both libraries read their packs (and the model) from the page cache (dos
            # writes packs with O_DIRECT, so they are not cached after writing).
            for folder in (os.path.join(case["container"], "packs"),):
                for name in os.listdir(folder):
                    with open(os.path.join(folder, name), "rb") as f:
                        while f.read(1 << 24):
                            pass
            with open(h5, "rb") as f:
                while f.read(1 << 24):
                    pass
            out = subprocess.run(
                [sys.executable, HERE, "--case", "--impl", case["impl"], "--container",
                 case["container"], "--key", case["key"], "--pattern", pattern, "--model", h5,
                 "--reads", str(n), "--budget", str(budget)],
                check=True, capture_output=True, text=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r.update(impl=case["impl"], compression=case["compression"], pattern=pattern,
                     asked=n)
            results.append(r)
            print(
                f"{case['impl']:9} {case['compression']:7} {pattern:6} {r['done']:5}/{n} "
                f"{r['seconds']:8.2f} s {r['per_read_ms']:9.2f} ms/read "
                f"peak {r['peak_rss_mb']:7.1f} MB (before {r['rss_before_mb']:.1f}) "
                f"written {r['written_mb']:8.1f} MB",
                file=sys.stderr,
            )
            # A materialised loose copy is the library's own doing; start each case clean.
            c = open_container(case["impl"], case["container"])
            c.clean_storage()
            c.close()
    doc = {"object_bytes": size, "reads": a.reads, "h5_reads": a.h5_reads, "results": results}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
