#!/usr/bin/env bash
# Every test Rickshaw has: formatting, lints, then the whole workspace's unit, property, contract
# and end-to-end tests, then the cluster drills (scripts/cluster.sh under failures) on their own, once. Needs only cargo and python3 (the socket.io interoperability and mail tests create
# a virtualenv with python-socketio and aiosmtpd under target/ on first run), and Node with npm
# (installed from Debian when missing; socket.io-client goes under target/test-node).
set -euo pipefail
cd "$(dirname "$0")/.."

# The JavaScript socket.io client test runs socket.io-client (npm, pinned, installed under
# target/test-node on first use) with Node: Debian's nodejs and npm, installed when missing.
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
  echo "==> installing nodejs and npm (Debian)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm > /dev/null) \
    || echo "test.sh: could not install nodejs/npm; the JavaScript socket.io test will fail" >&2
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked --exclude rickshaw
# The rickshaw end-to-end tests each start a whole system (several processes, a private NATS, a
# database) and measure it; two at once on 2 cores starve the distributed mode's lease renewals
# (docs/BENCHMARKS.md, issue 3), so they run one at a time.
echo "==> the end-to-end tests, one at a time"
cargo test -p rickshaw --locked -- --test-threads=1
echo "==> the cluster drills, alone (course: 22 processes; product: 22)"
cargo test -p rickshaw --test it --locked -- --ignored --test-threads=1
