#!/usr/bin/env bash
# A local Rickshaw cluster on one machine, in the distributed mode:
#   - a 3-node NATS cluster with JetStream (extra nats-server processes on free ports), a NATS
#     user per service (`rickshaw nats-users`: it publishes only what it owns, calls only what it
#     uses) and `ops` for tools (RICKSHAW_NATS_URL carries its password),
#   - a fresh PostgreSQL database (migrated),
#   - 2 instances of every service (gateway, rider, supply, matching, rating, communication, and
#     RICKSHAW_PRODUCT_INSTANCES of identity, pricing, provider, payment, mail, trip, operations,
#     audit),
#   - nginx in front: /communication and /socket.io/ to the communication instances (sticky by
#     client address, WebSocket upgrade), /v1/admin/city to the operations instances, everything
#     else to the gateways.
#
# usage: scripts/cluster.sh start        # last line: RICKSHAW_URL=http://127.0.0.1:PORT
#        scripts/cluster.sh status       # one line per process: service instance pid state
#        scripts/cluster.sh restart SERVICE INSTANCE   # e.g. restart nats 2
#        scripts/cluster.sh roll         # a rolling restart of every service instance
#        scripts/cluster.sh stop         # stops everything it started, drops the database
#
# Environment: RICKSHAW_BIN (the binary; default: builds target/debug/rickshaw),
# RICKSHAW_CLUSTER_DIR (state, logs; default target/cluster), RICKSHAW_PG_URL (server to create
# the database on; default postgres://postgres@127.0.0.1:5432), RICKSHAW_SHARDS (matching shards,
# default 4), RICKSHAW_INSTANCES (instances per service, default 2), RICKSHAW_PRODUCT_INSTANCES
# (instances of the product services above; default RICKSHAW_INSTANCES).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="${RICKSHAW_CLUSTER_DIR:-$ROOT/target/cluster}"
PG_SERVER="${RICKSHAW_PG_URL:-postgres://postgres@127.0.0.1:5432}"
SHARDS="${RICKSHAW_SHARDS:-4}"
INSTANCES="${RICKSHAW_INSTANCES:-2}"
# Instances of identity, pricing, provider, payment, mail, trip, operations and audit (the course drill, which does not use
# them, runs one).
PRODUCT_INSTANCES="${RICKSHAW_PRODUCT_INSTANCES:-$INSTANCES}"
SERVICES=(rider supply rating matching identity pricing provider payment mail trip communication operations audit gateway)
# The product's services (RICKSHAW_PRODUCT_INSTANCES of each).
PRODUCT_SERVICES=(identity pricing provider payment mail trip operations audit)

die() { echo "cluster: $*" >&2; exit 1; }

free_ports() { # free_ports N → N free TCP ports on 127.0.0.1, one per line
  # Below the kernel's ephemeral range (32768 and up): a port picked there can be taken by any
  # outgoing connection before the server that should listen on it starts.
  python3 - "$1" <<'PY'
import random, socket, sys
socks, tried = [], set()
while len(socks) < int(sys.argv[1]):
    port = random.randint(20000, 32000)
    if port in tried:
        continue
    tried.add(port)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))
PY
}

wait_http() { # wait_http URL SECONDS [PID] — gives up early if PID has exited
  local url=$1 deadline=$((SECONDS + $2)) pid=${3:-}
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || return 1
    [ -z "$pid" ] || kill -0 "$pid" 2> /dev/null || return 1
    sleep 0.2
  done
}

# launch SERVICE INSTANCE CMD... — runs CMD in the background, logs and pid under $STATE.
launch() {
  local service=$1 instance=$2; shift 2
  local name="$service-$instance"
  printf '%q ' "$@" > "$STATE/cmd/$name"
  # Appended: a restarted instance's log keeps what its predecessor said (a drill's failure is
  # often explained by the instance that was stopped).
  nohup "$@" >> "$STATE/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$STATE/pids/$name"
}

nginx_path() { command -v nginx 2> /dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }; }

ensure_nginx() {
  [ -n "$(nginx_path)" ] && return
  echo "cluster: installing nginx (Debian package)" >&2
  # Keep the package from starting its own nginx on port 80: only ours should run.
  local policy=/usr/sbin/policy-rc.d had_policy=0 rc=0
  [ -e "$policy" ] && had_policy=1
  [ $had_policy = 1 ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; }
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light > /dev/null) \
    || (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx > /dev/null) || rc=$?
  [ $had_policy = 1 ] || rm -f "$policy"
  [ $rc = 0 ] || die "cannot install nginx"
}

start() {
  [ -d "$STATE/pids" ] && [ -n "$(ls -A "$STATE/pids" 2>/dev/null)" ] && die "already started ($STATE); run stop first"
  rm -rf "$STATE"; mkdir -p "$STATE"/{pids,cmd,logs,nats,nginx/tmp}
  # A start that fails half-way stops what it started.
  trap 'rc=$?; if [ $rc -ne 0 ]; then echo "cluster: start failed; stopping what was started" >&2; stop >&2; fi' EXIT
  local bin="${RICKSHAW_BIN:-}"
  if [ -z "$bin" ]; then
    (cd "$ROOT" && cargo build -q -p rickshaw) || die "build failed"
    bin="$ROOT/target/debug/rickshaw"
  fi
  [ -x "$bin" ] || die "no rickshaw binary at $bin"
  ensure_nginx
  local nats_server; nats_server=$(command -v nats-server || echo /usr/sbin/nats-server)
  [ -x "$nats_server" ] || die "nats-server not found (apt-get install nats-server)"

  # instances_of SERVICE: how many processes run it.
  instances_of() { case " ${PRODUCT_SERVICES[*]} " in *" $1 "*) echo "$PRODUCT_INSTANCES" ;; *) echo "$INSTANCES" ;; esac; }
  # Ports: 9 for NATS, one per service process, one for nginx.
  local total=10 service
  for service in "${SERVICES[@]}"; do total=$((total + $(instances_of "$service"))); done
  mapfile -t ports < <(free_ports "$total")
  local p=0
  # take_port VAR: the next free port, into VAR (no subshell, so the counter advances).
  take_port() { printf -v "$1" '%s' "${ports[$p]}"; p=$((p + 1)); }

  # NATS: 3 nodes, each with a client, a cluster and a monitoring port.
  local client=() route=() monitor=() port
  for i in 1 2 3; do
    take_port port; client+=("$port")
    take_port port; route+=("$port")
    take_port port; monitor+=("$port")
  done
  local routes="nats://127.0.0.1:${route[0]},nats://127.0.0.1:${route[1]},nats://127.0.0.1:${route[2]}"
  # Every service connects as its own NATS user, allowed to publish only what it owns and call
  # only what it uses (`rickshaw nats-users`); operators' tools as `ops`. Fresh passwords each
  # start, kept in the state directory (mode 600) and in the servers' environment only.
  local user password nats_env=()
  declare -gA NATS_PASSWORDS=()
  for user in "${SERVICES[@]}" ops; do
    # Starting with a letter: nats-server parses a variable's value as a config value, and one
    # starting with a digit ("5e…") is read as a number and fails the start.
    password="p$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 31)"
    NATS_PASSWORDS[$user]=$password
    nats_env+=("RICKSHAW_NATS_PASSWORD_$(echo "$user" | tr '[:lower:]-' '[:upper:]_')=$password")
  done
  (umask 077; printf '%s\n' "${nats_env[@]}" > "$STATE/nats/passwords.env")
  "$bin" nats-users > "$STATE/nats/auth.conf" || die "cannot generate the NATS users"
  for i in 0 1 2; do
    mkdir -p "$STATE/nats/$((i + 1))"
    launch nats $((i + 1)) env "${nats_env[@]}" "$nats_server" -c "$STATE/nats/auth.conf" \
      -n "node-$((i + 1))" -a 127.0.0.1 -p "${client[$i]}" \
      -m "${monitor[$i]}" -js -sd "$STATE/nats/$((i + 1))" --cluster_name rickshaw \
      --cluster "nats://127.0.0.1:${route[$i]}" --routes "$routes"
  done
  for i in 0 1 2; do
    wait_http "http://127.0.0.1:${monitor[$i]}/healthz?js-enabled-only=true" 30 || die "NATS node $((i + 1)) did not start (see $STATE/logs/nats-$((i + 1)).log)"
  done
  local nats_url="nats://127.0.0.1:${client[0]},nats://127.0.0.1:${client[1]},nats://127.0.0.1:${client[2]}"
  # JetStream needs a meta leader before streams can be created.
  local deadline=$((SECONDS + 30))
  until curl -fsS "http://127.0.0.1:${monitor[0]}/jsz" 2>/dev/null | grep -q '"leader"'; do
    [ $SECONDS -lt $deadline ] || die "the NATS cluster elected no JetStream leader"
    sleep 0.3
  done

  # PostgreSQL: a fresh database.
  local db="rickshaw_cluster_$(date +%s)_$$"
  local db_url="$PG_SERVER/$db"
  psql "$PG_SERVER/postgres" -qAtc "CREATE DATABASE $db" > /dev/null || die "cannot create database $db on $PG_SERVER"
  echo "$db_url" > "$STATE/database_url"
  "$bin" migrate --database-url "$db_url" > "$STATE/logs/migrate.log" 2>&1 || die "migration failed (see $STATE/logs/migrate.log)"

  local signing_key; signing_key=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=' | head -c 48)

  # nginx's port, known now: the provider and the payment service reach each other through it.
  local edge; take_port edge

  # One config file for every service (its path in their command lines also marks them as ours).
  cat > "$STATE/rickshaw.toml" <<TOML
[nats]
url = "$nats_url"
replicas = 3

[database]
url = "$db_url"

[matching]
shards = $SHARDS

# Small H3 cells: the bots' 5 km-wide areas then span a few dozen cells, so every dispatching
# instance gets some of their trips.
[trips]
shard_resolution = 8

# The payment service calls the provider, and the provider posts its webhooks, through nginx (as
# they would reach Stripe and be reached by it).
[payment]
provider_url = "http://127.0.0.1:$edge/provider/v1"

[provider]
webhook_url = "http://127.0.0.1:$edge/v1/payments/webhook"

# No SMTP server here: receipts are .eml files in the cluster's state directory.
[mail]
dir = "$STATE/mail"

[identity]
signing_key = "$signing_key"

# Behind nginx every connection comes from nginx: the client is the address nginx names, and
# nginx (not each process) limits connections per client.
[http]
client_address_header = "x-real-ip"
max_connections_per_address = 0
# A stopping gateway answers on nginx's kept-alive connections for 2 s more, each response closing
# its connection, and nginx closes one idle for 1 s (keepalive_timeout below): nginx never sends a
# request on a connection as the gateway closes it (a POST it would not retry: a 502).
drain_ms = 2000

[log]
format = "json"
TOML

  # Services.
  local gateway_ports=() comm_ports=() ops_ports=() provider_ports=() payment_ports=()
  for service in "${SERVICES[@]}"; do
    for i in $(seq 1 "$(instances_of "$service")"); do
      take_port port
      [ "$service" = gateway ] && gateway_ports+=("$port")
      [ "$service" = communication ] && comm_ports+=("$port")
      [ "$service" = operations ] && ops_ports+=("$port")
      [ "$service" = provider ] && provider_ports+=("$port")
      [ "$service" = payment ] && payment_ports+=("$port")
      echo "$port" > "$STATE/cmd/$service-$i.port"
      launch "$service" "$i" env "RICKSHAW_NATS__USER=$service" \
        "RICKSHAW_NATS__PASSWORD=${NATS_PASSWORDS[$service]}" \
        "$bin" serve --services "$service" --listen "127.0.0.1:$port" --config "$STATE/rickshaw.toml"
    done
  done
  for service in "${SERVICES[@]}"; do
    for i in $(seq 1 "$(instances_of "$service")"); do
      wait_http "http://127.0.0.1:$(cat "$STATE/cmd/$service-$i.port")/readyz" 60 "$(cat "$STATE/pids/$service-$i")" \
        || { tail -n 20 "$STATE/logs/$service-$i.log" >&2 2> /dev/null
             die "$service $i is not ready (its log's last lines above; all of it in $STATE/logs/$service-$i.log)"; }
    done
  done

  # nginx.
  {
    echo "worker_processes 1;"
    echo "pid $STATE/nginx/nginx.pid;"
    echo "error_log $STATE/logs/nginx-error.log warn;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "  access_log off;"
    for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $STATE/nginx/tmp/$t;"; done
    echo "  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }"
    echo "  upstream gateways { $(for port in "${gateway_ports[@]}"; do printf 'server 127.0.0.1:%s max_fails=1 fail_timeout=2s; ' "$port"; done) keepalive 32; keepalive_timeout 1s; }"
    # WebSocket upstreams keep no failure count (max_fails=0): nginx takes a failed server back
    # with one trial connection per fail_timeout, and a trial that upgrades lives for as long as
    # its socket, so the count would never clear and a restarted instance would take one new
    # socket per 2 s. A stopped instance refuses at once (it closes its listener on SIGTERM), so
    # trying it first costs a refused connect, then the next server.
    echo "  upstream communication { ip_hash; $(for port in "${comm_ports[@]}"; do printf 'server 127.0.0.1:%s max_fails=0; ' "$port"; done) }"
    echo "  upstream operations { $(for port in "${ops_ports[@]}"; do printf 'server 127.0.0.1:%s max_fails=0; ' "$port"; done) }"
    echo "  upstream providers { $(for port in "${provider_ports[@]}"; do printf 'server 127.0.0.1:%s max_fails=1 fail_timeout=2s; ' "$port"; done) }"
    echo "  upstream payments { $(for port in "${payment_ports[@]}"; do printf 'server 127.0.0.1:%s max_fails=1 fail_timeout=2s; ' "$port"; done) }"
    echo "  server {"
    echo "    listen 127.0.0.1:$edge;"
    echo "    client_max_body_size 64k;"
    echo "    location ~ ^/(communication|socket\.io/|v1/ws) {"
    echo "      proxy_pass http://communication;"
    echo "      proxy_http_version 1.1;"
    echo "      proxy_set_header Upgrade \$http_upgrade;"
    echo "      proxy_set_header Connection \$connection_upgrade;"
    echo "      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"
    echo "      proxy_set_header X-Real-IP \$remote_addr;"
    echo "      proxy_read_timeout 1h;"
    echo "      proxy_next_upstream error timeout;"
    echo "    }"
    echo "    location ^~ /v1/admin/city {"
    echo "      proxy_pass http://operations;"
    echo "      proxy_http_version 1.1;"
    echo "      proxy_set_header Upgrade \$http_upgrade;"
    echo "      proxy_set_header Connection \$connection_upgrade;"
    echo "      proxy_read_timeout 1h;"
    echo "      proxy_next_upstream error timeout;"
    echo "    }"
    echo "    location /provider/ {"
    echo "      proxy_pass http://providers;"
    echo "      proxy_next_upstream error timeout;"
    echo "    }"
    echo "    location = /v1/payments/webhook {"
    echo "      proxy_pass http://payments;"
    echo "      proxy_next_upstream error timeout;"
    echo "    }"
    echo "    location / {"
    echo "      proxy_pass http://gateways;"
    echo "      proxy_http_version 1.1;"
    echo "      proxy_set_header Connection \"\";"
    echo "      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"
    echo "      proxy_set_header X-Real-IP \$remote_addr;"
    echo "      proxy_next_upstream error timeout http_502 http_503;"
    echo "    }"
    echo "  }"
    echo "}"
  } > "$STATE/nginx/nginx.conf"
  chmod -R a+rwx "$STATE/nginx/tmp"
  # In the foreground under launch, so its pid is the master's and restart works like any other.
  launch nginx 1 "$(nginx_path)" -g 'daemon off;' -c "$STATE/nginx/nginx.conf" -p "$STATE/nginx" \
    -e "$STATE/logs/nginx-error.log"
  wait_http "http://127.0.0.1:$edge/healthz" 20 "$(cat "$STATE/pids/nginx-1")" \
    || die "nginx does not reach the gateways (see $STATE/logs/nginx-error.log)"

  # Operators' tools (and the drills) read streams and buckets as `ops`.
  local ops_url="nats://ops:${NATS_PASSWORDS[ops]}@127.0.0.1:${client[0]},nats://ops:${NATS_PASSWORDS[ops]}@127.0.0.1:${client[1]},nats://ops:${NATS_PASSWORDS[ops]}@127.0.0.1:${client[2]}"
  echo "$ops_url" > "$STATE/nats_url"
  chmod 600 "$STATE/nats_url"
  echo "http://127.0.0.1:$edge" > "$STATE/url"
  status
  echo "RICKSHAW_NATS_URL=$ops_url"
  echo "RICKSHAW_DATABASE_URL=$db_url"
  echo "RICKSHAW_URL=http://127.0.0.1:$edge"
  trap - EXIT
}

alive() { kill -0 "$1" 2> /dev/null; }

# ours PID: alive and started by this cluster (its command line names the state directory), so a
# recycled pid of a process that died long ago is never signalled.
ours() { alive "$1" && tr '\0' ' ' < "/proc/$1/cmdline" 2> /dev/null | grep -qF "$STATE"; }

# terminate PID...: SIGTERM, up to 15 s, then SIGKILL — only processes that are ours.
terminate() {
  local pid mine=()
  for pid in "$@"; do ours "$pid" && mine+=("$pid"); done
  [ ${#mine[@]} -gt 0 ] || return 0
  kill -TERM "${mine[@]}" 2> /dev/null || true
  local deadline=$((SECONDS + 15))
  for pid in "${mine[@]}"; do
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2> /dev/null || true
  done
}

status() {
  [ -d "$STATE/pids" ] || { echo "cluster: not started" >&2; return 0; }
  local f
  for f in "$STATE"/pids/*; do
    [ -e "$f" ] || continue
    local name; name=$(basename "$f")
    local pid; pid=$(cat "$f")
    local state=running; ours "$pid" || state=dead
    echo "${name%-*} ${name##*-} $pid $state"
  done
}

restart() {
  local name="$1-$2"
  [ -f "$STATE/cmd/$name" ] || die "no such process: $1 $2"
  local pid; pid=$(cat "$STATE/pids/$name" 2>/dev/null || true)
  [ -z "$pid" ] || terminate "$pid"
  eval "launch $1 $2 $(cat "$STATE/cmd/$name")"
  echo "$1 $2 $(cat "$STATE/pids/$name") restarted"
}

# roll: a rolling restart. Every instance of every service in turn gets SIGTERM (its readiness
# goes false, it leaves its NATS queue groups, finishes what it holds and closes its sockets
# with 1001), exits, starts again and is ready before the next one goes; nginx and NATS stay.
roll() {
  [ -d "$STATE/cmd" ] || die "not started"
  local service port_file instance started=$SECONDS
  for service in "${SERVICES[@]}"; do
    for port_file in "$STATE/cmd/$service"-*.port; do
      [ -e "$port_file" ] || continue
      instance=${port_file##*-}; instance=${instance%.port}
      restart "$service" "$instance" > /dev/null
      wait_http "http://127.0.0.1:$(cat "$port_file")/readyz" 60 "$(cat "$STATE/pids/$service-$instance")" \
        || die "$service $instance is not ready after its restart (see $STATE/logs/$service-$instance.log)"
      echo "$service $instance restarted and ready"
      # nginx takes a server that failed back after its fail_timeout (2 s): stopping the next
      # instance before then would leave it no live server for that service.
      sleep "${RICKSHAW_ROLL_PAUSE_S:-3}"
    done
  done
  echo "cluster: rolled every service in $((SECONDS - started)) s"
}

stop() {
  [ -d "$STATE/pids" ] || { echo "cluster: not started"; return 0; }
  local f services=() edge=() nats=()
  for f in "$STATE"/pids/*; do
    [ -e "$f" ] || continue
    case "$(basename "$f")" in
      nats-*) nats+=("$(cat "$f")") ;;
      nginx-*) edge+=("$(cat "$f")") ;;
      *) services+=("$(cat "$f")") ;;
    esac
  done
  # Services first (they release leases and leave queue groups through NATS), then nginx (its
  # workers exit with the master), NATS last.
  terminate "${services[@]}"
  terminate "${edge[@]}"
  terminate "${nats[@]}"
  local pids=("${services[@]}" "${edge[@]}" "${nats[@]}")
  if [ -f "$STATE/database_url" ]; then
    local db; db=$(basename "$(cat "$STATE/database_url")")
    psql "$PG_SERVER/postgres" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" > /dev/null 2>&1 || true
  fi
  rm -rf "$STATE/pids" "$STATE/nats"
  echo "cluster: stopped ${#pids[@]} processes"
}

case "${1:-}" in
  start) start ;;
  status) status ;;
  restart) [ $# -eq 3 ] || die "usage: cluster.sh restart SERVICE INSTANCE"; restart "$2" "$3" ;;
  roll) roll ;;
  stop) stop ;;
  *) echo "usage: scripts/cluster.sh start|status|restart SERVICE INSTANCE|roll|stop" >&2; exit 2 ;;
esac
