"""What OpenTelemetry a process exports, and where: pure, from flags, environment or HostData.

Off unless configured, like wasmCloud 1.4.2's host: ``WASMCLOUD_OBSERVABILITY_ENABLED``
(``--enable-observability``) turns on traces and metrics, ``WASMCLOUD_TRACES_ENABLED`` /
``WASMCLOUD_METRICS_ENABLED`` one signal each. The standard OpenTelemetry variables work
as the specification says: ``OTEL_TRACES_EXPORTER=otlp`` / ``OTEL_METRICS_EXPORTER=otlp``
turn a signal on (``none`` off), ``OTEL_SDK_DISABLED=true`` turns everything off,
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the per-signal ``..._TRACES_ENDPOINT`` /
``..._METRICS_ENDPOINT``) says where, ``OTEL_SERVICE_NAME`` names the process. Without an
endpoint the OTLP/HTTP default applies: http://localhost:4318.

``WASMCLOUD_TRACE_LEVEL`` (``--trace-level``, 1.4.2's name; default info) says how much
of a request is traced: at info, the spans of the work itself (the HTTP request, each
component invocation, each provider call); at debug or trace, also each wRPC call as its
caller sees it (a CLIENT span around the NATS round trip).

Only OTLP over HTTP (protobuf) is exported; a gRPC protocol is refused by name rather than
quietly sent to an HTTP exporter. The host hands its providers the same settings in
HostData's ``otel_config`` (wasmcloud-core's ``OtelConfig`` shape), as the real host does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

DEFAULT_ENDPOINT = "http://localhost:4318"
SIGNAL_PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics"}
# wasmcloud-core's logging::Level, as serde writes it.
TRACE_LEVELS = ("critical", "error", "warn", "info", "debug", "trace")

# The spellings clap's boolish parser (the real host's) takes; unset or empty is "not given".
_TRUE = frozenset({"1", "true", "yes", "on", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "n"})


class TelemetryConfigError(ValueError):
    """A telemetry setting that cannot be read; the message names it and the fix."""


@dataclass(frozen=True)
class TelemetryConfig:
    """Which signals are exported and where (None: not given, the default applies)."""

    enable_observability: bool = False
    enable_traces: bool | None = None
    enable_metrics: bool | None = None
    observability_endpoint: str | None = None
    traces_endpoint: str | None = None
    metrics_endpoint: str | None = None
    # OTEL_SDK_DISABLED: everything off, whatever else says otherwise.
    sdk_disabled: bool = False
    service_name: str | None = None
    trace_level: str = "info"

    @property
    def client_spans(self) -> bool:
        """Whether each wRPC call is also a CLIENT span on the caller (debug and trace)."""
        return self.trace_level in ("debug", "trace")

    @property
    def traces(self) -> bool:
        if self.sdk_disabled:
            return False
        return self.enable_traces if self.enable_traces is not None else self.enable_observability

    @property
    def metrics(self) -> bool:
        if self.sdk_disabled:
            return False
        if self.enable_metrics is not None:
            return self.enable_metrics
        return self.enable_observability

    @property
    def enabled(self) -> bool:
        return self.traces or self.metrics

    def endpoint(self, signal: str) -> str:
        """The URL a signal is POSTed to: its own endpoint as given, else the general one
        with the signal's path (when it has none), else localhost:4318's."""
        own = self.traces_endpoint if signal == "traces" else self.metrics_endpoint
        if own:
            return own
        base = self.observability_endpoint or DEFAULT_ENDPOINT
        if urlsplit(base).path in ("", "/"):
            return base.rstrip("/") + SIGNAL_PATHS[signal]
        return base

    def otel_config(self) -> dict[str, Any]:
        """HostData's ``otel_config`` for the providers this host starts: what is on is
        said explicitly (``OTEL_SDK_DISABLED`` folded in), endpoints only when given."""
        config: dict[str, Any] = {
            "enable_observability": self.enabled,
            "enable_traces": self.traces,
            "enable_metrics": self.metrics,
            "protocol": "Http",
            "trace_level": self.trace_level,
        }
        for name in ("observability_endpoint", "traces_endpoint", "metrics_endpoint"):
            value = getattr(self, name)
            if value:
                config[name] = value
        return config

    def with_service_name(self, name: str) -> TelemetryConfig:
        return replace(self, service_name=name)


def _flag(value: str, name: str) -> bool | None:
    word = value.strip().lower()
    if not word:
        return None
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise TelemetryConfigError(f"{name}={value!r}: expected true or false (or 1/0, yes/no, on/off)")


def parse_endpoint(value: str | None, name: str) -> str | None:
    """An OTLP/HTTP URL (None when unset or empty); TelemetryConfigError naming ``name``."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TelemetryConfigError(
            f"{name}={value!r}: expected the http:// or https:// URL of an OTLP/HTTP "
            "collector, e.g. http://localhost:4318"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise TelemetryConfigError(f"{name}={value!r}: the port is not a number 1-65535") from None
    return text


def _protocol(value: str, name: str) -> None:
    word = value.strip().lower()
    if word in ("", "http", "http/protobuf"):
        return
    raise TelemetryConfigError(
        f"{name}={value!r}: this process exports OpenTelemetry over OTLP/HTTP (protobuf) "
        "only; use http (a collector's port 4318), or leave it unset"
    )


def _trace_level(value: str, name: str) -> str:
    word = value.strip().lower()
    if not word:
        return "info"
    if word not in TRACE_LEVELS:
        raise TelemetryConfigError(f"{name}={value!r}: expected one of {', '.join(TRACE_LEVELS)}")
    return word


def _exporter(value: str, name: str) -> bool | None:
    """OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER: otlp on, none off, unset not given."""
    word = value.strip().lower()
    if not word:
        return None
    if word == "otlp":
        return True
    if word == "none":
        return False
    raise TelemetryConfigError(
        f"{name}={value!r}: this process exports with otlp only; use otlp or none"
    )


def _first_given(*values: bool | None) -> bool | None:
    return next((value for value in values if value is not None), None)


def from_env(
    env: Mapping[str, str],
    *,
    enable_observability: bool | None = None,
    enable_traces: bool | None = None,
    enable_metrics: bool | None = None,
    observability_endpoint: str | None = None,
    traces_endpoint: str | None = None,
    metrics_endpoint: str | None = None,
    protocol: str | None = None,
    trace_level: str | None = None,
) -> TelemetryConfig:
    """The settings of a process from its environment; command-line values (the keyword
    arguments, None when not given) win over their variables. Anything unreadable raises
    TelemetryConfigError naming the variable or flag."""
    observability = _first_given(
        enable_observability,
        _flag(env.get("WASMCLOUD_OBSERVABILITY_ENABLED", ""), "WASMCLOUD_OBSERVABILITY_ENABLED"),
    )
    traces = _first_given(
        enable_traces,
        _flag(env.get("WASMCLOUD_TRACES_ENABLED", ""), "WASMCLOUD_TRACES_ENABLED"),
        _exporter(env.get("OTEL_TRACES_EXPORTER", ""), "OTEL_TRACES_EXPORTER"),
    )
    metrics = _first_given(
        enable_metrics,
        _flag(env.get("WASMCLOUD_METRICS_ENABLED", ""), "WASMCLOUD_METRICS_ENABLED"),
        _exporter(env.get("OTEL_METRICS_EXPORTER", ""), "OTEL_METRICS_EXPORTER"),
    )
    if protocol is not None:
        _protocol(protocol, "--observability-protocol")
    for variable in (
        "WASMCLOUD_OBSERVABILITY_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    ):
        _protocol(env.get(variable, ""), variable)
    return TelemetryConfig(
        enable_observability=bool(observability),
        enable_traces=traces,
        enable_metrics=metrics,
        observability_endpoint=parse_endpoint(
            observability_endpoint, "--override-observability-endpoint"
        )
        or parse_endpoint(env.get("OTEL_EXPORTER_OTLP_ENDPOINT"), "OTEL_EXPORTER_OTLP_ENDPOINT"),
        traces_endpoint=parse_endpoint(traces_endpoint, "--override-traces-endpoint")
        or parse_endpoint(
            env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        ),
        metrics_endpoint=parse_endpoint(metrics_endpoint, "--override-metrics-endpoint")
        or parse_endpoint(
            env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"), "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
        ),
        sdk_disabled=bool(_flag(env.get("OTEL_SDK_DISABLED", ""), "OTEL_SDK_DISABLED")),
        service_name=env.get("OTEL_SERVICE_NAME", "").strip() or None,
        trace_level=_trace_level(trace_level, "--trace-level")
        if trace_level is not None
        else _trace_level(env.get("WASMCLOUD_TRACE_LEVEL", ""), "WASMCLOUD_TRACE_LEVEL"),
    )


def from_otel_config(value: Mapping[str, Any]) -> TelemetryConfig:
    """HostData's ``otel_config`` read strictly (serde's reading of ``OtelConfig``): a
    field of the wrong type is refused with its name, unknown fields are ignored."""
    where = "HostData otel_config"

    def boolean(name: str, optional: bool) -> bool | None:
        field = value.get(name)
        if field is None and (optional or name not in value):
            return None if optional else False
        if not isinstance(field, bool):
            raise TelemetryConfigError(f"{where}.{name}: expected true or false, got {field!r}")
        return field

    def text(name: str) -> str | None:
        field = value.get(name)
        if field is None:
            return None
        if not isinstance(field, str):
            raise TelemetryConfigError(f"{where}.{name}: expected a URL string, got {field!r}")
        return parse_endpoint(field, f"{where}.{name}")

    protocol = value.get("protocol", "Http")
    if not isinstance(protocol, str):
        raise TelemetryConfigError(f"{where}.protocol: expected Http or Grpc, got {protocol!r}")
    _protocol(protocol, f"{where}.protocol")
    level = value.get("trace_level", "info")
    if not isinstance(level, str) or level not in TRACE_LEVELS:
        raise TelemetryConfigError(
            f"{where}.trace_level: expected one of {', '.join(TRACE_LEVELS)}, got {level!r}"
        )
    return TelemetryConfig(
        enable_observability=bool(boolean("enable_observability", optional=False)),
        enable_traces=boolean("enable_traces", optional=True),
        enable_metrics=boolean("enable_metrics", optional=True),
        observability_endpoint=text("observability_endpoint"),
        traces_endpoint=text("traces_endpoint"),
        metrics_endpoint=text("metrics_endpoint"),
        trace_level=level,
    )
