#!/usr/bin/env bash
# The main job end to end, on data the project generates: AiiDA-like repository files
# (default 20,000; DOS_DEMO_N to change) go into dos containers loose and straight into packs,
# get packed, deleted in part, repacked and validated; an AiiDA archive made from them is
# imported straight into packs (verified, deflate streams passed through) and exported again.
# Every object is checked against the generator's manifest. With .venv present
# (./scripts/test.sh creates it), Python disk-objectstore validates the results too.
set -euo pipefail
cd "$(dirname "$0")/.."

n="${DOS_DEMO_N:-20000}"
work="${DOS_DEMO_DIR:-target/demo}"
cargo build --release --locked -q -p dos-cli -p dos-bench
dos="$PWD/target/release/dos"
target/release/dos-compare gen --n "$n" --data-dir bench-data >/dev/null
data="bench-data/dataset-n$n-s42"
rm -rf "$work" && mkdir -p "$work"
awk -F'\t' 'NR > 1 { print "'"$data"'/" $1 }' "$data/manifest.tsv" > "$work/files.txt"
awk -F'\t' 'NR > 1 { print $3 }' "$data/manifest.tsv" | sort -u > "$work/expected.txt"
echo "data set: $n files, $(wc -l < "$work/expected.txt") distinct objects, $(du -sh "$data/files" | cut -f1)"

t() { # run and time a command
    local s=$(date +%s%N); "$@"; local ms=$(( ($(date +%s%N) - s) / 1000000 ))
    printf '  %-60s %5d.%03d s\n' "$(echo "$*" | sed "s|$dos|dos|; s|$PWD/||g" | cut -c1-90)" $((ms / 1000)) $((ms % 1000)) >&2
}
check() { # every expected object, and nothing else, byte-exact
    "$dos" -p "$1" ls > "$work/listed.txt"
    diff -q "$work/expected.txt" "$work/listed.txt" >/dev/null || { echo "MISMATCH in $1"; exit 1; }
    "$dos" -p "$1" validate > "$work/validate.txt" || { cat "$work/validate.txt"; exit 1; }
    echo "  ok: $(wc -l < "$work/listed.txt") objects listed, $(head -1 "$work/validate.txt")"
}

echo "1. loose writes (batched durability), then pack with compression and loose cleanup"
a="$work/loose-then-pack"
"$dos" -q -p "$a" init >/dev/null
t "$dos" -q -p "$a" add --files-from "$work/files.txt" > /dev/null
t "$dos" -q -p "$a" pack --clean-loose --compress auto > /dev/null
check "$a"

echo "2. straight into packs"
b="$work/direct"
"$dos" -q -p "$b" init >/dev/null
t "$dos" -q -p "$b" add --pack --compress=auto --files-from "$work/files.txt" > "$work/added.txt"
# Every printed key is the sha256 of its file.
paste <(cut -d' ' -f1 "$work/added.txt") <(awk -F'\t' 'NR > 1 { print $3 }' "$data/manifest.tsv") \
    | awk '$1 != $2 { bad++ } END { if (bad) { print "  WRONG KEYS: " bad; exit 1 } }'
check "$b"

echo "3. delete 10%, repack, validate"
awk 'NR % 10 == 0' "$work/expected.txt" > "$work/doomed.txt"
t "$dos" -q -p "$b" delete $(cat "$work/doomed.txt") > /dev/null
comm -23 "$work/expected.txt" "$work/doomed.txt" > "$work/kept.txt" && mv "$work/kept.txt" "$work/expected.txt"
t "$dos" -q -p "$b" repack > /dev/null
check "$b"
"$dos" -p "$b" status

echo "4. an AiiDA archive of the data set, imported straight into compressed packs, exported again"
target/release/dos-compare gen-archive --n "$n" --data-dir bench-data >/dev/null
archive="$data/archive-l6.aiida"
"$dos" archive-info "$archive" | sed 's/^/  /'
z="$work/from-archive"
"$dos" -q -p "$z" init >/dev/null
awk -F'\t' 'NR > 1 { print $3 }' "$data/manifest.tsv" | sort -u > "$work/expected.txt"
t "$dos" -q -p "$z" import-archive "$archive" --compress=yes --referenced-only
check "$z"
python3 -c "import zipfile, sys; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], 'wb').write(z.read('db.sqlite3'))" "$archive" "$work/db.sqlite3"
t "$dos" -q -p "$z" export-archive "$work/again.aiida" --db "$work/db.sqlite3"
"$dos" archive-info "$work/again.aiida" | sed -n '1,3p' | sed 's/^/  /'

if [ -x .venv/bin/python ]; then
    echo "5. Python disk-objectstore reads and validates the containers"
    for c in "$a" "$b" "$z"; do
        .venv/bin/python - "$c" <<'PY'
import sys
from disk_objectstore import Container
with Container(sys.argv[1]) as c:
    issues = c.validate()
    n = sum(1 for _ in c.list_all_objects())
    assert issues.is_valid(), issues
    print(f"  ok: Python sees {n} objects in {sys.argv[1]}, validate clean")
PY
    done
else
    echo "5. Python check not run: no .venv (./scripts/test.sh creates it)"
fi
echo "done"
