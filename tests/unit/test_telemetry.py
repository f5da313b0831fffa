"""Telemetry settings: off unless configured, the standard OTEL_* variables and 1.4.2's
WASMCLOUD_* ones, strict reading of every value (a typo is refused by name, never read as
"off"), and the host -> provider hand-over in HostData's otel_config."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from host_agent.cli.host import build_parser
from host_agent.cli.host import main as host_main
from host_agent.telemetry import cli as telemetry_cli
from host_agent.telemetry.config import (
    TelemetryConfig,
    TelemetryConfigError,
    from_env,
    from_otel_config,
)
from pulumi_wasmcloud.provider.host_resource import HostResource, host_environment
from pulumi_wasmcloud.provider.lattice_resource import LatticeResource


def test_off_unless_configured() -> None:
    config = from_env({})
    assert (config.traces, config.metrics, config.enabled) == (False, False, False)
    # An endpoint alone says where, not whether (as on 1.4.2's host).
    assert not from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}).enabled


def test_observability_switch_turns_on_both_signals_at_localhost_4318() -> None:
    config = from_env({"WASMCLOUD_OBSERVABILITY_ENABLED": "true"})
    assert (config.traces, config.metrics) == (True, True)
    assert config.endpoint("traces") == "http://localhost:4318/v1/traces"
    assert config.endpoint("metrics") == "http://localhost:4318/v1/metrics"


def test_standard_variables_choose_signals_and_sdk_disabled_wins() -> None:
    traces_only = from_env({"OTEL_TRACES_EXPORTER": "otlp"})
    assert (traces_only.traces, traces_only.metrics) == (True, False)
    no_traces = from_env({"WASMCLOUD_OBSERVABILITY_ENABLED": "1", "OTEL_TRACES_EXPORTER": "none"})
    assert (no_traces.traces, no_traces.metrics) == (False, True)
    # The WASMCLOUD_* switch of a signal wins over OTEL_*_EXPORTER, a flag over both.
    both = {"WASMCLOUD_TRACES_ENABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}
    assert not from_env(both).traces
    assert from_env(both, enable_traces=True).traces
    disabled = from_env({"WASMCLOUD_OBSERVABILITY_ENABLED": "true", "OTEL_SDK_DISABLED": "true"})
    assert not disabled.enabled


def test_endpoints_get_the_signal_path_only_when_they_have_none() -> None:
    env = {"WASMCLOUD_OBSERVABILITY_ENABLED": "true"}
    base = from_env(env | {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example:4318/"})
    assert base.endpoint("traces") == "https://otel.example:4318/v1/traces"
    pathed = from_env(env | {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://gw:8080/otlp/traces"})
    assert pathed.endpoint("traces") == "http://gw:8080/otlp/traces"
    own = from_env(
        env
        | {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://metrics:9090/ingest",
        }
    )
    assert own.endpoint("traces") == "http://collector:4318/v1/traces"
    assert own.endpoint("metrics") == "http://metrics:9090/ingest"
    flag = from_env(env, observability_endpoint="http://flag:4318")
    assert flag.endpoint("traces") == "http://flag:4318/v1/traces"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"WASMCLOUD_OBSERVABILITY_ENABLED": "ture"}, "WASMCLOUD_OBSERVABILITY_ENABLED='ture'"),
        ({"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED='maybe'"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:99999"}, "port"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTLP/HTTP (protobuf) only"),
        ({"WASMCLOUD_OBSERVABILITY_PROTOCOL": "Grpc"}, "WASMCLOUD_OBSERVABILITY_PROTOCOL"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "use otlp or none"),
        ({"WASMCLOUD_TRACE_LEVEL": "loud"}, "WASMCLOUD_TRACE_LEVEL='loud'"),
    ],
)
def test_unreadable_settings_are_refused_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(TelemetryConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        from_env(env)


def test_the_host_refuses_a_grpc_protocol_before_connecting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert host_main(["--observability-protocol", "grpc"], {}) == 2
    error = capsys.readouterr().err
    assert "--observability-protocol='grpc'" in error and "port 4318" in error


def test_providers_get_the_hosts_settings_in_otel_config() -> None:
    host = from_env(
        {
            "WASMCLOUD_OBSERVABILITY_ENABLED": "true",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "WASMCLOUD_TRACE_LEVEL": "debug",
        }
    )
    provider = from_otel_config(host.otel_config())
    assert (provider.traces, provider.metrics) == (False, True)
    assert provider.endpoint("metrics") == "http://collector:4318/v1/metrics"
    assert provider.client_spans
    # OTEL_SDK_DISABLED is folded in: the provider hears "off", not "on".
    disabled = from_env({"WASMCLOUD_OBSERVABILITY_ENABLED": "true", "OTEL_SDK_DISABLED": "1"})
    assert not from_otel_config(disabled.otel_config()).enabled


def test_otel_config_as_upstream_hosts_write_it() -> None:
    upstream = {
        "enable_observability": True,
        "protocol": "Http",
        "additional_ca_paths": [],
        "trace_level": "info",
        "traces_endpoint": "http://tempo:4318/v1/traces",
    }
    config = from_otel_config(upstream)
    assert config.traces and config.endpoint("traces") == "http://tempo:4318/v1/traces"
    assert from_otel_config({"enable_observability": False}) == TelemetryConfig()


@pytest.mark.parametrize(
    ("otel_config", "named"),
    [
        ({"enable_observability": "true"}, "otel_config.enable_observability"),
        ({"enable_traces": 1}, "otel_config.enable_traces"),
        ({"observability_endpoint": 4318}, "otel_config.observability_endpoint"),
        ({"protocol": "Grpc"}, "otel_config.protocol"),
        ({"trace_level": "INFO"}, "otel_config.trace_level"),
    ],
)
def test_a_wrong_typed_otel_config_field_is_refused_by_name(
    otel_config: dict[str, object], named: str
) -> None:
    with pytest.raises(TelemetryConfigError, match=named):
        from_otel_config({"enable_observability": True} | otel_config)


def test_processes_with_telemetry_off_never_import_opentelemetry() -> None:
    """The request path's hooks test a flag; nothing of the SDK loads (or costs) when off.
    (The keyvalue providers load it anyway: redis-py 8, which their backends import, loads
    opentelemetry's API where it is installed.)"""
    code = (
        "import sys\n"
        "import host_agent.cli.host, host_agent.providers.http_server\n"
        "import host_agent.wrpc.transport, host_agent.host.components\n"
        "from host_agent.telemetry import otel\n"
        "from host_agent.telemetry.config import from_env\n"
        "otel.configure(from_env({}), 'x', {})\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


# --- the Lattice resource's otlp_endpoint -------------------------------------------------


def test_a_lattice_otlp_endpoint_turns_its_hosts_telemetry_on() -> None:
    state = {
        "name": "edge-1",
        "natsUrl": "nats://127.0.0.1:4222",
        "lattice": "default",
        "heartbeatSeconds": 30,
        "seed": "SN...",
        "labels": {},
        "otlpEndpoint": "http://127.0.0.1:4318",
    }
    env = host_environment(state, None, {"PATH": "/bin"})
    assert env["WASMCLOUD_OBSERVABILITY_ENABLED"] == "true"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    # What the host makes of that environment.
    config = telemetry_cli.config_from(build_parser(env).parse_args([]), env)
    assert (config.traces, config.metrics) == (True, True)
    assert config.endpoint("traces") == "http://127.0.0.1:4318/v1/traces"
    # Without one the host exports nothing.
    off = host_environment(state | {"otlpEndpoint": ""}, None, {"PATH": "/bin"})
    assert not telemetry_cli.config_from(build_parser(off).parse_args([]), off).enabled


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("localhost:4318", "'localhost:4318' must be the http:// or https:// URL"),
        (4318, "OTLP/HTTP collector, e.g. http://localhost:4318, not int"),
    ],
)
def test_a_lattice_refuses_an_otlp_endpoint_that_is_not_a_url(value: object, said: str) -> None:
    checked = asyncio.run(LatticeResource().check({}, {"otlpEndpoint": value}))
    assert [f.property for f in checked.failures] == ["otlpEndpoint"]
    assert said in checked.failures[0].reason
    host = asyncio.run(
        HostResource().check(
            {}, {"name": "h", "natsUrl": "nats://127.0.0.1:4222"} | {"otlpEndpoint": value}
        )
    )
    assert "otlpEndpoint" in {f.property for f in host.failures}


def test_hosts_restart_only_when_an_otlp_endpoint_is_given_or_changed() -> None:
    checked = asyncio.run(LatticeResource().check({}, {}))
    assert checked.inputs["otlpEndpoint"] == ""  # known in a preview, so Hosts see no change
    olds: dict[str, object] = {"lattice": "default", "natsPort": 4222, "stateDir": ".state/x"}
    # A lattice from before records "" once (its output must be known in previews) ...
    news = olds | {"otlpEndpoint": ""}
    assert "otlpEndpoint" in asyncio.run(LatticeResource().diff("id", olds, news)).changed
    # ... as a refresh does; then nothing changes until an endpoint is given.
    refreshed = asyncio.run(LatticeResource().read("id", olds))
    assert refreshed is not None and refreshed["otlpEndpoint"] == ""
    assert "otlpEndpoint" not in asyncio.run(LatticeResource().diff("id", news, news)).changed
    given = news | {"otlpEndpoint": "http://127.0.0.1:4318"}
    assert "otlpEndpoint" in asyncio.run(LatticeResource().diff("id", news, given)).changed
    host = {"name": "h", "lattice": "default", "stateDir": ".state/x", "target": "local"}
    assert (
        "otlpEndpoint"
        not in asyncio.run(HostResource().diff("id", host, host | {"otlpEndpoint": ""})).changed
    )
    restart = asyncio.run(
        HostResource().diff("id", host, host | {"otlpEndpoint": "http://127.0.0.1:4318"})
    )
    assert "otlpEndpoint" in restart.changed and restart.replaces == []
