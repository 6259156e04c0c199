"""Build AiiDA-like archives, normal and hostile, for dos-archive's tests.

    make_archive.py SCENARIO OUT.aiida

Prints one JSON line: {"objects": {key: [size, sha256]}, "bad": [entry names expected to be
rejected], "ignored": N}. Normal archives imitate aiida-core: repo/<sha256> entries first, then
db.sqlite3, then metadata.json STORED; the central directory starts with metadata.json and
db.sqlite3.
"""

import hashlib
import io
import json
import os
import random
import sqlite3
import struct
import sys
import tempfile
import zipfile
import zlib


def objects(seed, n=60):
    rng = random.Random(seed)
    out = [b"", b"x"]
    for i in range(n):
        if i % 3 == 0:
            out.append(rng.randbytes(rng.randint(1, 4000)))
        else:
            out.append(f"iteration {i} energy {rng.random()}\n".encode() * rng.randint(1, 400))
    out.append(b"large object " * 120_000)  # ~1.5 MB: above small pipeline thresholds
    uniq = {}
    for o in out:
        uniq[hashlib.sha256(o).hexdigest()] = o
    return uniq


def make_db(path, keys):
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE db_dbnode (id INTEGER PRIMARY KEY, uuid VARCHAR(32), "
        "repository_metadata JSON NOT NULL)"
    )
    keys = sorted(keys)
    for i in range(0, len(keys), 4):
        tree = {"o": {f"file{j}": {"k": k} for j, k in enumerate(keys[i : i + 4])}}
        con.execute("INSERT INTO db_dbnode (uuid, repository_metadata) VALUES (?, ?)",
                    (f"{i:032x}", json.dumps(tree)))
    con.commit()
    con.close()


META = json.dumps({"export_version": "main_0001", "aiida_version": "2.9.4", "key_format": "sha256"})


def aiida_zip(out, objs, *, stream=None, level=6, method=zipfile.ZIP_DEFLATED, force_zip64=False,
              db_keys=None, meta=META, extra_entries=(), extra_field=b""):
    """Write like aiida: repo entries, then db, then metadata; CD order metadata, db, repo."""
    target = stream if stream is not None else open(out, "wb")
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "db.sqlite3")
        make_db(db, objs.keys() if db_keys is None else db_keys)
        with zipfile.ZipFile(target, "w", compression=method, compresslevel=level) as z:
            for k, o in objs.items():
                info = zipfile.ZipInfo(f"repo/{k}")
                info.compress_type = method
                info.extra = extra_field
                with z.open(info, "w", force_zip64=force_zip64) as fh:
                    fh.write(o)
            for name, data in extra_entries:
                z.writestr(name, data)
            z.write(db, "db.sqlite3")
            z.writestr(zipfile.ZipInfo("metadata.json"), meta, compress_type=zipfile.ZIP_STORED)
            order = {"metadata.json": 0, "db.sqlite3": 1}
            z.filelist.sort(key=lambda i: order.get(i.filename, 2))
    if stream is None:
        target.close()


class NoSeek(io.RawIOBase):
    """A write-only, non-seekable stream: zipfile then writes data descriptors."""

    def __init__(self, fh):
        self.fh = fh

    def writable(self):
        return True

    def write(self, b):
        return self.fh.write(b)

    def flush(self):
        self.fh.flush()


def manifest(objs):
    return {k: [len(o), hashlib.sha256(o).hexdigest()] for k, o in objs.items()}


# ---- hand-made zips for crafted attacks --------------------------------------------------------

def local(name, data, method=0, crc=None, csize=None, usize=None, flags=0):
    crc = zlib.crc32(data) if crc is None else crc
    csize = len(data) if csize is None else csize
    usize = len(data) if usize is None else usize
    n = name.encode()
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0x21, crc, csize, usize,
                       len(n), 0) + n


def central(name, offset, data_len, method=0, crc=0, usize=None, flags=0):
    n = name.encode()
    usize = data_len if usize is None else usize
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, method, 0, 0x21, crc,
                       data_len, usize, len(n), 0, 0, 0, 0, 0, offset) + n


def eocd(count, cd_size, cd_offset):
    return struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, cd_size, cd_offset, 0)


def crafted(parts_and_cd):
    """Body and central records, with a metadata.json entry appended (it must be there for the
    importer to get to the entry under test)."""
    body, cds = parts_and_cd
    meta = META.encode()
    cds = [central("metadata.json", len(body), len(meta), crc=zlib.crc32(meta))] + cds
    body = body + local("metadata.json", meta) + meta
    cd = b"".join(cds)
    return body + cd + eocd(len(cds), len(cd), len(body))


def main():
    scenario, out = sys.argv[1], sys.argv[2]
    objs = objects(sum(scenario.encode()))
    bad, ignored = [], 2
    if scenario == "plain":
        aiida_zip(out, objs)
    elif scenario == "stored":
        aiida_zip(out, objs, method=zipfile.ZIP_STORED, level=None)
    elif scenario == "descriptors":
        with open(out, "wb") as fh:
            aiida_zip(out, objs, stream=NoSeek(fh))
    elif scenario == "force-zip64":
        aiida_zip(out, objs, force_zip64=True)
    elif scenario == "long-extra":
        # An unknown 300-byte extra field (id 0xCAFE) in every repo entry's headers: longer than
        # what the reader fetches along with a local header in its first read.
        aiida_zip(out, objs, extra_field=struct.pack("<HH", 0xCAFE, 300) + bytes(range(256)) + bytes(44))
    elif scenario == "many":
        objs = {hashlib.sha256(str(i).encode()).hexdigest(): str(i).encode() for i in range(70_000)}
        aiida_zip(out, objs, level=1)
    elif scenario == "foreign":
        # macOS re-zip style extras and hostile names: all ignored, never used as paths.
        extra = [("__MACOSX/._metadata.json", b"junk"), ("repo/", b""), ("../evil.txt", b"x"),
                 ("/etc/passwd", b"x"), ("repo\\..\\x", b"x"), ("repo/NOTAHASH", b"x"),
                 ("repo/" + "A" * 64, b"upper-case key")]
        aiida_zip(out, objs, extra_entries=extra)
        ignored += len(extra)
    elif scenario == "referenced":
        keys = sorted(objs)
        referenced = keys[: len(keys) // 2] + ["f" * 64]  # one referenced key is absent
        aiida_zip(out, objs, db_keys=referenced)
    elif scenario == "bad-crc":
        aiida_zip(out, objs, method=zipfile.ZIP_STORED, level=None)
        victim = next(k for k, o in objs.items() if len(o) > 100)
        data = bytearray(open(out, "rb").read())
        z = zipfile.ZipFile(out)
        info = z.getinfo(f"repo/{victim}")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        data[start + 50] ^= 0xFF
        open(out, "wb").write(bytes(data))
        bad.append(f"repo/{victim}")
        objs.pop(victim)
    elif scenario == "bad-local-header":
        # One entry's local header names another file: found when that entry is read (the
        # importer reads local headers lazily), so only that entry fails.
        aiida_zip(out, objs)
        victim = next(k for k, o in objs.items() if len(o) > 100)
        data = bytearray(open(out, "rb").read())
        info = zipfile.ZipFile(out).getinfo(f"repo/{victim}")
        name_at = info.header_offset + 30 + len("repo/")
        data[name_at] = ord("0") if data[name_at] != ord("0") else ord("1")
        open(out, "wb").write(bytes(data))
        bad.append(f"repo/{victim}")
        objs.pop(victim)
    elif scenario == "wrong-content":
        victim = next(k for k, o in objs.items() if len(o) > 100)
        objs2 = dict(objs)
        objs2[victim] = b"not what the name says"
        aiida_zip(out, objs2)
        bad.append(f"repo/{victim}")
        objs.pop(victim)
    elif scenario == "bomb":
        # An entry that inflates past its declared size (both headers lie).
        aiida_zip(out, objs)
        victim = max(objs, key=lambda k: len(objs[k]))
        data = bytearray(open(out, "rb").read())
        z = zipfile.ZipFile(out)
        info = z.getinfo(f"repo/{victim}")
        declared = info.compress_size + 10
        struct.pack_into("<I", data, info.header_offset + 22, declared)
        # patch the central record of the victim
        name = f"repo/{victim}".encode()
        pos = data.find(struct.pack("<I", 0x02014B50), z.start_dir)
        while pos != -1:
            nlen = struct.unpack_from("<H", data, pos + 28)[0]
            if bytes(data[pos + 46 : pos + 46 + nlen]) == name:
                struct.pack_into("<I", data, pos + 24, declared)
                break
            pos = data.find(struct.pack("<I", 0x02014B50), pos + 4)
        open(out, "wb").write(bytes(data))
        bad.append(f"repo/{victim}")
        objs.pop(victim)
    elif scenario == "bzip2":
        aiida_zip(out, objs)
        with zipfile.ZipFile(out, "a") as z:
            o = b"compressed with bzip2"
            k = hashlib.sha256(o).hexdigest()
            z.writestr(f"repo/{k}", o, compress_type=zipfile.ZIP_BZIP2)
            bad.append(f"repo/{k}")
    elif scenario == "encrypted":
        o = b"secret content"
        k = hashlib.sha256(o).hexdigest()
        lh = local(f"repo/{k}", o, flags=1)
        body = lh + o
        cd = central(f"repo/{k}", 0, len(o), crc=zlib.crc32(o), flags=1)
        open(out, "wb").write(crafted((body, [cd])))
        objs = {}
        bad.append(f"repo/{k}")
        ignored = 0
    elif scenario == "duplicate":
        aiida_zip(out, objs)
        with zipfile.ZipFile(out, "a") as z:
            import warnings
            warnings.simplefilter("ignore")
            z.writestr(f"repo/{next(iter(objs))}", b"shadowing content")
    elif scenario == "duplicate-other":
        aiida_zip(out, objs)
        with zipfile.ZipFile(out, "a") as z:
            import warnings
            warnings.simplefilter("ignore")
            z.writestr("metadata.json", b"{}")
    elif scenario == "overlap":
        # Entry B's local header sits inside entry A's data.
        b_data = b"B" * 10
        kb = hashlib.sha256(b_data).hexdigest()
        inner = local(f"repo/{kb}", b_data) + b_data
        a_data = b"A" * 20 + inner + b"A" * 20
        ka = hashlib.sha256(a_data).hexdigest()
        la = local(f"repo/{ka}", a_data)
        body = la + a_data
        b_off = len(la) + 20
        cds = [central(f"repo/{ka}", 0, len(a_data), crc=zlib.crc32(a_data)),
               central(f"repo/{kb}", b_off, len(b_data), crc=zlib.crc32(b_data))]
        open(out, "wb").write(crafted((body, cds)))
    elif scenario == "truncated":
        aiida_zip(out, objs)
        data = open(out, "rb").read()
        open(out, "wb").write(data[: len(data) * 2 // 3])
    elif scenario == "lying-zip64":
        aiida_zip(out, objs)
        data = bytearray(open(out, "rb").read())
        end = data.rfind(struct.pack("<I", 0x06054B50))
        locator = struct.pack("<IIQI", 0x07064B50, 0, len(data) * 10, 1)
        struct.pack_into("<HH", data, end + 8, 0xFFFF, 0xFFFF)
        data = data[:end] + locator + data[end:]
        open(out, "wb").write(bytes(data))
    elif scenario == "ratio-lie":
        o = b"tiny"
        k = hashlib.sha256(o).hexdigest()
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        z = c.compress(o) + c.flush()
        lh = local(f"repo/{k}", z, method=8, crc=zlib.crc32(o), usize=0xFFFFFFFE)
        cd = central(f"repo/{k}", 0, len(z), method=8, crc=zlib.crc32(o), usize=0xFFFFFFFE)
        open(out, "wb").write(crafted((lh + z, [cd])))
    elif scenario == "legacy":
        aiida_zip(out, objs, meta=json.dumps({"export_version": "0.13"}))
    else:
        sys.exit(f"unknown scenario {scenario}")
    print(json.dumps({"objects": manifest(objs), "bad": bad, "ignored": ignored}))


if __name__ == "__main__":
    main()
