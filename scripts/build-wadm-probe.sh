#!/usr/bin/env bash
# Build scripts/wadm-probe (a CLI over wadm-client 0.7, the client library of wash 0.36's
# `wash app` commands) into .tools/wadm-probe, for the controller's wire-compatibility
# tests. Cached: cargo rebuilds only what changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS:-$ROOT/.tools}"
cargo build --quiet --release --locked \
  --manifest-path "$ROOT/scripts/wadm-probe/Cargo.toml" \
  --target-dir "$TOOLS/wadm-probe"
