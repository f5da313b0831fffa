"""Validation findings with a path into the manifest and a fix a person can apply.

Every finding names where it is (``spec.components[1].traits[0].properties.instances``),
what is wrong, and what to do about it, so `wasmcloud validate`, the controller's
``model.put`` and the Pulumi provider's ``check`` can all print the same line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class ManifestIssue:
    path: str
    message: str
    fix: str = ""
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{where}{self.message}{fix}"


class ManifestError(ValueError):
    """A manifest that wadm (or our stricter checks) would refuse; ``issues`` lists why."""

    def __init__(self, issues: Sequence[ManifestIssue], source: str = "") -> None:
        self.issues = tuple(issues)
        self.source = source
        lines = "\n".join(str(issue) for issue in self.issues)
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}invalid manifest\n{lines}")


def format_path(parts: Iterable[str | int]) -> str:
    """Render ``("spec", "components", 1, "name")`` as ``spec.components[1].name``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out
