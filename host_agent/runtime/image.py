"""Compile a component once, cache the machine code on disk, and read what it imports.

Compiling a componentize-py component takes ~3 s; loading the cached artifact with
`deserialize_file` takes ~2 ms. The cache key is the wasm's sha256 plus the wasmtime
version, because serialized code is only valid for the exact engine that produced it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from wasmtime import Engine, WasmtimeError
from wasmtime.component import Component

from host_agent.runtime.interface import split_import

WASMTIME_VERSION = version("wasmtime")
HTTP_HANDLER = "wasi:http/incoming-handler"


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


def load_component(wasm: bytes, engine: Engine, cache_dir: Path | None = None) -> ComponentImage:
    """Compile (or load from cache) a WASI 0.2 component."""
    digest = hashlib.sha256(wasm).hexdigest()
    cache_dir = cache_dir or default_cache_dir()
    cached = cache_dir / f"{digest}-wasmtime{WASMTIME_VERSION}.cwasm"
    component: Component | None = None
    if cached.exists():
        try:
            component = Component.deserialize_file(engine, str(cached))
        except WasmtimeError:
            cached.unlink(missing_ok=True)  # stale or corrupt: compile again below
    if component is None:
        try:
            component = Component(engine, wasm)
        except WasmtimeError as error:
            first_line = str(error).strip().splitlines()[0]
            raise ComponentLoadError(
                f"not a runnable WebAssembly component: {first_line}"
            ) from None
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(bytes(component.serialize()))
        partial.replace(cached)  # atomic: concurrent hosts never read half a file
    ctype = component.type
    return ComponentImage(
        engine=engine,
        component=component,
        digest=digest,
        imports=_interfaces(list(ctype.imports(engine))),
        exports=_interfaces(list(ctype.exports(engine))),
    )
