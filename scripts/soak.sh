#!/usr/bin/env bash
# The soak of docs/soak.md: SECONDS (default 300) of mixed reads and writes
# on kvs-server over 100k keys while txn-server is killed (SIGKILL) and
# restarted twice, then kvs-server's memory compared with txn-server's log
# and its resident memory checked. It is the ignored test
# tests::the_full_soak_passes of txn-server's soak test binary, run on the
# release binaries. Prints the report, also kept in target/soak/<time>.txt
# (and .json); exits non-zero when a check fails.
#
#   scripts/soak.sh [SECONDS]
#   KVS_SOAK_KEYS=500000 KVS_SOAK_FAULT=stop KVS_SOAK_RESTARTS=3 KVS_SOAK_DOWNTIME=4 scripts/soak.sh 300
set -euo pipefail
cd "$(dirname "$0")/.."

export KVS_SOAK_SECONDS=${1:-300}
# The test finds the binaries in the target directory it was built into.
cargo build --release --locked --bins -p kvs-server -p txn-server
mkdir -p target/soak
out=target/soak/$(date +%Y%m%d-%H%M%S)
export KVS_SOAK_JSON=$PWD/$out.json
status=0
cargo test --release --locked -p txn-server --test soak tests::the_full_soak_passes \
    -- --ignored --nocapture --exact | tee "$out.txt" || status=$?
echo "report: $out.txt"
exit "$status"
