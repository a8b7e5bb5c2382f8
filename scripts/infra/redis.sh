#!/usr/bin/env bash
# Redis from Debian's `redis-server` package, on 127.0.0.1:6379, no persistence.
# Usage: redis.sh up|down|status
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=6379
DIR="$STATE/redis"
LOGF="$DIR/redis.log"
PIDF="$DIR/redis.pid"

pong() { [[ "$(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" == PONG ]]; }

up() {
  if pid_alive "$PIDF"; then
    log "redis: already running (pid $(<"$PIDF")), leaving it"
    return 0
  fi
  # Installing the package registers a systemd unit; on a machine with systemd that already gives
  # a Redis on 6379, which is reused below.
  apt_ensure redis-server
  if port_open "$PORT"; then
    pong && { log "redis: something else already serves 127.0.0.1:$PORT; reusing it (infra:down will not stop it)"; return 0; }
    die "redis: 127.0.0.1:$PORT is taken by something that does not answer PING"
  fi
  mkdir -p "$DIR"
  rm -f "$PIDF"
  log "redis: starting $(redis-server --version | awk '{print $3}') on 127.0.0.1:$PORT"
  redis-server --bind 127.0.0.1 --port "$PORT" --protected-mode yes \
    --save '' --appendonly no --dir "$DIR" \
    --daemonize yes --pidfile "$PIDF" --logfile "$LOGF" || fail_with_log redis "$LOGF"
  wait_until 20 "redis PING" pong || fail_with_log redis "$LOGF"
  wait_until 5 "redis pid file" test -s "$PIDF" || true
  log "redis: ready on 127.0.0.1:$PORT (pid $(cat "$PIDF" 2>/dev/null))"
}

down() { stop_pid redis "$PIDF"; }

status() {
  if pid_alive "$PIDF" && pong; then
    status_line redis up "127.0.0.1:$PORT" "pid $(<"$PIDF")"
  elif pong; then
    status_line redis up "127.0.0.1:$PORT" "(not started by infra:up)"
  else
    status_line redis down "127.0.0.1:$PORT" "-"
    return 1
  fi
}

"${1:?usage: redis.sh up|down|status}"
