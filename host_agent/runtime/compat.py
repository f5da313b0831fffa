"""One correction to wasmtime-py 50's lowering of untagged variants.

wasmtime-py passes `result`/`option`/`variant` values untagged when the Python classes
of their cases are disjoint, and picks the case with `isinstance`. A unit case (like an
option's `none`) registers the class `object`, so for `result<option<list<u8>>, error>`
(wasi:keyvalue's `get`) every value, errors included, matches the `ok` case first and
`err` cannot be returned at all. This replacement matches `None` explicitly and every
other value against the real classes only. Tagged variants are left alone.
"""

from __future__ import annotations

import ctypes
from ctypes import byref
from typing import Any

from wasmtime import _ffi as ffi  # wasmtime-py's own ctypes bindings
from wasmtime.component import _types

_original_lower = _types.VariantLikeType._lower


def _lower_untagged(self: Any, store: Any, val: Any) -> tuple[str, Any]:
    if self._tagged():
        return _original_lower(self, store, val)
    for name, ty in self._cases():
        if ty is None:
            if val is None:
                return (name, None)
            continue
        classes: set[type] = set()
        ty.add_classes(classes)
        accepts_none = object in classes
        classes.discard(object)
        if (val is None and accepts_none) or (classes and isinstance(val, tuple(classes))):
            raw = ffi.wasmtime_component_val_t()
            ty.convert_to_c(store, val, ctypes.pointer(raw))
            return (name, ffi.wasmtime_component_val_new(byref(raw)))
    raise ValueError(f"value {val!r} is not valid for this variant")


def install() -> None:
    _types.VariantLikeType._lower = _lower_untagged  # type: ignore[method-assign]
