"""The host's telemetry flags: wasmCloud 1.4.2's names, each with its environment variable."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from host_agent.telemetry.config import TelemetryConfig, from_env


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in ("true", "1", "yes", "on"):
        return True
    if word in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r}: expected true or false")


def add_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group(
        "OpenTelemetry (off unless configured; OTLP over HTTP, default http://localhost:4318)"
    )
    group.add_argument(
        "--enable-observability",
        action="store_true",
        default=None,
        help="export traces and metrics (env WASMCLOUD_OBSERVABILITY_ENABLED); the "
        "providers this host starts export theirs too",
    )
    group.add_argument(
        "--enable-traces",
        type=_boolean,
        default=None,
        metavar="true|false",
        help="traces on or off (env WASMCLOUD_TRACES_ENABLED, or OTEL_TRACES_EXPORTER=otlp|none)",
    )
    group.add_argument(
        "--enable-metrics",
        type=_boolean,
        default=None,
        metavar="true|false",
        help="metrics on or off (env WASMCLOUD_METRICS_ENABLED, or OTEL_METRICS_EXPORTER)",
    )
    group.add_argument(
        "--override-observability-endpoint",
        default=None,
        metavar="URL",
        help="the OTLP/HTTP collector (env OTEL_EXPORTER_OTLP_ENDPOINT); /v1/traces and "
        "/v1/metrics are added to a URL without a path",
    )
    group.add_argument(
        "--override-traces-endpoint",
        default=None,
        metavar="URL",
        help="where traces go, as is (env OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)",
    )
    group.add_argument(
        "--override-metrics-endpoint",
        default=None,
        metavar="URL",
        help="where metrics go, as is (env OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)",
    )
    group.add_argument(
        "--trace-level",
        default=None,
        choices=["critical", "error", "warn", "info", "debug", "trace"],
        help="info (default): spans of the HTTP request, each component invocation and "
        "provider call; debug or trace: also each wRPC call on its caller's side "
        "(env WASMCLOUD_TRACE_LEVEL)",
    )
    group.add_argument(
        "--observability-protocol",
        default=None,
        help="http only (env WASMCLOUD_OBSERVABILITY_PROTOCOL); grpc is refused",
    )


def config_from(args: argparse.Namespace, env: Mapping[str, str]) -> TelemetryConfig:
    """The flags over their variables; TelemetryConfigError (a ValueError) names what
    cannot be read."""
    return from_env(
        env,
        enable_observability=args.enable_observability,
        enable_traces=args.enable_traces,
        enable_metrics=args.enable_metrics,
        observability_endpoint=args.override_observability_endpoint,
        traces_endpoint=args.override_traces_endpoint,
        metrics_endpoint=args.override_metrics_endpoint,
        protocol=args.observability_protocol,
        trace_level=args.trace_level,
    )
