"""The lattice registry's planners: a fresh machine gets the operator's docker-registry,
its config and a service; a converged one nothing; a machine it cannot run on is refused
by name before any change; removal leaves nothing of it."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from pulumi_wasmcloud.provision.facts import MachineFacts, OsRelease
from pulumi_wasmcloud.provision.operations import Unsupported
from pulumi_wasmcloud.provision.registry import (
    REGISTRY_BINARY,
    REGISTRY_CONFIG,
    REGISTRY_STORE,
    RegistryBinary,
    RegistryFacts,
    elf_interpreter,
    operator_registry,
    parse_registry_version,
    plan_registry,
    plan_remove_registry,
    registry_service,
)
from pulumi_wasmcloud.provision.service import ServiceState, render_definition

BINARY = RegistryBinary("2.8.2+ds1", b"\x7fELF registry", "x86_64", "/lib64/ld-linux-x86-64.so.2")
CONFIG = "http:\n  addr: 198.18.0.2:5000\n"


def facts(
    arch: str = "x86_64", loader: bool = True, converged: bool = False, running: bool = True
) -> RegistryFacts:
    machine = MachineFacts(OsRelease("debian", "12"), arch, "3.11.2", systemd=False)
    if not converged:
        return RegistryFacts(machine, None, None, loader, ServiceState(None, False))
    definition = render_definition(registry_service(), False).encode()
    return RegistryFacts(
        machine,
        BINARY.sha256,
        hashlib.sha256(CONFIG.encode()).hexdigest(),
        loader,
        ServiceState(hashlib.sha256(definition).hexdigest(), running),
    )


def test_a_fresh_machine_gets_binary_config_and_service() -> None:
    plan = plan_registry("core-1", facts(), BINARY, CONFIG)
    assert [c.description for c in plan] == [
        "docker-registry 2.8.2+ds1: install on core-1",
        "registry config: write on core-1",
        "registry service: define on core-1",
        "registry service: start on core-1",
    ]
    assert plan[0].commands[0].path == REGISTRY_BINARY  # type: ignore[union-attr]
    assert plan[1].commands[0].path == REGISTRY_CONFIG  # type: ignore[union-attr]


def test_a_converged_machine_gets_nothing_and_a_stopped_one_a_start() -> None:
    assert plan_registry("core-1", facts(converged=True), BINARY, CONFIG) == []
    stopped = plan_registry("core-1", facts(converged=True, running=False), BINARY, CONFIG)
    assert [c.description for c in stopped] == ["registry service: start on core-1"]


@pytest.mark.parametrize(
    ("machine_facts", "says"),
    [
        (facts(arch="aarch64"), "core-1 is aarch64 (debian 12)"),
        (facts(loader=False), "core-1 (debian 12) has no /lib64/ld-linux-x86-64.so.2"),
    ],
)
def test_a_machine_the_registry_cannot_run_on_is_refused_by_name(
    machine_facts: RegistryFacts, says: str
) -> None:
    with pytest.raises(Unsupported, match=says.replace("(", r"\(").replace(")", r"\)")):
        plan_registry("core-1", machine_facts, BINARY, CONFIG)


def test_removal_takes_the_binary_config_and_images() -> None:
    plan = plan_remove_registry("core-1", facts(converged=True))
    assert [c.description for c in plan] == [
        "registry service: remove from core-1",
        "registry: remove from core-1",
    ]
    removal = str(plan[1].commands[0])
    for path in (REGISTRY_BINARY, REGISTRY_CONFIG, REGISTRY_STORE):
        assert path in removal
    assert plan_remove_registry("core-1", facts()) == []


def test_the_operators_registry_and_what_it_needs() -> None:
    assert (
        parse_registry_version(
            "/usr/bin/docker-registry github.com/docker/distribution 2.8.2+ds1\n"
        )
        == "2.8.2+ds1"
    )
    with pytest.raises(ValueError, match="expected '<program> <module> <version>'"):
        parse_registry_version("docker-registry\n")
    # This Python is a dynamically linked ELF executable like the registry.
    assert elf_interpreter(Path(sys.executable).resolve().read_bytes()) is not None
    if not Path("/usr/bin/docker-registry").exists():
        pytest.skip("Debian's docker-registry is not installed here")
    binary = operator_registry()
    assert binary.version.startswith("2.")
    assert binary.interpreter is not None and binary.interpreter.startswith("/lib")
