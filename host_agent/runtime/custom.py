"""Custom WIT interfaces: the ones components import from and export to each other.

Any interface outside the `wasi:` namespace is custom (`example:logic/compute`): the
host implements a component's import of it by forwarding each call to the component
its link names, and serves a component's export of it to callers on the lattice. The
functions and their types come from the component's own type information, read once
per image; nothing is generated per interface.

`wasi:` interfaces are the host's own (served in Python, or translated to a provider's
`wrpc:` interface), never forwarded as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from wasmtime.component import ComponentInstanceType, FuncType, ResourceType

from host_agent.runtime.image import ComponentImage
from host_agent.runtime.interface import split_import


class RemoteCalls(Protocol):
    """What the runtime needs to call a function a linked component exports (blocking).

    `interface` is the versioned name (`test:types/zoo@0.1.0`); arguments and the result
    are in wasmtime-py's Python conventions. Raises ComponentCallError when the call
    cannot be made or the callee fails.
    """

    def call(self, interface: str, function: str, args: list[Any]) -> Any: ...


class ComponentCallError(Exception):
    """A call to a linked component failed; the message names the target and interface.
    Raised inside the caller's import, it traps the caller (its instance is replaced)."""


class NoRemoteCalls:
    """Stands in where no link resolution exists: every call fails, naming the function."""

    def call(self, interface: str, function: str, args: list[Any]) -> Any:
        raise ComponentCallError(f"no component links on this host to call {interface}.{function}")


def is_custom(base: str) -> bool:
    """`test:types/zoo` is custom; `wasi:io/streams` and componentize-py's internal
    `exports` instance (no slash) are not."""
    return "/" in base and not base.startswith("wasi:")


@dataclass(frozen=True)
class CustomInterface:
    """One custom interface a component imports or exports, with its function types."""

    base: str  # namespace:package/interface, without version
    version: str
    functions: dict[str, FuncType]
    resources: tuple[str, ...]  # resource types it defines (not forwarded; see problems)

    @property
    def name(self) -> str:
        """The versioned name: the wRPC instance on the wire (`test:types/zoo@0.1.0`)."""
        return f"{self.base}@{self.version}" if self.version else self.base

    @property
    def namespace_package_interface(self) -> tuple[str, str, str]:
        """`test:types/zoo` -> ("test", "types", "zoo"), as links name it."""
        package, _, interface = self.base.partition("/")
        namespace, _, package_name = package.partition(":")
        return namespace, package_name, interface


def _interfaces(items: dict[str, Any], engine: Any) -> dict[str, CustomInterface]:
    found: dict[str, CustomInterface] = {}
    for name, extern in items.items():
        base, version = split_import(name)
        if not is_custom(base):
            continue
        instance = extern.ty
        if not isinstance(instance, ComponentInstanceType):
            continue  # a bare function or type at the top level: not an interface
        functions: dict[str, FuncType] = {}
        resources: list[str] = []
        for item_name, item in instance.exports(engine).items():
            kind = item.ty
            if isinstance(kind, FuncType):
                functions[item_name] = kind
            elif isinstance(kind, ResourceType):
                resources.append(item_name)
        found[base] = CustomInterface(base, version, functions, tuple(resources))
    return found


def custom_imports(image: ComponentImage) -> dict[str, CustomInterface]:
    """The custom interfaces `image` imports, by unversioned name."""
    return _interfaces(image.component.type.imports(image.engine), image.engine)


def custom_exports(image: ComponentImage) -> dict[str, CustomInterface]:
    """The custom interfaces `image` exports, by unversioned name."""
    return _interfaces(image.component.type.exports(image.engine), image.engine)


def resource_problems(image: ComponentImage) -> list[str]:
    """Custom interfaces with resources cannot cross the lattice here (wRPC passes them
    as handles to the remote instance, which this host does not implement)."""
    problems = []
    sides = (("imports", custom_imports(image)), ("exports", custom_exports(image)))
    for kind, interfaces in sides:
        for iface in interfaces.values():
            if iface.resources:
                problems.append(
                    f"{kind} {iface.name} with resource {', '.join(iface.resources)}: "
                    "component-to-component calls with resources are not supported by this "
                    "host; pass records or ids instead"
                )
    return problems
