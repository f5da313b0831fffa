"""Corrections and speed-ups to wasmtime-py 50's component value conversion (pinned 50.0.1).

Correction: wasmtime-py passes `result`/`option`/`variant` values untagged when the
Python classes of their cases are disjoint, and picks the case with `isinstance`. A unit
case (like an option's `none`) registers the class `object`, so for
`result<option<list<u8>>, error>` (wasi:keyvalue's `get`) every value, errors included,
matches the `ok` case first and `err` cannot be returned at all. The replacement matches
`None` explicitly and every other value against the real classes only. Tagged variants
are left alone.

Speed (docs/performance.md has the profiles): wasmtime-py rebuilds a function's Python
type objects from C on every crossing, in both directions (a host function's parameter
and result types on each callback, an export's on each call), and then walks every case
of each variant again to decide whether it is tagged: wasi:http's `error-code` has 39
cases, and it sits in the types of `response-outparam.set` and `outgoing-body.finish`, so
one trivial request spent about 2 ms of the host's CPU on type walking alone. Here
  - a host function's types are read once, on its first call, and kept with it (a
    function defined on a linker serves one import name, whose type does not change),
  - an export's types are read once per `Func` object,
  - a variant's cases, its taggedness and the classes of its cases are computed once per
    type object (type objects are immutable views of immutable C types).
The conversions themselves are wasmtime-py's own, except `list<u8>` (bytes): wasmtime-py
converts it one Python call per byte each way, which made a 5 MiB HTTP body crossing a
component in 4 KiB stream chunks take about half a minute; here the C array of values is
written and read with two strided slice copies (tests/integration/test_http_large_bodies.py).
"""

from __future__ import annotations

import ctypes
from ctypes import byref, create_string_buffer
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi  # wasmtime-py's own ctypes bindings
from wasmtime.component import ResourceAny, _func, _linker, _types
from wasmtime.component._enter import catch_exceptions, enter_wasm

from host_agent.runtime.resources import HeldRep, HostHandle, host_rep_of

_original_lower = _types.VariantLikeType._lower
_original_list_to_c = _types.ListType.convert_to_c
_original_list_from_c = _types.ListType.convert_from_c
# A component value in the C API: a one-byte kind, then a union whose first byte is a u8's
# value. A list<u8> is an array of these.
_VAL = ffi.wasmtime_component_val_t
_STRIDE = ctypes.sizeof(_VAL)
_KIND_AT = _VAL.kind.offset
_U8_AT = _VAL.of.offset
_U8_KIND = bytes([ffi.WASMTIME_COMPONENT_U8.value])
_original_own_to_c = _types.OwnType.convert_to_c
_original_borrow_to_c = _types.BorrowType.convert_to_c
_original_own_classes = _types.OwnType.add_classes
_original_borrow_classes = _types.BorrowType.add_classes
_RESOURCE_KIND = ffi.WASMTIME_COMPONENT_RESOURCE
_original_tagged = _types.VariantLikeType._tagged
_original_cases: dict[type, Any] = {
    cls: cls._cases for cls in (_types.VariantType, _types.OptionType, _types.ResultType)
}


def _memo(obj: Any, name: str, compute: Any) -> Any:
    """``obj.name``, computed once by ``compute()`` and kept on the object."""
    try:
        return obj.__dict__[name]
    except KeyError:
        value = obj.__dict__[name] = compute()
        return value


def _tagged(self: Any) -> bool:
    return bool(_memo(self, "_r1_tagged", lambda: _original_tagged(self)))


def _cases_of(cls: type) -> Any:
    original = _original_cases[cls]

    def cases(self: Any) -> list[tuple[str, Any]]:
        return list(_memo(self, "_r1_cases", lambda: original(self)))

    return cases


def _untagged_cases(self: Any) -> list[tuple[str, Any, tuple[type, ...], bool]]:
    """Per case of an untagged variant: (name, type, the classes a value of it may be
    besides None, whether None is one of its values)."""
    found = []
    for name, ty in self._cases():
        classes: set[type] = set()
        if ty is not None:
            ty.add_classes(classes)
        accepts_none = object in classes
        classes.discard(object)
        found.append((name, ty, tuple(classes), accepts_none))
    return found


def _lower_untagged(self: Any, store: Any, val: Any) -> tuple[str, Any]:
    if self._tagged():
        return _original_lower(self, store, val)
    for name, ty, classes, accepts_none in _memo(
        self, "_r1_untagged", lambda: _untagged_cases(self)
    ):
        if ty is None:
            if val is None:
                return (name, None)
            continue
        if (val is None and accepts_none) or (classes and isinstance(val, classes)):
            raw = ffi.wasmtime_component_val_t()
            ty.convert_to_c(store, val, ctypes.pointer(raw))
            return (name, ffi.wasmtime_component_val_new(byref(raw)))
    raise ValueError(f"value {val!r} is not valid for this variant")


def _is_bytes(self: Any) -> bool:
    return bool(_memo(self, "_r1_bytes", self._is_bytes))


def _list_to_c(self: Any, store: Any, val: Any, ptr: Any) -> None:
    if type(val) is not bytes or not _is_bytes(self):
        return _original_list_to_c(self, store, val, ptr)
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, len(val))
    if val:
        values = bytearray(len(val) * _STRIDE)
        values[_KIND_AT::_STRIDE] = _U8_KIND * len(val)
        values[_U8_AT::_STRIDE] = val
        ctypes.memmove(raw.data, bytes(values), len(values))
    ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
    ptr.contents.of.list = raw
    return None


def _list_from_c(self: Any, c: Any) -> Any:
    if not _is_bytes(self):
        return _original_list_from_c(self, c)
    assert c.kind == ffi.WASMTIME_COMPONENT_LIST.value
    try:
        size = c.of.list.size
        if not size:
            return b""
        values = ctypes.string_at(c.of.list.data, size * _STRIDE)
        if values[_KIND_AT::_STRIDE] != _U8_KIND * size:
            raise WasmtimeError("a list<u8> from the component holds a value that is not a u8")
        return values[_U8_AT::_STRIDE]
    finally:
        ffi.wasmtime_component_vallist_delete(byref(c.of.list))


def _handle_to_c(original: Any) -> Any:
    """An own/borrow type's `convert_to_c` that lowers a HostHandle directly."""

    def convert_to_c(self: Any, store: Any, val: Any, ptr: Any) -> None:
        if type(val) is not HostHandle:
            return original(self, store, val, ptr)  # type: ignore[no-any-return]
        ptr.contents.kind = _RESOURCE_KIND
        ptr.contents.of.resource = val.to_any(store)
        return None

    return convert_to_c


def _handle_classes(original: Any) -> Any:
    """A HostHandle is a value of every own/borrow type, next to wasmtime-py's classes
    (an untagged variant picks its case by these)."""

    def add_classes(self: Any, classes: set[type]) -> None:
        original(self, classes)
        classes.add(HostHandle)

    return add_classes


def _lift_handle(store: Any, c: Any) -> HeldRep | ResourceAny:
    """An own/borrow argument of a host function as the rep of the host resource behind
    it, taken out of the argument (as wasmtime-py's own lift takes it) and released here.
    Why: wasmtime-py lifts it into a ResourceAny, a wrapper with a finalizer, that the
    function then turns into its rep with three more C calls; a request hands host
    functions about ten. Every resource in a host function's signature is one the host
    defined (an import's types are the importer's), so each is a host resource."""
    of = c.of
    handle = of.resource  # a view of the argument's field (ctypes' "surprise")
    try:
        rep = host_rep_of(store, handle)
    except WasmtimeError:  # not a host resource after all: the function says what it is
        return ResourceAny._from_ptr(ffi.take_pointer(of, "resource"))
    ffi.wasmtime_component_resource_any_delete(handle)
    of.resource = None  # taken, as take_pointer would: nobody frees it again
    return HeldRep(rep)


def _lifter(ty: Any) -> Any:
    """How one parameter of a host function comes from C: (store, value) -> Python."""
    if isinstance(ty, (_types.OwnType, _types.BorrowType)):
        return _lift_handle
    convert = ty.convert_from_c
    return lambda store, c: convert(c)


class _HostFunc:
    """A host function and, after its first call, its parameters' lifts and result type."""

    __slots__ = ("func", "params", "result")

    def __init__(self, func: Any) -> None:
        self.func = func
        self.params: list[Any] | None = None
        self.result: Any = None


@ffi.wasmtime_component_func_callback_t
def _host_func_impl(idx, context, ty_raw, args, nargs, results, nresults):  # type: ignore[no-untyped-def]
    def run(store: Any) -> None:
        entry: _HostFunc = _linker.FUNCTIONS.get(idx or 0)  # type: ignore[assignment]
        params = entry.params
        if params is None:
            fty = _types.FuncType._from_ptr(ty_raw, owner=store)
            entry.result = fty.result
            params = entry.params = [_lifter(ty) for _, ty in fty.params]
        if len(params) != nargs or (entry.result is None) != (nresults == 0):
            raise WasmtimeError(f"host function called with {nargs} arguments, not {len(params)}")
        result = entry.func(store, *[lift(store, args[i]) for i, lift in enumerate(params)])
        if entry.result is None:
            assert result is None
        else:
            entry.result.convert_to_c(store, result, results)

    return catch_exceptions(context, run)


def _add_func(self: Any, name: str, func: Any) -> None:
    self._assert_not_locked()
    name_bytes = name.encode("utf-8")
    name_buf = create_string_buffer(name_bytes)
    idx = _linker.FUNCTIONS.allocate(_HostFunc(func))  # type: ignore[arg-type]
    err = ffi.wasmtime_component_linker_instance_add_func(
        self.ptr(), name_buf, len(name_bytes), _host_func_impl, idx, _linker.func_finalize
    )
    if err:
        raise WasmtimeError._from_ptr(err)


def _func_call(self: Any, store: Any, *params: Any) -> Any:
    """`Func.__call__` with the function's types read once per Func object."""
    plan = self.__dict__.get("_r1_plan")
    if plan is None:
        fty = self.type(store)
        plan = self._r1_plan = ([ty for _, ty in fty.params], fty.result)
    param_tys, result_ty = plan
    if len(params) != len(param_tys):
        raise TypeError(
            f"wrong number of parameters provided: given {len(params)}, expected {len(param_tys)}"
        )
    param_capi = (ffi.wasmtime_component_val_t * len(params))()
    n = 0
    try:
        for ty, val in zip(param_tys, params, strict=True):
            ty.convert_to_c(store, val, ctypes.pointer(param_capi[n]))
            n += 1
        result_space = ffi.wasmtime_component_val_t() if result_ty is not None else None

        def run() -> Any:
            return ffi.wasmtime_component_func_call(
                byref(self._func),
                store._context(),
                param_capi,
                n,
                byref(result_space) if result_space is not None else None,
                0 if result_space is None else 1,
            )

        enter_wasm(run)
        if result_space is None:
            return None
        return result_ty.convert_from_c(result_space)
    finally:
        for i in range(n):
            ffi.wasmtime_component_val_delete(byref(param_capi[i]))


def install() -> None:
    _types.VariantLikeType._lower = _lower_untagged  # type: ignore[method-assign]
    _types.VariantLikeType._tagged = _tagged  # type: ignore[method-assign]
    for cls in _original_cases:
        setattr(cls, "_cases", _cases_of(cls))  # noqa: B010 - a patch, by name
    _linker.LinkerInstance.add_func = _add_func  # type: ignore[method-assign]
    _func.Func.__call__ = _func_call  # type: ignore[method-assign]
    _types.ListType.convert_to_c = _list_to_c  # type: ignore[method-assign]
    _types.ListType.convert_from_c = _list_from_c  # type: ignore[method-assign]
    _types.OwnType.convert_to_c = _handle_to_c(_original_own_to_c)  # type: ignore[method-assign]
    _types.BorrowType.convert_to_c = _handle_to_c(_original_borrow_to_c)  # type: ignore[method-assign]
    _types.OwnType.add_classes = _handle_classes(_original_own_classes)  # type: ignore[method-assign]
    _types.BorrowType.add_classes = _handle_classes(_original_borrow_classes)  # type: ignore[method-assign]
