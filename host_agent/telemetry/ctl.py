"""A host's side of the controller's commands: the trace a command's request carries.

The controller sends each command (``component.scale``, ``provider.start``, ``link.put``...)
from within its span, with that span's ``traceparent`` in the request's NATS headers. The
host continues it: a SERVER span per such request (``ctl component.scale``) while it
answers, and an INTERNAL span for the work it does after answering (fetching, compiling
and starting a component; starting a provider), marked failed when that work fails. A
request without a ``traceparent`` (pings, inventory reads, ``wash`` by hand) makes no span,
so an idle lattice exports nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from host_agent.telemetry import otel


def request_span(
    operation: list[str], headers: Mapping[str, str] | None
) -> AbstractContextManager[Any]:
    """The SERVER span of one control request (``operation``: its subject's tokens after
    the lattice, e.g. ``["component", "scale", <host id>]``), continuing the caller's
    trace; a no-op block when the request carries none or tracing is off."""
    if not otel.TRACING:
        return nullcontext()
    what = ".".join(operation[:2])  # what it asks, not which host or config
    return otel.continued_span(f"ctl {what}", headers, {"wasmcloud.ctl.operation": what})


def background_span(name: str, attributes: Mapping[str, Any]) -> AbstractContextManager[Any]:
    """The span of work a control request started and answered before it ended (a child
    of the request's span, which the work's task inherits); a no-op block outside a
    traced request."""
    if not otel.in_traced_work():
        return nullcontext()
    return otel.internal_span(name, dict(attributes))


def work_failed(description: str) -> None:
    """The current work failed without raising (it reported the failure as an event)."""
    otel.current_failed(description)
