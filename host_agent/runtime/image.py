"""Compile a component once, cache the machine code on disk, and read what it imports.

Compiling a componentize-py component takes ~3 s; loading the cached artifact with
`deserialize_file` takes ~2 ms. The cache key is the wasm's sha256 plus the wasmtime
version, because serialized code is only valid for the exact engine that produced it.

A cached artifact is native code that wasmtime maps and runs without verifying it, so
whoever can write in the cache runs code in the host. The cache directory is created
0700, and nothing is loaded from it unless it, its files and the directories above it
are safe from other users (see `check_cache_dir`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from host_agent.runtime.interface import split_import

if TYPE_CHECKING:  # wasmtime loads where components are compiled: the cache helpers
    # below are also used by host_agent.oci, which the Pulumi provider imports.
    from wasmcloud_native import HttpGuest
    from wasmtime import Engine
    from wasmtime.component import Component

WASMTIME_VERSION = version("wasmtime")
HTTP_HANDLER = "wasi:http/incoming-handler"
T = TypeVar("T")


class ComponentLoadError(Exception):
    """The bytes are not a component this host can run; the message says why."""


def default_cache_dir() -> Path:
    base = os.environ.get("WASMCLOUD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "wasmcloud-host"
    )
    return Path(base) / "compiled"


@dataclass(frozen=True)
class ComponentImage:
    """A compiled component plus its interface imports and exports, by unversioned name."""

    engine: Engine
    component: Component
    digest: str
    imports: dict[str, str]  # "wasi:io/streams" -> "0.2.12"
    exports: dict[str, str]
    # The same component compiled for the native wasi:http host, where it runs there
    # (runtime/native_http.py).
    native_http: HttpGuest | None = None

    def import_name(self, base: str) -> str:
        return f"{base}@{self.imports[base]}" if self.imports[base] else base

    def export_name(self, base: str) -> str:
        return f"{base}@{self.exports[base]}" if self.exports[base] else base


def _interfaces(names: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in names:
        if "/" not in name:  # e.g. componentize-py's internal `exports` instance
            continue
        base, ver = split_import(name)
        found[base] = ver
    return found


class UnsafeCacheError(ComponentLoadError):
    """The compiled-component cache could be written by another user; the message names
    the path and the fix."""


_ELSEWHERE = "or set WASMCLOUD_CACHE_DIR to a directory only this user can write"


def _refuse(what: str, path: Path, why: str, fix: str) -> UnsafeCacheError:
    return UnsafeCacheError(
        f"refusing to load compiled components: {what} {path} {why}, so another user "
        f"could make this host run their code; fix: {fix}"
    )


def _check_own(path: Path, info: os.stat_result, what: str, fix: str) -> None:
    """`path` (a cache directory or file) must be this user's and writable by no one else."""
    uid = os.geteuid()
    if info.st_uid != uid:
        why = f"is owned by uid {info.st_uid}, not by this host's user (uid {uid})"
        raise _refuse(what, path, why, fix)
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        why = f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
        raise _refuse(what, path, why, fix)


def check_cache_dir(cache_dir: Path) -> Path:
    """Create the cache directory (0700, and any missing parent 0700) or check it; return
    its resolved path. Refuses (UnsafeCacheError) when the directory is not owned by this
    user or is group/other-writable, or when a directory above it could be renamed or
    replaced by another user (owned by someone other than this user or root, or
    group/other-writable without the sticky bit, as /tmp has)."""
    cache_dir = Path(os.path.abspath(cache_dir))
    missing: list[Path] = []
    probe = cache_dir
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue  # another host created it first; checked below like any other
        os.chmod(folder, 0o700)  # mkdir's mode is narrowed by the umask, never widened
    resolved = cache_dir.resolve()
    info = os.stat(resolved)
    if not stat.S_ISDIR(info.st_mode):
        raise ComponentLoadError(
            f"the compiled-component cache {resolved} is not a directory; remove it or set "
            "WASMCLOUD_CACHE_DIR to a directory"
        )
    fix = f"delete {resolved} (it is rebuilt, 0700) {_ELSEWHERE}"
    _check_own(resolved, info, "the cache directory", fix)
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(resolved, 0o700)  # ours and safe, but readable: an older host made it
    uid = os.geteuid()
    for above in resolved.parents:
        info = os.stat(above)
        what = f"the directory above the cache {resolved},"
        if info.st_uid not in (uid, 0):
            why = f"is owned by uid {info.st_uid} (neither this user nor root)"
            raise _refuse(what, above, why, _ELSEWHERE.removeprefix("or "))
        shared = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if shared and not info.st_mode & stat.S_ISVTX:
            mode = stat.S_IMODE(info.st_mode)
            why = f"is writable by group or others without the sticky bit (mode {mode:04o})"
            raise _refuse(what, above, why, f"chmod go-w {above}, {_ELSEWHERE}")
    return resolved


def _cached_file_is_there(cached: Path) -> bool:
    """Whether a cached artifact exists; refuses one that is not a plain file of ours."""
    try:
        info = os.lstat(cached)
    except FileNotFoundError:
        return False
    fix = f"delete {cached} (it is rebuilt)"
    if not stat.S_ISREG(info.st_mode):  # a symlink could point anywhere
        raise _refuse("the cached file", cached, "is not a regular file", fix)
    _check_own(cached, info, "the cached file", fix)
    return True


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def compile_cached(
    cached: Path,
    load: Callable[[str], T],
    compile: Callable[[], T],
    serialize: Callable[[T], bytes],
    stale: type[Exception],
) -> T:
    """Load the compiled artifact at `cached`, or compile and store it there. An artifact
    that fails to load with `stale` (another engine's, or corrupt) is compiled again."""
    if _cached_file_is_there(cached):
        try:
            return load(str(cached))
        except stale:
            cached.unlink(missing_ok=True)
    compiled = compile()
    partial = cached.with_suffix(f".{os.getpid()}.{id(compiled)}.tmp")
    _write_private(partial, serialize(compiled))
    partial.replace(cached)  # atomic: concurrent hosts never read half a file
    return compiled


def load_component(wasm: bytes, engine: Engine, cache_dir: Path | None = None) -> ComponentImage:
    """Compile (or load from cache) a WASI 0.2 component."""
    from wasmtime import WasmtimeError
    from wasmtime.component import Component

    from host_agent.runtime.engine import cache_flavour

    def compile() -> Component:
        try:
            return Component(engine, wasm)
        except WasmtimeError as error:
            first_line = str(error).strip().splitlines()[0]
            raise ComponentLoadError(
                f"not a runnable WebAssembly component: {first_line}"
            ) from None

    digest = hashlib.sha256(wasm).hexdigest()
    cache_dir = check_cache_dir(cache_dir or default_cache_dir())
    cached = cache_dir / f"{digest}-wasmtime{WASMTIME_VERSION}{cache_flavour(engine)}.cwasm"
    component = compile_cached(
        cached,
        lambda path: Component.deserialize_file(engine, path),
        compile,
        lambda component: bytes(component.serialize()),
        WasmtimeError,
    )
    ctype = component.type
    return ComponentImage(
        engine=engine,
        component=component,
        digest=digest,
        imports=_interfaces(list(ctype.imports(engine))),
        exports=_interfaces(list(ctype.exports(engine))),
    )
