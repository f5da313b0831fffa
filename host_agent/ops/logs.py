"""``wasmcloud logs HOST``: a host's log records as lines a person reads.

The records are ``host_agent.lattice.host_logs.HostLogRecord`` (``--json`` prints them
as the host sent them). A line is ``TIME LEVEL LOGGER MESSAGE key=value ...``, preceded by
a note when the host dropped records before it (its log queue was full, or NATS was
away), so a gap is never silent.
"""

from __future__ import annotations

import json

from host_agent.lattice.host_logs import HostLogRecord


def format_log_record(record: HostLogRecord) -> list[str]:
    """The lines one record prints as: the dropped-records note (if any), then the record."""
    lines = []
    if record.dropped:
        lines.append(
            f"... {record.dropped} earlier record(s) dropped by the host (its log queue "
            "was full or NATS was away)"
        )
    fields = " ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, sort_keys=True)}"
        for key, value in sorted(record.fields.items())
        if key != "error"
    )
    line = f"{record.time} {record.level.upper():<7} {record.logger}: {record.message}"
    lines.append(f"{line}  {fields}" if fields else line)
    if "error" in record.fields:
        lines.extend(f"    {part}" for part in str(record.fields["error"]).splitlines())
    return lines
