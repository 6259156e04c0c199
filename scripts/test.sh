#!/usr/bin/env bash
# The whole test suite, from a fresh clone: creates what it needs (a Python venv with
# disk-objectstore 1.5.0, aiida-core 2.9.4 and pytest for the interoperability tests, and the
# dos_objectstore package built from this checkout, and a local Ceph S3 server), then runs every
# test of the workspace and the Python package's tests.
# It fails loudly, never skips, when something it needs is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the AiiDA plugin tests need: rsync (`verdi storage backup` calls it) and the
# PostgreSQL server binaries (the dos.psql_dos test starts its own server on 127.0.0.1).
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    echo "test.sh: installing $* (Debian packages)" >&2
    as_root apt-get install -y -q "$@" >/dev/null \
        || { as_root apt-get update -q >/dev/null && as_root apt-get install -y -q "$@" >/dev/null; } \
        || { echo "test.sh: $* required and could not be installed" >&2; exit 1; }
}
command -v rsync >/dev/null || apt_install rsync
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && command -v psql >/dev/null || apt_install postgresql

venv="${DOS_VENV:-.venv}"
dos_version="1.5.0"
aiida_version="2.9.4"
have_deps() {
    "$venv/bin/python" -c "
import sys, disk_objectstore, aiida, pytest
sys.exit(disk_objectstore.__version__ != '$dos_version' or aiida.__version__ != '$aiida_version')" 2>/dev/null
}
if ! have_deps; then
    echo "test.sh: setting up $venv with disk-objectstore==$dos_version, aiida-core==$aiida_version" >&2
    command -v python3 >/dev/null || { echo "test.sh: python3 is required" >&2; exit 1; }
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "disk-objectstore==$dos_version" "aiida-core==$aiida_version" pytest
    have_deps || { echo "test.sh: the Python dependencies are not importable from $venv" >&2; exit 1; }
fi
export DOS_TEST_PYTHON="$PWD/$venv/bin/python"

# The Python package, built from this checkout (the one pip command of its README).
echo "test.sh: building dos_objectstore into $venv" >&2
# Built with cargo's dev profile (dependencies optimised, as the workspace's tests build them):
# the tests then reuse its artifacts instead of compiling everything again for release.
MATURIN_PEP517_ARGS="--profile dev" \
    "$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps ./crates/dos-py
"$venv/bin/python" -c "import dos_objectstore" \
    || { echo "test.sh: dos_objectstore is not importable from $venv" >&2; exit 1; }

# A real S3 server for the remote-pack tests: a single-node Ceph with radosgw (Debian's
# packages, installed by the script when missing), on 127.0.0.1 only, stopped by its pids when
# the suite ends, whatever way it ends.
ceph_dir="$PWD/target/ceph-s3"
echo "test.sh: starting Ceph (radosgw) in $ceph_dir" >&2
scripts/ceph-s3.sh start "$ceph_dir" dos-test >/dev/null \
    || { echo "test.sh: the S3 server (Ceph) could not be started" >&2; exit 1; }
trap 'scripts/ceph-s3.sh stop "$ceph_dir" --rm >/dev/null 2>&1 || true' EXIT
export DOS_TEST_S3_ENV="$ceph_dir/s3.env" DOS_TEST_CEPH_DIR="$ceph_dir"

cargo test --workspace --locked "$@"
"$venv/bin/python" -m pytest -q crates/dos-py/tests

# The short mixed soak (scripts/soak.sh runs long ones): Python and dos writers and readers,
# dos maintenance in a loop, every read checked; fails if anything is lost or wrong.
echo "test.sh: 60 s mixed soak" >&2
"$venv/bin/python" scripts/soak.py --seconds 60 --dos target/debug/dos > target/soak-60s.json \
    || { cat target/soak-60s.json; echo "test.sh: the soak lost or broke something" >&2; exit 1; }
"$venv/bin/python" -c "
import json; d = json.load(open('target/soak-60s.json'))
print('soak: %(operations)d operations, %(objects_recorded)d objects, %(reads_checked)d reads checked, %(objects_lost)d lost, %(errors)d errors' % d)"

# The same with packs offloaded to the S3 server and fetched back in the maintenance loop, so that
# repacks, deletes, cleans, backups and readers meet packs in the bucket.
echo "test.sh: 30 s mixed soak with remote packs" >&2
"$venv/bin/python" scripts/soak.py --seconds 30 --dos target/debug/dos \
    --remote "s3://dos-test/soak-$$" --s3-env "$DOS_TEST_S3_ENV" > target/soak-remote-30s.json \
    || { cat target/soak-remote-30s.json; echo "test.sh: the remote soak lost or broke something" >&2; exit 1; }
"$venv/bin/python" -c "
import json; d = json.load(open('target/soak-remote-30s.json')); m = d['workers']['maint']
print('remote soak: %d operations, %d offloads, %d fetches, %d repacks, %d reads checked, %d lost, %d errors, %d remote objects left' % (
    d['operations'], m.get('offloads', 0), m.get('fetches', 0), m.get('repacks', 0), d['reads_checked'],
    d['objects_lost'], d['errors'], d['remote_objects_left']))"
