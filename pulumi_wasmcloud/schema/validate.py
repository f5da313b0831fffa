"""Type and required checks of a resource's inputs against its schema.

Each problem names the property's path (``labels.tier``, ``cluster[0].port``) and the
type the schema expects, e.g. ``natsPort: expected a whole number, got a string ("4222")``.
Strict like serde: "4222" is not a number, 1.5 not a whole number, true not a number.
Values not known yet (another resource's outputs in a preview) pass; the engine checks
again once they are known. Secret values are never quoted.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_wasmcloud.schema.types import ObjectType, Property, Resource, Type


@dataclass(frozen=True)
class Problem:
    path: str  # the property's path, as the check failure names it
    reason: str


def describe(value: Any, secret: bool = False) -> str:
    """What a value is, as a refusal says it: ``a string ("22")``, ``a number (1.5)``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean" if secret else ("true" if value else "false")
    if isinstance(value, int | float):
        return "a number" if secret else f"a number ({value:g})"
    if isinstance(value, str):
        if secret:
            return "a string"
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'a string ("{shown}")'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return type(value).__name__


def _article(type_: Type) -> str:
    """``a string``, ``an object of type SshMachine``, ``a list of string``."""
    word = type_.describe()
    if type_.kind in ("boolean", "any"):
        return word
    if type_.kind == "object":
        return f"an object of type {word}"
    return ("an " if word[0] in "aeiouAEIOU" else "a ") + word


class Checker:
    """Checks values against types; ``unknown`` says whether a value is not known yet,
    ``objects`` names every object type a property may refer to."""

    def __init__(self, objects: Mapping[str, ObjectType], unknown: Callable[[Any], bool]) -> None:
        self.objects = objects
        self.unknown = unknown

    def properties(
        self,
        values: Mapping[str, Any],
        declared: tuple[Property, ...],
        owner: str,
        prefix: str = "",
        also_known: tuple[Property, ...] = (),
        secret: bool = False,
    ) -> list[Problem]:
        """The problems of ``values`` as the properties ``declared`` (an object's fields or
        a resource's inputs) of ``owner``; ``also_known`` are accepted too (a resource's
        outputs, which an import gives back as inputs)."""
        by_name = {p.name: p for p in declared + also_known}
        problems: list[Problem] = []
        for key, value in values.items():
            path = f"{prefix}{key}"
            prop = by_name.get(key)
            if prop is None:
                problems.append(Problem(path, self._unknown_name(key, declared, owner)))
            elif value is not None:
                problems += self.value(value, prop.type, path, secret or prop.secret)
        for prop in declared:
            if prop.required and values.get(prop.name) is None:
                problems.append(Problem(f"{prefix}{prop.name}", f"required: {_article(prop.type)}"))
        return problems

    def value(self, value: Any, type_: Type, path: str, secret: bool = False) -> list[Problem]:
        if self.unknown(value) or type_.kind == "any":
            return []
        expected = f"expected {_article(type_)}, got {describe(value, secret)}"
        kind = type_.kind
        if kind == "string":
            return [] if isinstance(value, str) else [Problem(path, expected)]
        if kind == "boolean":
            return [] if isinstance(value, bool) else [Problem(path, expected)]
        if kind == "integer":
            whole = isinstance(value, int) and not isinstance(value, bool)
            return [] if whole else [Problem(path, expected)]
        if kind == "number":
            number = isinstance(value, int | float) and not isinstance(value, bool)
            return [] if number else [Problem(path, expected)]
        if kind == "array":
            assert type_.items is not None
            if not isinstance(value, list):
                return [Problem(path, expected)]
            return [
                problem
                for i, item in enumerate(value)
                for problem in self._item(item, type_.items, f"{path}[{i}]", secret)
            ]
        if kind == "map":
            assert type_.items is not None
            if not isinstance(value, dict):
                return [Problem(path, expected)]
            return [
                problem
                for key, item in value.items()
                for problem in self._item(item, type_.items, f"{path}.{key}", secret)
            ]
        assert kind == "object" and type_.ref is not None
        if not isinstance(value, dict):
            return [Problem(path, expected)]
        object_ = self.objects[type_.ref]
        return self.properties(value, object_.properties, object_.name, f"{path}.", secret=secret)

    def _item(self, item: Any, type_: Type, path: str, secret: bool) -> list[Problem]:
        if item is None:
            return (
                []
                if type_.kind == "any"
                else [Problem(path, f"expected {_article(type_)}, got null")]
            )
        return self.value(item, type_, path, secret)

    @staticmethod
    def _unknown_name(key: str, declared: tuple[Property, ...], owner: str) -> str:
        names = [p.name for p in declared]
        close = difflib.get_close_matches(key, names, n=1)
        hint = f'did you mean "{close[0]}"? ' if close else ""
        return f"{owner} has no property {key!r}; {hint}its properties are {', '.join(names)}"


def check_inputs(
    resource: Resource,
    news: Mapping[str, Any],
    objects: Mapping[str, ObjectType],
    unknown: Callable[[Any], bool],
) -> list[Problem]:
    """The problems of a program's inputs ``news`` for ``resource``: unknown property
    names (with the nearest known one), wrong types, required properties missing."""
    checker = Checker(objects, unknown)
    return checker.properties(news, resource.inputs, resource.name, also_known=resource.outputs)
