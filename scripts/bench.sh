#!/usr/bin/env bash
# One sitting of docs/benchmarks.md: the anchors (Redis, webdis, a bare axum
# server, etcd, PostgreSQL's pgbench) and KVS, measured one after the other
# on this machine, 50 connections, 100k keys, 32-byte values. KVS's GET, PUT
# and multi-key read (POST /txn of 16 gets) figures come from wrk with the
# Lua scripts of scripts/bench/, as webdis's, bare axum's and etcd's do;
# kvs-bench fills the keys and runs the mixed zipfian load wrk
# cannot express (latency percentiles by operation). The replay is timed by
# scripts/bench/ready.py on logs filled through the API, the memory read from
# /proc. Last, two standbys and a follower on txn-server + PostgreSQL: GETs
# spread over 1, 2 and 3 of them (one wrk each), the follower's lag behind
# writes to the primary (scripts/bench/follow-lag.py) and the time a
# standby takes to answer writes once the primary is killed
# (scripts/bench/failover.py). Prints each figure as it comes and, at the
# end, a table of the performance goals with the ratios and whether each is
# met, then the followers' figures; raw outputs stay in
# target/bench/<time>/.
#
#   scripts/bench.sh [SECONDS-PER-RUN (default 10)]
#
# Environment:
#   KVS_BIN_DIR   kvs-server, txn-server, kvs-bench and kvs-certs to measure
#                 (default: $CARGO_TARGET_DIR or target, release/, built first)
#   BENCH_ANCHORS 0 to measure KVS only (for before/after comparisons)
#   BENCH_OUT     where the raw outputs go
#   BENCH_LARGE_KEYS  keys of the replay and memory measurements (default
#                 1000000, which the rows are named for; fewer for a quick
#                 check of the script)
#   BENCH_REPLICAS 0 to skip the followers and failover: reads over 1, 2
#                 and 3 nodes, a follower's lag under writes, and the time
#                 a standby takes over from a killed primary
#
# Needs Debian's packages wrk, curl, python3, postgresql (server binaries,
# psql, pgbench) and for the anchors redis-server, redis-tools
# (redis-benchmark, redis-cli), webdis, etcd-server; as root with apt-get it
# installs those missing. The bare axum server is built from
# crates/kvs-bench/examples. As root, PostgreSQL runs as the user `postgres`.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-10}
anchors=${BENCH_ANCHORS:-1}
large=${BENCH_LARGE_KEYS:-1000000}
replicas=${BENCH_REPLICAS:-1}
out=${BENCH_OUT:-target/bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The tools each measurement needs and the Debian package of each. As root
# with apt-get, the missing ones are installed; otherwise the script stops
# naming them. PostgreSQL (initdb, psql, pgbench) is found in its versioned
# bin directory, not through Debian's wrappers in /usr/bin, which exist
# without the server.
declare -A package=([curl]=curl [python3]=python3 [wrk]=wrk [redis-server]=redis-server
    [redis-benchmark]=redis-tools [redis-cli]=redis-tools [webdis]=webdis [etcd]=etcd-server)
need=(curl python3 wrk)
pg_tools=(initdb pg_ctl postgres psql)
if [ "$anchors" = 1 ]; then
    need+=(redis-server redis-benchmark redis-cli webdis etcd)
    pg_tools+=(pgbench)
fi
newest_pg_bin() { printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1; }
missing_packages() {
    local tool pg_bin
    for tool in "${need[@]}"; do
        command -v "$tool" >/dev/null || echo "${package[$tool]}"
    done
    pg_bin=$(newest_pg_bin)
    for tool in "${pg_tools[@]}"; do
        [ -x "$pg_bin/$tool" ] || { echo postgresql; break; }
    done
}
mapfile -t missing < <(missing_packages | sort -u)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing ${missing[*]}"
        apt-get update -q >"$out/apt-get.log"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$out/apt-get.log"
        mapfile -t missing < <(missing_packages | sort -u)
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "missing the Debian packages: ${missing[*]} (apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi
pg_bin=$(newest_pg_bin)
if [ -z "${KVS_BIN_DIR:-}" ]; then
    cargo build --release --locked -p kvs-server -p txn-server -p kvs-bench -p kvs-certs
fi
bins=$(cd "${KVS_BIN_DIR:-${CARGO_TARGET_DIR:-target}/release}" && pwd)
if [ "$anchors" = 1 ]; then
    # An anchor, not what is measured: built from this tree whatever KVS_BIN_DIR says.
    cargo build --release --locked -p kvs-bench --example bare-axum
    bare_axum=$(cd "${CARGO_TARGET_DIR:-target}/release/examples" && pwd)/bare-axum
fi
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)

work=$(mktemp -d /tmp/kvs-bench.XXXXXX)
chmod 755 "$work"
pids=()
pg_data=""
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$pg_data" ]; then
        "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
    fi
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
    [ -n "$2" ] || { echo "no figure for $1; see the outputs in $out" >&2; exit 1; }
    printf '%s\t%s\n' "$1" "$2" >>"$out/results.tsv"
    printf '  %-28s %s\n' "$1" "$2"
}
json() { python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print($2)" "$1"; }
# wrk_run NAME SCRIPT URL [THREADS CONNECTIONS]: wrk with
# scripts/bench/SCRIPT (2 threads, 50 connections unless told), its output
# in NAME.txt; any answer outside 2xx fails the script (here, not in the
# command substitution that reads the figure, where exit would end only a
# subshell; run in the background, it is the job's status).
wrk_run() {
    wrk -t "${4:-2}" -c "${5:-50}" -d "${secs}s" -s "scripts/bench/$2" "$3" >"$out/$1.txt"
    if grep -q 'Non-2xx' "$out/$1.txt"; then
        echo "non-2xx answers in $out/$1.txt" >&2
        exit 1
    fi
}
wrk_rps() { sed -n 's/^Requests\/sec: *//p' "$out/$1.txt"; }

# CPU per request, the bound of a row on two shared cores (see "Where the
# time goes" in docs/benchmarks.md): the server's from /proc, the load
# tool's from the shell's accounting of the children it waited for.
# cpu_mark PID... before a load; cpu_record NAME REQUESTS PID... after it
# records "cpu us/req NAME server" (the processes named, together) and
# "... load tool" (every child waited for meanwhile, together).
# `times` runs in this shell, never in a command substitution's subshell,
# which has waited for no children.
server_cpu_s() {
    local p
    for p in "$@"; do cat "/proc/$p/stat"; done |
        awk -v hz="$(getconf CLK_TCK)" '{ t += $14 + $15 } END { print t / hz }'
}
tools_cpu_s() {
    awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); t += p[1] * 60 + p[2] } print t }' "$work/times"
}
cpu_mark() {
    cpu_server0=$(server_cpu_s "$@")
    times >"$work/times"
    cpu_tools0=$(tools_cpu_s)
}
cpu_record() {
    local name=$1 n=$2 server tools
    shift 2
    server=$(server_cpu_s "$@")
    times >"$work/times"
    tools=$(tools_cpu_s)
    record "cpu us/req $name server" "$(awk -v a="$cpu_server0" -v b="$server" -v n="$n" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')"
    record "cpu us/req $name load tool" "$(awk -v a="$cpu_tools0" -v b="$tools" -v n="$n" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')"
}
wrk_requests() { sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$out/$1.txt"; }

echo "results: $out"
: >"$out/results.tsv"
record "replay and memory keys" "$large"

# PostgreSQL: for pgbench and for txn-server.
pg_data=$work/pg/data
mkdir -p "$pg_data"
[ "$(id -u)" = 0 ] && chown -R postgres "$work/pg"
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_data" -A trust -U postgres >"$out/initdb.log"
pg_port=$(free_port)
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -w -l "$work/pg/postgres.log" \
    -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
psql_do() { "$pg_bin/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -v ON_ERROR_STOP=1 "$@"; }
psql_do -c "CREATE DATABASE kvs" -c "CREATE TABLE bench (id bigserial PRIMARY KEY, k text NOT NULL, v text NOT NULL)"

if [ "$anchors" = 1 ]; then
    echo "== Redis $(redis-server --version | grep -o 'v=[0-9.]*')"
    redis_port=$(free_port)
    redis-server --port "$redis_port" --save '' --appendonly no --dir "$work" >"$out/redis.log" 2>&1 &
    redis_pid=$!; started $redis_pid
    wait_port "$redis_port"
    # redis-benchmark counts requests, not seconds: about SECONDS at ~150k/s.
    cpu_mark $redis_pid
    redis-benchmark -p "$redis_port" -c 50 -n $((secs * 150000)) -r 100000 -d 32 -t set,get --csv -q \
        >"$out/redis-benchmark.csv"
    cpu_record "redis SET+GET" $((secs * 150000 * 2)) $redis_pid
    record "redis GET" "$(sed -n 's/^"GET","\([0-9.]*\)".*/\1/p' "$out/redis-benchmark.csv")"
    record "redis SET" "$(sed -n 's/^"SET","\([0-9.]*\)".*/\1/p' "$out/redis-benchmark.csv")"
    # The multi-key read's anchor: GETs of the keys just set, 16 in flight on
    # each connection; redis-benchmark counts each GET, so this is keys/s.
    redis-benchmark -p "$redis_port" -c 50 -P 16 -n $((secs * 1000000)) -r 100000 -t get --csv -q \
        >"$out/redis-benchmark-p16.csv"
    record "redis GET pipelined 16" "$(sed -n 's/^"GET","\([0-9.]*\)".*/\1/p' "$out/redis-benchmark-p16.csv")"

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
    wrk_run webdis-set webdis-set.lua "http://127.0.0.1:$webdis_port"
    record "webdis SET" "$(wrk_rps webdis-set)"
    stop $webdis_pid

    echo "== bare axum (the HTTP ceiling of GET: axum and a RwLock<HashMap>, nothing else)"
    bare_port=$(free_port)
    "$bare_axum" "127.0.0.1:$bare_port" >"$out/bare-axum.log" 2>&1 &
    bare_pid=$!; started $bare_pid
    wait_port "$bare_port"
    cpu_mark $bare_pid
    wrk_run bare-axum-get kvs-get.lua "http://127.0.0.1:$bare_port"
    cpu_record "bare axum GET" "$(wrk_requests bare-axum-get)" $bare_pid
    record "bare axum GET" "$(wrk_rps bare-axum-get)"
    stop $bare_pid

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
    cpu_mark $redis_pid
    redis-benchmark -p "$redis_port" -c 50 -n $((secs * 50000)) -r 100000 -d 32 -t set --csv -q \
        >"$out/redis-benchmark-aof.csv"
    cpu_record "redis SET fsync always" $((secs * 50000)) $redis_pid
    record "redis SET fsync always" "$(sed -n 's/^"SET","\([0-9.]*\)".*/\1/p' "$out/redis-benchmark-aof.csv")"
    # Columns: test, rps, avg, min, p50, p95, p99, max (ms).
    record "redis SET fsync always p99 ms" "$(sed -n 's/^"SET",\("[^"]*",\)\{5\}"\([0-9.]*\)".*/\2/p' "$out/redis-benchmark-aof.csv")"
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
    wrk_run etcd-put etcd-put.lua "http://127.0.0.1:$etcd_port"
    record "etcd put" "$(wrk_rps etcd-put)"
    stop $etcd_pid

    echo "== $("$pg_bin/postgres" --version | sed 's/^postgres (\(.*\)) \([0-9.]*\).*/\1 \2/') (fsync on), pgbench"
    pgb() {
        "$pg_bin/pgbench" -h 127.0.0.1 -p "$pg_port" -U postgres -n -c 32 -j 2 -T "$secs" -f "$1" postgres >"$2"
        sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$2"
    }
    record "pgbench 1-row INSERT" "$(pgb scripts/bench/insert-1.sql "$out/pgbench-1.txt" | awk '{ printf "%.0f", $1 }')"
    tps=$(pgb scripts/bench/insert-100.sql "$out/pgbench-100.txt")
    record "pgbench 100-row INSERT rows/s" "$(awk -v t="$tps" 'BEGIN { printf "%.0f", t * 100 }')"
fi

echo "== KVS ($bins)"
# start_kvs and the kvs-bench runs go to the node of at_port PORT.
at_port() {
    kvs_port=$1
    kvs_url="http://127.0.0.1:$1"
}
at_port "$(free_port)"
kvs_pid=""
start_kvs() {
    local name=$1
    shift
    "$bins/kvs-server" --listen "127.0.0.1:$kvs_port" --data-dir "$work/kvs-$name" --log-level warn "$@" \
        >"$out/kvs-server-$name.log" 2>&1 &
    kvs_pid=$!
    started $kvs_pid
    wait_ready "$name"
}
# wait_ready NAME [TEXT]: until the node at kvs_url answers /readyz with 200
# (and exactly TEXT, if given: "ready" is a primary, not a replica).
wait_ready() {
    local name=$1 want=${2-} said
    for _ in $(seq 300); do
        said=$(curl -fs "$kvs_url/kvs/v1-0-0/readyz" 2>/dev/null) && [ "$said" = "${want:-$said}" ] && return 0
        sleep 0.1
    done
    echo "kvs-server ($name) did not become ready${want:+ ($want)}; see $out/kvs-server-$name.log" >&2
    exit 1
}
# The headline figures: the load tool of the HTTP anchors, on the same keys.
kvs_wrk() {
    local name=$1 script=$2
    cpu_mark "$kvs_pid"
    wrk_run "kvs-$name" "$script" "$kvs_url"
    record "kvs $name" "$(wrk_rps "kvs-$name")"
    cpu_record "kvs $name" "$(wrk_requests "kvs-$name")" "$kvs_pid"
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
record "kvs PUT sync p99 ms" "$(awk '$1 == "p99_us" { printf "%.3f", $2 / 1000 }' "$out/kvs-PUT sync.txt")"
kvs_wrk "txn 16 gets" kvs-txn-get16.lua
record "kvs txn 16 gets keys/s" "$(awk -v r="$(wrk_rps "kvs-txn 16 gets")" 'BEGIN { printf "%.0f", r * 16 }')"
kvs_bench mixed-zipf 100000 --connections 50 --workload mixed --dist zipf --read-ratio 0.9 --duration "$secs"
record "kvs mixed zipf" "$(json "$out/kvs-mixed-zipf.json" "round(d['throughput_rps'])")"
stop "$kvs_pid"

start_kvs async --durability async
kvs_wrk "PUT async" kvs-put.lua
stop "$kvs_pid"

echo "== KVS with txn-server and PostgreSQL"
"$bins/kvs-certs" --out "$work/certs" >/dev/null
# start_txn DATABASE: txn-server on that database of the PostgreSQL above;
# "${remote[@]}" are kvs-server's flags to reach it.
start_txn() {
    local txn_port
    txn_port=$(free_port)
    "$bins/txn-server" --listen "127.0.0.1:$txn_port" --backend postgres \
        --database-url "postgres://postgres@127.0.0.1:$pg_port/$1" \
        --tls-ca "$work/certs/ca.crt" --tls-cert "$work/certs/server.crt" --tls-key "$work/certs/server.key" \
        --log-level warn >"$out/txn-server-$1.log" 2>&1 &
    txn_pid=$!; started $txn_pid
    wait_port "$txn_port"
    remote=(--txn-addr "https://127.0.0.1:$txn_port" --tls-ca "$work/certs/ca.crt"
        --tls-cert "$work/certs/client.crt" --tls-key "$work/certs/client.key")
}
start_txn kvs
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

if [ "$replicas" = 1 ]; then
    echo "== followers and failover: two standbys and a follower, txn-server + PostgreSQL"
    psql_do -c "CREATE DATABASE kvs_replicas"
    start_txn kvs_replicas
    # Each node keeps its port across restarts; its logs are NAME-1, NAME-2...
    declare -A node_port node_pid node_starts
    for n in a b f; do node_port[$n]=$(free_port); node_starts[$n]=0; done
    node_url() { echo "http://127.0.0.1:${node_port[$1]}"; }
    # start_node NAME ROLE ARGS...: kvs-server NAME in that role on the log
    # above; the bench helpers go to it.
    start_node() {
        local name=$1 role=$2
        shift 2
        at_port "${node_port[$name]}"
        node_starts[$name]=$((node_starts[$name] + 1))
        start_kvs "$name-${node_starts[$name]}" --role "$role" "${remote[@]}" "$@"
        node_pid[$name]=$kvs_pid
    }
    wait_primary() {
        at_port "${node_port[$1]}"
        wait_ready "$1-${node_starts[$1]}" ready
    }
    # The first standby to start takes the lease.
    start_node a standby
    wait_primary a
    start_node b standby
    start_node f follower
    at_port "${node_port[a]}"
    kvs_fill replicas 100000 50
    # The replicas have every key once they reach the fill's last revision:
    # a read with KVS-Min-Revision waits for it (up to 1 s, then 503).
    filled=$(curl -fsS -D - -o /dev/null "$kvs_url/kvs/v1-0-0/str/k000000000000000" |
        sed -n 's/^kvs-revision: *\([0-9]*\).*/\1/Ip')
    for n in b f; do
        for _ in $(seq 30); do
            curl -fs -o /dev/null -H "KVS-Min-Revision: $filled" "$(node_url $n)/kvs/v1-0-0/str/k000000000000000" &&
                continue 2
        done
        echo "kvs-server $n did not reach revision $filled" >&2
        exit 1
    done

    # Reads over 1, 2, 3 nodes: one wrk a node, 50 connections in all, run
    # together; the CPU is every kvs-server's and every wrk's.
    readers=(a b f)
    for count in 1 2 3; do
        label="$count node$([ "$count" = 1 ] || echo s)"
        cpu_mark "${node_pid[a]}" "${node_pid[b]}" "${node_pid[f]}"
        loads=()
        for i in $(seq 0 $((count - 1))); do
            n=${readers[$i]}
            wrk_run "replicas-get-$count-$n" kvs-get.lua "$(node_url "$n")" 1 \
                $((50 / count + (i < 50 % count))) &
            loads+=($!)
        done
        for p in "${loads[@]}"; do wait "$p"; done
        rps=0 requests=0
        for n in "${readers[@]:0:count}"; do
            rps=$(awk -v a="$rps" -v b="$(wrk_rps "replicas-get-$count-$n")" 'BEGIN { print a + b }')
            requests=$((requests + $(wrk_requests "replicas-get-$count-$n")))
        done
        record "replicas GET $label req/s" "$(awk -v r="$rps" 'BEGIN { printf "%.0f", r }')"
        cpu_record "replicas GET $label" "$requests" "${node_pid[a]}" "${node_pid[b]}" "${node_pid[f]}"
    done

    # The follower's lag under the primary's write load.
    wrk_run replicas-put kvs-put.lua "$(node_url a)" &
    loads=($!)
    python3 scripts/bench/follow-lag.py "$(node_url a)" "$(node_url f)" "$secs" >"$out/replicas-lag.json"
    wait "${loads[0]}"
    record "replicas PUT on the primary meanwhile req/s" "$(wrk_rps replicas-put)"
    record "replicas follower lag samples" "$(json "$out/replicas-lag.json" "d['samples']")"
    record "replicas follower lag median ms" "$(json "$out/replicas-lag.json" "round(d['lag_ms_median'], 2)")"
    record "replicas follower lag p99 ms" "$(json "$out/replicas-lag.json" "round(d['lag_ms_p99'], 2)")"
    record "replicas follower lag midway revisions" "$(json "$out/replicas-lag.json" "d['lag_revisions_midway']")"

    # failover LEASE-MS CHECK-MS: three times, the primary killed (-9) while
    # writes go through the standby, timed to the next write answered 200;
    # the killed node comes back as the standby. Both standbys start anew
    # with those settings.
    primary=a standby=b
    failover() {
        local lease=(--lease-ms "$1" --lease-check-ms "$2") label="lease $1 ms check $2 ms" n round
        stop "${node_pid[$standby]}"
        stop "${node_pid[$primary]}"
        start_node $primary standby "${lease[@]}"
        wait_primary $primary
        start_node $standby standby "${lease[@]}"
        for round in 1 2 3; do
            # The shell's stderr closed around the probe, whose own goes to
            # fd 3: bash reports the node it reaps meanwhile, killed on
            # purpose, as "Killed".
            { python3 scripts/bench/failover.py "$(node_url $standby)" "${node_pid[$primary]}" \
                >"$out/replicas-failover-$1-$2-$round.json" 2>&3; } 3>&2 2>/dev/null
            stop "${node_pid[$primary]}"
            wait_primary $standby
            start_node $primary standby "${lease[@]}"
            n=$primary primary=$standby standby=$n
        done
        for round in 1 2 3; do json "$out/replicas-failover-$1-$2-$round.json" "d['failover_ms'] / 1000"; done |
            sort -n >"$work/failover-s"
        record "replicas failover, $label: median s" "$(awk 'NR == 2 { printf "%.2f", $1 }' "$work/failover-s")"
        record "replicas failover, $label: min s" "$(awk 'NR == 1 { printf "%.2f", $1 }' "$work/failover-s")"
        record "replicas failover, $label: max s" "$(awk 'NR == 3 { printf "%.2f", $1 }' "$work/failover-s")"
    }
    failover 5000 1000
    failover 1000 100
    for n in a b f; do stop "${node_pid[$n]}"; done
    stop $txn_pid
fi

echo
python3 scripts/bench/table.py "$out/results.tsv"
