#!/usr/bin/env bash
# Installs everything the gateway needs on a fresh machine, idempotently; a second run takes
# seconds. Tools are cached under ~/.cache/mcp-authbridge (MAB_CACHE to move it).
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$ROOT"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown Rust target"
  rustup target add wasm32-unknown-unknown
fi
if ! rustup component list --installed 2>/dev/null | grep -q '^clippy'; then
  rustup component add clippy rustfmt
fi

if [ ! -x "$WORKER_BUILD_DIR/bin/worker-build" ]; then
  say "installing worker-build $WORKER_BUILD_VERSION (once; 4-10 min on 2 cores)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --root "$WORKER_BUILD_DIR.tmp"
  mv "$WORKER_BUILD_DIR.tmp" "$WORKER_BUILD_DIR"
fi
if [ ! -x "$WASM_BINDGEN_DIR/bin/wasm-bindgen" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION to match Cargo.lock (once; ~3 min)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --root "$WASM_BINDGEN_DIR.tmp"
  mv "$WASM_BINDGEN_DIR.tmp" "$WASM_BINDGEN_DIR"
fi

# npm deps (wrangler, its Node 22, wasm-opt, test peers). Reinstalled when package.json changes.
stamp=node_modules/.mab-package-json
if [ ! -f "$stamp" ] || ! cmp -s package.json "$stamp"; then
  say "installing npm packages (wrangler, Node 22, binaryen, MCP SDK)"
  npm install --no-audit --no-fund --loglevel=error
  cp package.json "$stamp"
fi
node_version=$(node --version)
case "$node_version" in
  v2[2-9].*) ;;
  *) echo "setup: expected Node >= 22 from node_modules/.bin, got $node_version" >&2; exit 1 ;;
esac

# Python peers for the end-to-end tests (the official `mcp` SDK), in a venv in the cache.
venv=$CACHE/venv
if [ ! -x "$venv/bin/python" ] || ! cmp -s tests/e2e/requirements.txt "$venv/.mab-requirements"; then
  say "installing Python MCP peers (tests/e2e/requirements.txt)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt
  cp tests/e2e/requirements.txt "$venv/.mab-requirements"
fi

# Headless Chromium for the page tests (Debian's package; browsers cannot be downloaded here).
if [ ! -x /usr/bin/chromium ]; then
  say "installing Debian's chromium for the page tests"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends chromium >/dev/null; }
fi
