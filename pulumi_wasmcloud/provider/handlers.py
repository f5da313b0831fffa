"""What every resource type implements, on plain dicts (values.py converts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class InputError(ValueError):
    """Bad input: ``property`` names the field, the message says what to do."""

    def __init__(self, property: str, reason: str) -> None:
        super().__init__(f"{property}: {reason}")
        self.property = property
        self.reason = reason


@dataclass(frozen=True)
class KnownHost:
    """A host the stack's state holds (a Host resource the engine told us about)."""

    id: str
    name: str
    running: Callable[[], bool]  # whether its process runs, i.e. it will (re)join


@dataclass
class ProviderSettings:
    """What the provider's own config says (wasmcloud:*), and what it learned from the
    engine during this run, shared by its handlers."""

    credentials: str | None = None  # a NATS .creds file's text; secret
    # (natsUrl, lattice) -> host id -> host: the hosts in the stack's state, so an
    # application waits for them to rejoin after a restart before it plans.
    hosts: dict[tuple[str, str], dict[str, KnownHost]] = field(default_factory=dict)

    def remember_host(self, url: str, lattice: str, host: KnownHost) -> None:
        self.hosts.setdefault((url, lattice), {})[host.id] = host

    def forget_host(self, url: str, lattice: str, host_id: str) -> None:
        self.hosts.get((url, lattice), {}).pop(host_id, None)

    def hosts_of(self, url: str, lattice: str) -> list[KnownHost]:
        return sorted(self.hosts.get((url, lattice), {}).values(), key=lambda h: h.name)


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
