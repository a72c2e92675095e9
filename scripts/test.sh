#!/usr/bin/env bash
# Every test Rickshaw has: formatting, lints, then the whole workspace's unit, property, contract
# and end-to-end tests, then the cluster test (scripts/cluster.sh under failures) on its own. Needs only cargo and python3 (the socket.io interoperability test creates
# a virtualenv with python-socketio under target/ on first run).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
echo "==> the cluster test, alone (16 processes on this machine's cores)"
cargo test -p rickshaw --test it --locked -- --ignored --test-threads=1
