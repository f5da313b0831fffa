"""The per-instance table of host-owned resources handed to a component.

wasmtime-py identifies a host resource by (rep, type tag), both integers the host
chooses. This table maps reps to the Python objects behind them. Two wasmtime-py rules
shape it (measured, see docs/architecture.md): `ResourceAny.to_host` works only once per
value, and every borrowed handle a host function receives must be converted before
the function returns or the call fails with "borrow handles still remain".
"""

from __future__ import annotations

import itertools
from ctypes import POINTER, byref
from typing import Any, TypeVar

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi  # wasmtime-py's own ctypes bindings
from wasmtime.component import ResourceAny

T = TypeVar("T")
_HostPointer = POINTER(ffi.wasmtime_component_resource_host_t)
_AnyPointer = POINTER(ffi.wasmtime_component_resource_any_t)


class HostHandle:
    """An owned host resource on its way to the guest: its rep and type tag, nothing else.

    Why not wasmtime-py's ResourceHost: a request hands the guest about six handles, and
    each ResourceHost then became a ResourceAny as it crossed: two C objects, two Python
    wrappers with finalizers per handle. host_agent/runtime/compat.py lowers a HostHandle
    with three C calls and no wrapper (`to_any`), wherever an own or borrow is expected.
    """

    __slots__ = ("rep", "tag")

    def __init__(self, rep: int, tag: int) -> None:
        self.rep = rep
        self.tag = tag

    def to_any(self, store: Any) -> Any:
        """A new C `resource_any` for this handle in `store`, owned by the caller (the
        value it is written into takes it)."""
        host = ffi.wasmtime_component_resource_host_new(True, self.rep, self.tag)
        try:
            out = _AnyPointer()
            error = ffi.wasmtime_component_resource_host_to_any(store._context(), host, byref(out))
            if error:
                raise WasmtimeError._from_ptr(error)
            return out
        finally:
            ffi.wasmtime_component_resource_host_delete(host)


class HeldRep:
    """A host resource handle a host function was given, lifted to its rep already
    (runtime/compat.py): what the table looks up instead of a ResourceAny."""

    __slots__ = ("rep",)

    def __init__(self, rep: int) -> None:
        self.rep = rep


# A resource handle as a host function receives it: lifted to its rep by compat.py when it
# is an argument, a ResourceAny when wasmtime-py lifted it inside another value.
GuestHandle = ResourceAny | HeldRep


def host_rep(store: Any, handle: GuestHandle) -> int:
    """``handle.to_host(store).rep`` without the wrapper objects and their finalizers (a
    request makes about ten of these calls; the wrappers were most of their cost)."""
    if isinstance(handle, HeldRep):
        return handle.rep
    return host_rep_of(store, handle.ptr())


def host_rep_of(store: Any, handle: Any) -> int:
    """The rep of the host resource behind a C ``resource_any`` pointer."""
    host = _HostPointer()
    error = ffi.wasmtime_component_resource_any_to_host(store._context(), handle, byref(host))
    if error:
        raise WasmtimeError._from_ptr(error)
    try:
        return int(ffi.wasmtime_component_resource_host_rep(host))
    finally:
        ffi.wasmtime_component_resource_host_delete(host)


class ResourceTable:
    """Objects lent to one component instance, keyed by the rep the guest sees."""

    def __init__(self) -> None:
        self._objects: dict[int, Any] = {}
        self._reps = itertools.count(1)
        self._tags: dict[type, int] = {}

    def tag(self, kind: type) -> int:
        """The wasmtime type tag for a Python resource class (stable per table)."""
        return self._tags.setdefault(kind, len(self._tags) + 1)

    def own(self, obj: object) -> HostHandle:
        """Hand `obj` to the guest as an owned handle."""
        rep = next(self._reps)
        self._objects[rep] = obj
        return HostHandle(rep, self.tag(type(obj)))

    def get(self, store: Any, handle: GuestHandle, kind: type[T]) -> T:
        """The object behind a borrowed handle (the handle stays with the guest)."""
        obj = self._objects[host_rep(store, handle)]
        if not isinstance(obj, kind):
            raise TypeError(f"expected a {kind.__name__} handle, got {type(obj).__name__}")
        return obj

    def take(self, store: Any, handle: GuestHandle, kind: type[T]) -> T:
        """The object behind an owned handle the guest gave back to the host."""
        obj = self._objects.pop(host_rep(store, handle))
        if not isinstance(obj, kind):
            raise TypeError(f"expected a {kind.__name__} handle, got {type(obj).__name__}")
        return obj

    def drop(self, rep: int) -> None:
        """The guest dropped its handle: forget the object."""
        obj = self._objects.pop(rep, None)
        close = getattr(obj, "close", None)
        if callable(close):
            close()

    def __len__(self) -> int:
        return len(self._objects)
