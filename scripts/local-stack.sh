#!/usr/bin/env bash
# The README's main job: `pulumi up` (or destroy/preview) on the root project's `local`
# stack, fully offline: a file backend under .state/pulumi and a passphrase secrets
# provider (PULUMI_CONFIG_PASSPHRASE, default "local"). Run scripts/bootstrap.sh first
# (`make up` does).
#
#   scripts/local-stack.sh up        # create or converge the local lattice + counter app
#   scripts/local-stack.sh preview   # what `up` would change, with per-host placement
#   scripts/local-stack.sh destroy   # stop every process and free every port it made
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PULUMI_VERSION="${PULUMI_VERSION:-3.259.0}"
export PATH="$ROOT/.tools/pulumi/v$PULUMI_VERSION/bin:$ROOT/.tools/venv/bin:$PATH"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$ROOT/.state/pulumi}"
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-local}"
export PULUMI_SKIP_UPDATE_CHECK=1 PULUMI_DIY_BACKEND_NO_LEGACY_WARNING=1
STACK="${STACK:-local}"

if ! command -v pulumi >/dev/null 2>&1; then
  echo "local-stack: the Pulumi CLI is missing; run scripts/bootstrap.sh (or make up)" >&2
  exit 1
fi
cd "$ROOT"
mkdir -p .state/pulumi
pulumi stack select --create "$STACK" --non-interactive >/dev/null

case "${1:-up}" in
  up)
    pulumi up --yes --non-interactive --stack "$STACK"
    cat <<'TRY'

The counter app is up. Try it:
  curl http://127.0.0.1:8080/hello    # hello -> 1
  curl http://127.0.0.1:8080/hello    # hello -> 2
  curl http://127.0.0.1:8080/world    # world -> 1
Stop everything with: make destroy
TRY
    ;;
  preview) pulumi preview --diff --non-interactive --stack "$STACK" ;;
  destroy) pulumi destroy --yes --non-interactive --stack "$STACK" ;;
  *)
    echo "usage: $0 [up|preview|destroy]" >&2
    exit 2
    ;;
esac
