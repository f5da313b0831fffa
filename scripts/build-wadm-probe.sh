#!/usr/bin/env bash
# Build scripts/wadm-probe (a CLI over wadm-client 0.7, the client library of wash 0.36's
# `wash app` commands) for the controller's wire-compatibility tests, once per machine and
# source: the binary is kept in $TOOL_CACHE/wadm-probe/<source hash>/ (scripts/tool-cache.sh)
# and linked as .tools/wadm-probe/release/wadm-probe. Cargo's target folder stays in the
# cache too, so a change to the probe rebuilds only the probe.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS:-$ROOT/.tools}"
# shellcheck source=scripts/tool-cache.sh
source "$ROOT/scripts/tool-cache.sh"

src="$ROOT/scripts/wadm-probe"
key="$(cd "$src" && find Cargo.toml Cargo.lock src -type f -print0 | sort -z | xargs -0 sha256sum |
  sha256sum | cut -c1-16)"
dest="$TOOL_CACHE/wadm-probe/$key"
target="$TOOL_CACHE/wadm-probe/target"

build() {
  [[ -x "$dest/wadm-probe" ]] && return 0 # built by another clone while we waited
  if [[ ! -d "$target" && -d "$TOOLS/wadm-probe/release" && ! -L "$TOOLS/wadm-probe/release" ]]; then
    # An in-clone target folder from before the cache: reuse it, cargo rebuilds what changed.
    mkdir -p "$(dirname "$target")"
    mv "$TOOLS/wadm-probe" "$target"
  fi
  echo "[wadm-probe] cargo build (about 2 minutes on 2 cores the first time; once per machine)" >&2
  # Unoptimised, like wash (scripts/build-wash.sh): the probe makes a few wadm API calls, and
  # opt-level 0 builds in 2m10s here instead of 5-10 minutes.
  CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 CARGO_PROFILE_RELEASE_INCREMENTAL=false \
    cargo build --release --locked --manifest-path "$src/Cargo.toml" --target-dir "$target" >&2
  mkdir -p "$dest.building"
  cp "$target/release/wadm-probe" "$dest.building/wadm-probe"
  rm -rf "$dest"
  mv "$dest.building" "$dest"
}

if [[ -x "$dest/wadm-probe" ]]; then
  echo "[wadm-probe] cached ($dest)" >&2
else
  with_lock wadm-probe build
fi
if [[ -f "$TOOLS/wadm-probe/CACHEDIR.TAG" ]]; then
  rm -rf "$TOOLS/wadm-probe" # an in-clone cargo target folder from before the cache
fi
link_tool "$dest" "$TOOLS/wadm-probe/release"
