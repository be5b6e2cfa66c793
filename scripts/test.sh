#!/usr/bin/env bash
# The test command: ./scripts/test.sh
#
# Installs what is missing (PostgreSQL 15, clang/libclang, pgbouncer, Chromium and
# chromedriver, cargo-nextest), then runs, in order and stopping at the first failure:
# formatting, clippy, the build of the binaries (the end-to-end tests run
# target/debug/switchyard), the doc tests (nextest does not run those), and every other
# test with nextest. CI runs exactly this, via .ci/run.
#
# Works as root (PostgreSQL then runs as the `postgres` OS user) and as a normal user with
# sudo for the installs. Extra arguments go to `cargo nextest run`, e.g.
#   ./scripts/test.sh -p switchyard-tests -E 'test(canary)'
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/deps.sh
source scripts/lib/deps.sh

sy_step "Installing what is missing"
sy_ensure_system_deps
sy_ensure_browser_deps
sy_ensure_rust_tools
# Chromium is installed now: the dashboard's browser test must run, not skip.
export SWITCHYARD_REQUIRE_BROWSER=1

sy_step "Formatting: cargo fmt --all --check"
cargo fmt --all --check

sy_step "Lints: cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

sy_step "Build: cargo build --workspace --bins"
cargo build --workspace --bins --locked

sy_step "Doc tests: cargo test --workspace --doc"
cargo test --workspace --doc --locked

# Last, so that its summary is the closing line of the run.
sy_step "Tests: cargo nextest run --workspace --no-fail-fast"
cargo nextest run --workspace --no-fail-fast --locked "$@"
