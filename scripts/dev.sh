#!/usr/bin/env bash
# The README's first command: set up this machine (idempotent) and run the gateway locally with
# `wrangler dev`: local KV and Durable Objects under .wrangler/state, no Cloudflare account.
# Extra arguments go to wrangler (e.g. --port 8788).
set -euo pipefail
. "$(dirname "$0")/env.sh"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
port=8787
rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port=$2; shift 2 ;;
    --port=*) port=${1#--port=}; shift ;;
    *) rest+=("$1"); shift ;;
  esac
done
admin=$(sed -n 's/^ADMIN_TOKEN=//p' .dev.vars)
cat >&2 <<MSG

  mcp-authbridge (local development)
    gateway:      http://127.0.0.1:$port   (MCP: /mcp/{upstream}, legacy SSE: /sse/{upstream})
    admin API:    http://127.0.0.1:$port/admin/v1   (Authorization: Bearer $admin)
    dev settings: .dev.vars (DEV_MODE seals secrets with a PUBLIC development key)

MSG
exec wrangler dev --ip 127.0.0.1 --port "$port" ${rest[@]+"${rest[@]}"}
