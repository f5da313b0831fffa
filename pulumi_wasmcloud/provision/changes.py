"""What a plan is made of: changes (a sentence for preview plus the commands that make
it), and ``apply``, the one place they meet a connection.

Planners (``operations``, ``service``) are pure: from facts and the desired state they
return only the changes still needed, so a converged machine gets an empty plan and
``apply`` runs nothing on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pulumi_wasmcloud.provision.connector import SshConnection


@dataclass(frozen=True)
class Upload:
    """Write ``data`` to ``path`` with ``mode`` (atomically)."""

    path: str
    data: bytes = field(repr=False)
    mode: int

    def __str__(self) -> str:
        return f"write {self.path} ({len(self.data)} bytes, mode {self.mode:o})"


@dataclass(frozen=True)
class Shell:
    """Run a shell command, which must exit 0."""

    command: str
    timeout: float = 120.0

    def __str__(self) -> str:
        return self.command


Command = Upload | Shell


@dataclass(frozen=True)
class Change:
    """One change a preview shows (``nats-server 2.12.1: install on core-2``) and the
    commands that make it, in order."""

    description: str
    commands: tuple[Command, ...]


def apply(
    connection: SshConnection,
    changes: Sequence[Change],
    progress: Callable[[Change], None] | None = None,
) -> int:
    """Run the changes' commands in order, stopping at the first failure (raised with its
    output); how many commands ran."""
    ran = 0
    for change in changes:
        if progress is not None:
            progress(change)
        for command in change.commands:
            if isinstance(command, Upload):
                connection.put_file(command.data, command.path, command.mode)
            else:
                connection.check(command.command, command.timeout)
            ran += 1
    return ran
