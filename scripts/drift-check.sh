#!/usr/bin/env bash
# Does the lattice still match the code? `pulumi preview --refresh --expect-no-changes`
# on one stack, summarised for a CI log: each drifted resource (type and name) with the
# properties that differ (live => desired), or "in sync".
#
#   scripts/drift-check.sh [--stack NAME] [--cwd DIR]
#
# Exit status: 0 in sync, 1 drifted, 2 could not check (the lattice or a machine cannot be
# reached, credentials refused, Pulumi failing; the reason is printed). Non-interactive:
# the backend, passphrase and cloud credentials come from the environment
# (PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE or PULUMI_ACCESS_TOKEN, AWS_*), as
# examples/ci/ shows. Nothing is changed: a preview writes no state.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PULUMI_VERSION="${PULUMI_VERSION:-3.259.0}"

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

stack="" cwd=""
while [ $# -gt 0 ]; do
  case "$1" in
    --stack) [ $# -ge 2 ] || { echo "drift-check: --stack needs a stack name" >&2; exit 2; }
             stack="$2"; shift 2 ;;
    --stack=*) stack="${1#--stack=}"; shift ;;
    --cwd) [ $# -ge 2 ] || { echo "drift-check: --cwd needs a folder" >&2; exit 2; }
           cwd="$2"; shift 2 ;;
    --cwd=*) cwd="${1#--cwd=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "drift-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# This repository's Pulumi CLI and venv when bootstrapped (the versions the code is
# tested with); otherwise whatever `pulumi` and `python3` the PATH has.
for bin in "$ROOT/.tools/pulumi/v$PULUMI_VERSION/bin" "$ROOT/.tools/venv/bin"; do
  [ -d "$bin" ] && PATH="$bin:$PATH"
done
export PATH PULUMI_SKIP_UPDATE_CHECK=1
python="$(command -v python3 || command -v python || true)"
if [ -z "$python" ]; then
  echo "drift-check: could not check (exit 2): no python3 on PATH" >&2
  exit 2
fi
if ! command -v pulumi >/dev/null 2>&1; then
  echo "drift-check: could not check (exit 2): the Pulumi CLI is not on PATH; run scripts/bootstrap.sh or install it"
  exit 2
fi
if [ -n "$cwd" ] && [ ! -d "$cwd" ]; then
  echo "drift-check: could not check (exit 2): --cwd $cwd is not a folder"
  exit 2
fi

args=(preview --refresh --expect-no-changes --json --non-interactive)
[ -n "$stack" ] && args+=(--stack "$stack")
[ -n "$cwd" ] && args+=(--cwd "$cwd")
label="stack ${stack:-(selected)}"

out="$(mktemp)" err="$(mktemp)"
trap 'rm -f "$out" "$err"' EXIT
pulumi "${args[@]}" >"$out" 2>"$err" </dev/null
status=$?
"$python" "$ROOT/pulumi_wasmcloud/drift.py" --stack "$label" "$out" "$err" "$status"
verdict=$?
case "$verdict" in
  0|1|2) exit "$verdict" ;;
  *) echo "drift-check: could not check (exit 2): the summary failed (status $verdict)"; exit 2 ;;
esac
