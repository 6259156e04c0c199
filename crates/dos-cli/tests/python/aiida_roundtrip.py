"""The real aiida-core against dos (throw-away sqlite_dos profiles under AIIDA_PATH=WORKDIR).

    aiida_roundtrip.py DOS_BINARY WORKDIR

1. Profile `src`: store nodes with files; `verdi archive create --all src.aiida`.
2. Profile `dst`: `dos import-archive src.aiida` into its container; then `verdi archive import`
   must skip every repository file, and every node's files must read back.
3. `dos export-archive` from src's container with the archive's db.sqlite3 and metadata.json;
   `verdi archive import` of that into a fresh profile `dst2`; every file must read back.
Prints one JSON line with the counts; exits non-zero on any failure.
"""

import json
import os
import re
import subprocess
import sys
import zipfile

dos, work = sys.argv[1], os.path.abspath(sys.argv[2])
env = dict(os.environ, AIIDA_PATH=work)
bindir = os.path.dirname(sys.executable)
verdi = os.path.join(bindir, "verdi")


def run(*args):
    r = subprocess.run(args, env=env, capture_output=True, text=True, cwd=work)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


def py(code):
    return run(sys.executable, "-c", code)


def container(profile):
    out = py(f"from aiida import load_profile; print(load_profile('{profile}').storage_config['filepath'])")
    return os.path.join(out.strip().splitlines()[-1], "container")


FILES = '''
import os, io, hashlib
def files(i):
    r = {"a.txt": (f"content {i}\\n" * (i * 50 + 1)).encode(), "sub/b.bin": hashlib.sha256(str(i).encode()).digest() * (60 + i),
         "shared.txt": b"shared", "empty.txt": b""}
    if i == 0:
        r["big.dat"] = b"large " * 400_000
    return r
'''

run(verdi, "presto", "--profile-name", "src")
py(FILES + '''
from aiida import load_profile, orm
load_profile("src")
for i in range(25):
    f = orm.FolderData(label=f"n{i}")
    for name, data in files(i).items():
        f.base.repository.put_object_from_bytes(data, name)
    f.store()
''')
run(verdi, "-p", "src", "archive", "create", "--all", "src.aiida")

CHECK = FILES + '''
from aiida import load_profile, orm
load_profile("{profile}")
n = 0
for (f,) in orm.QueryBuilder().append(orm.FolderData).all():
    i = int(f.label[1:])
    for name, data in files(i).items():
        got = f.base.repository.get_object_content(name, mode="rb")
        assert got == data, (f.label, name)
    n += 1
assert n == 25, n
print(n)
'''

# 2. Pre-load dst's container with dos, then let aiida import the archive.
run(verdi, "presto", "--profile-name", "dst")
dst = container("dst")
out = run(dos, "-p", dst, "import-archive", os.path.join(work, "src.aiida"), "--compress=auto",
          "--referenced-only", "--json")
imported = json.loads(out[out.index("{"):])
log = run(verdi, "-p", "dst", "archive", "import", "src.aiida")
m = re.search(r"Skipping (\d+) existing repository files", log)
if not m or int(m.group(1)) != imported["imported"] or "new repository files" in log:
    sys.exit(f"verdi did not skip every repository file (dos imported {imported['imported']}):\n{log}")
py(CHECK.replace("{profile}", "dst"))

# 3. dos exports from src's container; aiida imports that into a fresh profile.
z = zipfile.ZipFile(os.path.join(work, "src.aiida"))
for name in ("db.sqlite3", "metadata.json"):
    with open(os.path.join(work, name), "wb") as fh:
        fh.write(z.read(name))
run(dos, "-p", container("src"), "export-archive", os.path.join(work, "re.aiida"),
    "--db", os.path.join(work, "db.sqlite3"), "--metadata", os.path.join(work, "metadata.json"))
info = run(verdi, "archive", "info", "re.aiida")
assert "main_0001" in info, info
run(verdi, "presto", "--profile-name", "dst2")
log = run(verdi, "-p", "dst2", "archive", "import", "re.aiida")
m = re.search(r"Adding (\d+) new repository files", log)
if not m or int(m.group(1)) != imported["imported"]:
    sys.exit(f"unexpected import of the dos-written archive:\n{log}")
py(CHECK.replace("{profile}", "dst2"))

# 4. --metadata-from keeps the source archive's metadata.json byte for byte; without any, what
# dos writes says what is true (no aiida-core version) and aiida-core reads and imports it.
run(dos, "-p", container("src"), "export-archive", os.path.join(work, "kept.aiida"),
    "--db", os.path.join(work, "db.sqlite3"), "--metadata-from", os.path.join(work, "src.aiida"))
assert zipfile.ZipFile(os.path.join(work, "kept.aiida")).read("metadata.json") == z.read("metadata.json")
run(dos, "-p", container("src"), "export-archive", os.path.join(work, "own.aiida"),
    "--db", os.path.join(work, "db.sqlite3"))
own = json.loads(zipfile.ZipFile(os.path.join(work, "own.aiida")).read("metadata.json"))
assert "aiida_version" not in own and own["export_version"] == "main_0001", own
import datetime  # noqa: E402
datetime.datetime.fromisoformat(own["ctime"])
info = run(verdi, "archive", "info", "own.aiida")
assert "main_0001" in info, info
run(verdi, "presto", "--profile-name", "dst3")
log = run(verdi, "-p", "dst3", "archive", "import", "own.aiida")
if f"Adding {imported['imported']} new repository files" not in log:
    sys.exit(f"unexpected import of the archive with dos's own metadata:\n{log}")
print(json.dumps({"skipped_by_verdi": imported["imported"], "exported_and_imported": int(m.group(1))}))
