"""``wasmcloud inventory``: every host that answers a ping, and what runs on it.

The data is the control interface's, unchanged in meaning: each host's ``host.ping``
reply (id, friendly name, version, uptime) and its ``host.get`` inventory (labels,
components with their instance counts, providers), read as ``CtlClient.read_hosts`` reads
them. ``inventory_document`` is the ``--json`` shape (stable; docs/operations.md)::

    {"lattice": "default",
     "hosts": [{"id": "N...", "friendly_name": "local-core",
                "labels": {"region": "local", ...}, "version": "0.1.0",
                "uptime_seconds": 42,
                "components": [{"id": "counter-counter", "image_ref": "...",
                                "max_instances": 3, "application": "counter"}],
                "providers": [{"id": "counter-kvredis", "image_ref": "...",
                               "application": "counter"}],
                "error": null}]}

Hosts are sorted by id, components and providers by id. ``application`` is the wadm
application that put the workload there (its ``wasmcloud.dev/appspec`` annotation), null
when started by hand. ``error`` says why a host's inventory could not be read (it is then
listed with empty components and providers, never left out).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, ValidationError
from rich.console import Group, RenderableType
from rich.text import Text

from host_agent.host.state import humanize_seconds  # the hosts' own uptime_human style
from host_agent.lattice.client import HostReading
from host_agent.lattice.protocol import InventoryReport
from host_agent.lattice.strict import BadRequest, StrictModel, describe_errors
from host_agent.ops.tables import labels_text, table

# wadm's annotation on everything it starts: the application's name.
APPSPEC_ANNOTATION = "wasmcloud.dev/appspec"


class PingedHostInfo(StrictModel):
    """The fields of a ``host.ping`` reply the inventory shows (strict; others ignored)."""

    id: str = Field(min_length=1)
    friendly_name: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    version: str = ""
    uptime_seconds: int = Field(default=0, ge=0)


def host_entry(reading: HostReading) -> dict[str, Any]:
    """One host of the ``--json`` document, from one ping + ``host.get`` reading."""
    try:
        pinged = PingedHostInfo.model_validate(reading.ping)
    except ValidationError as exc:
        raise BadRequest(f"invalid host.ping reply: {describe_errors(exc)}") from None
    entry: dict[str, Any] = {
        "id": pinged.id,
        "friendly_name": pinged.friendly_name,
        "labels": dict(sorted(pinged.labels.items())),
        "version": pinged.version,
        "uptime_seconds": pinged.uptime_seconds,
        "components": [],
        "providers": [],
        "error": reading.error or None,
    }
    if reading.inventory is None:
        entry["error"] = entry["error"] or "the host did not answer host.get"
        return entry
    try:
        report = InventoryReport.parse(reading.inventory)
    except BadRequest as exc:
        entry["error"] = str(exc)
        return entry
    entry["labels"] = dict(sorted(report.labels.items()))  # host.get's are the current ones
    entry["components"] = [
        {
            "id": c.id,
            "image_ref": c.ref,
            "max_instances": c.max_instances,
            "application": c.annotation_map.get(APPSPEC_ANNOTATION),
        }
        for c in sorted(report.components, key=lambda c: c.id)
    ]
    entry["providers"] = [
        {"id": p.id, "image_ref": p.ref, "application": p.annotation_map.get(APPSPEC_ANNOTATION)}
        for p in sorted(report.providers, key=lambda p: p.id)
    ]
    return entry


def inventory_document(lattice: str, readings: Sequence[HostReading]) -> dict[str, Any]:
    """The ``--json`` document (see the module docstring). A ping reply that does not
    parse is listed by its id with the reason in ``error``."""
    hosts = []
    for reading in readings:
        try:
            hosts.append(host_entry(reading))
        except BadRequest as exc:
            hosts.append(
                {
                    "id": reading.host_id,
                    "friendly_name": "",
                    "labels": {},
                    "version": "",
                    "uptime_seconds": 0,
                    "components": [],
                    "providers": [],
                    "error": str(exc),
                }
            )
    return {"lattice": lattice, "hosts": sorted(hosts, key=lambda h: h["id"])}


def display_names(hosts: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Host id -> what tables call it: its friendly name, or its id where names repeat
    or are missing."""
    names = [h["friendly_name"] for h in hosts]
    return {
        h["id"]: (
            h["friendly_name"]
            if h["friendly_name"] and names.count(h["friendly_name"]) == 1
            else h["id"]
        )
        for h in hosts
    }


def render_inventory(document: Mapping[str, Any]) -> RenderableType:
    """Two tables: the hosts, then what runs on each (one row per component or
    provider), and a line per host whose inventory could not be read."""
    hosts = document["hosts"]
    if not hosts:
        return Text(
            f"no hosts answered in lattice {document['lattice']!r}: start one "
            "(`make up`), or check --lattice"
        )
    names = display_names(hosts)
    host_rows = []
    work_rows = []
    for host in hosts:
        instances = sum(c["max_instances"] for c in host["components"])
        host_rows.append(
            (
                host["id"],
                host["friendly_name"],
                labels_text(host["labels"]),
                host["version"],
                humanize_seconds(host["uptime_seconds"]),
                f"{len(host['components'])} ({instances} instances)",
                str(len(host["providers"])),
            )
        )
        for c in host["components"]:
            work_rows.append(
                (
                    names[host["id"]],
                    "component",
                    c["id"],
                    str(c["max_instances"]),
                    c["application"] or "-",
                    c["image_ref"],
                )
            )
        for p in host["providers"]:
            work_rows.append(
                (
                    names[host["id"]],
                    "provider",
                    p["id"],
                    "1",
                    p["application"] or "-",
                    p["image_ref"],
                )
            )
    parts: list[RenderableType] = [
        table(
            ("HOST ID", "NAME", "LABELS", "VERSION", "UPTIME", "COMPONENTS", "PROVIDERS"),
            host_rows,
            title=f"Hosts in lattice {document['lattice']}",
        ),
        Text(""),
    ]
    if work_rows:
        parts.append(
            table(
                ("HOST", "KIND", "ID", "INSTANCES", "APPLICATION", "IMAGE"),
                work_rows,
                title="Running",
            )
        )
    else:
        parts.append(Text("nothing runs on these hosts"))
    for host in hosts:
        if host["error"]:
            parts.append(Text(f"! {names[host['id']]}: inventory unavailable: {host['error']}"))
    return Group(*parts)
