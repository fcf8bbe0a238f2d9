#!/usr/bin/env bash
# A bounded run of every fuzz target: builds them with cargo-fuzz (libFuzzer,
# AddressSanitizer), replays every saved regression input, then fuzzes each
# target for SECONDS from its checked-in seed corpus, and prints one line per
# target. Exits non-zero when any target crashes, leaks past the memory
# limit or hangs.
#
#   fuzz/run.sh [SECONDS-PER-TARGET (default 10)] [TARGET...]
#   fuzz/run.sh install    only installs cargo-fuzz when it is missing
#
# Environment: FUZZ_SANITIZER (address, the default, or none),
# FUZZ_RSS_LIMIT_MB (2048), FUZZ_TIMEOUT (seconds one input may take, 10).
# See fuzz/README.md for longer runs.
set -euo pipefail
cd "$(dirname "$0")"

sanitizer=${FUZZ_SANITIZER:-address}
rss=${FUZZ_RSS_LIMIT_MB:-2048}
per_input=${FUZZ_TIMEOUT:-10}
# cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses); the stable
# toolchain accepts them when told it is bootstrapping.
export RUSTC_BOOTSTRAP=1

cargo_fuzz_version=0.13.2
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz $cargo_fuzz_version"
    cargo install --quiet --locked cargo-fuzz --version "$cargo_fuzz_version"
fi
[ "${1:-}" = install ] && exit 0

secs=${1:-10}
shift || true
all_targets=(log_record log_file rest_values proto_txn)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

echo "building ${#targets[@]} fuzz targets (sanitizer: $sanitizer)"
for t in "${targets[@]}"; do
    cargo fuzz build -O --sanitizer "$sanitizer" "$t"
done

work=target/fuzz-run
mkdir -p "$work"
# Scratch files of the log_file target (a log per process), in memory when
# the machine has /dev/shm, removed at the end.
KVS_FUZZ_TMPDIR=$(mktemp -d /dev/shm/kvs-fuzz.XXXXXX 2>/dev/null || mktemp -d)
export KVS_FUZZ_TMPDIR
trap 'rm -rf "$KVS_FUZZ_TMPDIR"' EXIT
failed=0
summary=()

# Saved inputs first: each must run clean (one execution per file).
for t in "${targets[@]}"; do
    [ -d "regressions/$t" ] || continue
    inputs=(regressions/"$t"/*)
    [ -e "${inputs[0]}" ] || continue
    log="$work/$t.regressions.log"
    if cargo fuzz run -O --sanitizer "$sanitizer" "$t" "${inputs[@]}" -- \
        -rss_limit_mb="$rss" -timeout="$per_input" >"$log" 2>&1; then
        summary+=("$t: regressions ok (${#inputs[@]} inputs)")
    else
        failed=1
        summary+=("$t: REGRESSION FAILED (log: fuzz/$log)")
        tail -n 40 "$log" >&2
    fi
done

for t in "${targets[@]}"; do
    # New inputs go to a scratch corpus; the checked-in seeds stay as they are.
    scratch="$work/corpus/$t"
    mkdir -p "$scratch" "artifacts/$t"
    log="$work/$t.log"
    start=$(date +%s)
    if cargo fuzz run -O --sanitizer "$sanitizer" "$t" "$scratch" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb="$rss" -timeout="$per_input" \
        -print_final_stats=1 >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed=1
    fi
    took=$(( $(date +%s) - start ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1 || true)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
    units=$(find "$scratch" "corpus/$t" -type f | wc -l)
    line="$t: $status, ${runs:-?} runs in ${took}s, coverage ${cov:-?}, corpus $units"
    if [ "$status" != ok ]; then
        crash=$(grep -o 'artifacts/[^ ]*' "$log" | tail -n 1 || true)
        line="$line, input: fuzz/${crash:-artifacts/$t/}, log: fuzz/$log"
        grep -m 1 -A 3 -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer" "$log" >&2 || tail -n 40 "$log" >&2
    fi
    summary+=("$line")
done

echo
printf '%s\n' "${summary[@]}"
if [ "$failed" != 0 ]; then
    echo "fuzzing found a failure; from the repository root, reproduce it with: RUSTC_BOOTSTRAP=1 cargo fuzz run -O TARGET fuzz/artifacts/TARGET/<input> (see fuzz/README.md)" >&2
    exit 1
fi
