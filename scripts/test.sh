#!/usr/bin/env bash
# The README's test command (and CI's): sets the machine up if needed, then runs every check:
# formatting, clippy (native and wasm32), native unit tests, the release wasm build with its
# size budget, `wrangler deploy --dry-run`, and the end-to-end suite against `wrangler dev`.
set -euo pipefail
. "$(dirname "$0")/env.sh"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "cargo fmt --check"
cargo fmt --check
step "cargo clippy (native, wasm32)"
cargo clippy --all-targets --quiet -- -D warnings
cargo clippy --target wasm32-unknown-unknown --quiet -- -D warnings
step "native unit tests"
cargo test --quiet

step "release build"
bash scripts/build.sh
raw=$(stat -c %s build/index_bg.wasm)
gz=$(gzip -9c build/index_bg.wasm | wc -c)
# A regression guard, not a product limit (Cloudflare allows 64 MiB): raised from 1024 / 400 when
# the credential lifecycle and the first parts of the authorization server came in, and from
# 1152 / 448 when the rest of it did (the cold first request stayed the same), and from
# 1216 / 480 for the built-in OpenAPI document, data rather than code, and from 1280 / 496 for the
# operator console, off the hot path behind cold() (README "Bundle"); lowered to 1216 / 480 when
# the Unicode tables went (1173 / 455 KiB), because the cold first request follows the module's
# size (bench/PROFILE.md).
printf 'wasm bundle: %d KiB raw, %d KiB gzip (budget 1216 / 480)\n' $((raw / 1024)) $((gz / 1024))
if [ "$raw" -gt $((1216 * 1024)) ] || [ "$gz" -gt $((480 * 1024)) ]; then
  echo "wasm bundle over budget" >&2
  exit 1
fi
step "wrangler deploy --dry-run"
MAB_SKIP_BUILD=1 wrangler deploy --dry-run --outdir "$(mktemp -d)" > /tmp/mab-dry-run.log 2>&1 || { cat /tmp/mab-dry-run.log; exit 1; }
grep -E "Total Upload" /tmp/mab-dry-run.log || true

step "end-to-end (wrangler dev + real MCP servers and clients)"
node --test --test-concurrency=1 tests/e2e/*.test.mjs
