#!/usr/bin/env bash
# Every test Rickshaw has: formatting, lints, then the whole workspace's unit, property, contract
# and end-to-end tests, then the cluster drills (scripts/cluster.sh under failures) on their own, once. Needs only cargo and python3 (the socket.io interoperability and mail tests create
# a virtualenv with python-socketio and aiosmtpd under target/ on first run), Node with npm,
# Chromium, promtool and kubectl (installed from Debian when missing; the npm clients go under
# target/test-node, the deployment checkers under target/deploy-tools).
set -euo pipefail
cd "$(dirname "$0")/.."

# The JavaScript tests run with Node: socket.io-client and playwright-core (npm, pinned, installed
# under target/test-node on first use). Playwright drives Debian's Chromium (it downloads no
# browser); a Bengali font draws the taka sign in the screenshots. The deployment checks need
# promtool (Debian's prometheus, without the server's recommends) and kubectl (for kustomize). All
# installed when missing.
missing=()
command -v node > /dev/null || missing+=(nodejs)
command -v npm > /dev/null || missing+=(npm)
command -v chromium > /dev/null || missing+=(chromium)
# (grep reads all of fc-list's output: `grep -q` would stop early, and pipefail call it a failure)
fc-list 2> /dev/null | grep "Lohit Bengali" > /dev/null || missing+=(fonts-lohit-beng-bengali)
command -v kubectl > /dev/null || missing+=(kubectl)
lean=()
command -v promtool > /dev/null || lean+=(prometheus)
if ((${#missing[@]} + ${#lean[@]})); then
  echo "==> installing ${missing[*]} ${lean[*]} (Debian)"
  apt-get update -qq || true
  if ((${#missing[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null \
      || echo "test.sh: could not install ${missing[*]}; the tests that use them will fail" >&2
  fi
  if ((${#lean[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${lean[@]}" > /dev/null \
      || echo "test.sh: could not install ${lean[*]}; the alert rules' tests will fail" >&2
  fi
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
echo "==> the cluster drills, alone (course: 22 processes; product: 22; a rolling restart of 32 under both bots)"
cargo test -p rickshaw --test it --locked -- --ignored --test-threads=1
