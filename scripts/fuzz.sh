#!/usr/bin/env bash
# Run the cargo-fuzz targets of fuzz/ for a while each and summarise.
#
#   scripts/fuzz.sh SECONDS [TARGET...] [--json FILE] [--jobs N] [--sanitizer address|none]
#                   [--no-merge]
#
# Each target (default: all of `cargo fuzz list`) runs for SECONDS on its corpus folder
# fuzz/corpus/<target>/ (new inputs are added there), with -rss_limit_mb=2048, a per-target
# -max_len (corpus files stay small) and -timeout=10. With --jobs N > 1 (default: the number of
# cores) libFuzzer runs N fuzzing processes (-fork=N) and keeps going after a crash, so one run
# collects several findings; the executions reported are the sum over all of them. Afterwards
# the corpus is minimised (libFuzzer -merge=1: the inputs keeping the coverage of all, and every
# hand-named seed) unless --no-merge; SECONDS = 0 only minimises.
#
# Every crash, timeout and out-of-memory artifact is copied into fuzz/regressions/<target>/
# (where `cargo test -p dos-fuzz --test replay` replays it) and summarised by the place it fails
# at; the script then exits 1. A JSON summary (per target: executions, exec/s, peak RSS, new
# corpus inputs, findings) goes to --json FILE, by default fuzz/results/<commit>-<date>.json.
#
# Toolchain: cargo fuzz needs nightly features. On a stable toolchain the script sets
# RUSTC_BOOTSTRAP=1, which unlocks them (-Zsanitizer and friends); AddressSanitizer works that
# way (the stable rust-std ships librustc-stable_rt.asan.a). ASan reports a false
# odr-violation in the bundled SQLite amalgamation (two static arrays named aiOff), so
# detect_odr_violation=0 is set. Builds use -O with debug assertions (-a): an arithmetic
# overflow on hostile input is a finding.
set -euo pipefail

usage() {
    sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=""
targets=()
json=""
jobs=$(nproc 2>/dev/null || echo 1)
sanitizer=address
merge=1
while [ $# -gt 0 ]; do
    case "$1" in
        --json) json=${2:?}; shift 2 ;;
        --jobs) jobs=${2:?}; shift 2 ;;
        --sanitizer) sanitizer=${2:?}; shift 2 ;;
        --no-merge) merge=0; shift ;;
        -h|--help) usage ;;
        -*) echo "unknown option $1" >&2; usage ;;
        *)
            if [ -z "$seconds" ]; then seconds=$1; else targets+=("$1"); fi
            shift ;;
    esac
done
[[ "$seconds" =~ ^[0-9]+$ ]] || usage

cd "$root/fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
if ! rustc -V | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi
export ASAN_OPTIONS="detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

echo "building (sanitizer: $sanitizer)" >&2
cargo fuzz build -O -a --sanitizer "$sanitizer" >&2
host=$(rustc -vV | sed -n 's/^host: //p')
bindir="$root/fuzz/target/$host/release"
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$root" status --porcelain 2>/dev/null | head -1)" ]; then
    commit="$commit-dirty"
fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)
if [ -z "$json" ]; then
    mkdir -p "$root/fuzz/results"
    json="$root/fuzz/results/$commit-$stamp.json"
fi

max_len_of() {
    case "$1" in
        config_parse|config_open) echo 1024 ;;
        index_rows) echo 4096 ;;
        loose_folder) echo 2048 ;;
        *) echo 8192 ;;
    esac
}

json_str() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\t'/ }
    s=${s//$'\n'/ }
    printf '"%s"' "$s"
}

# What an artifact makes fail: the panic location and message, or the sanitizer's summary.
triage() {
    local bin=$1 input=$2 out
    out=$(timeout 120 "$bin" "$input" -runs=1 -rss_limit_mb=2048 -timeout=30 2>&1 || true)
    local panic
    panic=$(printf '%s\n' "$out" | grep -m1 -A1 "panicked at" | tr '\n' ' ' | sed "s/^thread '[^']*' ([0-9]*) //")
    if [ -n "$panic" ]; then
        printf '%s' "$panic"
        return
    fi
    printf '%s\n' "$out" | grep -m1 -E "SUMMARY:|ERROR: libFuzzer|out-of-memory" || echo "did not reproduce"
}

# Keep the inputs of the corpus that add coverage, and every seed with a name of its own
# (libFuzzer names the inputs it adds by their SHA-1).
merge_corpus() {
    local bin=$1 corpus=$2 log=$3 max_len=$4 out in
    out=$(mktemp -d)
    in=$(mktemp -d)
    find "$corpus" -maxdepth 1 -regextype posix-extended -type f ! -regex '.*/[0-9a-f]{40}' -exec cp {} "$out/" \;
    find "$corpus" -maxdepth 1 -regextype posix-extended -type f -regex '.*/[0-9a-f]{40}' -exec cp {} "$in/" \;
    if "$bin" -merge=1 -rss_limit_mb=2048 -max_len="$max_len" -timeout=10 "$out" "$in" \
        >"$log" 2>&1; then
        find "$corpus" -maxdepth 1 -type f -delete
        find "$out" -maxdepth 1 -type f -exec cp {} "$corpus/" \;
    else
        echo "  merge failed, corpus left as it is (log: ${log#"$root"/})" >&2
    fi
    rm -rf "$out" "$in"
}

failed=0
entries=()
for t in "${targets[@]}"; do
    bin="$bindir/$t"
    [ -x "$bin" ] || { echo "no fuzz binary $bin" >&2; exit 2; }
    corpus="$root/fuzz/corpus/$t"
    mkdir -p "$corpus"
    art="$root/fuzz/artifacts/$t/$stamp"
    mkdir -p "$art"
    log="$art/fuzz.log"
    before=$(find "$corpus" -type f | wc -l)
    args=(
        "$corpus" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048
        -max_len="$(max_len_of "$t")" -timeout=10 -artifact_prefix="$art/"
    )
    if [ "$jobs" -gt 1 ]; then
        args+=(-fork="$jobs" -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
    fi
    if [ "$seconds" -eq 0 ]; then
        merge_corpus "$bin" "$corpus" "$art/merge.log" "$(max_len_of "$t")"
        echo "  $t: corpus $before -> $(find "$corpus" -type f | wc -l) after merging" >&2
        continue
    fi
    echo "fuzzing $t for ${seconds}s (jobs: $jobs)" >&2
    start=$(date +%s.%N)
    rssfile="$art/maxrss"
    if [ -x /usr/bin/time ]; then
        # %M: the largest resident set of the process tree (wait4 reports the children's).
        /usr/bin/time -f '%M' -o "$rssfile" timeout $((seconds + 120)) "$bin" "${args[@]}" >"$log" 2>&1 || true
    else
        timeout $((seconds + 120)) "$bin" "${args[@]}" >"$log" 2>&1 || true
    fi
    end=$(date +%s.%N)
    wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    fuzz_time=$(awk -v w="$wall" -v s="$seconds" 'BEGIN { print (w < s ? w : s) }')
    if [ "$jobs" -gt 1 ]; then
        # The last status line of the fork-mode parent:
        # "#<executions, all jobs>: cov: ... time: <seconds>s job: ...".
        last=$(grep -E '^#[0-9]+:' "$log" | tail -1 || true)
        execs=$(printf '%s' "$last" | sed -n 's/^#\([0-9]*\):.*/\1/p')
        t_last=$(printf '%s' "$last" | sed -n 's/.* time: \([0-9]*\)s.*/\1/p')
        [ -n "$t_last" ] && [ "$t_last" -gt 0 ] && fuzz_time=$t_last
    else
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    fi
    execs=${execs:-0}
    rate=$(awk -v n="$execs" -v s="$fuzz_time" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    rss_mb=""
    if [ -s "$rssfile" ]; then
        rss_mb=$(awk 'END { printf "%.0f", $1 / 1024 }' "$rssfile")
    fi
    stat_rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | sort -n | tail -1)
    rss_mb=${rss_mb:-${stat_rss:-0}}
    after=$(find "$corpus" -type f | wc -l)
    merged=$after
    if [ "$merge" -eq 1 ]; then
        merge_corpus "$bin" "$corpus" "$art/merge.log" "$(max_len_of "$t")"
        merged=$(find "$corpus" -type f | wc -l)
    fi
    findings=()
    mkdir -p "$root/fuzz/regressions/$t"
    for f in "$art"/crash-* "$art"/timeout-* "$art"/oom-* "$art"/leak-*; do
        [ -f "$f" ] || continue
        name=$(basename "$f")
        cp -n "$f" "$root/fuzz/regressions/$t/$name"
        what=$(triage "$bin" "$f")
        echo "  FINDING $t: $name: $what" >&2
        findings+=("{\"artifact\": $(json_str "fuzz/regressions/$t/$name"), \"what\": $(json_str "$what")}")
    done
    if [ ${#findings[@]} -gt 0 ]; then
        failed=1
    fi
    echo "  $t: $execs executions in ${fuzz_time}s = $rate exec/s, peak RSS ${rss_mb} MB," \
        "corpus $before -> $after ($merged after merging), ${#findings[@]} findings" \
        "(log: ${log#"$root"/})" >&2
    list=$(IFS=,; echo "${findings[*]:-}")
    entries+=("$(json_str "$t"): {\"seconds\": $seconds, \"wall_seconds\": $wall, \"executions\": $execs, \"exec_per_sec\": $rate, \"peak_rss_mb\": $rss_mb, \"corpus_before\": $before, \"corpus_after\": $after, \"new_corpus_inputs\": $((after - before)), \"corpus_after_merge\": $merged, \"findings\": [$list]}")
done

# Scratch folders of finished fuzzing processes (the targets sweep them too, at their start).
for d in /dev/shm/dos-fuzz/*; do
    [ -d "$d" ] || continue
    pid=$(basename "$d" | awk -F- '{ print $(NF - 1) }')
    [[ "$pid" =~ ^[0-9]+$ ]] && [ ! -e "/proc/$pid" ] && rm -rf "$d"
done

if [ "$seconds" -eq 0 ]; then
    exit 0
fi
mkdir -p "$(dirname "$json")"
{
    printf '{"commit": %s, "date": %s, "toolchain": %s, "sanitizer": %s, "jobs": %s,' \
        "$(json_str "$commit")" "$(json_str "$stamp")" "$(json_str "$(rustc -V)")" \
        "$(json_str "$sanitizer")" "$jobs"
    printf ' "rss_limit_mb": 2048, "targets": {'
    (IFS=,; printf '%s' "${entries[*]:-}")
    printf '}}\n'
} >"$json"
echo "summary: ${json#"$root"/}" >&2
exit $failed
