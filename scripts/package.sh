#!/usr/bin/env bash
# `make package`: the wasmcloud provider the way Pulumi users install providers
# (docs/packaging.md). Writes into OUT (first argument, default dist/):
#
#   pulumi_wasmcloud-<version>-py3-none-any.whl
#       the Python SDK, the provider and the host agent (`pip install '<wheel>[pulumi]'`)
#   pulumi-resource-wasmcloud-v<version>-<os>-<arch>.tar.gz
#       the provider plugin: `pulumi plugin install resource wasmcloud <version> --file
#       <archive>` accepts it. It holds pulumi-resource-wasmcloud (scripts/plugin-launcher.sh,
#       which starts the provider with a Python that has the SDK at this version) and the wheel.
#
# The wheel is built from a snapshot of the working tree (pip builds in the tree it is
# given). Its build requirement (pyproject's [build-system]) is fetched from PyPI once per
# machine into the tool cache (scripts/tool-cache.sh); every build after that is offline.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS:-$ROOT/.tools}"
PYTHON="${PYTHON:-$TOOLS/venv/bin/python}"
OUT="${1:-$ROOT/dist}"
# shellcheck source=scripts/tool-cache.sh
source "$ROOT/scripts/tool-cache.sh"

say() { printf '[package] %s\n' "$*" >&2; }
fail() { printf 'package: %s\n' "$*" >&2; exit 1; }

[[ -x "$PYTHON" ]] || fail "no Python at $PYTHON; run scripts/bootstrap.sh (or set PYTHON)"

read_project() { # what the wheel's metadata will say: version, then build requirements
  "$PYTHON" - "$ROOT/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    data = tomllib.load(f)
print(data["project"]["version"])
print(" ".join(data["build-system"]["requires"]))
PY
}
{ read -r version; read -r build_requires; } < <(read_project)
sdk_version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/pulumi_wasmcloud/__init__.py")"
[[ "$sdk_version" == "$version" ]] ||
  fail "pyproject.toml says version $version but pulumi_wasmcloud/__init__.py says ${sdk_version:-none}; make them equal (the plugin and the SDK check each other's version)"

# The build requirements as wheels, once per machine, keyed by what they are.
build_wheels="$TOOL_CACHE/package/build-requires-$(printf '%s' "$build_requires" | sha256sum | cut -c1-16)"
fetch_build_requires() {
  [[ -d "$build_wheels" ]] && return 0
  say "fetching the wheel build requirements ($build_requires) from PyPI (once per machine)"
  rm -rf "$build_wheels.partial"
  # shellcheck disable=SC2086  # the requirements are separate words
  "$PYTHON" -m pip download --quiet --only-binary=:all: --dest "$build_wheels.partial" $build_requires
  mv "$build_wheels.partial" "$build_wheels"
}
with_lock package-build-requires fetch_build_requires

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/source" "$work/wheel" "$work/plugin"
cp "$ROOT/pyproject.toml" "$ROOT/README.md" "$work/source/"
tar -C "$ROOT" --exclude=__pycache__ --exclude='*.pyc' -cf - host_agent pulumi_wasmcloud |
  tar -C "$work/source" -xf -

say "building the wheel of pulumi-wasmcloud $version"
# SOURCE_DATE_EPOCH: the same source gives the same wheel bytes (zip entry times).
SOURCE_DATE_EPOCH=315532800 PIP_NO_INDEX=1 PIP_FIND_LINKS="$build_wheels" \
  "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheel" "$work/source"
wheels=("$work"/wheel/*.whl)
[[ ${#wheels[@]} == 1 && -f "${wheels[0]}" ]] || fail "pip made no single wheel in $work/wheel"
wheel_name="$(basename "${wheels[0]}")"

os="$(uname -s | tr '[:upper:]' '[:lower:]')"
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) arch="$(uname -m)" ;;
esac
archive_name="pulumi-resource-wasmcloud-v$version-$os-$arch.tar.gz"

sed -e "s/@VERSION@/$version/" -e "s/@WHEEL@/$wheel_name/" "$ROOT/scripts/plugin-launcher.sh" \
  >"$work/plugin/pulumi-resource-wasmcloud"
chmod 0755 "$work/plugin/pulumi-resource-wasmcloud"
cp "${wheels[0]}" "$work/plugin/$wheel_name"
# Sorted entries, root's ownership and one time: the same inputs give the same archive.
tar -C "$work/plugin" --sort=name --owner=0 --group=0 --numeric-owner \
  --mtime=@315532800 -cf - pulumi-resource-wasmcloud "$wheel_name" | gzip -n -9 >"$work/$archive_name"

mkdir -p "$OUT"
rm -f "$OUT/$wheel_name" "$OUT/$archive_name"
mv "${wheels[0]}" "$OUT/$wheel_name"
mv "$work/$archive_name" "$OUT/$archive_name"
say "wrote $OUT/$wheel_name"
say "wrote $OUT/$archive_name"
say "install: pulumi plugin install resource wasmcloud $version --file $OUT/$archive_name"
say "         pip install '$OUT/$wheel_name[pulumi]'   (in the program's virtualenv)"
