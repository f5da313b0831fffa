#!/usr/bin/env bash
# Optional: build real `wash` 0.36.1 (wasmCloud 1.x era) from crates.io for wire
# compatibility tests. Slow (a large Rust build on 2 cores), so bootstrap runs it only
# with WITH_WASH=1; tests that need wash skip with a reason when it is absent.
set -euo pipefail
TOOLS="${TOOLS:?TOOLS must point at the tool cache folder}"
WASH_VERSION="${WASH_VERSION:-0.36.1}"
if [[ -x "$TOOLS/wash/bin/wash" ]]; then exit 0; fi
echo "[wash] cargo install wash-cli $WASH_VERSION (long first build; cached in $TOOLS/wash)" >&2
CARGO_TARGET_DIR="$TOOLS/wash/target" cargo install --locked wash-cli --version "$WASH_VERSION" \
  --root "$TOOLS/wash"
