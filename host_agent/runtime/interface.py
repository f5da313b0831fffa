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
        return family_accepts(self.version_family, version)


def family_accepts(family: str, version: str) -> bool:
    """Whether a component built against ``version`` can use what serves ``family``: a
    family ("0.2.") takes each of its releases (0.2.0, 0.2.12), never a pre-release
    (0.2.0-rc-2023-11-10 is a different API that wasmtime no longer links); anything
    else is one exact version."""
    if family.endswith("."):
        patch = version.removeprefix(family)
        return version.startswith(family) and patch.isascii() and patch.isdigit()
    return version == family


def split_import(name: str) -> tuple[str, str]:
    """`wasi:io/streams@0.2.12` -> (`wasi:io/streams`, `0.2.12`)."""
    base, _, version = name.partition("@")
    return base, version


class GuestExit(Exception):
    """The guest called wasi:cli/exit; the trap ends this call and the instance."""
