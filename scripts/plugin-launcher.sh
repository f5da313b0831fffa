#!/bin/sh
# pulumi-resource-wasmcloud, as `pulumi plugin install resource wasmcloud <version> --file
# <archive>` lays it out (scripts/package.sh fills in the version and puts this file in the
# archive). The provider is Python: this starts it with the interpreter of an environment
# where the pulumi-wasmcloud SDK is installed at this plugin's version (the wheel is in the
# archive beside this file). The first of these that has it runs the provider:
#   1. $PULUMI_WASMCLOUD_PYTHON (when set, it must have it)
#   2. the active virtualenv, $VIRTUAL_ENV/bin/python
#   3. the program's virtualenv: venv/ or .venv/ in the project's folder (the engine starts
#      provider plugins in the program's folder; `virtualenv: venv` is Pulumi's default)
#   4. python3 on PATH
set -eu

VERSION="@VERSION@"
here="$(cd "$(dirname "$0")" && pwd)"
wheel="$here/@WHEEL@"

# The pulumi-wasmcloud version installed for python $1 ("" when it has none).
installed_version() {
  "$1" -c 'import importlib.metadata as m
try:
    print(m.version("pulumi-wasmcloud"))
except m.PackageNotFoundError:
    pass' 2>/dev/null || true
}

# Each start below runs `python -P`: the project's folder (the working directory) is not put
# on sys.path, so a folder there named like one of our packages cannot stand in for them.

if [ -n "${PULUMI_WASMCLOUD_PYTHON:-}" ]; then
  found="$(installed_version "$PULUMI_WASMCLOUD_PYTHON")"
  if [ "$found" = "$VERSION" ]; then
    exec "$PULUMI_WASMCLOUD_PYTHON" -P -m pulumi_wasmcloud.provider.main "$@"
  fi
  echo "pulumi-resource-wasmcloud $VERSION: PULUMI_WASMCLOUD_PYTHON=$PULUMI_WASMCLOUD_PYTHON has ${found:+pulumi-wasmcloud $found, not $VERSION}${found:-no pulumi-wasmcloud}; install $wheel there (pip install '$wheel[pulumi]') or unset PULUMI_WASMCLOUD_PYTHON" >&2
  exit 1
fi

seen=""
for python in ${VIRTUAL_ENV:+"$VIRTUAL_ENV/bin/python"} "$PWD/venv/bin/python" \
  "$PWD/.venv/bin/python" "$(command -v python3 || true)"; do
  [ -n "$python" ] && [ -x "$python" ] || continue
  found="$(installed_version "$python")"
  if [ "$found" = "$VERSION" ]; then
    exec "$python" -P -m pulumi_wasmcloud.provider.main "$@"
  fi
  seen="$seen
  $python: ${found:+pulumi-wasmcloud $found}${found:-no pulumi-wasmcloud}"
done
echo "pulumi-resource-wasmcloud $VERSION: no Python here has pulumi-wasmcloud $VERSION installed, which this provider runs on.${seen:+ Looked at:$seen
}
Install the SDK wheel into the program's virtualenv (pip install '$wheel[pulumi]'), or set PULUMI_WASMCLOUD_PYTHON to the python of an environment that has it." >&2
exit 1
