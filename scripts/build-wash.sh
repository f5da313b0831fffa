#!/usr/bin/env bash
# Build real `wash` (wash-cli from crates.io, wasmCloud 1.x era) into the per-machine tool
# cache and link it as .tools/wash, for the wire-compatibility tests
# (tests/integration/test_wash_compat.py).
#
# 0.36.1 does not compile with current rustc (wasmtime-wasi 25 fails const evaluation);
# 0.39.0, the last 1.x-era release, does. It is a large build (about 600 crates, a 2 GB
# target folder, deleted afterwards); the binary is kept in $TOOL_CACHE/wash/<version>/bin/wash,
# so each machine pays it once. It is built without optimisation: the tests only use wash
# for a handful of control-interface calls, and opt-level 0 took the build from about 25 to
# under 7 minutes on two cores (measured: 6m43s), which is what keeps a cold CI run in time.
#
#   WASH_VERSION=x.y.z   build only that version (default: 0.39.0, then 0.38.0, 0.37.0)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS:-$ROOT/.tools}"
# shellcheck source=scripts/tool-cache.sh
source "$ROOT/scripts/tool-cache.sh"

say() { printf '[wash] %s\n' "$*" >&2; }

if [[ -n "${WASH_VERSION:-}" ]]; then
  versions=("$WASH_VERSION")
else
  versions=(0.39.0 0.38.0 0.37.0)
fi

cached() { [[ -x "$TOOL_CACHE/wash/$1/bin/wash" ]]; }

build() {
  local version="$1" dest="$TOOL_CACHE/wash/$1"
  cached "$version" && return 0 # built by another clone while we waited for the lock
  local work="$dest.building"
  rm -rf "$work"
  mkdir -p "$work"
  say "cargo install wash-cli $version into $dest (about 7 minutes on 2 cores; once per machine)"
  local start=$SECONDS status=0
  CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 CARGO_PROFILE_RELEASE_INCREMENTAL=false \
    CARGO_TARGET_DIR="$work/target" cargo install --locked wash-cli --version "$version" \
    --root "$work" >&2 || status=$?
  rm -rf "$work/target" # about 2 GB of intermediate build output
  if [[ $status -ne 0 ]]; then
    rm -rf "$work"
    say "wash-cli $version failed to build after $((SECONDS - start))s (cargo output above)"
    return "$status"
  fi
  rm -rf "$dest"
  mv "$work" "$dest"
  say "built $("$dest/bin/wash" --version 2>/dev/null | head -1) in $((SECONDS - start))s"
}

for version in "${versions[@]}"; do
  if cached "$version" || with_lock "wash-$version" build "$version"; then
    link_tool "$TOOL_CACHE/wash/$version" "$TOOLS/wash"
    say "wash-cli $version: $TOOLS/wash -> $TOOL_CACHE/wash/$version"
    exit 0
  fi
done
say "no wash-cli version in ${versions[*]} builds here"
exit 1
