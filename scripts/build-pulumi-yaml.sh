#!/usr/bin/env bash
# Build the Pulumi YAML language host (pulumi-language-yaml) from the Go module proxy, once
# per machine, into the tool cache: $TOOL_CACHE/pulumi-yaml/v<version>/bin
# (scripts/tool-cache.sh), then hard-links it next to the Pulumi CLI (.tools/pulumi/v<cli>/bin,
# which scripts/bootstrap.sh made first), where the CLI looks for the language hosts it
# bundles, so `runtime: yaml` programs (examples/yaml/) run. Release tarballs cannot be
# downloaded here, like for the CLI (scripts/build-pulumi.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PULUMI_YAML_VERSION="${PULUMI_YAML_VERSION:-1.25.0}"
PULUMI_VERSION="${PULUMI_VERSION:-3.259.0}"
TOOLS="${TOOLS:-$ROOT/.tools}"
# shellcheck source=scripts/tool-cache.sh
source "$ROOT/scripts/tool-cache.sh"

dest="$TOOL_CACHE/pulumi-yaml/v$PULUMI_YAML_VERSION"
built() { [[ -x "$dest/bin/pulumi-language-yaml" ]]; }

build() {
  built && return 0 # another clone built it while we waited for the lock
  local out="$dest.building"
  rm -rf "$out"
  mkdir -p "$out/bin"
  # pulumi-yaml's go.mod has no replace directives, so `go install module@version` builds
  # exactly the versions its go.mod pins (its own Pulumi SDK), independent of our CLI's.
  export GONOSUMDB=github.com/pulumi/pulumi-yaml,github.com/pulumi/pulumi
  local ldflags="-s -w -X github.com/pulumi/pulumi-yaml/pkg/version.Version=v$PULUMI_YAML_VERSION"
  echo "[pulumi-yaml] compiling pulumi-language-yaml v$PULUMI_YAML_VERSION (several minutes on 2 cores; once per machine)" >&2
  GOBIN="$out/bin" go install -trimpath -ldflags "$ldflags" \
    "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml@v$PULUMI_YAML_VERSION"
  rm -rf "$dest"
  mv "$out" "$dest"
  echo "[pulumi-yaml] built pulumi-language-yaml v$PULUMI_YAML_VERSION into $dest" >&2
}

if ! built && ! command -v go >/dev/null 2>&1; then
  echo "[pulumi-yaml] Go is not installed, so pulumi-language-yaml cannot be built; install Go 1.24 or later" >&2
  exit 1
fi
built || with_lock "pulumi-yaml-v$PULUMI_YAML_VERSION" build

cli_bin="$TOOLS/pulumi/v$PULUMI_VERSION/bin"
if [[ -x "$cli_bin/pulumi" ]]; then
  # A hard link (a copy across file systems), not a symlink: the CLI warns "using
  # pulumi-language-yaml from $PATH at ..." when the one it finds on PATH, symlinks
  # resolved, is not the file next to its own binary.
  ln -f "$dest/bin/pulumi-language-yaml" "$cli_bin/pulumi-language-yaml" 2>/dev/null ||
    cp -f "$dest/bin/pulumi-language-yaml" "$cli_bin/pulumi-language-yaml"
  echo "[pulumi-yaml] pulumi-language-yaml v$PULUMI_YAML_VERSION linked next to the Pulumi CLI ($cli_bin)" >&2
else
  echo "[pulumi-yaml] WARNING: no Pulumi CLI in $cli_bin to link pulumi-language-yaml next to; runtime: yaml programs will not run" >&2
fi
