#!/usr/bin/env bash
# GET of random keys among 100k (40 connections), alone and with a PUT load
# on the same keys (10 connections) running, against one kvs-server binary
# on the embedded log; for A/B runs of the read path (docs/benchmarks.md).
#
#   scripts/bench/reads-under-writes.sh KVS_SERVER_BINARY [PORT (18080)]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1; port=${2:-18080}
B=http://127.0.0.1:$port
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
"$bin" --data-dir "$dir" --listen 127.0.0.1:$port > "$dir/out.log" 2>&1 &
pid=$!
until curl -sf $B/kvs/v1-0-0/readyz >/dev/null; do sleep 0.1; done
wrk -t1 -c50 -d6s -s "$here/kvs-fill.lua" $B >/dev/null
rate() { awk '/Requests\/sec/ {print $2}'; }
alone=$(wrk -t1 -c40 -d8s -s "$here/kvs-get.lua" $B | rate)
wrk -t1 -c10 -d10s -s "$here/kvs-put.lua" $B > "$dir/put.txt" &
writer=$!
sleep 1
loaded=$(wrk -t1 -c40 -d8s -s "$here/kvs-get.lua" $B | rate)
wait $writer
echo "GET alone $alone/s; GET with PUT load $loaded/s; PUT meanwhile $(rate < "$dir/put.txt")/s"
