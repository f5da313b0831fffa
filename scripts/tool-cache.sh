# Sourced by the bootstrap scripts: the per-machine cache of slow-to-build tools.
#
# A fresh clone (what CI runs on) would rebuild anything kept in the clone's .tools/,
# so binaries that take minutes to build (the Pulumi CLI, wadm-probe, wash) and the
# example components live outside it, keyed by version or source hash:
#
#   ${PULUMI_WASMCLOUD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-wasmcloud}/<tool>/<key>/
#
# and .tools/ only links to them. Entries are written under a temporary name and renamed
# when complete, and each tool's build holds a lock, so concurrent clones on one machine
# neither see a half-built tool nor build it twice.

TOOL_CACHE="${PULUMI_WASMCLOUD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-wasmcloud}"
export TOOL_CACHE
mkdir -p "$TOOL_CACHE"

# link_tool TARGET LINK: make LINK (a path under .tools/) a symlink to TARGET in the
# cache. A real directory at LINK is an in-clone build from before the cache existed.
link_tool() {
  local target="$1" link="$2"
  mkdir -p "$(dirname "$link")"
  if [[ -d "$link" && ! -L "$link" ]]; then
    rm -rf "$link"
  fi
  ln -sfn "$target" "$link"
}

# with_lock NAME COMMAND...: run COMMAND while holding the cache's lock for NAME.
with_lock() {
  local name="$1"; shift
  local lock="$TOOL_CACHE/.$name.lock"
  exec {lock_fd}>"$lock"
  if ! flock -n "$lock_fd"; then
    printf '[cache] waiting for another build of %s on this machine (%s) ...\n' "$name" "$lock" >&2
    flock "$lock_fd"
  fi
  local status=0
  "$@" || status=$?
  exec {lock_fd}>&-
  return "$status"
}
