"""The JSON shape of one host log record on ``host_log_subject`` (``wasmcloud logs``).

A host publishes each record of its log (what its JSON-lines log file holds) as one NATS
message; ``wasmcloud logs HOST`` follows them. Not an upstream wasmCloud subject: a 1.x
host writes its log to stderr (and OTLP) only, so ``wash`` has no ``logs`` command.

The shape is stable for scripts (``wasmcloud logs --json`` prints the records as sent)::

    {"time": "2026-12-01T02:03:04.567Z", "host_id": "N...", "level": "info",
     "logger": "host_agent.host", "message": "host started",
     "fields": {"lattice": "default"}, "sequence": 7, "dropped": 0}

``sequence`` counts the records the host made since it started (1, 2, ...), published or
not; ``dropped`` is how many were dropped just before this one because the host's bounded
log queue was full or NATS was away (the host never waits for its log). Secrets are
redacted by the host before a record leaves it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from host_agent.lattice.strict import StrictModel, parse_json


class HostLogRecord(StrictModel):
    time: str = Field(min_length=1)  # ISO 8601, UTC, milliseconds
    host_id: str = Field(min_length=1)
    level: str = Field(min_length=1)  # debug | info | warning | error | critical
    logger: str
    message: str
    fields: dict[str, Any] = Field(default_factory=dict)
    sequence: int = Field(ge=1)
    dropped: int = Field(default=0, ge=0)


def parse_host_log_record(data: bytes) -> HostLogRecord:
    """One record from its JSON text, strictly: ``BadRequest`` names a wrongly typed field
    (a ``"sequence": "7"`` is refused, never read as 7)."""
    return parse_json(HostLogRecord, data, "host log record")
