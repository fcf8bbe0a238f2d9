#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, the Rust workspace
# (unit, integration, property and end-to-end tests against the real
# binaries, the soak's short versions), the Python client's tests against a
# real kvs-server, the deployment checks, schemathesis against the OpenAPI
# document, the docs page in headless Chromium, and a bounded run of every
# fuzz target. Sets up what it needs (PostgreSQL's binaries, Chromium,
# Python virtual environments, cargo-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says how long the run has taken when it starts.
step() { printf '\n==> %s (at %d s)\n' "$*" "$SECONDS"; }

# The Python steps' virtual environments, under target/, are made in the
# background from the start: installing them is minutes of waiting on the
# package index, which the cargo builds overlap.
declare -A venv_pid
# make_venv DIR REQUIREMENT...: starts making the environment with the
# requirements installed (pip's arguments); pip's output goes to target/DIR.log.
make_venv() {
    local name=$1 dir=target/$1
    shift
    {
        [ -x "$dir/bin/python" ] || python3 -m venv "$dir"
        "$dir/bin/python" -m pip install --quiet --upgrade pip
        "$dir/bin/python" -m pip install --quiet "$@"
    } >"$dir.log" 2>&1 </dev/null &
    venv_pid[$name]=$!
}
# use_venv DIR: waits until DIR's environment is made and sets `python` to
# its interpreter, or fails with pip's output.
use_venv() {
    if ! wait "${venv_pid[$1]}"; then
        echo "making the virtual environment target/$1 failed:" >&2
        cat "target/$1.log" >&2
        exit 1
    fi
    python=target/$1/bin/python
}
mkdir -p target
make_venv python-venv -e 'clients/python[test]'
make_venv deploy-venv -r deploy/requirements.txt
make_venv api-fuzz-venv -r clients/api-fuzz/requirements.txt
make_venv docs-page-venv -r clients/docs-page/requirements.txt
# cargo-fuzz, for the last step, is compiled from crates.io in the
# background too, filling the moments a cargo build leaves a core idle.
fuzz/run.sh install >target/cargo-fuzz-install.log 2>&1 </dev/null &
cargo_fuzz_pid=$!
# A run that stops early stops the installs too.
stop_installs() {
    local p
    for p in "${venv_pid[@]}" "$cargo_fuzz_pid"; do
        pkill -P "$p" || true
        kill "$p" 2>/dev/null || true
    done
}
trap stop_installs EXIT

# The Debian packages the tests need and this machine lacks: PostgreSQL's
# server binaries for the tests' throwaway clusters (unless
# KVS_TEST_DATABASE_URL names a database), Chromium and its chromedriver
# for the docs page. As root they are installed in the background from the
# start, like the environments; otherwise the steps that need them fail,
# naming what to install.
has_postgres() {
    [ -n "${KVS_TEST_DATABASE_URL:-}" ] \
        || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
        || command -v initdb >/dev/null 2>&1
}
packages=()
has_postgres || packages+=(postgresql)
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || packages+=(chromium chromium-driver)
apt_pid=
if [ "${#packages[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
    } >target/apt.log 2>&1 </dev/null &
    apt_pid=$!
fi
# packages_installed: waits for that install, or fails with apt's output.
packages_installed() {
    [ -n "$apt_pid" ] || return 0
    if ! wait "$apt_pid"; then
        echo "installing ${packages[*]} failed:" >&2
        cat target/apt.log >&2
        exit 1
    fi
    apt_pid=
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "PostgreSQL for the tests' throwaway clusters"
# The end-to-end tests make clusters of their own with initdb and pg_ctl,
# or use KVS_TEST_DATABASE_URL when it is set.
packages_installed
if ! has_postgres; then
    echo "PostgreSQL's server binaries (initdb, pg_ctl) are missing: install PostgreSQL or set KVS_TEST_DATABASE_URL" >&2
    exit 1
fi
# PostgreSQL will not run as root; as root the clusters run as this user.
pg_user=${KVS_TEST_PG_USER:-postgres}
if [ "$(id -u)" = 0 ] && ! id "$pg_user" >/dev/null 2>&1; then
    useradd --system --no-create-home "$pg_user"
fi
echo "ok"

step "cargo test"
cargo build --workspace --bins --locked
cargo test --workspace --locked

step "Python client: pytest"
use_venv python-venv
KVS_SERVER_BIN="$PWD/target/debug/kvs-server" "$python" -m pytest -q clients/python/tests

step "Deployment: Dockerfiles and docker-compose.yaml (no Docker engine needed)"
use_venv deploy-venv
KVS_BIN_DIR="$PWD/target/debug" "$python" -m pytest -q deploy/tests

step "API fuzzing: schemathesis against the OpenAPI document"
use_venv api-fuzz-venv
KVS_SERVER_BIN="$PWD/target/debug/kvs-server" "$python" -m pytest -q -p no:cacheprovider clients/api-fuzz

step "Docs page: headless Chromium against kvs-server's /docs"
# Debian's Chromium and its matching chromedriver; without them the test
# fails, naming what to install.
packages_installed
use_venv docs-page-venv
KVS_SERVER_BIN="$PWD/target/debug/kvs-server" "$python" -m pytest -q -p no:cacheprovider clients/docs-page

step "Fuzzing: every target's saved regressions, then 10 s of fuzzing each"
# A bounded run (cargo-fuzz from the install begun at the start, then the
# targets built with AddressSanitizer); longer runs: fuzz/run.sh SECONDS,
# see fuzz/README.md.
if ! wait "$cargo_fuzz_pid"; then
    echo "installing cargo-fuzz failed:" >&2
    cat target/cargo-fuzz-install.log >&2
    exit 1
fi
fuzz/run.sh 10
