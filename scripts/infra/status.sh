#!/usr/bin/env bash
# npm run infra:status — one line per part: name, up/down, address, pid. Exits non-zero if any
# part is down. Consul is listed for completeness: no agent can be obtained on these machines.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rc=0
for part in postgres redis kafka mongo s3; do
  bash "$INFRA_DIR/$part.sh" status || rc=1
done
bash "$INFRA_DIR/consul.sh" status
exit "$rc"
