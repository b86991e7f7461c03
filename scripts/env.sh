# Sourced by the other scripts: where the cached tools live, and the PATH that finds them.
# Versions come from the project's own files, so a change there installs the new version.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
CACHE=${MAB_CACHE:-$HOME/.cache/mcp-authbridge}
WORKER_BUILD_VERSION=$(awk '/^name = "worker"$/{getline; gsub(/"/,"",$3); print $3; exit}' "$ROOT/Cargo.lock")
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/"/,"",$3); print $3; exit}' "$ROOT/Cargo.lock")
WORKER_BUILD_DIR=$CACHE/tools/worker-build-$WORKER_BUILD_VERSION
WASM_BINDGEN_DIR=$CACHE/tools/wasm-bindgen-$WASM_BINDGEN_VERSION
export PATH="$ROOT/node_modules/.bin:$WORKER_BUILD_DIR/bin:$WASM_BINDGEN_DIR/bin:$HOME/.cargo/bin:$PATH"
export WASM_BINDGEN_BIN=$WASM_BINDGEN_DIR/bin/wasm-bindgen
export WASM_OPT_BIN=$ROOT/node_modules/.bin/wasm-opt
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export NPM_CONFIG_UPDATE_NOTIFIER=false
export ESBUILD_BIN=$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild
