#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, the Rust workspace
# (unit, integration and end-to-end tests against the real binaries), and
# the Python client's tests against a real kvs-server. Sets up what it needs
# (a Python virtual environment with the client and its test dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo build --workspace --bins --locked
cargo test --workspace --locked

step "Python client: virtual environment"
venv=target/python-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e 'clients/python[test]'

step "Python client: pytest"
KVS_SERVER_BIN="$PWD/target/debug/kvs-server" "$venv/bin/python" -m pytest -q clients/python/tests
