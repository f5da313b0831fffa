"""The lattice's OCI registry on a machine: the operator's Debian ``docker-registry`` (the
distribution registry the local lattice runs), shipped to the machine, with its config
and a service.

The binary is the one installed beside the provider (``/usr/bin/docker-registry`` from
Debian's package; machines need no internet). It needs only the C library, so it runs on
a machine of the same architecture that has the dynamic loader it names; a machine
without either is refused by name before anything changes there.

``plan_registry`` and ``plan_remove_registry`` are pure, like ``operations``' nats-server
planners: a converged machine gets no change, so a second ``up`` runs no command.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pulumi_wasmcloud.provision.changes import Change, Upload
from pulumi_wasmcloud.provision.connector import ProvisionError, SshConnection
from pulumi_wasmcloud.provision.facts import (
    ABSENT,
    Fact,
    MachineFacts,
    file_sha256,
    probe_many,
)
from pulumi_wasmcloud.provision.operations import Unsupported, elf_arch, remove_shipped_files
from pulumi_wasmcloud.provision.service import (
    ServiceSpec,
    ServiceState,
    plan_remove,
    plan_service,
    service_state,
)

REGISTRY_BINARY = "/opt/wasmcloud/bin/docker-registry"
REGISTRY_CONFIG = "/etc/wasmcloud/registry.yml"
REGISTRY_STORE = "/var/lib/wasmcloud/registry"
REGISTRY_SERVICE = "registry"
OPERATOR_REGISTRY = Path("/usr/bin/docker-registry")  # Debian's docker-registry package


@dataclass(frozen=True)
class RegistryBinary:
    version: str  # "2.8.2+ds1"
    data: bytes = field(repr=False)
    arch: str
    interpreter: str | None  # the dynamic loader it needs (None: static)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def elf_interpreter(data: bytes) -> str | None:
    """The program interpreter (PT_INTERP) an ELF executable names, None when static."""
    if len(data) < 52 or data[:4] != b"\x7fELF" or data[4] not in (1, 2):
        raise ValueError("not an ELF executable")
    wide = data[4] == 2
    order: Literal["little", "big"] = "little" if data[5] == 1 else "big"

    def number(at: int, size: int) -> int:
        return int.from_bytes(data[at : at + size], order)

    phoff, phentsize, phnum = (
        (number(32, 8), number(54, 2), number(56, 2))
        if wide
        else (number(28, 4), number(42, 2), number(44, 2))
    )
    for i in range(phnum):
        header = phoff + i * phentsize
        if number(header, 4) == 3:  # PT_INTERP
            offset, size = (
                (number(header + 8, 8), number(header + 32, 8))
                if wide
                else (number(header + 4, 4), number(header + 16, 4))
            )
            return data[offset : offset + size].rstrip(b"\0").decode()
    return None


def parse_registry_version(output: str) -> str:
    """``docker-registry --version`` prints ``<path> github.com/docker/distribution 2.8.2+ds1``."""
    matched = re.fullmatch(r"\S+ \S+ v?(\d+\.\d+\.\d+\S*)", output.strip())
    if matched is None:
        raise ValueError(f"expected '<program> <module> <version>', got {output.strip()!r}")
    return matched.group(1)


def operator_registry(path: Path = OPERATOR_REGISTRY) -> RegistryBinary:
    """The docker-registry installed beside the provider (what machines are given)."""
    found = path if path.exists() else None
    if found is None:
        which = shutil.which("docker-registry")
        found = Path(which) if which else None
    if found is None:
        raise ProvisionError(
            f"{path} is not installed beside the provider, so there is no registry to "
            "ship; install Debian's docker-registry package (apt-get install "
            "docker-registry), or leave out registry_port"
        )
    data = found.read_bytes()
    said = subprocess.run(
        [str(found), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    try:
        version = parse_registry_version(said.stdout)
    except ValueError as e:
        raise ProvisionError(f"{found} --version: {e}") from None
    return RegistryBinary(version, data, elf_arch(data, str(found)), elf_interpreter(data))


@dataclass(frozen=True)
class RegistryFacts:
    machine: MachineFacts
    binary_sha256: str | None
    config_sha256: str | None
    interpreter_present: bool
    service: ServiceState


def parse_present(output: str) -> bool:
    line = output.strip()
    if line not in ("present", ABSENT):
        raise ValueError(f"expected 'present' or {ABSENT!r}, got {line!r}")
    return line == "present"


def file_present(path: str) -> Fact[bool]:
    quoted = shlex.quote(path)
    return Fact(
        f"presence of {path}",
        f"if [ -e {quoted} ]; then echo present; else echo {ABSENT}; fi",
        parse_present,
    )


def gather_registry_facts(
    connection: SshConnection, machine: MachineFacts, interpreter: str | None = None
) -> RegistryFacts:
    """One round trip (the machine's own facts are gathered once, by the caller);
    ``interpreter``: the loader the binary to install needs (None: nothing to check)."""
    loader = interpreter or "/"
    sha, config, loader_present, service = probe_many(
        connection,
        [
            file_sha256(REGISTRY_BINARY),
            file_sha256(REGISTRY_CONFIG),
            file_present(loader),
            service_state(REGISTRY_SERVICE, machine.systemd),
        ],
    )
    return RegistryFacts(machine, sha, config, loader_present, service)


def registry_service() -> ServiceSpec:
    return ServiceSpec(
        name=REGISTRY_SERVICE,
        argv=(REGISTRY_BINARY, "serve", REGISTRY_CONFIG),
        description="OCI registry of a wasmCloud lattice",
    )


def refuse_unsupported(machine: str, facts: RegistryFacts, binary: RegistryBinary) -> None:
    """Raise ``Unsupported`` naming the machine when the registry cannot run there."""
    if facts.machine.arch != binary.arch:
        raise Unsupported(
            f"{machine} is {facts.machine.arch} ({facts.machine.os}), and the docker-registry "
            f"{binary.version} beside this provider is built for {binary.arch}; run the "
            f"provider from a {facts.machine.arch} installation, or leave out registry_port"
        )
    if binary.interpreter is not None and not facts.interpreter_present:
        raise Unsupported(
            f"{machine} ({facts.machine.os}) has no {binary.interpreter}, the C library's "
            f"loader docker-registry {binary.version} needs; give cluster[0] a glibc "
            "distribution (Debian, Ubuntu, ...), or leave out registry_port"
        )


def plan_registry(
    machine: str, facts: RegistryFacts, binary: RegistryBinary, config: str
) -> list[Change]:
    """The changes that leave ``binary`` serving with ``config`` on ``machine``."""
    refuse_unsupported(machine, facts, binary)
    changes: list[Change] = []
    new_binary = facts.binary_sha256 != binary.sha256
    if new_binary:
        verb = "install on" if facts.binary_sha256 is None else "replace on"
        changes.append(
            Change(
                f"docker-registry {binary.version}: {verb} {machine}",
                (Upload(REGISTRY_BINARY, binary.data, 0o755),),
            )
        )
    config_bytes = config.encode()
    new_config = facts.config_sha256 != hashlib.sha256(config_bytes).hexdigest()
    if new_config:
        verb = "write" if facts.config_sha256 is None else "update"
        changes.append(
            Change(
                f"registry config: {verb} on {machine}",
                (Upload(REGISTRY_CONFIG, config_bytes, 0o640),),
            )
        )
    changes += plan_service(
        machine,
        registry_service(),
        facts.service,
        facts.machine.systemd,
        restart=new_binary or new_config,
    )
    return changes


def plan_remove_registry(machine: str, facts: RegistryFacts) -> list[Change]:
    """Stop and remove the service, the binary, the config and the stored images."""
    changes = plan_remove(machine, REGISTRY_SERVICE, facts.service, facts.machine.systemd)
    if facts.binary_sha256 is not None or facts.config_sha256 is not None:
        removal = remove_shipped_files(REGISTRY_BINARY, REGISTRY_CONFIG, REGISTRY_STORE)
        changes.append(Change(f"registry: remove from {machine}", removal))
    return changes
