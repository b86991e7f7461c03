#!/usr/bin/env bash
# wrangler's build command: compiles the Worker to build/worker with the cached tools.
# MAB_SKIP_BUILD=1 reuses the last build (the test suite builds once, then starts wrangler).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ "${MAB_SKIP_BUILD:-}" = "1" ] && [ -f "$ROOT/build/worker/shim.mjs" ]; then
  exit 0
fi
. "$ROOT/scripts/env.sh"
if [ ! -x "$WASM_BINDGEN_BIN" ]; then
  echo "build: wasm-bindgen $WASM_BINDGEN_VERSION is not installed; run scripts/setup.sh first" >&2
  exit 1
fi
cd "$ROOT"
exec worker-build --release
