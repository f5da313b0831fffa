"""The schema's building blocks: a property's type, a property, an object type, a
resource and a function. Plain frozen data, no I/O and no imports beyond the standard
library: the provider plugin loads it on every preview (tests/unit/test_provider_startup.py).

Names are the wire's (camelCase, as every Pulumi provider spells its properties); the
Python SDK's names are ``python_name`` (snake_case unless a property says otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["string", "integer", "number", "boolean", "array", "map", "object", "any"]


@dataclass(frozen=True)
class Type:
    """A property's type: a scalar, ``array``/``map`` of ``items``, an ``object`` of
    the named object type (``ref``, a token like ``wasmcloud:index:SshMachine``), or
    ``any`` (free-form JSON, e.g. a wadm manifest)."""

    kind: Kind
    items: Type | None = None
    ref: str | None = None

    def describe(self) -> str:
        """How errors and the reference docs name it: ``map of string``, ``SshMachine``."""
        if self.kind in ("array", "map"):
            assert self.items is not None
            word = "list" if self.kind == "array" else "map"
            return f"{word} of {self.items.describe()}"
        if self.kind == "object":
            assert self.ref is not None
            return self.ref.rsplit(":", 1)[-1]
        if self.kind == "any":
            return "any JSON value"
        return {"integer": "whole number", "boolean": "true or false"}.get(self.kind, self.kind)


STRING = Type("string")
INTEGER = Type("integer")
NUMBER = Type("number")
BOOLEAN = Type("boolean")
ANY = Type("any")


def array_of(items: Type) -> Type:
    return Type("array", items=items)


def map_of(items: Type) -> Type:
    return Type("map", items=items)


def object_type(token: str) -> Type:
    return Type("object", ref=token)


def snake_case(name: str) -> str:
    """``heartbeatSeconds`` -> ``heartbeat_seconds``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class Property:
    """One input or output. ``default``: what the provider uses when it is not given
    (``None``: nothing). ``secret``: sent and stored as a Pulumi secret.
    ``replace_on_changes``: a change replaces the resource. ``python_name``: the Python
    SDK's name when it is not ``snake_case(name)``."""

    name: str
    type: Type
    description: str
    required: bool = False
    default: Any = None
    secret: bool = False
    replace_on_changes: bool = False
    python_name: str | None = None

    @property
    def python(self) -> str:
        return self.python_name or snake_case(self.name)


@dataclass(frozen=True)
class ObjectType:
    """A structured value used inside properties (``SshMachine``, a function's result)."""

    token: str
    description: str
    properties: tuple[Property, ...]

    @property
    def name(self) -> str:
        return self.token.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class Resource:
    """A resource type. ``inputs`` are what a program gives (the state holds them too);
    ``outputs`` are what only the provider sets. ``examples``: language -> a program
    fragment, shown in the reference docs ("python", "yaml")."""

    token: str
    description: str
    inputs: tuple[Property, ...]
    outputs: tuple[Property, ...]
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.token.rsplit(":", 1)[-1]

    def input(self, name: str) -> Property | None:
        return next((p for p in self.inputs if p.name == name), None)

    @property
    def all_properties(self) -> tuple[Property, ...]:
        """What the resource's state holds: its inputs, then its outputs."""
        return self.inputs + self.outputs

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(p.name for p in self.all_properties if p.secret)

    @property
    def replace_on_changes(self) -> frozenset[str]:
        return frozenset(p.name for p in self.all_properties if p.replace_on_changes)


@dataclass(frozen=True)
class Function:
    """A function (a provider ``invoke``): its arguments (``inputs``) and its result's
    properties (``outputs``), e.g. ``wasmcloud:index:getLattice``."""

    token: str
    description: str
    inputs: tuple[Property, ...]
    outputs: tuple[Property, ...]
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.token.rsplit(":", 1)[-1]
