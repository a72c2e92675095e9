#!/usr/bin/env bash
# Every test Rickshaw has: formatting, lints, then the whole workspace's unit, property, contract
# and end-to-end tests. Needs only cargo and python3 (the socket.io interoperability test creates
# a virtualenv with python-socketio under target/ on first run).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
