"""Property values <-> plain Python, the only place the provider touches PropertyValue.

Pulumi numbers are floats on the wire; whole numbers come back as ``int`` so manifests
keep the integer counts wadm's (and our) strict types require. Unknown values travel as
the engine's sentinel string: the SDK's experimental PropertyValue neither decodes it to
``Computed`` nor can encode ``Computed``, so both directions are handled here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi.provider.experimental.property_value import Computed, PropertyValue
from pulumi.runtime.rpc import UNKNOWN as UNKNOWN_SENTINEL

Props = dict[str, PropertyValue]


class Unknown:
    """A value not known yet (an output of a resource still to be created)."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = Unknown()


def to_python(value: PropertyValue) -> Any:
    inner = value.value
    if isinstance(inner, Computed) or inner == UNKNOWN_SENTINEL:
        return UNKNOWN
    if isinstance(inner, float) and inner.is_integer():
        return int(inner)
    if isinstance(inner, Mapping):
        return {key: to_python(item) for key, item in inner.items()}
    if isinstance(inner, tuple):
        return [to_python(item) for item in inner]
    return inner


def plain(props: Props) -> dict[str, Any]:
    return {key: to_python(value) for key, value in props.items()}


def has_unknowns(value: Any) -> bool:
    if value is UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(has_unknowns(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unknowns(v) for v in value)
    return False


def to_property(value: Any, secret: bool = False) -> PropertyValue:
    if isinstance(value, PropertyValue):
        return value
    if value is UNKNOWN:
        return PropertyValue(UNKNOWN_SENTINEL)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        converted = PropertyValue(value)
    elif isinstance(value, int | float):
        converted = PropertyValue(float(value))
    elif isinstance(value, Mapping):
        converted = PropertyValue({str(k): to_property(v) for k, v in value.items()})
    elif isinstance(value, list | tuple):
        converted = PropertyValue([to_property(v) for v in value])
    else:
        raise TypeError(f"cannot send {type(value).__name__} to Pulumi")
    return converted.with_secret(True) if secret else converted


def to_props(values: Mapping[str, Any], secrets: frozenset[str] = frozenset()) -> Props:
    return {key: to_property(value, key in secrets) for key, value in values.items()}
