"""``wasmcloud apps [NAME]``: applications and their status, as the wadm API answers.

Like ``wash app list`` (``model.get``: every stored application) and ``wash app status
NAME`` (``model.status.NAME``: the application's status and each scaler's). The
``--json`` shapes (stable; docs/operations.md)::

    wasmcloud apps --json
    {"lattice": "default",
     "apps": [{"name": "counter", "latest_version": "v0.1.0",
               "deployed_version": "v0.1.0", "status": "deployed",
               "status_message": "", "description": "..."}]}

    wasmcloud apps counter --json
    {"lattice": "default", "name": "counter", "status": "deployed", "message": "",
     "scalers": [{"id": "...", "kind": "SpreadScaler", "name": "counter",
                  "status": "deployed", "message": ""}]}

``status`` is wadm's: waiting, undeployed, reconciling, deployed, failed or unhealthy.
``deployed_version`` and ``description`` are null when there is none. Applications are
sorted by name, scalers as the controller lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from host_agent.lattice.wadm_types import ListModelsResponse, Status
from host_agent.ops.tables import table


def apps_document(lattice: str, listed: ListModelsResponse) -> dict[str, Any]:
    return {
        "lattice": lattice,
        "apps": [
            {
                "name": m.name,
                "latest_version": m.version,
                "deployed_version": m.deployed_version,
                "status": m.status.value,
                "status_message": m.status_message or "",
                "description": m.description,
            }
            for m in sorted(listed.models, key=lambda m: m.name)
        ],
    }


def render_apps(document: Mapping[str, Any]) -> RenderableType:
    apps = document["apps"]
    if not apps:
        return Text(
            f"no applications in lattice {document['lattice']!r}: deploy one "
            "(`wash app deploy wadm.yaml`, or an Application in a Pulumi program)"
        )
    rows = [
        (
            a["name"],
            a["deployed_version"] or "-",
            a["latest_version"] or "-",
            a["status"],
            a["status_message"],
            a["description"] or "",
        )
        for a in apps
    ]
    return table(
        ("NAME", "DEPLOYED", "LATEST", "STATUS", "MESSAGE", "DESCRIPTION"),
        rows,
        title=f"Applications in lattice {document['lattice']}",
    )


def status_document(lattice: str, name: str, status: Status) -> dict[str, Any]:
    return {
        "lattice": lattice,
        "name": name,
        "status": status.status.type.value,
        "message": status.status.message,
        "scalers": [
            {
                "id": s.id,
                "kind": s.kind,
                "name": s.name,
                "status": s.status.type.value,
                "message": s.status.message,
            }
            for s in status.scalers
        ],
    }


def render_status(document: Mapping[str, Any]) -> RenderableType:
    head = f"{document['name']}: {document['status']}"
    if document["message"]:
        head += f" ({document['message']})"
    scalers = document["scalers"]
    if not scalers:
        return Text(head + "\nno scalers (the application is not deployed)")
    rows = [(s["name"], s["kind"], s["status"], s["message"]) for s in scalers]
    return Group(Text(head), Text(""), table(("NAME", "KIND", "STATUS", "MESSAGE"), rows))
