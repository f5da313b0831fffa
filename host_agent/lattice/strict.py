"""Strict parsing of JSON bodies at the lattice's boundaries, with errors that name fields.

The wire formats are Rust serde types upstream, and serde never reads ``"0"`` as a
number, ``5`` as a string or ``["x"]`` as "absent". Every request and push model here is
validated from the JSON text in pydantic's strict mode, and a refusal is one sentence
naming each bad field, e.g. ``version: expected a string, got a list``.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails


class BadRequest(ValueError):
    """A body that does not parse; the message names the fields and goes back to the sender."""


class StrictModel(BaseModel):
    """A wire shape: strict types, and (like serde without ``deny_unknown_fields``) unknown
    fields ignored. Shapes the project has always refused unknown fields on say so."""

    model_config = ConfigDict(strict=True, populate_by_name=True)


ModelT = TypeVar("ModelT", bound=BaseModel)

# What each pydantic error type means to someone writing JSON by hand.
_EXPECTED = {
    "string_type": "expected a string",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected an object",
    "model_type": "expected a JSON object",
    "model_attributes_type": "expected a JSON object",
    "string_too_short": "must not be empty",
}


def json_kind(value: Any, quote_strings: bool = True) -> str:
    """``a string ("0")``, ``a list``, ``null``...: what the sender actually wrote. With
    ``quote_strings`` false a string is only ``a string``: for bodies that carry secrets,
    where the misplaced string may be the password itself."""
    match value:
        case None:
            return "null"
        case bool():
            return "true" if value else "false"
        case int() | float():
            return f"a number ({value!r})"
        case str() if not quote_strings:
            return "a string"
        case str():
            shown = value if len(value) <= 40 else value[:37] + "..."
            return f"a string ({json.dumps(shown)})"
        case list():
            return "a list"
        case dict():
            return "an object"
    return type(value).__name__


def field_path(loc: tuple[int | str, ...]) -> str:
    """``('config', 0)`` -> ``config[0]``; the empty path (the body itself) is ``""``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def describe(error: ErrorDetails, quote_strings: bool = True) -> str:
    """One pydantic error as ``field: expected ..., got ...`` (no field: the whole body)."""
    path = field_path(tuple(error["loc"]))
    problem = _problem(error, quote_strings)
    return f"{path}: {problem}" if path else problem


def _problem(error: ErrorDetails, quote_strings: bool) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "required but missing"
    if kind == "extra_forbidden":
        return "unknown field (check its spelling or remove it)"
    if kind == "json_invalid":
        return f"not valid JSON ({ctx.get('error', error['msg'])})"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {
            "greater_than_equal": f"at least {ctx.get('ge')}",
            "greater_than": f"more than {ctx.get('gt')}",
            "less_than_equal": f"at most {ctx.get('le')}",
            "less_than": f"less than {ctx.get('lt')}",
        }[kind]
        return f"expected a number {bound}, got {json_kind(error['input'], quote_strings)}"
    expected = _EXPECTED.get(kind)
    if expected is None:
        return error["msg"][0].lower() + error["msg"][1:]
    if kind == "string_too_short":
        return expected
    return f"{expected}, got {json_kind(error['input'], quote_strings)}"


def describe_errors(error: ValidationError, quote_strings: bool = True) -> str:
    return "; ".join(describe(e, quote_strings) for e in error.errors())


def parse_json(
    model: type[ModelT], payload: bytes | str, what: str, quote_strings: bool = True
) -> ModelT:
    """Validate ``payload`` (JSON text) as ``model``; ``what`` names the body in errors.
    Bodies that carry secrets pass ``quote_strings=False`` (see ``json_kind``).

    Raises ``BadRequest`` saying e.g. ``invalid component.scale request: count: expected a
    whole number, got a string ("0")``.
    """
    try:
        return model.model_validate_json(payload, strict=True)
    except ValidationError as exc:
        raise BadRequest(f"invalid {what}: {describe_errors(exc, quote_strings)}") from None
