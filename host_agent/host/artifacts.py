"""Resolving a component reference to bytes that are a WebAssembly component."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

WASM_MAGIC = b"\0asm"
# The component-model binary layer (core modules have version 1, layer 0).
COMPONENT_VERSION = b"\x0d\x00\x01\x00"
CORE_MODULE_VERSION = b"\x01\x00\x00\x00"


class ArtifactError(ValueError):
    pass


def resolve_local_path(ref: str, allow_file_load: bool) -> Path:
    """``file://`` references (and plain paths) when file loading is allowed."""
    parsed = urlparse(ref)
    if parsed.scheme not in ("file", ""):
        raise ArtifactError(
            f"cannot fetch {ref!r}: this host loads components from files only; "
            "build it locally and use file://<path> with --allow-file-load"
        )
    if not allow_file_load:
        raise ArtifactError(
            f"file loading is disabled, so {ref!r} cannot be loaded; "
            "start the host with --allow-file-load (WASMCLOUD_ALLOW_FILE_LOAD=true)"
        )
    path = Path(parsed.netloc + parsed.path if parsed.scheme == "file" else ref)
    if not path.is_file():
        raise ArtifactError(f"component file {path} does not exist")
    return path


def read_component(ref: str, allow_file_load: bool, max_size: int) -> bytes:
    path = resolve_local_path(ref, allow_file_load)
    size = path.stat().st_size
    if size > max_size:
        raise ArtifactError(f"{path} is {size} bytes, over the {max_size}-byte component limit")
    data = path.read_bytes()
    check_component(data, str(path))
    return data


def check_component(data: bytes, name: str) -> None:
    if data[:4] != WASM_MAGIC:
        raise ArtifactError(f"{name} is not a WebAssembly file")
    if data[4:8] == CORE_MODULE_VERSION:
        raise ArtifactError(
            f"{name} is a core WebAssembly module, not a component; "
            "wrap it with `wasm-tools component new`"
        )
    if data[4:8] != COMPONENT_VERSION:
        raise ArtifactError(f"{name} has an unsupported WebAssembly binary version")
