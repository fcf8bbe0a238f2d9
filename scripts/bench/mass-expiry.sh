#!/usr/bin/env bash
# GET throughput and latency while a million keys that expired while the
# server was down are expired at its start, and the same without them
# (docs/benchmarks.md). Takes about two minutes.
#
#   scripts/bench/mass-expiry.sh KVS_SERVER_BINARY [PORT (18081)]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1; port=${2:-18081}
B=http://127.0.0.1:$port
up() {
    "$bin" --data-dir "$1" --listen 127.0.0.1:$port > "$1/out.log" 2>&1 &
    pid=$!
    until curl -sf $B/kvs/v1-0-0/readyz >/dev/null; do sleep 0.1; done
}
for mode in plain expiring; do
    dir=$(mktemp -d)
    up "$dir"
    wrk -t1 -c50 -d6s -s "$here/kvs-fill.lua" $B >/dev/null
    if [ $mode = expiring ]; then
        start=$(date +%s)
        wrk -t1 -c50 -d40s -s "$here/kvs-ttl-fill.lua" $B >/dev/null
    fi
    kill $pid; wait $pid || true
    # Every TTL is past before the server is back.
    if [ $mode = expiring ]; then
        while [ $(( $(date +%s) - start )) -lt 55 ]; do sleep 1; done
    fi
    t0=$(date +%s.%N); up "$dir"; t1=$(date +%s.%N)
    echo "$mode: ready in $(echo "$t1 - $t0" | bc) s"
    wrk -t1 -c40 -d10s --latency -s "$here/kvs-get.lua" $B | grep -E "Requests/sec|  50%|  99%|Latency  "
    curl -s $B/kvs/v1-0-0/metrics | grep -E '^kvs_expired_keys_total|^kvs_keys\{type="str"\}'
    kill $pid; wait $pid || true
    rm -rf "$dir"
done
