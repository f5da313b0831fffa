"""What every resource type implements, on plain dicts (values.py converts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class InputError(ValueError):
    """Bad input: ``property`` names the field, the message says what to do."""

    def __init__(self, property: str, reason: str) -> None:
        super().__init__(f"{property}: {reason}")
        self.property = property
        self.reason = reason


@dataclass
class ProviderSettings:
    """What the provider's own config says (wasmcloud:*), shared by its handlers."""

    credentials: str | None = None  # a NATS .creds file's text; secret


@dataclass
class Checked:
    inputs: dict[str, Any]
    failures: list[InputError] = field(default_factory=list)


@dataclass
class Diff:
    """``changed``: property path -> (old, new); ``replaces``: top-level keys that force a
    replacement."""

    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    replaces: list[str] = field(default_factory=list)


@dataclass
class Created:
    id: str
    outputs: dict[str, Any]


class Handler(Protocol):
    secrets: frozenset[str]

    async def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Checked: ...

    async def diff(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> Diff: ...

    async def create(self, inputs: dict[str, Any], preview: bool) -> Created: ...

    async def read(self, id: str, state: dict[str, Any]) -> dict[str, Any] | None: ...

    async def update(
        self, id: str, olds: dict[str, Any], news: dict[str, Any], preview: bool
    ) -> dict[str, Any]: ...

    async def delete(self, id: str, state: dict[str, Any]) -> None: ...


def changed_keys(
    olds: dict[str, Any], news: dict[str, Any], keys: tuple[str, ...]
) -> dict[str, tuple[Any, Any]]:
    return {k: (olds.get(k), news.get(k)) for k in keys if olds.get(k) != news.get(k)}


def nats_url_required() -> InputError:
    return InputError("natsUrl", "required: pass lattice.nats_url or set wasmcloud:natsUrl")
