#!/usr/bin/env bash
# PostgreSQL from Debian's `postgresql` package, on 127.0.0.1:5432, user/password/database im/im/im.
# Usage: postgres.sh up|down|status
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=5432
DIR="$STATE/postgres"
DATA="$DIR/data"
SOCK="$DIR/run"            # unix socket dir, private to this cluster (not /var/run/postgresql)
LOGF="$DIR/postgres.log"
PIDF="$DIR/postgres.pid"   # copy of the postmaster pid; its presence means "infra:up started it"

export PGPASSWORD=im PGCONNECT_TIMEOUT=3

pg_bin() {
  # Newest installed major version, e.g. /usr/lib/postgresql/15/bin.
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

as_pg() { runuser -u postgres -- "$@"; }

accepts_im() {
  psql -h 127.0.0.1 -p "$PORT" -U im -d im -XAtqc 'select 1' 2>/dev/null | grep -qx 1
}

ours_running() {
  [[ -s "$DATA/postmaster.pid" ]] && pid_alive "$PIDF" &&
    [[ "$(head -n 1 "$DATA/postmaster.pid")" == "$(<"$PIDF")" ]]
}

# The postgres OS user must be able to traverse every ancestor of the state dir ($HOME is 0700 for
# root). Grant it execute-only (traverse) via an ACL on just those directories, nothing else.
grant_traverse() {
  local d="$DIR" dirs=()
  while [[ "$d" != "/" ]]; do dirs=("$d" "${dirs[@]}"); d="$(dirname "$d")"; done
  for d in "${dirs[@]}"; do
    if ! as_pg test -x "$d"; then
      apt_ensure acl
      setfacl -m u:postgres:x "$d"
      log "postgres: granted the postgres user traverse (x) on $d"
    fi
  done
}

init_cluster() {
  local bin="$1" pw
  log "postgres: initdb into $DATA"
  mkdir -p "$DATA" "$SOCK"
  chown postgres:postgres "$DIR" "$DATA" "$SOCK"
  chmod 700 "$DATA"
  grant_traverse
  pw="$(mktemp "$DIR/pw.XXXXXX")"
  printf 'im\n' >"$pw"
  chown postgres "$pw"
  # Like the postgres Docker image: superuser `im` (password im), trust on the private unix socket,
  # scram-sha-256 over TCP.
  as_pg "$bin/initdb" -D "$DATA" -U im --pwfile="$pw" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 ||
    { rm -f "$pw"; fail_with_log postgres "$DIR/initdb.log"; }
  rm -f "$pw"
  cat >>"$DATA/postgresql.conf" <<EOF

# --- scripts/infra/postgres.sh ---
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
password_encryption = 'scram-sha-256'
max_connections = 200
# A throwaway dev/test cluster: trade crash safety for speed.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

# Sets `name` in postgresql.conf unless the file sets it already (also in a cluster made before
# the setting was added here).
conf_ensure() {
  grep -q "^$1 " "$DATA/postgresql.conf" || printf '%s = %s\n' "$1" "$2" >>"$DATA/postgresql.conf"
}

up() {
  if ours_running; then
    log "postgres: already running (pid $(<"$PIDF")), leaving it"
    return 0
  fi
  if port_open "$PORT"; then
    if accepts_im; then
      log "postgres: something else already serves 127.0.0.1:$PORT and accepts im/im; reusing it (infra:down will not stop it)"
      return 0
    fi
    die "postgres: 127.0.0.1:$PORT is taken by a server that does not accept im/im (password im, database im)"
  fi

  local bin
  bin="$(pg_bin)"
  if [[ -z "$bin" ]]; then
    apt_ensure postgresql
    bin="$(pg_bin)"
  fi
  [[ -f "$DATA/PG_VERSION" ]] || init_cluster "$bin"
  # Autovacuum at the pace of PostgreSQL 11 and before (20 ms sleeps between its rounds of work,
  # not 2): on the two cores the services share with it, a vacuum or analyze of the inbox or the
  # messages at full pace held the CPU for a second or two, and those were the cluster's worst
  # seconds (docs/benchmarks.md, "Autovacuum at a gentler pace"). Added to clusters made before.
  conf_ensure autovacuum_vacuum_cost_delay 20ms
  grant_traverse
  mkdir -p "$SOCK" && chown postgres:postgres "$SOCK"
  rm -f "$PIDF"
  touch "$LOGF" && chown postgres "$LOGF"

  log "postgres: starting $("$bin/postgres" --version) on 127.0.0.1:$PORT"
  as_pg "$bin/pg_ctl" -D "$DATA" -l "$LOGF" -w -t 60 start >/dev/null || fail_with_log postgres "$LOGF"
  head -n 1 "$DATA/postmaster.pid" >"$PIDF"

  # Database im (initdb only makes `postgres`); idempotent.
  if ! psql -h "$SOCK" -p "$PORT" -U im -d postgres -XAtqc "select 1 from pg_database where datname='im'" | grep -qx 1; then
    psql -h "$SOCK" -p "$PORT" -U im -d postgres -Xqc 'create database im' >/dev/null
  fi
  wait_until 30 "postgres to accept im/im over TCP" accepts_im || fail_with_log postgres "$LOGF"
  log "postgres: ready on 127.0.0.1:$PORT (pid $(<"$PIDF"), data $DATA)"
}

down() {
  if ours_running; then
    as_pg "$(pg_bin)/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
    log "postgres: stopped (pid $(<"$PIDF"))"
    rm -f "$PIDF"
  else
    rm -f "$PIDF"
    log "postgres: not started by infra:up, leaving 127.0.0.1:$PORT alone"
  fi
}

status() {
  if ours_running && accepts_im; then
    status_line postgres up "127.0.0.1:$PORT" "pid $(<"$PIDF")"
  elif accepts_im; then
    status_line postgres up "127.0.0.1:$PORT" "(not started by infra:up)"
  else
    status_line postgres down "127.0.0.1:$PORT" "-"
    return 1
  fi
}

"${1:?usage: postgres.sh up|down|status}"
