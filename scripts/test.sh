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

step() { printf '\n==> %s\n' "$*"; }

# venv DIR REQUIREMENT...: a virtual environment under target/ with the
# requirements installed (pip's arguments); prints its python.
venv() {
    local dir=target/$1
    shift
    if [ ! -x "$dir/bin/python" ]; then
        python3 -m venv "$dir"
    fi
    "$dir/bin/python" -m pip install --quiet --upgrade pip >&2
    "$dir/bin/python" -m pip install --quiet "$@" >&2
    echo "$dir/bin/python"
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "PostgreSQL for the tests' throwaway clusters"
# The end-to-end tests make clusters of their own with initdb and pg_ctl,
# or use KVS_TEST_DATABASE_URL when it is set.
if [ -z "${KVS_TEST_DATABASE_URL:-}" ] \
    && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
    && ! command -v initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
        echo "PostgreSQL's server binaries (initdb, pg_ctl) are missing: install PostgreSQL or set KVS_TEST_DATABASE_URL" >&2
        exit 1
    fi
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

step "Python client: virtual environment"
python=$(venv python-venv -e 'clients/python[test]')

step "Python client: pytest"
KVS_SERVER_BIN="$PWD/target/debug/kvs-server" "$python" -m pytest -q clients/python/tests

step "Deployment: Dockerfiles and docker-compose.yaml (no Docker engine needed)"
python=$(venv deploy-venv -r deploy/requirements.txt)
KVS_BIN_DIR="$PWD/target/debug" "$python" -m pytest -q deploy/tests

step "API fuzzing: schemathesis against the OpenAPI document"
python=$(venv api-fuzz-venv -r clients/api-fuzz/requirements.txt)
KVS_SERVER_BIN="$PWD/target/debug/kvs-server" "$python" -m pytest -q -p no:cacheprovider clients/api-fuzz

step "Docs page: headless Chromium against kvs-server's /docs"
# Debian's Chromium and its matching chromedriver, installed as root when
# missing; without them the test fails, naming what to install.
if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; } \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
python=$(venv docs-page-venv -r clients/docs-page/requirements.txt)
KVS_SERVER_BIN="$PWD/target/debug/kvs-server" "$python" -m pytest -q -p no:cacheprovider clients/docs-page

step "Fuzzing: every target's saved regressions, then 10 s of fuzzing each"
# A bounded run (builds cargo-fuzz once, then the targets with AddressSanitizer);
# longer runs: fuzz/run.sh SECONDS, see fuzz/README.md.
fuzz/run.sh 10
