#!/usr/bin/env bash
# npm run infra:up — obtain (first time) and start the local third-party stack on 127.0.0.1, wait
# until each part really answers, and print where it runs. Parts already running are left alone.
# A part that fails does not stop the others; the script then exits non-zero.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The readiness checks are small node scripts that use the repo's own client packages.
for pkg in kafkajs mongodb minio; do
  [[ -d "$REPO_DIR/node_modules/$pkg" ]] || die "node_modules/$pkg is missing: run npm install first"
done

# PostgreSQL and Redis first: simplest, and what most adapters need.
PARTS=(postgres redis kafka mongo s3)
failed=()
t0=$SECONDS
for part in "${PARTS[@]}"; do
  t=$SECONDS
  if bash "$INFRA_DIR/$part.sh" up; then
    log "$part: up ($((SECONDS - t))s)"
  else
    failed+=("$part")
  fi
done

echo
bash "$INFRA_DIR/status.sh" || true
echo
echo "Environment for the adapters (also their defaults, so nothing needs exporting):"
echo "  DATABASE_URL=postgres://im:im@127.0.0.1:5432/im REDIS_URL=redis://127.0.0.1:6379 KAFKA_BROKERS=127.0.0.1:9092 MONGO_URL=mongodb://127.0.0.1:27017 S3_ENDPOINT=http://127.0.0.1:9000 S3_ACCESS_KEY=im-minio S3_SECRET_KEY=im-minio-secret"
echo "State (data, logs, pid files): $STATE   Cache (jars, binaries): $CACHE"
echo "infra:up took $((SECONDS - t0))s"

if ((${#failed[@]})); then
  log "FAILED: ${failed[*]} (see the log tails above; the other parts are running)"
  exit 1
fi
