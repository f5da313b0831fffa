"""OpenTelemetry in a host or provider process: spans, trace context in NATS headers, metrics.

``configure`` starts the SDK's tracer and meter providers with OTLP/HTTP exporters (spans
in batches from a background thread, metrics every ``OTEL_METRIC_EXPORT_INTERVAL`` ms) and
sets ``TRACING`` / ``METRICS``. Until then nothing of OpenTelemetry is imported, and the
hooks in the request path test one module attribute and do nothing else, so a process
with telemetry off pays nothing for it.

Trace context crosses processes the way wRPC carries it: W3C ``traceparent`` (and
``tracestate``) in the NATS headers of the invocation. A wRPC call is a CLIENT span on the
caller and a SERVER span on the callee; the http-server provider's SERVER span is the
root of a request's trace (or continues a ``traceparent`` the HTTP client sent).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from host_agent.telemetry.config import TelemetryConfig

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("host_agent.telemetry")

# Read by the hooks on every call: plain module attributes, set once by configure().
TRACING = False
METRICS = False
# A CLIENT span per wRPC call too (trace level debug or trace); otherwise a call carries
# its caller's current span as the parent of the callee's SERVER span.
_client_spans = False
# A provider process's own id (its resource says it; its spans need not).
_own_entity: str | None = None

# wasmCloud 1.4.2's host metric names (crates/host/src/metrics.rs), durations in ns.
INVOCATIONS = "wasmcloud_host.component.invocations"
INVOCATION_ERRORS = "wasmcloud_host.component.invocation.errors"
INVOCATION_DURATION = "wasmcloud_host.handle_rpc_message.duration"
# 100 us .. 10 s: where component invocations land (the SDK's default buckets are for ms).
DURATION_BUCKETS_NS = [
    float(us * 1000)
    for us in (100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
               500_000, 1_000_000, 2_500_000, 10_000_000)
]  # fmt: skip

_tracer: Tracer | None = None
# OpenTelemetry's API objects, imported once by configure() (not at every call).
_api: Any = None
_tracer_provider: TracerProvider | None = None
_meter_provider: MeterProvider | None = None
_invocations: Counter | None = None
_errors: Counter | None = None
_duration: Histogram | None = None


def configure(config: TelemetryConfig, service_name: str, attributes: Mapping[str, str]) -> None:
    """Start exporting what ``config`` turns on, as ``service_name`` (``OTEL_SERVICE_NAME``
    wins) with ``attributes`` on the resource. Does nothing when everything is off."""
    global TRACING, METRICS, _tracer, _tracer_provider, _meter_provider, _api, _client_spans
    global _own_entity
    global _invocations, _errors, _duration
    if not config.enabled:
        return
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({**attributes, "service.name": config.service_name or service_name})
    if config.traces:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        _tracer_provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=config.endpoint("traces"))
        _tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        _tracer = _tracer_provider.get_tracer("host_agent")
        _api = _Api()
        _client_spans = config.client_spans
        _own_entity = attributes.get("wasmcloud.provider.id")
        TRACING = True
    if config.metrics:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=config.endpoint("metrics"))
        )
        # No exemplars unless OTEL_METRICS_EXEMPLAR_FILTER asks: the SDK's default keeps the
        # current span's context with the measurements, a cost on every invocation.
        exemplars = (
            None if os.environ.get("OTEL_METRICS_EXEMPLAR_FILTER") else AlwaysOffExemplarFilter()
        )
        _meter_provider = MeterProvider(
            resource=resource, metric_readers=[reader], exemplar_filter=exemplars
        )
        meter = _meter_provider.get_meter("host_agent")
        _invocations = meter.create_counter(
            INVOCATIONS, description="Number of component invocations"
        )
        _errors = meter.create_counter(
            INVOCATION_ERRORS,
            description="Number of component invocations that failed (raised, trapped or "
            "answered HTTP 5xx)",
        )
        _duration = meter.create_histogram(
            INVOCATION_DURATION,
            unit="ns",
            description="Duration in nanoseconds of each component invocation",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_NS,
        )
        METRICS = True
    log.info(
        "exporting %s over OTLP/HTTP to %s",
        " and ".join(s for s, on in (("traces", TRACING), ("metrics", METRICS)) if on),
        ", ".join(
            config.endpoint(s) for s, on in (("traces", TRACING), ("metrics", METRICS)) if on
        ),
    )


def shutdown() -> None:
    """Export what is still buffered and stop (at exit)."""
    global TRACING, METRICS
    TRACING = METRICS = False
    for provider in (_tracer_provider, _meter_provider):
        if provider is not None:
            try:
                provider.shutdown()
            except Exception as error:  # exiting anyway: say why the last batch is lost
                log.warning("could not export the last telemetry: %s", error)


# --- traces -------------------------------------------------------------------------------


class _Api:
    def __init__(self) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.propagator = TraceContextTextMapPropagator()
        self.CLIENT = trace.SpanKind.CLIENT
        self.SERVER = trace.SpanKind.SERVER
        self.INTERNAL = trace.SpanKind.INTERNAL
        self.set_span_in_context = trace.set_span_in_context
        self.get_current_span = trace.get_current_span
        self.attach = context.attach
        self.detach = context.detach
        self.Status = trace.Status
        self.ERROR = trace.StatusCode.ERROR


def _extract(headers: Mapping[str, str]) -> Any:
    """The caller's context, or None (a new trace) without a ``traceparent``: the parse
    costs each span about 15 us, so the common case (a plain curl) skips it."""
    return _api.propagator.extract(headers) if "traceparent" in headers else None


def _inject(span: Span, headers: dict[str, str]) -> None:
    _api.propagator.inject(headers, _api.set_span_in_context(span))


def start_client_span(
    target: str, instance: str, function: str, source_id: str, headers: dict[str, str]
) -> Span | None:
    """A wRPC call's CLIENT span (child of the current span), its context written into
    ``headers``; the caller ends it. At trace level info there is none (each span costs
    the request tens of microseconds): the current span's context is written instead."""
    if not _client_spans:
        _api.propagator.inject(headers)
        return None
    assert _tracer is not None
    span = _tracer.start_span(
        f"{instance}/{function}",
        kind=_api.CLIENT,
        attributes={
            "rpc.system": "wrpc",
            "rpc.service": instance,
            "rpc.method": function,
            "wasmcloud.target.id": target,
            "wasmcloud.source.id": source_id,
        },
    )
    _inject(span, headers)
    return span


def end_client_span(span: Span, error: BaseException | None) -> None:
    if error is not None:
        span.set_status(_api.Status(_api.ERROR, str(error) or type(error).__name__))
    span.end()


class _CurrentSpan:
    """A SERVER span, current (the parent of spans started inside) until the block ends;
    an exception ends it with an error status. Started and attached by hand: the SDK's
    start_as_current_span costs a third more, on every request."""

    __slots__ = ("_span", "_token")

    def __init__(
        self,
        name: str,
        parent: Any,
        attributes: dict[str, Any] | None,
        kind: Any = None,
        start_time: int | None = None,
    ) -> None:
        assert _tracer is not None
        self._span = _tracer.start_span(
            name,
            context=parent,
            kind=kind or _api.SERVER,
            attributes=attributes,
            start_time=start_time,
        )
        self._token: Any = None

    def __enter__(self) -> Span:
        self._token = _api.attach(_api.set_span_in_context(self._span))
        return self._span

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        _api.detach(self._token)
        if error is not None:
            self._span.record_exception(error)
            self._span.set_status(_api.Status(_api.ERROR, str(error) or kind.__name__))
        self._span.end()


def server_span(
    entity_id: str, instance: str, function: str, headers: Mapping[str, str]
) -> _CurrentSpan:
    """A served wRPC call's SERVER span (named ``{instance}/{function}``), the current span
    while the handler runs, child of the caller's span named by the ``traceparent`` header.
    Its one attribute names the component served (``wasmcloud.entity.id``); a provider's
    spans have none, its resource names it: the SDK's attribute checks cost every span tens
    of microseconds."""
    attributes = None if entity_id == _own_entity else {"wasmcloud.entity.id": entity_id}
    return _CurrentSpan(f"{instance}/{function}", _extract(headers), attributes)


def http_server_span(method: str, path: str, headers: Mapping[str, str]) -> _CurrentSpan:
    """An HTTP request's SERVER span in the http-server provider: the root of the
    request's trace, or a child of the ``traceparent`` the HTTP client sent (``headers``
    must look names up regardless of case, as aiohttp's do)."""
    return _CurrentSpan(
        method, _extract(headers), {"http.request.method": method, "url.path": path}
    )


def internal_span(name: str, attributes: dict[str, Any]) -> _CurrentSpan:
    """A span of this process's own work (a controller's reconcile pass, a command it
    sends), the current span while the block runs: a child of the current one, if any."""
    return _CurrentSpan(name, None, attributes, _api.INTERNAL)


class DeferredSpan:
    """A span recorded only if something happens under it: ``open()`` starts it, dated
    back to when the block began (its parent first), and makes it the current span until
    the block ends; a block that raises opens it too, with an error status. Never opened,
    it leaves no trace (a controller's idle reconcile pass)."""

    __slots__ = ("_attributes", "_current", "_name", "_parent", "_started")

    def __init__(self, name: str, attributes: dict[str, Any], parent: DeferredSpan | None) -> None:
        self._name = name
        self._attributes = attributes
        self._parent = parent
        self._started = time.time_ns()
        self._current: _CurrentSpan | None = None

    def open(self) -> None:
        if self._current is not None or not TRACING:
            return
        if self._parent is not None:
            self._parent.open()
        self._current = _CurrentSpan(
            self._name, None, self._attributes, _api.INTERNAL, self._started
        )
        self._current.__enter__()

    def __enter__(self) -> DeferredSpan:
        return self

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        if isinstance(error, Exception):
            self.open()  # a failed pass is worth a span, whatever it planned
        if self._current is not None:
            self._current.__exit__(kind, error, traceback)


def deferred_span(
    name: str, attributes: dict[str, Any], parent: DeferredSpan | None = None
) -> DeferredSpan:
    """An INTERNAL span of this process's own work that exists only once ``open()`` is
    called (or the block fails): a child of ``parent`` (opened with it), else of the
    current span."""
    return DeferredSpan(name, attributes, parent)


def context_headers() -> dict[str, str] | None:
    """The current span's context as W3C ``traceparent`` (and ``tracestate``) headers for
    a NATS request, or None (tracing off, or no current span): a controller's command
    then carries its span to the host."""
    if not TRACING:
        return None
    headers: dict[str, str] = {}
    _api.propagator.inject(headers)
    return headers or None


def continued_span(
    name: str, headers: Mapping[str, str] | None, attributes: dict[str, Any]
) -> contextlib.AbstractContextManager[Any]:
    """A SERVER span continuing the trace a request's ``traceparent`` header names (a
    controller's command to this host), current while the block runs; a no-op block for
    a request without one, so unrelated requests (pings, inventory reads) make no
    spans."""
    if not TRACING or not headers or "traceparent" not in headers:
        return contextlib.nullcontext()
    return _CurrentSpan(name, _extract(headers), attributes)


def in_traced_work() -> bool:
    """Whether a sampled span is current (work that belongs to a trace)."""
    if not TRACING:
        return False
    return bool(_api.get_current_span().get_span_context().trace_flags.sampled)


def set_error(span: Span, description: str) -> None:
    span.set_status(_api.Status(_api.ERROR, description))


def current_failed(description: str) -> None:
    """Mark the current span failed (work that reports its failure rather than raising)."""
    if TRACING:
        set_error(_api.get_current_span(), description)


def meter(name: str) -> Any:
    """A meter of the configured provider (for instruments of another process kind, such
    as the controller's); only while METRICS is on."""
    assert _meter_provider is not None, "telemetry.configure turned metrics on first"
    return _meter_provider.get_meter(name)


def set_http_status(span: Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(_api.Status(_api.ERROR))


# --- metrics ------------------------------------------------------------------------------


def invocation_started() -> int:
    """The start of a component invocation, for ``record_invocation`` (0 when off)."""
    return time.perf_counter_ns() if METRICS else 0


def record_invocation(component_id: str, operation: str, started: int, error: bool) -> None:
    """Count one invocation of ``component_id`` (and its error), record its duration. The
    host and lattice are the resource's attributes (wasmcloud.host.id, wasmcloud.lattice)."""
    if not METRICS or _invocations is None or _errors is None or _duration is None:
        return
    attributes = {"component.id": component_id, "operation": operation}
    _duration.record(time.perf_counter_ns() - started, attributes)
    _invocations.add(1, attributes)
    if error:
        _errors.add(1, attributes)
