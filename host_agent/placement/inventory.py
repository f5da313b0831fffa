"""What the planner knows about each host: its labels and what it already runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from host_agent.model.issues import ManifestIssue, format_path

Label = Annotated[str, Field(strict=True)]


class HostInventory(BaseModel):
    """One host as the planner sees it.

    ``running`` counts instances already there per manifest component name (for a
    component, its max-instances; for a capability provider, 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1)]
    labels: Mapping[str, Label] = Field(default_factory=dict)
    running: Mapping[str, Annotated[int, Field(strict=True, ge=0)]] = Field(default_factory=dict)

    def matches(self, requirements: Mapping[str, str]) -> bool:
        """wadm's rule: every required label is present with exactly that value."""
        return all(self.labels.get(key) == value for key, value in requirements.items())


class HostsFileError(ValueError):
    def __init__(self, source: str, issues: Sequence[ManifestIssue]) -> None:
        self.issues = tuple(issues)
        lines = "\n".join(str(issue) for issue in issues)
        super().__init__(f"{source}: invalid hosts file\n{lines}")


_HOST_LIST = TypeAdapter(list[HostInventory])


def parse_hosts(data: Any, source: str = "hosts") -> list[HostInventory]:
    """Validate a hosts list (``- id: ..., labels: {...}, running: {...}``)."""
    fix_list = "write a YAML list of hosts: `- id: host-1` with optional labels and running"
    if not isinstance(data, list):
        raise HostsFileError(source, [ManifestIssue("", "must be a list of hosts", fix_list)])
    try:
        hosts = _HOST_LIST.validate_python(data)
    except ValidationError as exc:
        issues = [
            ManifestIssue(format_path(e["loc"]), e["msg"].lower(), _hosts_fix(e["type"]))
            for e in exc.errors()
        ]
        raise HostsFileError(source, issues) from None
    seen: set[str] = set()
    for index, host in enumerate(hosts):
        if host.id in seen:
            issue = ManifestIssue(
                f"[{index}].id", f"duplicate host id {host.id!r}", "give every host its own id"
            )
            raise HostsFileError(source, [issue])
        seen.add(host.id)
    return hosts


def _hosts_fix(kind: str) -> str:
    return {
        "missing": "add `id: <host id>`",
        "extra_forbidden": "only id, labels and running are allowed",
        "string_type": "quote the label value",
        "int_type": "use a whole number of instances",
        "greater_than_equal": "use a whole number, 0 or more",
    }.get(kind, "")


def load_hosts(path: str | Path) -> list[HostInventory]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HostsFileError(
            str(path), [ManifestIssue("", f"cannot read: {exc.strerror}", "check the path")]
        ) from None
    except yaml.YAMLError as exc:
        raise HostsFileError(
            str(path), [ManifestIssue("", f"not valid YAML: {exc}", "fix the syntax")]
        ) from None
    return parse_hosts(data, str(path))
