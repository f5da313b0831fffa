"""The wheel of the host's native wasi:http host (native/, see
host_agent/runtime/native_http.py), for the wheelhouse machines install from.

scripts/build-native.sh builds it once per machine and keeps it in the tool cache under
a hash of native/'s sources, ``<cache>/native/<source_key>/``. The script asks this
module for that hash (``python -m pulumi_wasmcloud.provision.native_wheel NATIVE_DIR``),
so the script and the wheelhouse never disagree about where the wheel is.

A source tree without native/, or a machine where the wheel was not built (no cargo),
gives no wheel: machines then run every component on the host's Python wasi:http.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

# What of native/ the wheel is built from (cargo's target folder is not among them).
NATIVE_SOURCES = ("Cargo.toml", "Cargo.lock", "pyproject.toml", "wasmcloud_native.pyi", "src")


def source_key(native: Path) -> str:
    """A hash of the sources in ``native`` (names and contents), 16 hex digits."""
    digest = hashlib.sha256()
    files: list[Path] = []
    for name in NATIVE_SOURCES:
        path = native / name
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            files.append(path)
    for path in files:
        digest.update(str(path.relative_to(native)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def built_wheel(source: Path, cache: Path) -> Path | None:
    """The wheel built from ``source``/native in ``cache``, if there is one."""
    native = source / "native"
    if not (native / "Cargo.toml").is_file():
        return None
    wheels = sorted((cache / "native" / source_key(native)).glob("*.whl"))
    return wheels[0] if wheels else None


if __name__ == "__main__":
    print(source_key(Path(sys.argv[1])))
