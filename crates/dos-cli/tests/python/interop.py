"""Drive the real Python disk-objectstore for dos's interoperability tests.

Commands (all print one JSON line on success, exit non-zero with a message on failure):

  make CONTAINER SCENARIO SEED [--prefix N] [--hash sha256|sha1] [--algo zlib+N]
      Build a container with Python and write CONTAINER.manifest.json: {key: [size, sha256]}.
  verify CONTAINER MANIFEST
      Check with Python that the container holds exactly the manifest's objects, byte-exact
      (bulk and single reads), and that validate() reports no issue.
  refuses CONTAINER MANIFEST
      On a container holding zstd objects: every read returns the right bytes or raises, and
      validate() never reports it valid.
  append CONTAINER SEED
      Add objects to an existing container (loose, then packed) and extend its manifest.
  worker CONTAINER OUTDIR ID N SEED [ROUNDS]
      Concurrency worker, ROUNDS times: add N objects loose (half shared with other workers),
      publish {key: sha256} to OUTDIR/ID-ROUND.json atomically, then re-read every object of
      every published file, checking content.
"""

import hashlib
import json
import os
import random
import sqlite3
import sys

from disk_objectstore import CompressMode, Container


def fail(msg):
    print(f"interop.py: {msg}", file=sys.stderr)
    sys.exit(1)


def random_objects(seed, n, big=True):
    rng = random.Random(seed)
    out = [b"", b"x"]
    for i in range(n):
        kind = rng.random()
        if kind < 0.45:
            size = rng.randint(0, 20000)
            line = f"step {i} energy = {rng.uniform(-1e3, 0):.8f} Ry\n".encode()
            out.append((line * (size // len(line) + 1))[:size])
        elif kind < 0.9:
            out.append(rng.randbytes(rng.randint(1, 30000)))
        elif big and kind < 0.93:
            out.append(rng.randbytes(rng.randint(2_000_000, 4_000_000)))
        else:
            out.append(rng.randbytes(rng.randint(0, 100)))
    # Some duplicates.
    out.extend(out[3 : 3 + n // 10])
    return out


def manifest_of(objects, hash_type):
    m = {}
    for o in objects:
        key = hashlib.new(hash_type, o).hexdigest()
        m[key] = [len(o), hashlib.sha256(o).hexdigest()]
    return m


def write_manifest(path, m):
    with open(path + ".manifest.json", "w") as fh:
        json.dump(m, fh)


def make(container, scenario, seed, prefix=2, hash_type="sha256", algo="zlib+1"):
    c = Container(container)
    small_packs = scenario in ("packed-many", "compressed-many")
    c.init_container(
        pack_size_target=200_000 if small_packs else 4 * 1024**3,
        loose_prefix_len=prefix,
        hash_type=hash_type,
        compression_algorithm=algo,
    )
    objects = random_objects(seed, 120)
    m = manifest_of(objects, hash_type)
    if scenario == "loose":
        for o in objects:
            c.add_object(o)
    elif scenario in ("packed", "packed-many"):
        for o in objects:
            c.add_object(o)
        c.pack_all_loose(compress=False)
        c.clean_storage()
    elif scenario in ("compressed", "compressed-many"):
        c.add_objects_to_pack(objects, compress=True)
    elif scenario == "auto":
        for o in objects:
            c.add_object(o)
        c.pack_all_loose(compress=CompressMode.AUTO)
        c.clean_storage()
    elif scenario == "both":
        # Objects both loose and packed (pack_all_loose keeps loose copies), plus loose-only.
        half = len(objects) // 2
        for o in objects[:half]:
            c.add_object(o)
        c.pack_all_loose(compress=True)
        for o in objects[half:]:
            c.add_object(o)
    elif scenario == "holes":
        # Packed objects, some deleted (holes left in packs), duplicates written as holes.
        c.add_objects_to_pack(objects, compress=False)
        c.add_objects_to_pack(objects[:20], compress=True)  # no_holes=False: duplicate bytes
        keys = sorted(m)
        doomed = keys[::5]
        deleted = c.delete_objects(doomed)
        if sorted(deleted) != sorted(doomed):
            fail(f"python deleted {len(deleted)} of {len(doomed)}")
        for k in doomed:
            del m[k]
    elif scenario == "legacy-schema":
        c.add_objects_to_pack(objects, compress=True)
        c.close()
        legacy_schema(os.path.join(container, "packs.idx"))
        c = Container(container)
    else:
        fail(f"unknown scenario {scenario}")
    c.close()
    write_manifest(container, m)
    print(json.dumps({"objects": len(m)}))


def legacy_schema(idx):
    """Rewrite db_object with the CHECK constraint of containers from disk-objectstore <= 0.5."""
    con = sqlite3.connect(idx)
    con.executescript(
        """
        BEGIN;
        CREATE TABLE db_object_new (
            id INTEGER NOT NULL,
            hashkey VARCHAR NOT NULL,
            compressed BOOLEAN NOT NULL,
            size INTEGER NOT NULL,
            "offset" INTEGER NOT NULL,
            length INTEGER NOT NULL,
            pack_id INTEGER NOT NULL,
            PRIMARY KEY (id),
            CHECK (compressed IN (0, 1))
        );
        INSERT INTO db_object_new SELECT id, hashkey, compressed, size, "offset", length, pack_id FROM db_object;
        DROP TABLE db_object;
        ALTER TABLE db_object_new RENAME TO db_object;
        CREATE UNIQUE INDEX ix_db_object_hashkey ON db_object (hashkey);
        COMMIT;
        """
    )
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name='db_object'").fetchone()[0]
    if "CHECK (compressed IN (0, 1))" not in sql:
        fail("legacy schema rewrite failed")
    con.close()


def verify(container, manifest_path):
    with open(manifest_path) as fh:
        m = json.load(fh)
    with Container(container) as c:
        listed = sorted(c.list_all_objects())
        if listed != sorted(m):
            extra = set(listed) - set(m)
            missing = set(m) - set(listed)
            fail(f"listing differs: {len(extra)} extra, {len(missing)} missing")
        seen = 0
        with c.get_objects_stream_and_meta(list(m), skip_if_missing=False) as it:
            for key, stream, meta in it:
                if stream is None:
                    fail(f"{key} missing in bulk read")
                data = stream.read()
                size, digest = m[key]
                if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
                    fail(f"{key}: content differs in bulk read ({meta})")
                if meta.size != size:
                    fail(f"{key}: meta size {meta.size} != {size}")
                seen += 1
        if seen != len(m):
            fail(f"bulk read saw {seen} of {len(m)}")
        for key in list(m)[:: max(1, len(m) // 25)]:
            data = c.get_object_content(key)
            if hashlib.sha256(data).hexdigest() != m[key][1]:
                fail(f"{key}: content differs in single read")
        issues = c.validate()
        if not issues.is_valid():
            fail(f"validate: {issues}")
        count = c.count_objects()
        sizes = c.get_total_size()
    print(
        json.dumps(
            {
                "objects": len(m),
                "packed": count.packed,
                "loose": count.loose,
                "pack_files": count.pack_files,
                "total_size_packed": sizes.total_size_packed,
            }
        )
    )


def refuses(container, manifest_path):
    """Python on a container with zstd objects: every read either returns the right bytes or
    raises; validate raises. Prints how many reads were refused."""
    with open(manifest_path) as fh:
        m = json.load(fh)
    refused = right = 0
    with Container(container) as c:
        for key, (size, digest) in m.items():
            try:
                data = c.get_object_content(key)
            except Exception:  # noqa: BLE001 - any error is a refusal
                refused += 1
                continue
            if hashlib.sha256(data).hexdigest() != digest:
                fail(f"{key}: Python read WRONG bytes from a zstd container")
            right += 1
        try:
            issues = c.validate()
        except Exception:  # noqa: BLE001
            issues = None
        if issues is not None and issues.is_valid():
            fail("Python validated a container it cannot read")
    print(json.dumps({"refused": refused, "right": right}))


def append_refused(container, seed):
    """Python writing to packs of a container whose packs were offloaded: it must fail with an
    error (it may not start a new pack under a number the index uses for remote bytes)."""
    objects = random_objects(seed, 10, big=False)
    try:
        with Container(container) as c:
            c.add_objects_to_pack(objects, compress=False)
    except Exception as e:  # noqa: BLE001 - any error is a refusal
        print(json.dumps({"refused": type(e).__name__}))
        return
    fail("Python packed objects into a container with offloaded packs")


def append(container, seed):
    path = container + ".manifest.json"
    with open(path) as fh:
        m = json.load(fh)
    with Container(container) as c:
        objects = random_objects(seed, 40, big=False)
        for o in objects[:20]:
            c.add_object(o)
        c.add_objects_to_pack(objects[20:], compress=True)
        m.update(manifest_of(objects, c.hash_type))
    write_manifest(container, m)
    print(json.dumps({"objects": len(m)}))


def maintain(container, op):
    """Run a Python maintenance operation on a container (dos-written or not)."""
    with Container(container) as c:
        if op == "pack":
            c.pack_all_loose(compress=False)
        elif op == "pack-auto-clean":
            c.pack_all_loose(compress=CompressMode.AUTO, clean_loose_per_pack=True)
        elif op == "repack":
            c.repack()
        elif op == "repack-yes":
            c.repack(compress_mode=CompressMode.YES)
        elif op == "clean":
            c.clean_storage(vacuum=True)
        elif op == "full":
            c.pack_all_loose(compress=True)
            c.clean_storage(vacuum=True)
            c.repack()
        else:
            fail(f"unknown maintenance op {op}")
    print(json.dumps({"op": op}))


def delete(container, n):
    """Delete every n-th object (sorted) with Python; update the manifest."""
    path = container + ".manifest.json"
    with open(path) as fh:
        m = json.load(fh)
    with Container(container) as c:
        doomed = sorted(m)[::n]
        c.delete_objects(doomed)
    for k in doomed:
        del m[k]
    write_manifest(container, m)
    print(json.dumps({"deleted": len(doomed)}))


def worker(container, outdir, ident, n, seed, rounds=1):
    for r in range(rounds):
        worker_round(container, outdir, f"{ident}-{r}", n, seed * 1000 + r)


def worker_round(container, outdir, ident, n, seed):
    rng = random.Random(seed)
    written = {}
    with Container(container) as c:
        for i in range(n):
            # Half the objects are shared by every worker: concurrent identical writes.
            if i % 2 == 0:
                data = f"shared object {i}".encode() * (1 + i % 50)
            else:
                data = rng.randbytes(rng.randint(0, 5000))
            key = c.add_object(data)
            if key != hashlib.sha256(data).hexdigest():
                fail(f"wrong key {key}")
            written[key] = hashlib.sha256(data).hexdigest()
    tmp = os.path.join(outdir, f".{ident}.tmp")
    with open(tmp, "w") as fh:
        json.dump(written, fh)
    os.replace(tmp, os.path.join(outdir, f"{ident}.json"))
    # Re-read everything every finished worker published.
    with Container(container) as c:
        for name in sorted(os.listdir(outdir)):
            if not name.endswith(".json"):
                continue
            with open(os.path.join(outdir, name)) as fh:
                theirs = json.load(fh)
            got = c.get_objects_content(list(theirs), skip_if_missing=False)
            for key, digest in theirs.items():
                if got[key] is None or hashlib.sha256(got[key]).hexdigest() != digest:
                    fail(f"worker {ident}: object {key} of {name} lost or wrong")
    print(json.dumps({"written": len(written)}))


def main(argv):
    if len(argv) < 2:
        fail(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "make":
        opts = {"prefix": 2, "hash_type": "sha256", "algo": "zlib+1"}
        pos = []
        it = iter(args)
        for a in it:
            if a == "--prefix":
                opts["prefix"] = int(next(it))
            elif a == "--hash":
                opts["hash_type"] = next(it)
            elif a == "--algo":
                opts["algo"] = next(it)
            else:
                pos.append(a)
        make(pos[0], pos[1], int(pos[2]), **opts)
    elif cmd == "verify":
        verify(args[0], args[1])
    elif cmd == "refuses":
        refuses(args[0], args[1])
    elif cmd == "maintain":
        maintain(args[0], args[1])
    elif cmd == "delete":
        delete(args[0], int(args[1]))
    elif cmd == "append_refused":
        append_refused(args[0], int(args[1]))
    elif cmd == "append":
        append(args[0], int(args[1]))
    elif cmd == "worker":
        rounds = int(args[5]) if len(args) > 5 else 1
        worker(args[0], args[1], args[2], int(args[3]), int(args[4]), rounds)
    else:
        fail(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
