#!/usr/bin/env bash
# Build the host agent's native wasi:http host (native/: a Python extension on wasmtime's
# wasi-http, see host_agent/runtime/native_http.py) and install it into the venv.
#
# The wheel is built once per machine and source: it is kept in
# $TOOL_CACHE/native/<source hash>/ (scripts/tool-cache.sh), with cargo's target folder
# beside it, so a change to native/ rebuilds only our crate. The wheelhouse that hosts
# on other machines install from takes it from there too. The first build compiles
# wasmtime: about 5.5 minutes on 2 cores. Without cargo the host runs every component on
# its Python host (the same behaviour, slower): this script then warns and exits 0.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS:-$ROOT/.tools}"
VENV="$TOOLS/venv"
# shellcheck source=scripts/tool-cache.sh
source "$ROOT/scripts/tool-cache.sh"

src="$ROOT/native"
# The wheelhouse finds the wheel by the same key (pulumi_wasmcloud/provision/native_wheel.py).
key="$("$VENV/bin/python" -m pulumi_wasmcloud.provision.native_wheel "$src")"
dest="$TOOL_CACHE/native/$key"
target="$TOOL_CACHE/native/target"

if ! command -v cargo >/dev/null 2>&1; then
  echo "[native] WARNING: cargo is not installed; components run on the Python host only" >&2
  exit 0
fi

build() {
  compgen -G "$dest/*.whl" >/dev/null && return 0 # built by another clone while we waited
  echo "[native] building the wasi:http host (wasmtime 48; about 5.5 minutes on 2 cores the first time, once per machine)" >&2
  rm -rf "$dest.building"
  mkdir -p "$dest.building"
  # The wheel's manifest pins every crate (Cargo.lock) and maturin (pyproject.toml).
  CARGO_TARGET_DIR="$target" CARGO_NET_RETRY=5 \
    "$VENV/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps \
    --wheel-dir "$dest.building" "$src" >&2
  rm -rf "$dest"
  mv "$dest.building" "$dest"
}

if compgen -G "$dest/*.whl" >/dev/null; then
  echo "[native] cached ($dest)" >&2
else
  with_lock native build
fi

stamp="$TOOLS/.native-stamp"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$key" ]] && "$VENV/bin/python" -c 'import wasmcloud_native' 2>/dev/null; then
  echo "[native] installed in the venv" >&2
else
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$dest"/*.whl
  echo "$key" >"$stamp"
  echo "[native] installed $(basename "$dest"/*.whl)" >&2
fi
