#!/usr/bin/env bash
# Side-by-side comparison with Python disk-objectstore 1.5.0: sets up the Python side (a venv,
# shared with ./scripts/test.sh) if needed, builds dos-compare and runs it with the arguments
# given (see `target/release/dos-compare --help`), e.g.
#   ./scripts/compare.sh --n 20000
#   ./scripts/compare.sh --n 100000 --ops all,pack-files,maintenance,archive --repeat 3
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${DOS_VENV:-.venv}"
dos_version="1.5.0"
have_dos() {
    "$venv/bin/python" -c "
import sys, disk_objectstore
sys.exit(disk_objectstore.__version__ != '$dos_version')" 2>/dev/null
}
if ! have_dos; then
    echo "compare.sh: setting up $venv with disk-objectstore==$dos_version" >&2
    command -v python3 >/dev/null || { echo "compare.sh: python3 is required" >&2; exit 1; }
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "disk-objectstore==$dos_version"
    have_dos || { echo "compare.sh: disk-objectstore is not importable from $venv" >&2; exit 1; }
fi

cargo build --release --locked -p dos-bench --bin dos-compare
case " $* " in
    *" --python"*) exec target/release/dos-compare "$@" ;;
    *) exec target/release/dos-compare --python "$venv/bin/python" "$@" ;;
esac
