#!/usr/bin/env bash
# A long mixed soak of one container (see scripts/soak.py): ./scripts/soak.sh [SECONDS] [ARGS...]
# e.g. ./scripts/soak.sh 1800 --json soak-30min.json. Needs the venv of ./scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
shift || true
cargo build --release --locked -p dos-cli
exec .venv/bin/python scripts/soak.py --seconds "$secs" --dos target/release/dos "$@"
