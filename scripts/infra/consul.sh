#!/usr/bin/env bash
# Consul cannot run here: no Debian package, no binary on npm/PyPI, and `go install` of
# github.com/hashicorp/consul is refused (its go.mod has local `replace` directives); see
# shared/reference/infra.md §4. infra:up does not start it; status reports it as not available
# (it does not count as "down"). If an agent happens to listen on 127.0.0.1:8500 it is reported.
# Usage: consul.sh status
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:?usage: consul.sh status}" in
  status)
    if port_open 8500; then
      status_line consul up 127.0.0.1:8500 "(not started by infra:up)"
    else
      status_line consul n/a 127.0.0.1:8500 "no agent obtainable on this machine (see infra.md §4)"
    fi ;;
  up | down) : ;;
esac
