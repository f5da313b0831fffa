"""Service definitions as rendered: a systemd unit that runs argv exactly, and the sh
supervisor (checked by `sh -n`, and for what it restarts and how it stops)."""

from __future__ import annotations

import subprocess

import pytest

from pulumi_wasmcloud.provision.service import (
    ServiceSpec,
    render_supervisor,
    render_systemd_unit,
)

SPEC = ServiceSpec(
    name="nats-server",
    argv=("/opt/wasmcloud/bin/nats-server", "-c", "/etc/wasmcloud/nats server.conf", "$HOME%"),
    description="NATS server of a wasmCloud lattice",
)


def test_the_unit_runs_argv_with_systemds_quoting_and_restarts_on_failure() -> None:
    unit = render_systemd_unit(SPEC)
    assert (
        "ExecStart=/opt/wasmcloud/bin/nats-server -c "
        '"/etc/wasmcloud/nats server.conf" $$HOME%%\n' in unit
    )
    assert "Restart=on-failure\n" in unit and "RestartSec=2\n" in unit
    assert "WantedBy=multi-user.target" in unit


def test_the_supervisor_is_valid_sh_and_restarts_only_failures() -> None:
    script = render_supervisor(SPEC)
    checked = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True)
    assert checked.returncode == 0, checked.stderr
    assert "/opt/wasmcloud/bin/nats-server -c '/etc/wasmcloud/nats server.conf' '$HOME%' &" in (
        script
    )
    assert 'if [ "$status" -eq 0 ]; then' in script
    assert "trap stop TERM INT HUP" in script


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"name": "NATS"}, "service name 'NATS'"),
        ({"name": "nats/../x"}, "service name"),
        ({"argv": ("nats-server",)}, "absolute path"),
        ({"argv": ()}, "absolute path"),
        ({"argv": ("/bin/x", "a\nb")}, "line break"),
        ({"restart_seconds": 0}, "restart_seconds"),
    ],
)
def test_a_spec_that_cannot_be_a_service_is_refused(fields: dict[str, object], said: str) -> None:
    values: dict[str, object] = {
        "name": "nats-server",
        "argv": ("/bin/true",),
        "description": "d",
        **fields,
    }
    with pytest.raises(ValueError, match=said):
        ServiceSpec(**values)  # type: ignore[arg-type]
