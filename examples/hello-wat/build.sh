#!/usr/bin/env bash
# Build examples/hello-wat/build/hello-wat.wasm from hello.wat with wasm-tools (from the
# venv): parse the text into a core module, embed the world of wit/world.wit, make it a
# component. No language toolchain. The WASI WIT packages come from DEPS (the copy
# scripts/build-components.sh fetches from crates.io; it calls this script after).
#
#   examples/hello-wat/build.sh [DEPS]     DEPS defaults to .tools/wit/deps
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TOOLS="${TOOLS:-$ROOT/.tools}"
WASM_TOOLS="$TOOLS/venv/bin/wasm-tools"
DEPS="${1:-$TOOLS/wit/deps}"
OUT="$HERE/build/hello-wat.wasm"

if [[ ! -f "$DEPS/http.wit" ]]; then
  echo "hello-wat: no WASI WIT packages in $DEPS; run scripts/build-components.sh" >&2
  exit 1
fi
want="$(cat "$HERE/hello.wat" "$HERE/wit/world.wit" "$DEPS/http.wit" | sha256sum | cut -d' ' -f1)"
want="$want-$("$WASM_TOOLS" --version | awk '{print $2}')"
if [[ -f "$OUT" && -f "$OUT.stamp" && "$(cat "$OUT.stamp")" == "$want" ]]; then
  echo "[components] examples/hello-wat: up to date ($OUT)" >&2
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/wit/deps" "$HERE/build"
cp "$HERE/wit/world.wit" "$work/wit/"
for dep in "$DEPS"/*; do ln -s "$dep" "$work/wit/deps/"; done
"$WASM_TOOLS" parse "$HERE/hello.wat" -o "$work/core.wasm"
"$WASM_TOOLS" component embed "$work/wit" -w hello-wat "$work/core.wasm" -o "$work/embedded.wasm"
"$WASM_TOOLS" component new "$work/embedded.wasm" -o "$work/hello-wat.wasm"
"$WASM_TOOLS" validate "$work/hello-wat.wasm"
mv "$work/hello-wat.wasm" "$OUT"
echo "$want" >"$OUT.stamp"
echo "[components] examples/hello-wat: built $OUT ($(stat -c %s "$OUT") bytes)" >&2
