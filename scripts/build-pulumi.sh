#!/usr/bin/env bash
# Build the real Pulumi CLI and its Python language host from the Go module proxy.
# Release tarballs cannot be downloaded here, so we compile the pinned version once and
# cache the binaries under $TOOLS/pulumi/<version>/bin (see shared notes on the recipe).
set -euo pipefail

PULUMI_VERSION="${PULUMI_VERSION:-3.259.0}"
# The Python language host (module github.com/pulumi/pulumi/sdk/python/cmd/
# pulumi-language-python/v3) is untagged and the module proxy answers 403 for every
# version of it, so only the CLI is built here; the language host is the project's own
# implementation of the plugin protocol (added with the Pulumi provider).
TOOLS="${TOOLS:?TOOLS must point at the tool cache folder}"

dest="$TOOLS/pulumi/v$PULUMI_VERSION"
bin="$dest/bin"
if [[ -x "$bin/pulumi" && -x "$bin/pulumi-language-python-exec" ]]; then
  exit 0
fi

work="$dest/build"
mkdir -p "$work" "$bin"
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
ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION"
echo "[pulumi] compiling pulumi CLI (several minutes on 2 cores; cached afterwards)" >&2
go build -trimpath -ldflags "$ldflags" -o "$bin/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi

sdkdir="$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
install -m 0755 "$sdkdir/python/cmd/pulumi-language-python-exec" "$bin/pulumi-language-python-exec"
if [[ -f "$sdkdir/python/dist/pulumi-resource-pulumi-python" ]]; then
  install -m 0755 "$sdkdir/python/dist/pulumi-resource-pulumi-python" "$bin/pulumi-resource-pulumi-python"
fi
mv "$bin/pulumi.tmp" "$bin/pulumi"
echo "[pulumi] built $("$bin/pulumi" version)" >&2
