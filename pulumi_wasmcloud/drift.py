"""What `pulumi preview --refresh --expect-no-changes --json` says about drift, as a
summary a person reads in a CI log, and the drift check's exit status.

Pure parsing (no Pulumi, no network): ``scripts/drift-check.sh`` runs the CLI and hands
this module its JSON (stdout), its stderr and its exit status. Only the standard library
is used, so the script runs this file by path with any Python 3.11, without the
package's dependencies.

Exit statuses: 0 in sync, 1 drifted (the lattice differs from the code: each drifted
resource is named with the properties that differ, live value => desired value), 2 could
not check (the lattice or a machine unreachable, credentials refused, Pulumi failing;
the reason is printed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IN_SYNC, DRIFTED, CANNOT_CHECK = 0, 1, 2

# Steps that change nothing: the refresh itself, unchanged resources, reads of resources
# the program does not manage.
QUIET_OPS = frozenset({"same", "refresh", "read", "discard", "discard-replaced"})
# What each changing step means when the program did not change.
OP_MEANING = {
    "create": "missing: would be created",
    "update": "differs: would be updated",
    "replace": "differs: would be replaced",
    "create-replacement": "differs: would be replaced",
    "delete-replaced": "differs: would be replaced",
    "delete": "not in the program: would be deleted",
    "import": "would be imported",
    "import-replacement": "would be imported",
}
VALUE_WIDTH = 100  # longer values (whole manifests) are cut, their path says where
GENERIC_FAILURE = re.compile(r"^error: (preview|update) failed\s*$", re.IGNORECASE)
SEVERITY_PREFIX = re.compile(r"^(error|warning): (Preview failed: )?", re.IGNORECASE)


class NotPreviewOutput(ValueError):
    """The CLI's stdout is not a preview's JSON (Pulumi failed before previewing)."""


@dataclass(frozen=True)
class PropertyChange:
    path: str  # Pulumi's property path, e.g. placement.counter["e2e-core"]
    kind: str  # add, delete, update (Pulumi's detailedDiff kinds, without -replace)
    live: str  # the value read from the lattice, shown as JSON ("" when absent)
    desired: str  # the value the code asks for

    def describe(self) -> str:
        if self.kind == "add":
            return f"{self.path}: missing, wanted {self.desired}"
        if self.kind == "delete":
            return f"{self.path}: {self.live}, not wanted"
        return f"{self.path}: {self.live} => {self.desired}"


@dataclass(frozen=True)
class DriftedResource:
    type: str
    name: str
    op: str
    changes: tuple[PropertyChange, ...]
    notes: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        meaning = OP_MEANING.get(self.op, f"would be changed ({self.op})")
        lines = [f"  {self.type} {self.name}: {meaning}"]
        lines += [f"    {change.describe()}" for change in self.changes]
        lines += [f"    provider: {note}" for note in self.notes]
        return lines


@dataclass(frozen=True)
class Failure:
    where: str  # "<type> <name>", or "" for the whole preview
    message: str


@dataclass(frozen=True)
class Verdict:
    status: int
    checked: int = 0  # resources the refresh read
    drifted: tuple[DriftedResource, ...] = ()
    failures: tuple[Failure, ...] = ()
    warnings: tuple[Failure, ...] = field(default=())

    def summary(self, stack: str) -> str:
        if self.status == CANNOT_CHECK:
            lines = [f"drift-check: {stack}: could not check (exit 2)"]
            for failure in self.failures:
                where = f"{failure.where}: " if failure.where else ""
                lines.append(f"  {where}{failure.message}")
        elif self.status == DRIFTED:
            lines = [
                f"drift-check: {stack}: drifted (exit 1): {len(self.drifted)} of "
                f"{self.checked} resource(s) differ from the code; `pulumi up` repairs them"
            ]
            for resource in self.drifted:
                lines += resource.describe()
        else:
            lines = [f"drift-check: {stack}: in sync (exit 0): {self.checked} resource(s) read"]
        for warning in self.warnings:
            where = f"{warning.where}: " if warning.where else ""
            lines.append(f"  warning: {where}{warning.message}")
        return "\n".join(lines)


def split_urn(urn: str) -> tuple[str, str]:
    """(type, name) of ``urn:pulumi:<stack>::<project>::<parent$type>::<name>``."""
    parts = urn.split("::")
    if len(parts) < 4:
        return "", urn
    return parts[2].rsplit("$", 1)[-1], "::".join(parts[3:])


def parse_path(path: str) -> list[str | int]:
    """Pulumi's property path (``a.b["c.d"][0]``) as keys and indexes."""
    keys: list[str | int] = []
    pattern = re.compile(r'\.?([^.\[\]"]+)|\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]')
    position = 0
    while position < len(path):
        match = pattern.match(path, position)
        if match is None or match.end() == position:
            return [path]  # not a path we can follow: show it as a top-level name
        plain, quoted, index = match.groups()
        if index is not None:
            keys.append(int(index))
        elif quoted is not None:
            keys.append(json.loads(f'"{quoted}"'))
        else:
            keys.append(plain)
        position = match.end()
    return keys


_ABSENT = object()


def lookup(value: Any, keys: Sequence[str | int]) -> Any:
    for key in keys:
        in_list = isinstance(key, int) and isinstance(value, list) and 0 <= key < len(value)
        in_map = isinstance(key, str) and isinstance(value, dict) and key in value
        if not (in_list or in_map):
            return _ABSENT
        value = value[key]
    return value


def show(value: Any) -> str:
    if value is _ABSENT:
        return ""
    text = json.dumps(value, sort_keys=True, separators=(", ", ": "))
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def drifted_resource(step: Mapping[str, Any], notes: Sequence[str]) -> DriftedResource:
    old, new = _mapping(step.get("oldState")), _mapping(step.get("newState"))
    urn = str(step.get("urn", ""))
    type_, name = split_urn(urn)
    type_ = str(new.get("type") or old.get("type") or type_)
    live = _mapping(old.get("outputs"))
    desired = _mapping(new.get("inputs")) or _mapping(new.get("outputs"))
    changes = []
    details = step.get("detailedDiff")
    if isinstance(details, dict) and details:
        for path, detail in sorted(details.items()):
            kind = str(_mapping(detail).get("kind", "update")).removesuffix("-replace")
            keys = parse_path(path)
            changes.append(
                PropertyChange(path, kind, show(lookup(live, keys)), show(lookup(desired, keys)))
            )
    else:  # no detailed diff (e.g. a create): the reasons are all Pulumi gives
        reasons = step.get("diffReasons")
        for path in reasons if isinstance(reasons, list) else []:
            keys = parse_path(str(path))
            changes.append(
                PropertyChange(
                    str(path), "update", show(lookup(live, keys)), show(lookup(desired, keys))
                )
            )
    return DriftedResource(type_, name, str(step.get("op")), tuple(changes), tuple(notes))


def clean_message(message: str) -> str:
    return SEVERITY_PREFIX.sub("", message.strip())


def judge(stdout: str, stderr: str = "", returncode: int = 0) -> Verdict:
    """The drift check's verdict on one `pulumi preview --refresh --expect-no-changes
    --json` run: its stdout, stderr and exit status."""
    try:
        preview = json.loads(stdout) if stdout.strip() else None
    except json.JSONDecodeError:
        preview = None
    if not isinstance(preview, dict):
        reason = stderr.strip() or stdout.strip() or f"pulumi exited with status {returncode}"
        return Verdict(CANNOT_CHECK, failures=(Failure("", clean_message(reason)),))
    steps = [s for s in preview.get("steps") or [] if isinstance(s, dict)]
    diagnostics = [d for d in preview.get("diagnostics") or [] if isinstance(d, dict)]

    def where(diagnostic: Mapping[str, Any]) -> str:
        urn = diagnostic.get("urn")
        if not isinstance(urn, str) or not urn:
            return ""
        type_, name = split_urn(urn)
        return f"{type_} {name}"

    errors = [
        Failure(where(d), clean_message(str(d.get("message", ""))))
        for d in diagnostics
        if d.get("severity") == "error"
    ]
    warnings = tuple(
        Failure(where(d), clean_message(str(d.get("message", ""))))
        for d in diagnostics
        if d.get("severity") == "warning"
    )
    checked = sum(
        1
        for s in steps
        if s.get("op") == "refresh" and not split_urn(str(s.get("urn")))[0].startswith("pulumi:")
    )  # the resources read (not the stack itself or a provider)
    if errors:
        # Pulumi's own "preview failed" line adds nothing to the errors that caused it.
        specific = [e for e in errors if not GENERIC_FAILURE.match(f"error: {e.message}")]
        return Verdict(CANNOT_CHECK, checked, failures=tuple(specific or errors), warnings=warnings)
    notes: dict[str, list[str]] = {}
    for diagnostic in diagnostics:
        if diagnostic.get("severity") == "info" and isinstance(diagnostic.get("urn"), str):
            notes.setdefault(diagnostic["urn"], []).append(
                clean_message(str(diagnostic["message"]))
            )
    drifted = tuple(
        drifted_resource(step, notes.get(str(step.get("urn")), []))
        for step in steps
        if step.get("op") not in QUIET_OPS
    )
    if drifted:
        return Verdict(DRIFTED, checked, drifted, warnings=warnings)
    if returncode != 0:  # no change and no error in the JSON, yet Pulumi failed
        reason = stderr.strip() or f"pulumi exited with status {returncode}"
        return Verdict(CANNOT_CHECK, checked, failures=(Failure("", clean_message(reason)),))
    return Verdict(IN_SYNC, checked, warnings=warnings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Summarise a `pulumi preview --refresh --expect-no-changes --json` run."
    )
    parser.add_argument("stdout", type=Path, help="the file holding the preview's JSON")
    parser.add_argument("stderr", type=Path, help="the file holding the preview's stderr")
    parser.add_argument("returncode", type=int, help="pulumi's exit status")
    parser.add_argument("--stack", default="the selected stack", help="the stack, as shown")
    args = parser.parse_args(argv)
    verdict = judge(
        args.stdout.read_text(errors="replace"),
        args.stderr.read_text(errors="replace"),
        args.returncode,
    )
    print(verdict.summary(args.stack))
    return verdict.status


if __name__ == "__main__":
    sys.exit(main())
