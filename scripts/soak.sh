#!/usr/bin/env bash
# The soak of docs/soak.md: SECONDS (default 300) of mixed reads and writes
# on kvs-server over 100k keys while txn-server is killed (SIGKILL) and
# restarted twice, then kvs-server's memory compared with txn-server's log
# and its resident memory checked. Builds the release binaries first.
# Prints the report, also kept in target/soak/<time>.txt; exits non-zero
# when a check fails.
#
#   scripts/soak.sh [SECONDS] [more `kvs-bench soak` flags, e.g. --keys 500000]
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-300}
shift || true
cargo build --release --locked --bins -p kvs-server -p txn-server -p kvs-bench
mkdir -p target/soak
out=target/soak/$(date +%Y%m%d-%H%M%S).txt
# Binaries default to the ones beside kvs-bench: target/release.
status=0
target/release/kvs-bench soak --duration "$secs" "$@" | tee "$out" || status=$?
echo "report: $out"
exit "$status"
