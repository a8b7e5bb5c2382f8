# Shared helpers for the local third-party stack (sourced by the scripts in scripts/infra/).
#
# Downloads and builds are cached outside the repo in $IM_INFRA_CACHE; everything a running server
# writes (data, pid files, logs) lives in $IM_INFRA_STATE. Every server listens on 127.0.0.1 only.

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$INFRA_DIR/../.." && pwd)"
CACHE="${IM_INFRA_CACHE:-$HOME/.cache/im-infra}"
STATE="${IM_INFRA_STATE:-$HOME/.local/state/im-infra}"
# Node 24 is an npm devDependency of the repo; the system node may be older.
NODE="$REPO_DIR/node_modules/.bin/node"
[[ -x "$NODE" ]] || NODE="$(command -v node)"

mkdir -p "$CACHE" "$STATE"

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive FILE: true when FILE holds the pid of a live process.
pid_alive() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(<"$1")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# wait_until SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.5 s until it succeeds or time runs out.
wait_until() {
  local timeout="$1" what="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

# fail_with_log NAME LOGFILE: print the tail of a server's log and exit non-zero.
fail_with_log() {
  log "$1 failed to become ready; last lines of $2:"
  tail -n 40 "$2" >&2 2>/dev/null || true
  exit 1
}

# spawn PIDFILE LOGFILE COMMAND...: start a long-running server in its own session (so it outlives
# the shell and npm that started it) and record its pid. The pid is written by the process itself
# just before exec, because `setsid` forks (and $! is useless) when the caller uses job control.
spawn() {
  local pidf="$1" logf="$2"; shift 2
  rm -f "$pidf"
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidf" "$@" >"$logf" 2>&1 </dev/null &
  wait_until 10 "$pidf" test -s "$pidf"
}

# wait_port NAME PIDFILE PORT TIMEOUT LOGFILE: wait until a server we just spawned opens its port;
# fail at once (with the log tail) if it exits, or after TIMEOUT seconds.
wait_port() {
  local name="$1" pidf="$2" port="$3" timeout="$4" logf="$5"
  local deadline=$((SECONDS + timeout))
  until port_open "$port"; do
    pid_alive "$pidf" || { log "$name: the process exited during startup"; fail_with_log "$name" "$logf"; }
    ((SECONDS < deadline)) || { log "$name: timed out after ${timeout}s waiting for 127.0.0.1:$port"; fail_with_log "$name" "$logf"; }
    sleep 0.5
  done
}

# stop_pid NAME PIDFILE: stop a process that `up` started (SIGTERM, then SIGKILL after 30 s).
stop_pid() {
  local name="$1" file="$2" pid
  if ! pid_alive "$file"; then
    rm -f "$file"
    log "$name: not running (nothing started by infra:up)"
    return 0
  fi
  pid="$(<"$file")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: pid $pid ignored SIGTERM for 30 s, sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
  log "$name: stopped (pid $pid)"
}

# apt_ensure PACKAGE...: install Debian packages that are missing (runs `apt-get update` first).
apt_ensure() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# status_line NAME up|down ADDRESS PID/DETAIL
status_line() { printf '%-9s %-5s %-22s %s\n' "$1" "$2" "$3" "$4"; }
