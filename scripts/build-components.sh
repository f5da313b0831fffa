#!/usr/bin/env bash
# Build the example components (examples/*/component/app.py + examples/*/wit/world.wit)
# into examples/<name>/build/<name>.wasm with componentize-py.
#
# The standard WASI WIT packages are interface contracts taken from crates.io: we
# `cargo fetch` the pinned wasmtime-wasi-http and wasmtime-wasi-keyvalue crates
# (scripts/wit-crates) and copy the wit/deps they ship. A component is rebuilt only
# when its sources, the WIT crates or componentize-py change; built components are also
# kept in the per-machine tool cache under that key (scripts/tool-cache.sh), so a fresh
# clone copies them instead of running componentize-py again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS:-$ROOT/.tools}"
COMPONENTIZE="$TOOLS/venv/bin/componentize-py"
CRATES="$ROOT/scripts/wit-crates"
DEPS="$TOOLS/wit/deps"
# shellcheck source=scripts/tool-cache.sh
source "$ROOT/scripts/tool-cache.sh"

say() { printf '[components] %s\n' "$*" >&2; }

crate_dir() {
  cargo metadata --format-version 1 --locked --manifest-path "$CRATES/Cargo.toml" |
    "$TOOLS/venv/bin/python" -c '
import json, os, sys
meta = json.load(sys.stdin)
[pkg] = [p for p in meta["packages"] if p["name"] == sys.argv[1]]
print(os.path.dirname(pkg["manifest_path"]))' "$1"
}

wit_stamp="$(sha256sum "$CRATES/Cargo.lock" | cut -d' ' -f1)"
fetch_wit() {
  [[ -f "$DEPS/.stamp" && "$(cat "$DEPS/.stamp")" == "$wit_stamp" ]] && return 0
  if ! command -v cargo >/dev/null 2>&1; then
    echo "build-components: cargo is needed to fetch the WASI WIT packages from crates.io" >&2
    exit 1
  fi
  say "fetching WASI WIT packages from crates.io (wasmtime-wasi-http, wasmtime-wasi-keyvalue)"
  cargo fetch --locked --manifest-path "$CRATES/Cargo.toml" >&2
  local http keyvalue
  http="$(crate_dir wasmtime-wasi-http)"
  keyvalue="$(crate_dir wasmtime-wasi-keyvalue)"
  rm -rf "$DEPS" && mkdir -p "$DEPS"
  cp "$http"/wit/deps/*.wit "$DEPS/"
  cp -r "$keyvalue/wit/deps/keyvalue" "$DEPS/keyvalue"
  echo "$wit_stamp" >"$DEPS/.stamp"
}

tool_version="$("$COMPONENTIZE" --version 2>/dev/null | awk '{print $2}')"
for example in "$ROOT"/examples/*; do
  name="$(basename "$example")"
  [[ -d "$example" && -f "$example/component/app.py" && -f "$example/wit/world.wit" ]] || continue
  out="$example/build/$name.wasm"
  want="$(cat "$example/component/app.py" "$example/wit/world.wit" | sha256sum | cut -d' ' -f1)-$wit_stamp-$tool_version"
  cached="$TOOL_CACHE/components/$name/$(printf '%s' "$want" | sha256sum | cut -c1-16).wasm"
  if [[ -f "$out" && -f "$out.stamp" && "$(cat "$out.stamp")" == "$want" ]]; then
    say "$name: up to date ($out)"
    if [[ ! -f "$cached" ]]; then # built before the cache existed: share it
      mkdir -p "$(dirname "$cached")"
      cp "$out" "$cached.$$" && mv "$cached.$$" "$cached"
    fi
    continue
  fi
  mkdir -p "$example/build"
  if [[ -f "$cached" ]]; then
    cp "$cached" "$out.tmp"
    mv "$out.tmp" "$out"
    echo "$want" >"$out.stamp"
    say "$name: copied from the machine's cache ($cached)"
    continue
  fi
  fetch_wit
  work="$TOOLS/build/$name"
  rm -rf "$work" && mkdir -p "$work/wit"
  cp "$example/wit/world.wit" "$work/wit/"
  ln -s "$DEPS" "$work/wit/deps"
  start=$SECONDS
  say "$name: componentize-py (about 15 s) ..."
  (cd "$work" && "$COMPONENTIZE" -d wit -w "$name" componentize \
    -p "$example/component" app -o "$out.tmp" >&2)
  mv "$out.tmp" "$out"
  echo "$want" >"$out.stamp"
  mkdir -p "$(dirname "$cached")"
  cp "$out" "$cached.$$" && mv "$cached.$$" "$cached"
  say "$name: built $out ($(du -h "$out" | cut -f1)) in $((SECONDS - start))s"
done
