"""The controller's OpenTelemetry: what a lattice operator asks of it when an app does not
converge. Off unless configured (the same ``WASMCLOUD_*`` / ``OTEL_*`` variables as a
host's, config.py); when off, each hook tests two module attributes and does nothing.

Spans (INTERNAL, service ``wasmcloud-controller``): one per reconcile pass that sends
commands or fails (``reconcile``; idle passes, one per heartbeat, are not recorded), its
applications that send commands as children (``reconcile <app>``), each command as a
child of its application (``ScaleComponent``, ``StartProvider``..., the host and workload
as attributes; a failed command has an error status), and one per wadm API request
(``wadm.api``, its subject as an attribute). A command's request carries its span's
context in NATS headers (``traceparent``), so the host's work for it joins the trace.

Metrics: ``wadm.deploys`` (deploy requests, by application and result), ``wadm.commands``
and ``wadm.command.errors`` (commands sent and those that failed, by command).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from host_agent.telemetry import otel
from host_agent.telemetry.config import TelemetryConfig

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter

SERVICE_NAME = "wasmcloud-controller"
DEPLOYS = "wadm.deploys"
COMMANDS = "wadm.commands"
COMMAND_ERRORS = "wadm.command.errors"
# A command's fields that say where it goes and what it moves (never config values).
_COMMAND_ATTRIBUTES = {
    "host_id": "wasmcloud.host.id",
    "component_id": "wasmcloud.component.id",
    "provider_id": "wasmcloud.provider.id",
    "source_id": "wasmcloud.source.id",
    "count": "wasmcloud.component.max_instances",
}

_deploys: Counter | None = None
_commands: Counter | None = None
_command_errors: Counter | None = None


def configure(config: TelemetryConfig, lattice: str, controller_id: str) -> None:
    """Start exporting what ``config`` turns on, as the controller ``controller_id`` of
    ``lattice``; nothing when it is all off."""
    global _deploys, _commands, _command_errors
    otel.configure(
        config,
        SERVICE_NAME,
        {"wasmcloud.lattice": lattice, "service.instance.id": controller_id},
    )
    if otel.METRICS:
        meter = otel.meter("host_agent.controller")
        _deploys = meter.create_counter(DEPLOYS, description="Deploy requests, by result")
        _commands = meter.create_counter(
            COMMANDS, description="Commands the controller sent to the lattice's hosts"
        )
        _command_errors = meter.create_counter(
            COMMAND_ERRORS, description="Commands that failed (refused or unanswered)"
        )


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, Any]) -> Iterator[None]:
    """``name``'s span around the block (an exception marks it failed); none when off."""
    if not otel.TRACING:
        yield
        return
    with otel.internal_span(name, dict(attributes)):
        yield


DeferredSpan = otel.DeferredSpan


def deferred_span(
    name: str, attributes: Mapping[str, Any], parent: DeferredSpan | None = None
) -> DeferredSpan:
    """``name``'s span around the block, recorded only once ``open()`` is called on it
    (or the block fails): a reconcile pass, or one application in it, that sends
    commands. Inert when tracing is off."""
    return otel.deferred_span(name, dict(attributes), parent)


class CommandOutcome:
    """What a command's block says of it: ``failed(error)`` when it did not go through."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def failed(self, error: BaseException) -> None:
        self.error = error


def command_attributes(command: Any) -> dict[str, Any]:
    """Where a (dataclass) command goes and what it moves, as span attributes."""
    found: dict[str, Any] = {}
    for item in fields(command):
        key = _COMMAND_ATTRIBUTES.get(item.name)
        if key is not None:
            found[key] = getattr(command, item.name)
    if item_name := getattr(command, "name", None):
        found["wasmcloud.name"] = item_name
    return found


@contextlib.contextmanager
def command(sent: Any) -> Iterator[CommandOutcome]:
    """A command's span and count; the block calls ``failed`` on the outcome it gets
    when the command did not go through (the span's status, and the error count)."""
    outcome = CommandOutcome()
    if not (otel.TRACING or otel.METRICS):
        yield outcome
        return
    kind = type(sent).__name__
    if otel.TRACING:
        with otel.internal_span(kind, command_attributes(sent)) as current:
            yield outcome
            if outcome.error is not None:
                otel.set_error(current, str(outcome.error) or type(outcome.error).__name__)
    else:
        yield outcome
    if otel.METRICS and _commands is not None and _command_errors is not None:
        attributes = {"command": kind}
        _commands.add(1, attributes)
        if outcome.error is not None:
            _command_errors.add(1, attributes)


def deploy_requested(application: str, answer: bytes) -> None:
    """Count a deploy request by the result the API answered (acknowledged, error...)."""
    if otel.METRICS and _deploys is not None:
        try:
            result = str(json.loads(answer).get("result", "unknown"))
        except (ValueError, AttributeError):
            result = "unknown"
        _deploys.add(1, {"application": application, "result": result})


def shutdown() -> None:
    otel.shutdown()
