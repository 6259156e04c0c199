#!/usr/bin/env bash
# The whole test suite, from a fresh clone: creates what it needs (a Python venv with
# disk-objectstore 1.5.0 for the interoperability tests), then runs every test of the workspace.
# It fails loudly, never skips, when something it needs is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${DOS_VENV:-.venv}"
want="1.5.0"
have_dos() {
    "$venv/bin/python" -c "import disk_objectstore, sys; sys.exit(disk_objectstore.__version__ != '$want')" 2>/dev/null
}
if ! have_dos; then
    echo "test.sh: creating $venv with disk-objectstore==$want" >&2
    command -v python3 >/dev/null || { echo "test.sh: python3 is required" >&2; exit 1; }
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "disk-objectstore==$want"
    have_dos || { echo "test.sh: disk-objectstore $want is not importable from $venv" >&2; exit 1; }
fi
export DOS_TEST_PYTHON="$PWD/$venv/bin/python"

cargo test --workspace --locked "$@"
