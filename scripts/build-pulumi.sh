#!/usr/bin/env bash
# Build the real Pulumi CLI and its Python language host from the Go module proxy.
# Release tarballs cannot be downloaded here, so we compile the pinned version once per
# machine into the tool cache, $TOOL_CACHE/pulumi/v<version>/bin (scripts/tool-cache.sh);
# scripts/bootstrap.sh links it as .tools/pulumi/v<version>.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PULUMI_VERSION="${PULUMI_VERSION:-3.259.0}"
# The Python language host (module github.com/pulumi/pulumi/sdk/python/cmd/
# pulumi-language-python/v3) is untagged and the module proxy answers 403 for every
# version of it, so only the CLI is built here; the language host is the project's own
# implementation of the plugin protocol (added with the Pulumi provider).
# shellcheck source=scripts/tool-cache.sh
source "$ROOT/scripts/tool-cache.sh"

dest="$TOOL_CACHE/pulumi/v$PULUMI_VERSION"
built() { [[ -x "$dest/bin/pulumi" && -x "$dest/bin/pulumi-language-python-exec" ]]; }

build() {
  built && return 0 # another clone built it while we waited for the lock
  local work="$TOOL_CACHE/pulumi/build-v$PULUMI_VERSION" out="$dest.building"
  rm -rf "$out"
  mkdir -p "$work" "$out/bin"
  cd "$work"
  cat > go.mod <<GOMOD
module pulumiwasmcloud.local/pulumi-build

go 1.24

require (
	github.com/pulumi/pulumi/pkg/v3 v$PULUMI_VERSION
	github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION
)

// Repeats the replace directive of pulumi's own pkg/go.mod, which "go install" refuses.
replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
GOMOD
  cat > tools.go <<'GOSRC'
//go:build tools

package tools

import (
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
)
GOSRC

  export GOFLAGS=-mod=mod
  export GONOSUMDB=github.com/pulumi/pulumi
  echo "[pulumi] resolving modules for v$PULUMI_VERSION (first run downloads a large graph)" >&2
  go mod tidy >&2
  local ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION"
  echo "[pulumi] compiling pulumi CLI (about 4 minutes on 2 cores; once per machine)" >&2
  go build -trimpath -ldflags "$ldflags" -o "$out/bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi

  local sdkdir
  sdkdir="$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
  install -m 0755 "$sdkdir/python/cmd/pulumi-language-python-exec" "$out/bin/pulumi-language-python-exec"
  if [[ -f "$sdkdir/python/dist/pulumi-resource-pulumi-python" ]]; then
    install -m 0755 "$sdkdir/python/dist/pulumi-resource-pulumi-python" "$out/bin/pulumi-resource-pulumi-python"
  fi
  rm -rf "$dest"
  mv "$out" "$dest"
  echo "[pulumi] built $("$dest/bin/pulumi" version) into $dest" >&2
}

built || with_lock "pulumi-v$PULUMI_VERSION" build
