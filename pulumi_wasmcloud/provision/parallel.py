"""The same work on many machines at once, each over its own connection; a machine that
fails (unreachable, refused, a command failing) is reported by name while the others go
on, so one bad machine never leaves the rest half done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from pulumi_wasmcloud.provision.connector import ProvisionError, SshConnection, SshTarget

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What the work gave on one machine, or why it failed there."""

    machine: str
    value: T | None = None
    error: ProvisionError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def on_machines(
    targets: Sequence[SshTarget],
    work: Callable[[SshConnection], T],
    max_parallel: int = 8,
) -> dict[str, Outcome[T]]:
    """Connect to every target (at most ``max_parallel`` at a time) and run ``work`` on
    each connection; the outcome per machine name, in the order given. Only
    ``ProvisionError`` is caught: anything else is a bug and is raised."""
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ValueError(f"machine names repeat: {names}")
    if max_parallel < 1:
        raise ValueError("max_parallel: at least 1")

    def one(target: SshTarget) -> Outcome[T]:
        try:
            with SshConnection.connect(target) as connection:
                return Outcome(target.name, value=work(connection))
        except ProvisionError as e:
            return Outcome(target.name, error=e)

    if not targets:
        return {}
    with ThreadPoolExecutor(max_workers=min(max_parallel, len(targets))) as pool:
        outcomes = list(pool.map(one, targets))
    return {o.machine: o for o in outcomes}
