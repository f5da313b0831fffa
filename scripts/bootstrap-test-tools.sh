#!/usr/bin/env bash
# Build the tools only the tests use, after scripts/bootstrap.sh (`make test` runs both;
# `make up` runs only the main bootstrap). Each is built once per machine into the tool
# cache outside the clone (scripts/tool-cache.sh) and linked into .tools/:
#
#   .tools/wadm-probe/release/wadm-probe   wadm-client 0.7 CLI (tests/integration/test_wadm_client_compat.py)
#   .tools/wash/bin/wash                    real wash-cli 0.39 (tests/integration/test_wash_compat.py)
#
# A cold machine pays about 5 minutes for wadm-probe and 25 for wash; later runs, in
# any clone, take a second. A tool that fails to build is reported and its tests skip
# with the reason. SKIP_WASH=1 skips the wash build (its tests then skip).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS:-$ROOT/.tools}"
export TOOLS

step() { printf '[test-tools] %s\n' "$*" >&2; }
timed() {
  local label="$1"; shift
  local start=$SECONDS
  step "$label ..."
  "$@"
  step "$label: done in $((SECONDS - start))s"
}

if ! command -v cargo >/dev/null 2>&1; then
  step "WARNING: cargo is not installed; the wadm-client and wash compatibility tests will be skipped"
  exit 0
fi

timed "wadm-probe (wadm-client 0.7 from crates.io)" bash "$ROOT/scripts/build-wadm-probe.sh" ||
  step "WARNING: building wadm-probe failed; wadm-client compatibility tests will be skipped"

if [[ "${SKIP_WASH:-0}" == "1" ]]; then
  step "wash: skipped (SKIP_WASH=1); wash compatibility tests will be skipped"
else
  timed "wash-cli from crates.io" bash "$ROOT/scripts/build-wash.sh" ||
    step "WARNING: building wash failed; wash compatibility tests will be skipped"
fi
