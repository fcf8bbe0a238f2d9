#!/usr/bin/env bash
# One sitting of docs/benchmarks.md: the anchors (Redis, webdis, etcd,
# PostgreSQL's pgbench) and KVS, measured one after the other on this
# machine, 50 connections, 100k keys, 32-byte values. KVS's GET and PUT
# figures come from wrk with the Lua scripts of scripts/bench/, as webdis's
# and etcd's do; kvs-bench fills the keys and runs the mixed zipfian load wrk
# cannot express (latency percentiles by operation). The replay is timed by
# scripts/bench/ready.py on logs filled through the API, the memory read from
# /proc. Prints each figure as it comes and a table with the ratios at the
# end; raw outputs stay in target/bench/<time>/.
#
#   scripts/bench.sh [SECONDS-PER-RUN (default 10)]
#
# Environment:
#   KVS_BIN_DIR   kvs-server, txn-server, kvs-bench and kvs-certs to measure
#                 (default: target/release, built first)
#   BENCH_ANCHORS 0 to measure KVS only (for before/after comparisons)
#   BENCH_OUT     where the raw outputs go
#   BENCH_LARGE_KEYS  keys of the replay and memory measurements (default
#                 1000000, which the rows are named for; fewer for a quick
#                 check of the script)
#
# Needs the anchors from Debian's packages: redis-server (redis-server,
# redis-benchmark, redis-cli), webdis, etcd-server, wrk, postgresql (server
# binaries, psql, pgbench). As root, PostgreSQL runs as the user `postgres`.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-10}
anchors=${BENCH_ANCHORS:-1}
large=${BENCH_LARGE_KEYS:-1000000}
out=${BENCH_OUT:-target/bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -z "${KVS_BIN_DIR:-}" ]; then
    cargo build --release --locked -p kvs-server -p txn-server -p kvs-bench -p kvs-certs
fi
bins=$(cd "${KVS_BIN_DIR:-target/release}" && pwd)

need=(psql pgbench wrk)
[ "$anchors" = 1 ] && need+=(redis-server redis-benchmark redis-cli webdis etcd)
for tool in "${need[@]}"; do
    command -v "$tool" >/dev/null || {
        echo "missing $tool (Debian: apt-get install redis-server webdis etcd-server wrk postgresql)" >&2
        exit 1
    }
done
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$pg_bin/initdb" ] || { echo "PostgreSQL's server binaries (initdb) are missing" >&2; exit 1; }
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)

work=$(mktemp -d /tmp/kvs-bench.XXXXXX)
chmod 755 "$work"
pids=()
pg_data=""
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "$pg_data" ] && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}
started() { pids+=("$1"); }
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
record() {
    printf '%s\t%s\n' "$1" "$2" >>"$out/results.tsv"
    printf '  %-28s %s\n' "$1" "$2"
}
json() { python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print($2)" "$1"; }
wrk_rps() {
    if grep -q 'Non-2xx' "$1"; then
        echo "non-2xx answers in $1" >&2
        exit 1
    fi
    sed -n 's/^Requests\/sec: *//p' "$1"
}

echo "results: $out"
: >"$out/results.tsv"

# PostgreSQL: for pgbench and for txn-server.
pg_data=$work/pg/data
mkdir -p "$pg_data"
[ "$(id -u)" = 0 ] && chown -R postgres "$work/pg"
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_data" -A trust -U postgres >"$out/initdb.log"
pg_port=$(free_port)
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -w -l "$work/pg/postgres.log" \
    -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
psql_do() { psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -v ON_ERROR_STOP=1 "$@"; }
psql_do -c "CREATE DATABASE kvs" -c "CREATE TABLE bench (id bigserial PRIMARY KEY, k text NOT NULL, v text NOT NULL)"

if [ "$anchors" = 1 ]; then
    echo "== Redis $(redis-server --version | grep -o 'v=[0-9.]*')"
    redis_port=$(free_port)
    redis-server --port "$redis_port" --save '' --appendonly no --dir "$work" >"$out/redis.log" 2>&1 &
    redis_pid=$!; started $redis_pid
    wait_port "$redis_port"
    # redis-benchmark counts requests, not seconds: about SECONDS at ~150k/s.
    redis-benchmark -p "$redis_port" -c 50 -n $((secs * 150000)) -r 100000 -d 32 -t set,get --csv -q \
        >"$out/redis-benchmark.csv"
    record "redis GET" "$(sed -n 's/^"GET","\([0-9.]*\)".*/\1/p' "$out/redis-benchmark.csv")"
    record "redis SET" "$(sed -n 's/^"SET","\([0-9.]*\)".*/\1/p' "$out/redis-benchmark.csv")"

    echo "== webdis (HTTP in front of the same Redis)"
    webdis_port=$(free_port)
    cat >"$work/webdis.json" <<EOF
{"redis_host": "127.0.0.1", "redis_port": $redis_port, "http_host": "127.0.0.1",
 "http_port": $webdis_port, "threads": 2, "pool_size": 20, "daemonize": false,
 "database": 0, "verbosity": 0, "logfile": "$work/webdis.log"}
EOF
    webdis "$work/webdis.json" 2>"$out/webdis.stderr" &
    webdis_pid=$!; started $webdis_pid
    wait_port "$webdis_port"
    wrk -t 2 -c 50 -d "${secs}s" -s scripts/bench/webdis-set.lua "http://127.0.0.1:$webdis_port" >"$out/webdis-set.txt"
    record "webdis SET" "$(wrk_rps "$out/webdis-set.txt")"
    stop $webdis_pid

    echo "== Redis memory: 1M keys of 16 bytes, values of 32"
    redis-cli -p "$redis_port" FLUSHALL >/dev/null
    redis-cli -p "$redis_port" EVAL "for i = 0, 999999 do redis.call('SET', string.format('k%015d', i), string.rep('v', 32)) end return 1" 0 >/dev/null
    redis-cli -p "$redis_port" INFO memory >"$out/redis-memory.txt"
    record "redis used_memory_rss MB" "$(sed -n 's/^used_memory_rss:\([0-9]*\).*/\1/p' "$out/redis-memory.txt" | awk '{printf "%.1f", $1 / 1e6}')"
    stop $redis_pid

    echo "== Redis SET, appendfsync always"
    mkdir -p "$work/aof"
    redis-server --port "$redis_port" --save '' --appendonly yes --appendfsync always --dir "$work/aof" \
        >"$out/redis-aof.log" 2>&1 &
    redis_pid=$!; started $redis_pid
    wait_port "$redis_port"
    redis-benchmark -p "$redis_port" -c 50 -n $((secs * 50000)) -r 100000 -d 32 -t set --csv -q \
        >"$out/redis-benchmark-aof.csv"
    record "redis SET fsync always" "$(sed -n 's/^"SET","\([0-9.]*\)".*/\1/p' "$out/redis-benchmark-aof.csv")"
    stop $redis_pid

    echo "== etcd $(etcd --version | sed -n 's/^etcd Version: //p'), durable put through its HTTP gateway"
    etcd_port=$(free_port)
    peer_port=$(free_port)
    etcd --name bench --data-dir "$work/etcd" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "bench=http://127.0.0.1:$peer_port" >"$out/etcd.log" 2>&1 &
    etcd_pid=$!; started $etcd_pid
    wait_port "$etcd_port"
    sleep 1
    wrk -t 2 -c 50 -d "${secs}s" -s scripts/bench/etcd-put.lua "http://127.0.0.1:$etcd_port" >"$out/etcd-put.txt"
    record "etcd put" "$(wrk_rps "$out/etcd-put.txt")"
    stop $etcd_pid

    echo "== $("$pg_bin/postgres" --version | sed 's/^postgres (\(.*\)) \([0-9.]*\).*/\1 \2/') (fsync on), pgbench"
    pgb() {
        pgbench -h 127.0.0.1 -p "$pg_port" -U postgres -n -c 32 -j 2 -T "$secs" -f "$1" postgres >"$2"
        sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$2"
    }
    record "pgbench 1-row INSERT" "$(pgb scripts/bench/insert-1.sql "$out/pgbench-1.txt" | awk '{ printf "%.0f", $1 }')"
    tps=$(pgb scripts/bench/insert-100.sql "$out/pgbench-100.txt")
    record "pgbench 100-row INSERT rows/s" "$(awk -v t="$tps" 'BEGIN { printf "%.0f", t * 100 }')"
fi

echo "== KVS ($bins)"
kvs_port=$(free_port)
kvs_url="http://127.0.0.1:$kvs_port"
kvs_pid=""
start_kvs() {
    local name=$1
    shift
    "$bins/kvs-server" --listen "127.0.0.1:$kvs_port" --data-dir "$work/kvs-$name" --log-level warn "$@" \
        >"$out/kvs-server-$name.log" 2>&1 &
    kvs_pid=$!
    started $kvs_pid
    for _ in $(seq 300); do
        curl -fs "$kvs_url/kvs/v1-0-0/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "kvs-server ($name) did not become ready; see $out/kvs-server-$name.log" >&2
    exit 1
}
# The headline figures: the load tool of the HTTP anchors, on the same keys.
kvs_wrk() {
    local name=$1 script=$2
    wrk -t 2 -c 50 -d "${secs}s" -s "scripts/bench/$script" "$kvs_url" >"$out/kvs-$name.txt"
    record "kvs $name" "$(wrk_rps "$out/kvs-$name.txt")"
}
# kvs-bench NAME KEYS ARGS...: a run over KEYS keys of 16 bytes, 32-byte
# values; any answer outside 2xx, the prefill's included, fails the script.
kvs_bench() {
    local name=$1 keys=$2
    shift 2
    "$bins/kvs-bench" --url "$kvs_url" --keys "$keys" --key-size 16 --value-size 32 --json "$@" \
        >"$out/kvs-$name.json"
    local errors
    errors=$(json "$out/kvs-$name.json" "sum(sum(v for k, v in p['statuses'].items() if not k.startswith('2')) + p['transport_errors'] for p in [d, d.get('prefill')] if p)")
    [ "$errors" = 0 ] || { echo "kvs-bench $name: $errors failed requests; see $out/kvs-$name.json" >&2; exit 1; }
}
# Every key once, nothing measured.
kvs_fill() { kvs_bench "fill-$1" "$2" --connections "$3" --prefill --requests 0; }
# time_ready ROW NAME ARGS...: kvs-server ARGS started three times on its
# filled log, each timed to /readyz answering; the median.
time_ready() {
    local row=$1 name=$2
    shift 2
    python3 scripts/bench/ready.py "$out/kvs-server-$name" "127.0.0.1:$kvs_port" -- \
        "$bins/kvs-server" --listen "127.0.0.1:$kvs_port" --log-format json "$@" >"$out/kvs-$name.json"
    record "$row" "$(json "$out/kvs-$name.json" "round(d['ready_ms_median'] / 1000, 2)")"
}

start_kvs file
kvs_fill 100k 100000 50
kvs_wrk GET kvs-get.lua
kvs_wrk "PUT sync" kvs-put.lua
kvs_bench mixed-zipf 100000 --connections 50 --workload mixed --dist zipf --read-ratio 0.9 --duration "$secs"
record "kvs mixed zipf" "$(json "$out/kvs-mixed-zipf.json" "round(d['throughput_rps'])")"
stop "$kvs_pid"

start_kvs async --durability async
kvs_wrk "PUT async" kvs-put.lua
stop "$kvs_pid"

echo "== KVS with txn-server and PostgreSQL"
"$bins/kvs-certs" --out "$work/certs" >/dev/null
txn_port=$(free_port)
"$bins/txn-server" --listen "127.0.0.1:$txn_port" --backend postgres \
    --database-url "postgres://postgres@127.0.0.1:$pg_port/kvs" \
    --tls-ca "$work/certs/ca.crt" --tls-cert "$work/certs/server.crt" --tls-key "$work/certs/server.key" \
    --log-level warn >"$out/txn-server.log" 2>&1 &
txn_pid=$!; started $txn_pid
wait_port "$txn_port"
remote=(--txn-addr "https://127.0.0.1:$txn_port" --tls-ca "$work/certs/ca.crt"
    --tls-cert "$work/certs/client.crt" --tls-key "$work/certs/client.key")
start_kvs pg "${remote[@]}"
kvs_wrk "PUT sync, PostgreSQL" kvs-put.lua
echo "  (filling $large keys for the replay)"
kvs_fill pg "$large" 200
stop "$kvs_pid"
time_ready "kvs replay 1M, PostgreSQL s" replay-pg --data-dir "$work/kvs-replay-pg" "${remote[@]}"
stop $txn_pid

echo "== KVS replay of a file log, and memory: $large keys"
# Never compacted, so that every PUT of the fill is in the log replayed.
no_compact=(--compact-min-bytes 1099511627776)
start_kvs replay-file "${no_compact[@]}"
kvs_fill file "$large" 200
stop "$kvs_pid"
time_ready "kvs replay 1M, file s" replay-file --data-dir "$work/kvs-replay-file" "${no_compact[@]}"

start_kvs memory --memory-only
kvs_fill memory "$large" 50
rss_kb=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$kvs_pid/status")
record "kvs RSS 1M keys MB" "$(awk -v kb="$rss_kb" 'BEGIN { printf "%.1f", kb * 1024 / 1e6 }')"
stop "$kvs_pid"

echo
python3 scripts/bench/table.py "$out/results.tsv"
