#!/usr/bin/env bash
# npm run infra:down — stop what infra:up started (found through its pid files), in reverse order.
# A server that infra:up did not start (e.g. a PostgreSQL it reused) is left running.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rc=0
for part in s3 mongo kafka redis postgres; do
  bash "$INFRA_DIR/$part.sh" down || rc=1
done
exit "$rc"
