"""OpenTelemetry on machines without machines: a Lattice on machines and a Host on a
machine check ``otlpEndpoint`` by name, the controllers' service environment carries it,
and the controller's command hook marks a failed command (span status and error count).
The whole path on namespace machines: tests/integration/test_machine_telemetry.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from host_agent.controller.reconcile import ScaleComponent
from host_agent.telemetry import controller as controller_telemetry
from host_agent.telemetry import otel
from host_agent.telemetry.config import from_env
from pulumi_wasmcloud.provider.host_resource import HostResource
from pulumi_wasmcloud.provider.lattice_resource import LatticeResource
from pulumi_wasmcloud.provider.machine_lattice import (
    MachineLatticeSpec,
    controller_environment,
    normalized,
    parse_spec,
)
from tests.machines import KeyPair

KEY = KeyPair.generate().private_openssh


def machine(name: str, host: str) -> dict[str, Any]:
    return {"name": name, "host": host, "user": "root", "port": 22, "privateKey": KEY}


def lattice_inputs(**more: Any) -> dict[str, Any]:
    return {"lattice": "default", "cluster": [machine("core-1", "198.18.7.2")], **more}


def spec(**more: Any) -> MachineLatticeSpec:
    parsed = parse_spec(normalized(lattice_inputs(**more)))
    assert isinstance(parsed, MachineLatticeSpec), parsed
    return parsed


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("198.18.7.1:4318", "'198.18.7.1:4318' must be the http:// or https:// URL"),
        (4318, "e.g. http://localhost:4318, not int"),
        ("http://198.18.7.1:99999", "must be the http:// or https:// URL"),
    ],
)
def test_a_lattice_on_machines_refuses_an_otlp_endpoint_that_is_not_a_url(
    value: object, said: str
) -> None:
    checked = asyncio.run(LatticeResource().check({}, lattice_inputs(otlpEndpoint=value)))
    assert [f.property for f in checked.failures] == ["otlpEndpoint"]
    assert said in checked.failures[0].reason
    assert "an address the machines reach" in checked.failures[0].reason
    host = asyncio.run(
        HostResource().check(
            {},
            {
                "name": "edge",
                "natsUrl": "nats://198.18.7.2:4222",
                "machine": machine("edge-1", "198.18.7.3"),
                "otlpEndpoint": value,
            },
        )
    )
    assert [f.property for f in host.failures] == ["otlpEndpoint"]
    assert "pass lattice's otlp_endpoint" in host.failures[0].reason


def test_the_controllers_export_to_the_lattices_collector_and_only_with_one() -> None:
    endpoint = "http://198.18.7.1:4318"
    env = controller_environment(spec(otlpEndpoint=endpoint), "core-1")
    # What the controller makes of it (as it reads its own environment).
    config = from_env(env)
    assert (config.traces, config.metrics) == (True, True)
    assert config.endpoint("metrics") == f"{endpoint}/v1/metrics"
    assert not from_env(controller_environment(spec(), "core-1")).enabled
    # A lattice from before the input (no otlpEndpoint in its state) is one without.
    assert normalized(lattice_inputs())["otlpEndpoint"] == ""


def test_a_new_endpoint_is_an_update_of_the_lattice_not_a_replacement() -> None:
    olds = normalized(lattice_inputs())
    news = normalized(lattice_inputs(otlpEndpoint="http://198.18.7.1:4318"))
    from pulumi_wasmcloud.provider.handlers import changed_keys
    from pulumi_wasmcloud.provider.machine_lattice import INPUTS, REPLACE_ON

    changed = changed_keys(olds, news, INPUTS)
    assert list(changed) == ["otlpEndpoint"]
    assert not set(changed) & set(REPLACE_ON)


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """The controller's telemetry on, into memory (spans and metrics) instead of OTLP."""
    spans = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    monkeypatch.setattr(otel, "_tracer", tracing.get_tracer("test"))
    monkeypatch.setattr(otel, "_api", otel._Api())
    monkeypatch.setattr(otel, "TRACING", True)
    monkeypatch.setattr(otel, "METRICS", True)
    for name, metric in (
        ("_commands", controller_telemetry.COMMANDS),
        ("_command_errors", controller_telemetry.COMMAND_ERRORS),
        ("_deploys", controller_telemetry.DEPLOYS),
    ):
        monkeypatch.setattr(controller_telemetry, name, meter.create_counter(metric))
    yield spans, reader
    tracing.shutdown()


def totals(reader: InMemoryMetricReader) -> dict[tuple[str, tuple[Any, ...]], int]:
    found: dict[tuple[str, tuple[Any, ...]], int] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    assert isinstance(point, NumberDataPoint)  # counters only
                    key = (metric.name, tuple(sorted((point.attributes or {}).items())))
                    found[key] = int(point.value)
    return found


def test_a_failed_command_is_a_span_with_an_error_and_an_error_count(
    exported: tuple[InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    spans, reader = exported
    scale = ScaleComponent("NHOST", "counter-counter", "registry/counter@sha256:ab", 2, {}, [])
    with controller_telemetry.span("reconcile", {}), controller_telemetry.command(scale):
        pass
    with controller_telemetry.command(scale) as outcome:
        outcome.failed(TimeoutError("the host did not answer"))
    controller_telemetry.deploy_requested("counter", b'{"result": "acknowledged"}')

    done, round_, failed = spans.get_finished_spans()  # in the order they ended
    assert (done.name, round_.name, failed.name) == (
        "ScaleComponent",
        "reconcile",
        "ScaleComponent",
    )
    assert done.parent is not None and done.parent.span_id == round_.context.span_id
    assert done.attributes is not None
    assert done.attributes["wasmcloud.host.id"] == "NHOST"
    assert done.attributes["wasmcloud.component.id"] == "counter-counter"
    assert done.attributes["wasmcloud.component.max_instances"] == 2
    assert done.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "the host did not answer"
    command = (("command", "ScaleComponent"),)
    assert totals(reader) == {
        (controller_telemetry.COMMANDS, command): 2,
        (controller_telemetry.COMMAND_ERRORS, command): 1,
        (controller_telemetry.DEPLOYS, (("application", "counter"), ("result", "acknowledged"))): 1,
    }


def test_with_telemetry_off_the_hooks_do_nothing() -> None:
    assert not (otel.TRACING or otel.METRICS)
    with controller_telemetry.command(ScaleComponent("N", "c", "i", 1, {}, [])) as outcome:
        outcome.failed(TimeoutError())
    controller_telemetry.deploy_requested("counter", b"not json")
