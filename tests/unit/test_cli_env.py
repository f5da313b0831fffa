"""The host and controller commands refuse a malformed environment variable by name
instead of reading it as the default (or failing with a traceback)."""

from __future__ import annotations

import pytest

from host_agent.cli import controller as controller_cli
from host_agent.cli import host as host_cli
from host_agent.cli.env import env_flag


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), (" ON ", True), ("1", True), ("false", False), ("0", False), ("", False)],
)
def test_a_switch_reads_the_usual_spellings(text: str, expected: bool) -> None:
    assert env_flag({"WASMCLOUD_CTL_TLS": text}, "WASMCLOUD_CTL_TLS") is expected
    assert env_flag({}, "WASMCLOUD_CTL_TLS") is False


@pytest.mark.parametrize("variable", ["WASMCLOUD_CTL_TLS", "WASMCLOUD_ALLOW_FILE_LOAD"])
def test_the_host_refuses_a_switch_it_cannot_read(
    variable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # "ture" must not quietly mean "no TLS" (or "no file loads"). Port 0 makes a host that
    # wrongly went on stop at once with another error instead of connecting.
    with pytest.raises(ValueError, match=f"{variable}='ture': expected true or false"):
        env_flag({variable: "ture"}, variable)
    assert host_cli.main(["--nats-port", "0"], {variable: "ture"}) == 2
    err = capsys.readouterr().err
    assert f"wasmcloud-host: error: {variable}='ture': expected true or false" in err


@pytest.mark.parametrize("variable", ["WASMCLOUD_HEARTBEAT_INTERVAL", "WADM_HOST_TIMEOUT"])
def test_the_controller_refuses_a_number_it_cannot_read(
    variable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert controller_cli.main([], {variable: "30s"}) == 2
    err = capsys.readouterr().err
    assert f"wasmcloud-controller: error: {variable}='30s': expected a number" in err


@pytest.mark.parametrize("text", ["inf", "nan", "-Infinity"])
def test_a_number_that_is_not_finite_is_refused_by_name(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # float() reads "inf": a heartbeat every inf seconds is a host that never reports.
    assert (
        host_cli.main([], {"WASMCLOUD_HEARTBEAT_INTERVAL": text, "WASMCLOUD_NATS_PORT": "1"}) == 2
    )
    err = capsys.readouterr().err
    assert f"WASMCLOUD_HEARTBEAT_INTERVAL={text!r}: expected a finite number" in err
    with pytest.raises(SystemExit):
        controller_cli.main([f"--lease-ttl={text}"], {})
    assert f"argument --lease-ttl: {text!r} is not a finite number" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "says"), [("3x", "expected a whole number"), ("0", "1 to 5")])
def test_the_controller_refuses_stream_replicas_it_cannot_use(
    text: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert controller_cli.main([], {"WADM_STREAM_REPLICAS": text}) == 2
    err = capsys.readouterr().err
    assert "wasmcloud-controller: error: WADM_STREAM_REPLICAS=" in err
    assert says in err
    with pytest.raises(SystemExit):
        controller_cli.main(["--stream-replicas=6"], {})
    assert "argument --stream-replicas: 6 is not between 1 and 5" in capsys.readouterr().err
