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
# MAB_KEEP_NAMES=1: a build for bench/profile.mjs, whose CPU profile names Rust functions: no
# wasm-opt (which Cargo.toml tells to drop the names), the names section kept.
if [ "${MAB_KEEP_NAMES:-}" = "1" ]; then
  worker-build --release --no-opt
  exit 0
fi
worker-build --release
# worker-build keeps the wasm names section (it passes --debuginfo to wasm-opt); it is ~190 KB
# of function names that only decorate stack traces. Drop it to keep the bundle small.
"$WASM_OPT_BIN" --strip-debug --strip-producers build/index_bg.wasm -o build/index_bg.wasm.tmp
mv build/index_bg.wasm.tmp build/index_bg.wasm
