"""Custom WIT interfaces: the ones components import from and export to each other.

Any interface outside the `wasi:` namespace is custom (`example:logic/compute`): the
host implements a component's import of it by forwarding each call to the component
its link names, and serves a component's export of it to callers on the lattice. The
functions and their types come from the component's own type information, read once
per image; nothing is generated per interface.

`wasi:` interfaces are the host's own (served in Python, or translated to a provider's
`wrpc:` interface), never forwarded as they are.

Resources follow wasmCloud 1.4.2 (wrpc-runtime-wasmtime 0.24.1):
- a resource a component imports is a host resource whose rep stands for the opaque
  handle bytes the serving peer (a provider) returned; constructors, methods and static
  functions travel under their names without `[constructor]`, `[method]`, `[static]`
  (`counter`, `counter.add`), the handle as their first parameter;
- dropping such a handle sends nothing (0.24.1 links imported resources with a no-op
  destructor; wit-bindgen-wrpc 0.8 providers serve no drop function);
- a resource a component exports is not served at all: 1.4.2 warns and serves every
  export call on a fresh instance, so no handle outlives its call. We refuse the
  component instead, naming the interface and the resource.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from wasmtime import WasmtimeError
from wasmtime.component import (
    ComponentInstanceType,
    FuncType,
    ResourceAny,
    ResourceType,
)

from host_agent.runtime.image import ComponentImage
from host_agent.runtime.interface import split_import
from host_agent.runtime.resources import HeldRep, HostHandle, ResourceTable
from host_agent.runtime.wrpc_values import DecodeError, HandleCodec, WitHandle


class RemoteCalls(Protocol):
    """What the runtime needs to call a function a linked component exports (blocking).

    `interface` is the versioned name (`test:types/zoo@0.1.0`); arguments and the result
    are in wasmtime-py's Python conventions. Raises ComponentCallError when the call
    cannot be made or the callee fails.
    """

    def call(
        self, interface: str, function: str, args: list[Any], handles: HandleCodec | None = None
    ) -> Any: ...


class ComponentCallError(Exception):
    """A call to a linked component failed; the message names the target and interface.
    Raised inside the caller's import, it traps the caller (its instance is replaced)."""


class NoRemoteCalls:
    """Stands in where no link resolution exists: every call fails, naming the function."""

    def call(
        self, interface: str, function: str, args: list[Any], handles: HandleCodec | None = None
    ) -> Any:
        raise ComponentCallError(f"no component links on this host to call {interface}.{function}")


# Interfaces the host itself serves outside wasi: (runtime/wasmcloud_secrets.py).
HOST_SERVED_PREFIXES = ("wasi:", "wasmcloud:secrets/")


def is_custom(base: str) -> bool:
    """`test:types/zoo` is custom; `wasi:io/streams`, `wasmcloud:secrets/store` (served
    by the host) and componentize-py's internal `exports` instance (no slash) are not."""
    return "/" in base and not base.startswith(HOST_SERVED_PREFIXES)


@dataclass(frozen=True)
class CustomInterface:
    """One custom interface a component imports or exports, with its function types."""

    base: str  # namespace:package/interface, without version
    version: str
    functions: dict[str, FuncType]
    # (name, wasmtime ResourceType) of the resources it defines: ResourceType has no name.
    resource_types: tuple[tuple[str, ResourceType], ...] = field(default=(), compare=False)

    @property
    def resources(self) -> tuple[str, ...]:
        """The resource types it defines, by name."""
        return tuple(name for name, _ in self.resource_types)

    def resource_name(self, ty: Any) -> str:
        """The name of one of this interface's resources (ResourceType has no name)."""
        return next((name for name, known in self.resource_types if known == ty), "resource")

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
        resources: list[tuple[str, ResourceType]] = []
        for item_name, item in instance.exports(engine).items():
            kind = item.ty
            if isinstance(kind, FuncType):
                functions[item_name] = kind
            elif isinstance(kind, ResourceType):
                resources.append((item_name, kind))
        found[base] = CustomInterface(base, version, functions, tuple(resources))
    return found


def custom_imports(image: ComponentImage) -> dict[str, CustomInterface]:
    """The custom interfaces `image` imports, by unversioned name."""
    return _interfaces(image.component.type.imports(image.engine), image.engine)


def custom_exports(image: ComponentImage) -> dict[str, CustomInterface]:
    """The custom interfaces `image` exports, by unversioned name."""
    return _interfaces(image.component.type.exports(image.engine), image.engine)


def wire_name(function: str) -> str:
    """The wRPC function name of a component function: wrpc strips the resource function
    prefixes (`[method]counter.add` -> `counter.add`, `[constructor]counter` -> `counter`)."""
    for prefix in ("[constructor]", "[static]", "[method]"):
        if function.startswith(prefix):
            return function.removeprefix(prefix)
    return function


def resource_problems(image: ComponentImage) -> list[str]:
    """Resources a component exports cannot be served (see the module docstring)."""
    problems = []
    for iface in custom_exports(image).values():
        if iface.resources:
            names = ", ".join(iface.resources)
            problems.append(
                f"exports {iface.name} with resource {names}: resources a component exports "
                "are not served across the lattice (a wasmCloud 1.4.2 host runs each wRPC "
                "call in a fresh instance, so a handle would not outlive the call that made "
                f"it); serve {names} from a provider, or pass records or ids instead"
            )
    return problems


@dataclass(frozen=True)
class RemoteHandle:
    """A handle to a resource a linked peer serves: the bytes it returned for it."""

    resource: str
    handle: bytes


class RemoteHandles:
    """The HandleCodec of one call from an instance: handles of imported resources go
    out as the peer's bytes and come back as new host resources in the instance's table.
    Built per call because taking a handle from the guest needs the call's store."""

    def __init__(self, table: ResourceTable, store: Any) -> None:
        self._table = table
        self._store = store

    def encode_handle(self, ty: WitHandle, value: Any) -> bytes:
        if not isinstance(value, ResourceAny | HeldRep):
            raise ValueError(f"expected a {ty.resource} handle, got {type(value).__name__}")
        try:
            if ty.kind == "own":  # ownership moves to the peer: the entry leaves the table
                remote = self._table.take(self._store, value, RemoteHandle)
            else:
                remote = self._table.get(self._store, value, RemoteHandle)
        except (WasmtimeError, KeyError, TypeError):
            raise ValueError(
                f"a {ty.resource} handle the component made itself cannot cross the lattice; "
                "only handles a linked provider returned can"
            ) from None
        if remote.resource != ty.resource:
            raise ValueError(f"a {remote.resource} handle where a {ty.resource} is expected")
        return remote.handle

    def decode_handle(self, ty: WitHandle, handle: bytes) -> HostHandle:
        if ty.kind == "borrow":
            raise DecodeError(f"a peer cannot lend a {ty.resource} handle in a result")
        return self._table.own(RemoteHandle(ty.resource, handle))
