#!/usr/bin/env bash
# The README's benchmark command (not part of the test command): sets the machine up if needed,
# builds the release Worker, and runs bench/run.mjs, which writes bench/RESULTS.md.
# BENCH_RUNS (default 3) and the other BENCH_* variables in bench/run.mjs scale it down or up.
set -euo pipefail
. "$(dirname "$0")/env.sh"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
if [ "${MAB_SKIP_BUILD:-}" != "1" ]; then
  bash scripts/build.sh
fi
node bench/run.mjs
