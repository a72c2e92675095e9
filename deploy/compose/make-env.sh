#!/usr/bin/env bash
# Writes the secrets compose.yaml needs, fresh, to stdout:
#   deploy/compose/make-env.sh > .env && docker compose up
# PostgreSQL's password, the token signing key, and a NATS password per user (every service and
# `ops`, as `rickshaw nats-users` names them in deploy/compose/authorization.conf).
set -euo pipefail
cd "$(dirname "$0")"
# Each starts with a letter: nats-server parses a variable's value as a config value, and one
# starting with a digit is read as a number.
secret() { printf 's%s' "$(head -c 36 /dev/urandom | base64 | tr -d '\n/+=' | head -c 39)"; }
echo "POSTGRES_PASSWORD=$(secret)"
echo "RICKSHAW_SIGNING_KEY=$(secret)$(secret)"
for user in $(grep -o 'user: "[a-z-]*"' authorization.conf | cut -d'"' -f2); do
  echo "RICKSHAW_NATS_PASSWORD_$(echo "$user" | tr '[:lower:]-' '[:upper:]_')=$(secret)"
done
