#!/usr/bin/env bash
# S3 server: versitygw (Versity S3 Gateway, Apache-2.0) built from the Go module proxy, with its
# posix backend (buckets are directories, objects files, metadata in xattrs) on 127.0.0.1:9000,
# access key im-minio / secret im-minio-secret like the minio service of docker-compose.yml.
# Real SigV4 checks, presigned URLs and the full multipart API.
#
# Why not S3Proxy (Maven Central): 3.0.0 answers ListMultipartUploads with NotImplemented as soon as
# the request carries delimiter/max-uploads, and minio-js always sends them before a multipart
# upload, so every multipart upload from the `minio` client fails.
# Usage: s3.sh up|down|status
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSITYGW_VERSION=v1.8.0
PORT=9000
ACCESS_KEY=im-minio
SECRET_KEY=im-minio-secret
BIN="$CACHE/bin/versitygw-$VERSITYGW_VERSION"
DIR="$STATE/s3"
LOGF="$DIR/versitygw.log"
PIDF="$DIR/versitygw.pid"

check() {
  NODE_NO_WARNINGS=1 "$NODE" "$INFRA_DIR/s3/check.mjs" 127.0.0.1 "$PORT" "$ACCESS_KEY" "$SECRET_KEY" "$1"
}

build() {
  [[ -x "$BIN" ]] && return 0
  command -v go >/dev/null || die "s3: Go (>= 1.25) is needed to build versitygw"
  log "s3: building versitygw $VERSITYGW_VERSION from the Go module proxy (takes 1-3 min once)"
  local gobin="$CACHE/bin/.versitygw-build"
  rm -rf "$gobin"
  GOFLAGS=-buildvcs=false GOBIN="$gobin" go install -trimpath \
    -ldflags "-X main.Version=$VERSITYGW_VERSION" \
    "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >"$CACHE/versitygw-build.log" 2>&1 ||
    fail_with_log "s3 (go install)" "$CACHE/versitygw-build.log"
  mv "$gobin/versitygw" "$BIN"
  rm -rf "$gobin"
}

up() {
  if pid_alive "$PIDF"; then
    log "s3: already running (pid $(<"$PIDF")), leaving it"
    return 0
  fi
  # Obtain first (cached after the first run), then look at the port.
  build
  if port_open "$PORT"; then
    check 10 >/dev/null && { log "s3: something else already serves 127.0.0.1:$PORT with these keys; reusing it (infra:down will not stop it)"; return 0; }
    die "s3: 127.0.0.1:$PORT is taken by something that fails the S3 check"
  fi
  mkdir -p "$DIR/data"
  log "s3: starting versitygw $VERSITYGW_VERSION (posix backend) on 127.0.0.1:$PORT"
  # The log gets one access-log line per request, handy when debugging the adapter.
  spawn "$PIDF" "$LOGF" "$BIN" --port "127.0.0.1:$PORT" --access "$ACCESS_KEY" --secret "$SECRET_KEY" \
    --region us-east-1 posix "$DIR/data"
  wait_port s3 "$PIDF" "$PORT" 30 "$LOGF"
  check 30 >&2 || fail_with_log s3 "$LOGF"
  log "s3: ready on 127.0.0.1:$PORT (pid $(<"$PIDF"), data $DIR/data)"
}

down() { stop_pid s3 "$PIDF"; }

status() {
  if pid_alive "$PIDF" && port_open "$PORT"; then
    status_line s3 up "127.0.0.1:$PORT" "pid $(<"$PIDF") (versitygw $VERSITYGW_VERSION)"
  elif port_open "$PORT"; then
    status_line s3 up "127.0.0.1:$PORT" "(not started by infra:up)"
  else
    status_line s3 down "127.0.0.1:$PORT" "-"
    return 1
  fi
}

"${1:?usage: s3.sh up|down|status}"
