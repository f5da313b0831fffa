"""CloudEvents (structured JSON) as wasmCloud hosts publish them on ``wasmbus.evt``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

EVENT_TYPE_PREFIX = "com.wasmcloud.lattice."


def cloud_event(event: str, source: str, data: dict[str, Any]) -> bytes:
    """``source`` must be the host id: wadm and wash identify the host by it."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "type": f"{EVENT_TYPE_PREFIX}{event}",
            "source": source,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "datacontenttype": "application/json",
            "data": data,
        }
    ).encode()


def event_name(payload: bytes) -> str:
    kind = json.loads(payload).get("type", "")
    return kind.removeprefix(EVENT_TYPE_PREFIX) if isinstance(kind, str) else ""
