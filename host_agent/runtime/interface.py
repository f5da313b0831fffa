"""How a host-implemented WIT interface is described to the linker.

Each `wasi_*` module builds `HostInterface`s from an `InstanceContext`; `linking.py`
adds the ones a component imports to its wasmtime Linker. Functions receive the store
first (wasmtime-py's calling convention), then the WIT parameters as Python values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HostFunction = Callable[..., Any]


@dataclass(frozen=True)
class HostInterface:
    """One WIT interface the host implements, e.g. `wasi:io/streams`."""

    name: str  # namespace:package/interface, without version
    # "0.2." accepts every 0.2.x (WASI 0.2 minors are compatible); anything else is exact
    version_family: str
    resources: dict[str, type] = field(default_factory=dict)
    functions: dict[str, HostFunction] = field(default_factory=dict)

    def accepts(self, version: str) -> bool:
        if self.version_family.endswith("."):
            return version.startswith(self.version_family)
        return version == self.version_family


def split_import(name: str) -> tuple[str, str]:
    """`wasi:io/streams@0.2.12` -> (`wasi:io/streams`, `0.2.12`)."""
    base, _, version = name.partition("@")
    return base, version


class GuestExit(Exception):
    """The guest called wasi:cli/exit; the trap ends this call and the instance."""
