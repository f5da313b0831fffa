#!/usr/bin/env bash
# Build the Python components with componentize-py. A component directory holds
#
#   component/app.py       the code (componentize-py bundles the whole component/ folder)
#   wit/world.wit          its world (exactly one `world` line) and any other .wit files
#                          of the same package
#   wit/deps/<package>/    WIT packages it imports beyond WASI, e.g. another component's
#                          interface (a symlink to the shared contract is fine)
#
# and builds into <dir>/build/<dir name>.wasm. Component directories are searched in
#
#   examples/<name>/              e.g. examples/counter -> examples/counter/build/counter.wasm
#   examples/<name>/<component>/  e.g. examples/edge-core-app/gateway/build/gateway.wasm
#   tests/components/<name>/      test-only components, e.g. tests/components/types-callee
#
# The standard WASI WIT packages are interface contracts taken from crates.io: we
# `cargo fetch` the pinned wasmtime-wasi-http and wasmtime-wasi-keyvalue crates
# (scripts/wit-crates) and copy the wit/deps they ship. A component is rebuilt only
# when its sources (every file under component/ and wit/), the WIT crates or
# componentize-py change; built components are also kept in the per-machine tool cache
# under that key (scripts/tool-cache.sh), so a fresh clone copies them instead of
# running componentize-py again.
#
#   scripts/build-components.sh [DIR ...]   only these component directories
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
  # wasi:blobstore@0.2.0-draft from wrpc-interface-blobstore (what 1.x providers serve); it
  # uses wasi:io@0.2.0's streams, which are the io@0.2.x above (WASI 0.2 minors are one
  # ABI): pointed there so a component has one wasi:io.
  cp -r "$(crate_dir wrpc-interface-blobstore)/wit/deps/blobstore" "$DEPS/blobstore"
  sed -i "s/wasi:io\/streams@0\.2\.0\b/wasi:io\/streams@$(sed -nE 's/^package wasi:io@([0-9.]+);/\1/p' "$DEPS/io.wit")/" "$DEPS"/blobstore/*.wit
  # wasmcloud:messaging@0.2.0 (what messaging-nats serves) from the wasmcloud-component crate.
  cp -r "$(crate_dir wasmcloud-component)/wit/deps/messaging" "$DEPS/messaging"
  echo "$wit_stamp" >"$DEPS/.stamp"
}

# sources_hash DIR: one hash over the path and content of every source file of the
# component (symlinks followed, so a change to a shared WIT contract rebuilds its users).
sources_hash() {
  (cd "$1" && find -L component wit -type f ! -path '*/__pycache__/*' ! -name '*.pyc' |
    LC_ALL=C sort | while IFS= read -r file; do
      printf '%s %s\n' "$(sha256sum "$file" | cut -d' ' -f1)" "$file"
    done) | sha256sum | cut -d' ' -f1
}

# world_name DIR: the one world its world.wit declares (what componentize-py builds).
world_name() {
  local worlds
  worlds="$(sed -nE 's/^[[:space:]]*world[[:space:]]+([a-z][a-z0-9-]*)[[:space:]]*\{.*/\1/p' "$1/wit/world.wit")"
  if [[ -z "$worlds" || "$(wc -l <<<"$worlds")" -ne 1 ]]; then
    echo "build-components: $1/wit/world.wit must declare exactly one world (found: ${worlds:-none})" >&2
    exit 1
  fi
  printf '%s' "$worlds"
}

build_one() {
  local dir="$1" name rel out want cached work start world
  name="$(basename "$dir")"
  rel="${dir#"$ROOT"/}"
  out="$dir/build/$name.wasm"
  want="$(sources_hash "$dir")-$wit_stamp-$tool_version"
  # Keyed by where the component lives, so two directories of one name never share entries.
  cached="$TOOL_CACHE/components/${rel//\//-}/$(printf '%s' "$want" | sha256sum | cut -c1-16).wasm"
  if [[ -f "$out" && -f "$out.stamp" && "$(cat "$out.stamp")" == "$want" ]]; then
    say "$rel: up to date ($out)"
    if [[ ! -f "$cached" ]]; then # built before the cache existed: share it
      mkdir -p "$(dirname "$cached")"
      cp "$out" "$cached.$$" && mv "$cached.$$" "$cached"
    fi
    return 0
  fi
  mkdir -p "$dir/build"
  if [[ -f "$cached" ]]; then
    cp "$cached" "$out.tmp"
    mv "$out.tmp" "$out"
    echo "$want" >"$out.stamp"
    say "$rel: copied from the machine's cache ($cached)"
    return 0
  fi
  fetch_wit
  work="$TOOLS/build/${rel//\//-}"
  rm -rf "$work" && mkdir -p "$work/wit/deps"
  # The component's own WIT (its deps dereferenced), then the WASI packages next to them.
  find "$dir/wit" -maxdepth 1 -name '*.wit' -exec cp -L {} "$work/wit/" \;
  if [[ -d "$dir/wit/deps" ]]; then
    cp -rL "$dir/wit/deps/." "$work/wit/deps/"
  fi
  for dep in "$DEPS"/*; do
    [[ -e "$work/wit/deps/$(basename "$dep")" ]] || ln -s "$dep" "$work/wit/deps/"
  done
  world="$(world_name "$dir")"
  start=$SECONDS
  say "$rel: componentize-py (about 15 s) ..."
  (cd "$work" && "$COMPONENTIZE" -d wit -w "$world" componentize \
    -p "$dir/component" app -o "$out.tmp" >&2)
  mv "$out.tmp" "$out"
  echo "$want" >"$out.stamp"
  mkdir -p "$(dirname "$cached")"
  cp "$out" "$cached.$$" && mv "$cached.$$" "$cached"
  say "$rel: built $out ($(du -h "$out" | cut -f1)) in $((SECONDS - start))s"
}

is_component() { [[ -f "$1/component/app.py" && -f "$1/wit/world.wit" ]]; }

tool_version="$("$COMPONENTIZE" --version 2>/dev/null | awk '{print $2}')"
if [[ $# -gt 0 ]]; then
  for arg in "$@"; do
    dir="$(cd "$arg" && pwd)"
    is_component "$dir" || {
      echo "build-components: $arg is not a component directory (component/app.py + wit/world.wit)" >&2
      exit 1
    }
    build_one "$dir"
  done
  exit 0
fi
shopt -s nullglob
for dir in "$ROOT"/examples/* "$ROOT"/examples/*/* "$ROOT"/tests/components/*; do
  if is_component "$dir"; then
    build_one "$dir"
  fi
done
fetch_wit && bash "$ROOT/examples/hello-wat/build.sh" "$DEPS" # the WAT guest (wasm-tools)
