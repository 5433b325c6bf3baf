#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test.
# Live-capture tests need root (they create their own network namespace and
# veth pair and remove them again).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
# Lints for the whole workspace (product, tests, benches, the bench generator),
# in the ci profile like the tests (a check build: dependencies are checked
# once into target/ci and reused by later runs).
cargo clippy --profile ci --workspace --all-targets -- -D warnings
# The .deb/.rpm build-install-remove test runs too (release build, cargo-deb).
export XDPACCT_TEST_PACKAGES=${XDPACCT_TEST_PACKAGES:-1}
cargo test --profile ci --workspace --no-fail-fast -- --test-threads=2 "$@"
