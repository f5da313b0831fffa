"""The host agent (and the controller, which ships in the same package) on a machine.

Layout (all ours, all removed when the last user goes):

- ``/opt/wasmcloud/agent/``: one venv per install (``venv-<wheelhouse sha256 prefix>``,
  made with the machine's ``python3 -m venv --without-pip`` and filled by extracting the
  wheelhouse's site-packages archive, laid out and byte-compiled once on the operator's
  side (wheelhouse.py): no pip runs on a machine), ``venv`` (a symlink to the current
  one, swapped atomically), ``installed`` (the marker a second run compares: version
  and wheelhouse sha256, written last).
- ``/etc/wasmcloud/host-<name>.env``, ``/etc/wasmcloud/controller.env`` (0600, the
  ``WASMCLOUD_*`` variables with the seeds), ``/var/lib/wasmcloud/host-<name>/`` (the
  host's caches).
- a secured lattice's files of each service, ``/etc/wasmcloud/<service>.<suffix>`` (0600;
  security.py's suffixes: ``creds``, ``ca.pem``, ``cert.pem``, ``key.pem``,
  ``issuer.json``), read at start: a changed one restarts the service.
- services (service.py) ``host-<name>``, ``controller`` and, on a lattice's core nodes,
  ``secrets-backend`` (the NATS KV secrets backend; its seeds in its 0600 environment
  file).

A service runs its install's own venv (its definition names ``venv-<id>``): a new install
never changes what a running agent loads, a failed one leaves the old agent running, and
a service moves to a new install by being redefined and restarted. Several hosts and the
controller share one install; each resource plans its own service, and the install step
runs under a lock on the machine and does nothing when the install is already there.

The planners are pure (facts in, changes out; a converged machine gets ``[]``);
``gather_agent_facts`` (one round trip) and ``changes.apply`` are the effects.
"""

from __future__ import annotations

import functools
import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_wasmcloud.provision.changes import Change, Command, Shell, Upload
from pulumi_wasmcloud.provision.connector import SshConnection
from pulumi_wasmcloud.provision.facts import (
    ABSENT,
    MACHINE_FACTS,
    Fact,
    MachineFacts,
    probe_many,
)
from pulumi_wasmcloud.provision.operations import Unsupported
from pulumi_wasmcloud.provision.secret_files import AGENT_SUFFIXES, agent_file
from pulumi_wasmcloud.provision.service import (
    LOG_DIR,
    SERVICES_DIR,
    SYSTEMD_DIR,
    ServiceSpec,
    ServiceState,
    parse_service_state_with_environment,
    plan_remove,
    plan_service,
    remove_empty_dirs,
    render_environment,
    service_state,
)
from pulumi_wasmcloud.provision.wheelhouse import (
    Wheelhouse,
    host_wheelhouse,
    wheel_needs,
)

__all__ = [
    "AGENT_DIR",
    "CONTROLLER_SERVICE",
    "SECRETS_BACKEND_SERVICE",
    "AgentFacts",
    "ControllerConfig",
    "HostAgentConfig",
    "InstalledAgent",
    "SecretsBackendConfig",
    "Wheelhouse",
    "environment_path",
    "gather_agent_facts",
    "host_service",
    "host_wheelhouse",
    "plan_controller",
    "plan_host_agent",
    "plan_remove_controller",
    "plan_remove_host_agent",
    "plan_remove_secrets_backend",
    "plan_secrets_backend",
    "refuse_unsupported_agent",
    "state_path",
]

AGENT_DIR = "/opt/wasmcloud/agent"
VENV_LINK = f"{AGENT_DIR}/venv"
MARKER = f"{AGENT_DIR}/installed"
LOCK = f"{AGENT_DIR}/.lock"
CONFIG_DIR = "/etc/wasmcloud"
STATE_DIR = "/var/lib/wasmcloud"
CONTROLLER_SERVICE = "controller"
SECRETS_BACKEND_SERVICE = "secrets-backend"
MINIMUM_PYTHON = (3, 11)
INSTALL_SECONDS = 900.0
# What the install and removal scripts run besides python3 (coreutils, tar, gzip,
# util-linux).
TOOLS = ("flock", "tar", "gzip", "sha256sum")
# Where our services' definitions are, to find the ones that use the agent install.
_DEFINITIONS = (
    f"{SYSTEMD_DIR}/wasmcloud-*.service",
    f"{SERVICES_DIR}/*/run",
    f"{CONFIG_DIR}/host-*.env",
    f"{CONFIG_DIR}/{CONTROLLER_SERVICE}.env",
    f"{CONFIG_DIR}/{SECRETS_BACKEND_SERVICE}.env",
)


@dataclass(frozen=True)
class HostAgentConfig:
    """A host on a machine: ``name`` (its service is ``host-<name>``) and the
    ``WASMCLOUD_*`` variables it starts with (its seed among them: written 0600)."""

    name: str
    environment: Mapping[str, str]
    # Secret files by suffix (security.AGENT_SUFFIXES): its user, TLS pair and CA.
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        host_service(self.name)
        _check_suffixes(self.files)


@dataclass(frozen=True)
class ControllerConfig:
    environment: Mapping[str, str]
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        _check_suffixes(self.files)


@dataclass(frozen=True)
class SecretsBackendConfig:
    """The secrets backend on a core node: its environment (the seeds among it: written
    0600), its files, and the replicas its bucket is made with."""

    environment: Mapping[str, str] = field(repr=False)
    replicas: int
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        _check_suffixes(self.files)


def _check_suffixes(files: Mapping[str, bytes]) -> None:
    unknown = sorted(set(files) - set(AGENT_SUFFIXES))
    if unknown:
        raise ValueError(
            f"an agent service's files are named by {', '.join(AGENT_SUFFIXES)}; not by "
            f"{', '.join(unknown)}"
        )


@dataclass(frozen=True)
class InstalledAgent:
    version: str
    sha256: str


@dataclass(frozen=True)
class AgentFacts:
    """What a machine is and what of the agent it has. ``services``: the state of each
    service asked about (with its environment file's sha256); ``leftovers``: of those,
    the ones with an environment file or state directory left; ``users``: every service
    of ours on the machine that uses the agent install (by definition or environment)."""

    machine: MachineFacts
    missing: tuple[str, ...]  # what the machine lacks to install the agent (named)
    installed: InstalledAgent | None
    agent_dir: bool
    services: Mapping[str, ServiceState]
    leftovers: frozenset[str]
    users: frozenset[str]
    # Per service asked about: the sha256 of each of its secret files there is, by suffix.
    files: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def host_service(name: str) -> str:
    """The service of host ``name`` (``host-edge-1``), refused when not a service name."""
    service = f"host-{name}"
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,56}[a-z0-9])?", name):
        raise ValueError(
            f"host name {name!r}: lowercase letters, digits and '-', at most 58 characters "
            "(it names the host's service and files on the machine)"
        )
    return service


def environment_path(service: str) -> str:
    return f"{CONFIG_DIR}/{service}.env"


def state_path(service: str) -> str:
    return f"{STATE_DIR}/{service}"


def venv_path(wheelhouse_sha256: str) -> str:
    return f"{AGENT_DIR}/venv-{wheelhouse_sha256[:16]}"


# --- facts -----------------------------------------------------------------------------


def parse_installed(output: str) -> tuple[InstalledAgent | None, bool]:
    """The marker (``<version> <sha256>``) or ``absent``, then ``dir`` or ``no-dir``."""
    lines = output.splitlines()
    if len(lines) != 2 or lines[1] not in ("dir", "no-dir"):
        raise ValueError(f"expected the marker line and 'dir' or 'no-dir', got {output!r}")
    present = lines[1] == "dir"
    if lines[0] == ABSENT:
        return None, present
    matched = re.fullmatch(r"(\S+) ([0-9a-f]{64})", lines[0])
    if matched is None:
        raise ValueError(f"expected '<version> <sha256>' in {MARKER}, got {lines[0]!r}")
    return InstalledAgent(matched[1], matched[2]), present


INSTALLED = Fact(
    "agent install",
    # The marker counts only while the venv it names is there to run.
    f"if [ -f {MARKER} ] && [ -x {VENV_LINK}/bin/python ]; then cat {MARKER}; "
    f"else echo {ABSENT}; fi; if [ -d {AGENT_DIR} ]; then echo dir; else echo no-dir; fi",
    parse_installed,
)


def parse_missing(output: str) -> tuple[str, ...]:
    lines = output.splitlines()
    if lines != ["ok"] and not (len(lines) == 1 and lines[0].startswith("missing:")):
        raise ValueError(f"expected 'ok' or 'missing: ...', got {output!r}")
    if lines == ["ok"]:
        return ()
    return tuple(lines[0].removeprefix("missing:").split())


MISSING = Fact(
    "agent prerequisites",
    "m=; "
    + "".join(f'command -v {tool} >/dev/null 2>&1 || m="$m {tool}"; ' for tool in TOOLS)
    + "if command -v python3 >/dev/null 2>&1; then "
    "python3 -c 'import venv' >/dev/null 2>&1 || m=\"$m python3-venv\"; fi; "
    'if [ -n "$m" ]; then echo "missing:$m"; else echo ok; fi',
    parse_missing,
)


def parse_users(output: str) -> frozenset[str]:
    users = set()
    for line in output.splitlines():
        matched = (
            re.fullmatch(rf"{SYSTEMD_DIR}/wasmcloud-([a-z0-9-]+)\.service", line)
            or re.fullmatch(rf"{SERVICES_DIR}/([a-z0-9-]+)/run", line)
            or re.fullmatch(rf"{CONFIG_DIR}/([a-z0-9-]+)\.env", line)
        )
        if matched is None:
            raise ValueError(f"expected paths of our service definitions, got {line!r}")
        users.add(matched[1])
    return frozenset(users)


def _users_command() -> str:
    definitions = " ".join(_DEFINITIONS[:2])
    environments = " ".join(_DEFINITIONS[2:])
    return (
        f"grep -lsF {AGENT_DIR}/ {definitions}; "
        f'for f in {environments}; do [ -f "$f" ] && echo "$f"; done; true'
    )


USERS = Fact("agent users", _users_command(), parse_users)


def _service_fact(name: str) -> Fact[ServiceState]:
    # Both forms of the probe, chosen on the machine by its PID 1: one round trip.
    environment = environment_path(name)
    systemd = service_state(name, True, environment).command
    supervised = service_state(name, False, environment).command
    return Fact(
        f"service {name}",
        f'if [ "$(cat /proc/1/comm)" = systemd ]; then {systemd}; else {supervised}; fi',
        parse_service_state_with_environment,
    )


def _files_fact(name: str) -> Fact[dict[str, str]]:
    """The sha256 of each of the service's secret files there is, by suffix."""
    lines = [
        f"if [ -f {shlex.quote(agent_file(name, suffix))} ]; then printf '%s ' {suffix}; "
        f"sha256sum < {shlex.quote(agent_file(name, suffix))}; fi"
        for suffix in AGENT_SUFFIXES
    ]
    return Fact(f"files of {name}", "; ".join(lines) + "; true", _parse_files)


def _parse_files(output: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in output.splitlines():
        matched = re.fullmatch(r"(\S+) ([0-9a-f]{64})(\s+-)?", line)
        if matched is None or matched[1] not in AGENT_SUFFIXES:
            raise ValueError(f"expected '<suffix> <sha256>' lines, got {line!r}")
        found[matched[1]] = matched[2]
    return found


def _secret_paths(name: str) -> list[str]:
    return [
        path
        for suffix in AGENT_SUFFIXES
        for path in (agent_file(name, suffix), agent_file(name, suffix) + ".new")
    ]


def _leftover_fact(name: str) -> Fact[bool]:
    paths = [
        environment_path(name),
        environment_path(name) + ".new",
        state_path(name),
        *_secret_paths(name),
    ]
    test = " || ".join(f"[ -e {shlex.quote(p)} ]" for p in paths)
    return Fact(f"files of {name}", f"if {test}; then echo yes; else echo no; fi", _yes_no)


def _yes_no(output: str) -> bool:
    if output not in ("yes\n", "no\n"):
        raise ValueError(f"expected 'yes' or 'no', got {output!r}")
    return output == "yes\n"


def gather_agent_facts(connection: SshConnection, services: Sequence[str]) -> AgentFacts:
    """One round trip: the machine, the install, and each of ``services`` (service names:
    ``host_service(name)`` or ``CONTROLLER_SERVICE``)."""
    facts: list[Fact[Any]] = [*MACHINE_FACTS, MISSING, INSTALLED, USERS]
    for name in services:
        facts += [_service_fact(name), _leftover_fact(name), _files_fact(name)]
    values = probe_many(connection, facts)
    os_release, arch, python, systemd, missing, (installed, agent_dir), users = values[:7]
    states = values[7::3]
    leftover = values[8::3]
    files = values[9::3]
    return AgentFacts(
        machine=MachineFacts(os=os_release, arch=arch, python=python, systemd=systemd),
        missing=missing,
        installed=installed,
        agent_dir=agent_dir,
        services=dict(zip(services, states, strict=True)),
        leftovers=frozenset(n for n, left in zip(services, leftover, strict=True) if left),
        users=users,
        files=dict(zip(services, files, strict=True)),
    )


# --- planners (pure) ---------------------------------------------------------------------


def refuse_unsupported_agent(machine: str, facts: AgentFacts, wheelhouse: Wheelhouse) -> None:
    """Raise ``Unsupported`` naming the machine when the wheelhouse cannot be installed
    there; called before any change, so such a machine is left as it was."""
    needs = wheel_needs([f.name for f in wheelhouse.files])
    python = facts.machine.python
    where = f"{machine} ({facts.machine.os}, {facts.machine.arch})"
    if python is None:
        raise Unsupported(
            f"{where} has no python3; the host agent needs Python "
            f"{'.'.join(map(str, MINIMUM_PYTHON))} or newer. Install python3 there."
        )
    version = tuple(int(part) for part in python.split(".")[:2])
    if version < MINIMUM_PYTHON:
        raise Unsupported(
            f"{where} has Python {python}; the host agent needs "
            f"{'.'.join(map(str, MINIMUM_PYTHON))} or newer. Install a newer python3 there."
        )
    if needs.python is not None and version != needs.python:
        built_for = ".".join(map(str, needs.python))
        raise Unsupported(
            f"{where} has Python {python}, and the host agent's wheels are built for "
            f"CPython {built_for} (the Python that runs this provider); run the provider "
            f"with Python {'.'.join(map(str, version))}, or install python{built_for} "
            f"as python3 on {machine}."
        )
    if needs.arch is not None and needs.arch != facts.machine.arch:
        raise Unsupported(
            f"{where}: the host agent's wheels (wasmtime's among them) are built for "
            f"{needs.arch}; run the provider from a {facts.machine.arch} installation, or "
            f"leave {machine} out."
        )
    if needs.glibc and facts.machine.os.id == "alpine":
        raise Unsupported(
            f"{where}: the host agent's wheels need glibc (manylinux), which Alpine does not "
            f"have; use a glibc distribution on {machine}."
        )
    if facts.missing:
        raise Unsupported(
            f"{where} lacks {', '.join(facts.missing)}, which installing the host agent "
            "needs (python3-venv: Python's venv module); install "
            f"{'it' if len(facts.missing) == 1 else 'them'} there."
        )


@functools.lru_cache(maxsize=4)
def install_archive(wheelhouse: Wheelhouse) -> bytes:
    """What a machine is sent: the wheelhouse's site-packages archive (one upload;
    benchmarks/provision.py gives pyinfra the same archive)."""
    return wheelhouse.site_packages.read_bytes()


@functools.lru_cache(maxsize=4)
def _archive_sha256(wheelhouse: Wheelhouse) -> str:
    return hashlib.sha256(install_archive(wheelhouse)).hexdigest()


def archive_path(wheelhouse: Wheelhouse) -> str:
    return f"{AGENT_DIR}/site-packages-{wheelhouse.sha256[:16]}.tar.gz"


def install_steps(wheelhouse: Wheelhouse, archive: str) -> list[str]:
    """The commands, run in AGENT_DIR under ``set -e``, that make the wheelhouse's venv
    from its archive uploaded at ``archive``: checked against the archive's sha256 (an
    upload cut short is refused), a venv without pip, the archive extracted into its
    site-packages (wherever the machine's Python puts that), and ``host_agent`` imported
    by the venv's python before anyone uses it."""
    venv = venv_path(wheelhouse.sha256)
    python = f"{venv}/bin/python"
    return [
        f"printf '%s  %s\\n' {_archive_sha256(wheelhouse)} {shlex.quote(archive)} "
        "| sha256sum -c --quiet",
        f"python3 -m venv --without-pip {venv}",
        f"site=$({python} -c 'import sysconfig; print(sysconfig.get_path(\"purelib\"))')",
        f'tar -xzf {shlex.quote(archive)} -C "$site"',
        f"{python} -c 'import host_agent'",
    ]


def _gc_installs(keep: str | None) -> str:
    """Remove each venv of ours no service definition names (but ``keep``)."""
    definitions = " ".join(_DEFINITIONS[:2])
    keep_test = f'[ "$d" = {shlex.quote(keep)} ] && continue; ' if keep else ""
    return (
        f'for d in {AGENT_DIR}/venv-*; do [ -d "$d" ] || continue; {keep_test}'
        f'grep -qsF "$d/" {definitions} || rm -rf "$d"; done'
    )


def _install(machine: str, facts: AgentFacts, wheelhouse: Wheelhouse) -> list[Change]:
    wanted = InstalledAgent(wheelhouse.version, wheelhouse.sha256)
    if facts.installed == wanted:
        return []
    marker = f"{wanted.version} {wanted.sha256}"
    venv = venv_path(wheelhouse.sha256)
    archive = archive_path(wheelhouse)
    # Under the machine's lock, since every host and the controller on a machine may
    # install at once; a second one finds the marker and stops. The venv is made at its
    # final path (scripts in it name it) and only then is `venv` pointed at it and the
    # marker written: a failure on the way leaves the old install whole and running.
    script = "; ".join(
        [
            "set -e",
            f"cd {AGENT_DIR}",
            f"exec 9>{LOCK}",
            "flock 9",
            f'if [ "$(cat {MARKER} 2>/dev/null)" = {shlex.quote(marker)} ] && '
            f"[ -x {venv}/bin/python ]; then rm -f {archive}; exit 0; fi",
            f"trap 'rm -rf {venv} {archive}' EXIT",
            f"rm -rf {venv}",
            *install_steps(wheelhouse, archive),
            f"rm -f {archive}",
            "trap - EXIT",
            f"ln -sfn {venv.rsplit('/', 1)[1]} venv.tmp",
            'python3 -c \'import os; os.replace("venv.tmp", "venv")\'',
            f"printf '%s\\n' {shlex.quote(marker)} > installed.tmp",
            "mv -f installed.tmp installed",
            # The wheels an install before site-packages archives kept.
            "rm -rf wheelhouse wheelhouse.new",
            _gc_installs(keep=venv),
        ]
    )
    if facts.installed is None:
        described = f"host agent {wanted.version}: install on {machine}"
    elif facts.installed.version != wanted.version:
        described = f"host agent {facts.installed.version} => {wanted.version} on {machine}"
    else:
        described = f"host agent {wanted.version}: reinstall on {machine} (its wheels changed)"
    commands: tuple[Command, ...] = (
        Upload(archive, install_archive(wheelhouse), 0o600),
        Shell(script, timeout=INSTALL_SECONDS),
    )
    return [Change(described, commands)]


def _state(facts: AgentFacts, service: str) -> ServiceState:
    try:
        return facts.services[service]
    except KeyError:
        raise ValueError(
            f"the facts have no service {service}: gather them with it "
            f"(gather_agent_facts(connection, [{service!r}, ...]))"
        ) from None


def _plan_agent_service(
    machine: str,
    facts: AgentFacts,
    wheelhouse: Wheelhouse,
    spec: ServiceSpec,
    environment: Mapping[str, str],
    label: str,
    files: Mapping[str, bytes],
    files_label: str,
) -> list[Change]:
    refuse_unsupported_agent(machine, facts, wheelhouse)
    changes = _install(machine, facts, wheelhouse)
    state = _state(facts, spec.name)
    there = facts.files.get(spec.name, {})
    service_changes = plan_service(
        machine,
        spec,
        state,
        facts.machine.systemd,
        environment=render_environment(environment),
        environment_label=label,
        files={agent_file(spec.name, suffix): data for suffix, data in files.items()},
        file_digests={agent_file(spec.name, suffix): digest for suffix, digest in there.items()},
        files_label=files_label,
    )
    if state.definition_sha256 is not None and any(
        c.description.startswith(f"{spec.name} service: redefine") for c in service_changes
    ):
        # It moves to the new install: the one it ran is removed once no service uses it.
        last = service_changes[-1]
        service_changes[-1] = Change(
            last.description, (*last.commands, Shell(_gc_installs(keep=None)))
        )
    return changes + service_changes


def host_agent_spec(config: HostAgentConfig, wheelhouse: Wheelhouse) -> ServiceSpec:
    service = host_service(config.name)
    return ServiceSpec(
        name=service,
        # The friendly name is what placement tables and `wash get hosts` show (the
        # host reads it from its command line only); it is not secret.
        argv=(
            f"{venv_path(wheelhouse.sha256)}/bin/python",
            "-m",
            "host_agent",
            "--friendly-name",
            config.name,
        ),
        description=f"wasmCloud host {config.name}",
        environment_file=environment_path(service),
        state_directory=state_path(service),
    )


def controller_spec(wheelhouse: Wheelhouse) -> ServiceSpec:
    return ServiceSpec(
        name=CONTROLLER_SERVICE,
        argv=(
            f"{venv_path(wheelhouse.sha256)}/bin/python",
            "-m",
            "host_agent.cli.controller",
        ),
        description="wasmCloud lattice controller (wadm-compatible)",
        environment_file=environment_path(CONTROLLER_SERVICE),
    )


def secrets_backend_spec(wheelhouse: Wheelhouse, replicas: int) -> ServiceSpec:
    """``python -m host_agent.secrets serve``: what it connects to and its keys come from
    its environment file, never argv; its bucket's replicas are not secret."""
    return ServiceSpec(
        name=SECRETS_BACKEND_SERVICE,
        argv=(
            f"{venv_path(wheelhouse.sha256)}/bin/python",
            "-m",
            "host_agent.secrets",
            "serve",
            "--replicas",
            str(replicas),
        ),
        description="wasmCloud secrets backend (NATS KV)",
        environment_file=environment_path(SECRETS_BACKEND_SERVICE),
    )


def plan_host_agent(
    machine: str, facts: AgentFacts, wheelhouse: Wheelhouse, config: HostAgentConfig
) -> list[Change]:
    """The changes that leave host ``config.name`` running on ``machine`` from
    ``wheelhouse`` with ``config.environment``: only what differs from ``facts``."""
    service = host_service(config.name)
    # The host's caches (compiled components, OCI blobs) live in its state directory,
    # not in root's home.
    environment = {**config.environment, "XDG_CACHE_HOME": state_path(service)}
    return _plan_agent_service(
        machine,
        facts,
        wheelhouse,
        host_agent_spec(config, wheelhouse),
        environment,
        f"host {config.name} config",
        config.files,
        f"host {config.name} NATS user and TLS files",
    )


def plan_controller(
    machine: str, facts: AgentFacts, wheelhouse: Wheelhouse, config: ControllerConfig
) -> list[Change]:
    """The changes that leave the controller running on ``machine``."""
    return _plan_agent_service(
        machine,
        facts,
        wheelhouse,
        controller_spec(wheelhouse),
        dict(config.environment),
        "controller config",
        config.files,
        "controller NATS user and TLS files",
    )


def plan_secrets_backend(
    machine: str, facts: AgentFacts, wheelhouse: Wheelhouse, config: SecretsBackendConfig
) -> list[Change]:
    """The changes that leave the secrets backend running on ``machine``."""
    return _plan_agent_service(
        machine,
        facts,
        wheelhouse,
        secrets_backend_spec(wheelhouse, config.replicas),
        dict(config.environment),
        "secrets backend config",
        config.files,
        "secrets backend NATS user and TLS files",
    )


def _plan_remove(machine: str, facts: AgentFacts, service: str, what: str) -> list[Change]:
    state = _state(facts, service)
    changes = plan_remove(machine, service, state, facts.machine.systemd)
    commands: list[Command] = []
    if service in facts.leftovers or changes:
        environment = environment_path(service)
        paths = [environment, environment + ".new", state_path(service)]
        commands.append(Shell("rm -rf " + " ".join(shlex.quote(p) for p in paths)))
        commands.append(Shell("rm -f " + " ".join(shlex.quote(p) for p in _secret_paths(service))))
    others = facts.users - {service}
    if facts.agent_dir and not others:
        # Decided again on the machine, under the install lock: another resource may
        # have defined a service using the install since the facts were read.
        commands.append(
            Shell(
                f"[ -d {AGENT_DIR} ] || exit 0; exec 9>>{LOCK}; flock 9; "
                f"used=$(grep -lsF {AGENT_DIR}/ {' '.join(_DEFINITIONS[:2])}; "
                f'for f in {" ".join(_DEFINITIONS[2:])}; do [ -f "$f" ] && echo "$f"; done); '
                f'if [ -z "$used" ]; then rm -rf {AGENT_DIR}; fi'
            )
        )
    if commands:
        commands.append(
            remove_empty_dirs(
                STATE_DIR + "/services", LOG_DIR, "/opt/wasmcloud", CONFIG_DIR, STATE_DIR
            )
        )
        changes.append(Change(f"{what}: remove from {machine}", tuple(commands)))
    return changes


def plan_remove_host_agent(machine: str, facts: AgentFacts, name: str) -> list[Change]:
    """Stop and remove host ``name``'s service, its environment file and state directory;
    and the agent install when no other service of ours uses it."""
    return _plan_remove(machine, facts, host_service(name), f"host {name}")


def plan_remove_controller(machine: str, facts: AgentFacts) -> list[Change]:
    return _plan_remove(machine, facts, CONTROLLER_SERVICE, "controller")


def plan_remove_secrets_backend(machine: str, facts: AgentFacts) -> list[Change]:
    return _plan_remove(machine, facts, SECRETS_BACKEND_SERVICE, "secrets backend")
