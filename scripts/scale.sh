#!/usr/bin/env bash
# The scale benchmark (`dos-compare scale`, see benches/src/bin/dos-compare/scale/mod.rs), built
# from a clean export of one commit, so that what is measured is that commit's dos-core whatever
# the work tree holds; the benchmark's own code (benches/) is taken from the work tree.
#
#   scripts/scale.sh --objects 1000000,10000000 --data-dir /work/scale-data [--python-timeout 900] \
#       [--python-ops-at 10000000=ls,status,validate,meta] ...
#
# Environment: DOS_SCALE_REV (default HEAD), DOS_SCALE_BUILD (the export and its target folder,
# default /work/scale-build), DOS_PYTHON (default .venv/bin/python, which must have
# disk-objectstore 1.5.0). The results go to benches/results/scale-<short commit>-<date>.json
# unless --json is given.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
rev="${DOS_SCALE_REV:-HEAD}"
build="${DOS_SCALE_BUILD:-/work/scale-build}"
python="${DOS_PYTHON:-$repo/.venv/bin/python}"
commit="$(git -C "$repo" rev-parse --short "$rev")"
src="$build/src-$commit"

rm -rf "$src"
mkdir -p "$src"
git -C "$repo" archive "$rev" | tar -x -C "$src"
rm -rf "$src/benches"
cp -a "$repo/benches" "$src/benches"
printf '%s\n%s\n' "$commit" \
    "dos crates from git archive $commit; benches/ from the work tree of $repo" \
    > "$src/.source-commit"
CARGO_TARGET_DIR="$build/target" cargo build --release -p dos-bench --manifest-path "$src/Cargo.toml"

args=("$@")
json=()
if [[ " ${args[*]} " != *" --json "* ]]; then
    json=(--json "$repo/benches/results/scale-$commit-$(date +%F).json")
fi
exec "$build/target/release/dos-compare" scale --python "$python" "${json[@]}" "${args[@]}"
