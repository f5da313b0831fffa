"""Run a process as a service on a machine: a systemd unit where systemd is PID 1,
otherwise a small POSIX-sh supervisor that restarts it on failure.

The supervisor is started in its own session (``setsid``) with its output in a log, so
it outlives the SSH session that started it; stopping it signals its process group, so
the service goes with it. Both forms have the same states (definition written or not,
running or not), read by one probe, and the planners here are pure: they return only
the changes still needed, so install/start/stop/remove are idempotent.

A service may read its environment from a file (``ServiceSpec.environment_file``, mode
0600 since it holds secrets): systemd's ``EnvironmentFile=``, and the supervisor sources
it (``set -a``) in the subshell that becomes the service, so it is read at every start.
A changed definition or environment of a running service is written beside the one in
use and moved in place only when the service is restarted: a run cut short in between
leaves the old one in place, so the next run still sees the change and restarts it.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from pulumi_wasmcloud.provision.changes import Change, Command, Shell, Upload
from pulumi_wasmcloud.provision.facts import ABSENT, Fact, parse_sha256

SERVICES_DIR = "/var/lib/wasmcloud/services"
LOG_DIR = "/var/log/wasmcloud"
SYSTEMD_DIR = "/etc/systemd/system"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
STOP_SECONDS = 15


@dataclass(frozen=True)
class ServiceSpec:
    """A service ``name`` (``nats-server``; the unit is ``wasmcloud-nats-server``) that
    runs ``argv``, restarted ``restart_seconds`` after it exits with a failure."""

    name: str
    argv: tuple[str, ...]
    description: str
    restart_seconds: int = 2
    # A file of KEY=value lines (render_environment) read at every start; None: none.
    environment_file: str | None = None
    # A directory of its own (0700) made before it starts; removing it is the caller's.
    state_directory: str | None = None

    def __post_init__(self) -> None:
        _check_name(self.name)
        for field_name, path in (
            ("environment_file", self.environment_file),
            ("state_directory", self.state_directory),
        ):
            if path is not None and not re.fullmatch(r"/[A-Za-z0-9_./-]+", path):
                raise ValueError(
                    f"{field_name} of service {self.name}: an absolute path of letters, "
                    f"digits and '_./-', got {path!r}"
                )
        if not self.argv or not self.argv[0].startswith("/"):
            raise ValueError(f"argv of service {self.name}: starts with an absolute path")
        for arg in self.argv:
            if "\n" in arg or "\0" in arg:
                raise ValueError(f"argv of service {self.name}: {arg!r} has a line break")
        if self.restart_seconds < 1:
            raise ValueError(f"restart_seconds of service {self.name}: at least 1")


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"service name {name!r}: lowercase letters, digits and '-', at most 63 characters"
        )


def unit_name(name: str) -> str:
    return f"wasmcloud-{name}"


@dataclass(frozen=True)
class ServiceState:
    definition_sha256: str | None  # of the unit file or the supervisor script
    running: bool
    environment_sha256: str | None = None  # of its environment file, when it has one


# --- layout and rendering (pure) -------------------------------------------------------


def definition_path(name: str, systemd: bool) -> str:
    if systemd:
        return f"{SYSTEMD_DIR}/{unit_name(name)}.service"
    return f"{SERVICES_DIR}/{name}/run"


def _pid_path(name: str) -> str:
    return f"{SERVICES_DIR}/{name}/pid"


def log_path(name: str) -> str:
    """Where a supervised service's output goes (systemd's go to the journal)."""
    return f"{LOG_DIR}/{name}.log"


def _systemd_quote(arg: str) -> str:
    # systemd.service(5) command lines: % and $ are specifiers/variables, doubled to be
    # literal; double quotes group words, with C-style escapes inside.
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[A-Za-z0-9_@+=:,./%$-]+", escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_systemd_unit(spec: ServiceSpec) -> str:
    return "\n".join(
        [
            "# Written by pulumi-wasmcloud; changes here are replaced on the next `up`.",
            "[Unit]",
            f"Description={spec.description}",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            *([f"EnvironmentFile={spec.environment_file}"] if spec.environment_file else []),
            "ExecStart=" + " ".join(_systemd_quote(a) for a in spec.argv),
            "Restart=on-failure",
            f"RestartSec={spec.restart_seconds}",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


def render_supervisor(spec: ServiceSpec) -> str:
    """A POSIX sh supervisor: runs argv, restarts it when it exits non-zero, stops it
    (and itself) on TERM. Its pid, written first, is also its process group's id."""
    pid = shlex.quote(_pid_path(spec.name))
    command = " ".join(shlex.quote(a) for a in spec.argv)
    if spec.environment_file is not None:
        # A subshell that exports the file's variables and becomes the service: the
        # supervisor's own environment stays as it was, and each start reads the file.
        command = f"( set -a; . {shlex.quote(spec.environment_file)}; exec {command} )"
    label = unit_name(spec.name)
    return "\n".join(
        [
            "#!/bin/sh",
            f"# {label}: {spec.description}",
            "# Written by pulumi-wasmcloud: this machine has no systemd, so this script",
            "# supervises the service; changes here are replaced on the next `up`.",
            f"echo $$ > {pid}.tmp && mv -f {pid}.tmp {pid}",
            "child=",
            'stop() { if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; '
            'wait "$child"; fi; ' + f"rm -f {pid}; exit 0; }}",
            "trap stop TERM INT HUP",
            "while :; do",
            f"  {command} &",
            "  child=$!",
            '  wait "$child"',
            "  status=$?",
            f'  if [ "$status" -eq 0 ]; then rm -f {pid}; exit 0; fi',
            f'  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) {label}: exited with status $status; '
            f'restarting in {spec.restart_seconds}s"',
            f"  sleep {spec.restart_seconds} & wait $!",
            "done",
            "",
        ]
    )


def render_definition(spec: ServiceSpec, systemd: bool) -> str:
    return render_systemd_unit(spec) if systemd else render_supervisor(spec)


_ENVIRONMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _environment_value(value: str) -> str:
    # Both systemd's EnvironmentFile= parser and sh read '...' literally, and inside
    # "..." both take a backslash before " \ ` $ as that character.
    if "'" not in value:
        return f"'{value}'"
    return '"' + re.sub(r'(["\\`$])', r"\\\1", value) + '"'


def render_environment(variables: Mapping[str, str]) -> str:
    """An environment file that systemd (``EnvironmentFile=``) and sh (``set -a; .``)
    read the same: ``KEY='value'`` lines, sorted by name."""
    lines = ["# Written by pulumi-wasmcloud (mode 0600: it holds secrets); replaced on `up`."]
    for key, value in sorted(variables.items()):
        if not _ENVIRONMENT_NAME.fullmatch(key):
            raise ValueError(
                f"environment variable name {key!r}: letters, digits and '_', not starting "
                "with a digit"
            )
        if not isinstance(value, str):
            raise ValueError(f"environment variable {key}: expected a string")
        if any(c in value for c in "\n\r\0"):
            raise ValueError(f"environment variable {key}: a value cannot hold a line break")
        lines.append(f"{key}={_environment_value(value)}")
    return "\n".join(lines) + "\n"


# --- the probe -------------------------------------------------------------------------


def parse_service_state(output: str) -> ServiceState:
    lines = output.splitlines()
    if len(lines) != 2 or lines[1] not in ("running", "stopped"):
        raise ValueError(
            f"expected a sha256 (or {ABSENT!r}) and 'running' or 'stopped', got {output!r}"
        )
    return ServiceState(parse_sha256(lines[0]), lines[1] == "running")


def parse_service_state_with_environment(output: str) -> ServiceState:
    lines = output.splitlines()
    if len(lines) != 3:
        raise ValueError(
            f"expected the definition's sha256, 'running' or 'stopped', and the environment "
            f"file's sha256 (or {ABSENT!r} for each), got {output!r}"
        )
    state = parse_service_state("\n".join(lines[:2]))
    return ServiceState(state.definition_sha256, state.running, parse_sha256(lines[2]))


def _digest(path: str) -> str:
    quoted = shlex.quote(path)
    return f"if [ -f {quoted} ]; then sha256sum < {quoted}; else echo {ABSENT}; fi"


def service_state(
    name: str, systemd: bool, environment_file: str | None = None
) -> Fact[ServiceState]:
    """The service's definition, whether it runs, and (given ``environment_file``) the
    sha256 of that file."""
    _check_name(name)
    definition = shlex.quote(definition_path(name, systemd))
    digest = _digest(definition_path(name, systemd))
    if systemd:
        running = f"systemctl is-active --quiet {unit_name(name)}"
    else:
        # The pid must be a live process running this service's script (not a reused pid).
        pid = shlex.quote(_pid_path(name))
        running = (
            f'pid=$(cat {pid} 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null '
            f"&& tr '\\0' ' ' < /proc/$pid/cmdline | grep -qF {definition}"
        )
    command = f"{digest}; if {running}; then echo running; else echo stopped; fi"
    if environment_file is None:
        return Fact(f"service {name}", command, parse_service_state)
    return Fact(
        f"service {name}",
        f"{command}; {_digest(environment_file)}",
        parse_service_state_with_environment,
    )


# --- planners (pure) -------------------------------------------------------------------


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _start(name: str, systemd: bool, before: tuple[str, ...] = ()) -> Command:
    """Start the service; ``before``: commands that must succeed first (moving a new
    definition or environment in place)."""
    first = f"{' && '.join(before)} || exit 1; " if before else ""
    if systemd:
        return Shell(f"{first}systemctl enable --now {unit_name(name)}")
    pid = shlex.quote(_pid_path(name))
    log = shlex.quote(log_path(name))
    run = shlex.quote(definition_path(name, False))
    # setsid -f: a new session, so the supervisor outlives this SSH session; then wait
    # (bounded) until it has written its pid, so a probe right after sees it running.
    return Shell(
        f"{first}mkdir -p {shlex.quote(LOG_DIR)} && rm -f {pid} && "
        f"setsid -f /bin/sh {run} </dev/null >>{log} 2>&1 && "
        f"i=0; while [ ! -s {pid} ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
        f"[ -s {pid} ] || {{ echo 'the supervisor did not start; the end of {log}:' >&2; "
        f"tail -n 20 {log} >&2; exit 1; }}"
    )


def _stop(name: str, systemd: bool) -> Command:
    if systemd:
        return Shell(f"systemctl stop {unit_name(name)}")
    pid = shlex.quote(_pid_path(name))
    # TERM the whole process group (supervisor and service), wait for it to go, and
    # KILL what is left after STOP_SECONDS.
    tries = STOP_SECONDS * 10
    return Shell(
        f'pid=$(cat {pid} 2>/dev/null) || exit 0; [ -n "$pid" ] || exit 0; '
        'kill -TERM "-$pid" 2>/dev/null; '
        f'i=0; while kill -0 "-$pid" 2>/dev/null && [ $i -lt {tries} ]; do '
        "sleep 0.1; i=$((i+1)); done; "
        f'kill -KILL "-$pid" 2>/dev/null; rm -f {pid}; exit 0',
        timeout=STOP_SECONDS + 30,
    )


def main_pid(name: str, systemd: bool, process: str) -> str:
    """A shell snippet that sets ``$pid`` to the service's running ``process`` (the
    program its argv starts, e.g. ``nats-server``), or fails: systemd's main pid, or the
    supervisor's child of that name."""
    _check_name(name)
    if systemd:
        return (
            f"pid=$(systemctl show -p MainPID --value {unit_name(name)}) && "
            '[ -n "$pid" ] && [ "$pid" != 0 ]'
        )
    supervisor = shlex.quote(_pid_path(name))
    comm = shlex.quote(process[:15])  # /proc/<pid>/comm keeps 15 characters
    # Its child of that name, found by scanning /proc (no procps needed): field 4 of
    # /proc/<pid>/stat is the parent's pid (field 2, the name in parentheses, has no
    # spaces for the programs we run).
    return (
        f"sup=$(cat {supervisor}) && pid=; "
        "for d in /proc/[0-9]*; do "
        f'[ "$(cat "$d"/comm 2>/dev/null)" = {comm} ] || continue; '
        'set -- $(cat "$d"/stat 2>/dev/null); [ "$4" = "$sup" ] && pid=${d#/proc/}; done; '
        '[ -n "$pid" ]'
    )


def plan_service(
    machine: str,
    spec: ServiceSpec,
    state: ServiceState,
    systemd: bool,
    restart: bool = False,
    environment: str | None = None,
    environment_label: str | None = None,
    files: Mapping[str, bytes] | None = None,
    file_digests: Mapping[str, str] | None = None,
    files_label: str | None = None,
) -> list[Change]:
    """The changes that leave ``spec`` defined and running on ``machine``; ``restart``
    when what it runs changed (a new binary or config) though its definition did not.
    A spec with an environment file takes its content (``render_environment``) in
    ``environment``; its change is described as ``<environment_label>: update``.
    ``files`` (path -> content) are secret files it reads at start (0600, moved in place
    like the environment), ``file_digests`` the sha256 of those there are now (a path
    there but not wanted is removed); described as ``<files_label>: write``."""
    definition = render_definition(spec, systemd)
    changes: list[Change] = []
    # Moves done right before the (re)start, when the service no longer runs the old.
    before: list[str] = []
    redefined = state.definition_sha256 != _sha256(definition)
    if redefined:
        path = definition_path(spec.name, systemd)
        mode = 0o644 if systemd else 0o755
        commands: list[Command] = []
        if state.running:
            commands.append(Upload(path + ".new", definition.encode(), mode))
            before.append(f"mv -f {shlex.quote(path + '.new')} {shlex.quote(path)}")
            if systemd:
                before.append("systemctl daemon-reload")
        else:
            commands.append(Upload(path, definition.encode(), mode))
            if systemd:
                commands.append(Shell("systemctl daemon-reload"))
        verb = "define" if state.definition_sha256 is None else "redefine"
        changes.append(Change(f"{spec.name} service: {verb} on {machine}", tuple(commands)))
    new_environment = False
    if spec.environment_file is not None:
        if environment is None:
            raise ValueError(f"service {spec.name} reads an environment file: give its content")
        new_environment = state.environment_sha256 != _sha256(environment)
        if new_environment:
            path = spec.environment_file
            verb = "write" if state.environment_sha256 is None else "update"
            label = environment_label or f"{spec.name} environment"
            changes.append(
                Change(
                    f"{label}: {verb} on {machine}",
                    (Upload(path + ".new", environment.encode(), 0o600),),
                )
            )
            before.append(f"mv -f {shlex.quote(path + '.new')} {shlex.quote(path)}")
    new_files = False
    wanted_files = files or {}
    there = file_digests or {}
    uploads: list[Command] = []
    for path in sorted({*wanted_files, *there}):
        data = wanted_files.get(path)
        if data is None:
            before.append(f"rm -f {shlex.quote(path)}")
        elif there.get(path) != _sha256_bytes(data):
            if state.running:
                uploads.append(Upload(path + ".new", data, 0o600))
                before.append(f"mv -f {shlex.quote(path + '.new')} {shlex.quote(path)}")
            else:
                uploads.append(Upload(path, data, 0o600))
        else:
            continue
        new_files = True
    if new_files:
        label = files_label or f"{spec.name} secrets"
        verb = "write" if not there else "replace"
        changes.append(Change(f"{label}: {verb} on {machine}", tuple(uploads) or (Shell("true"),)))
    if spec.state_directory is not None:
        before.append(f"mkdir -p -m 0700 {shlex.quote(spec.state_directory)}")
    if not state.running:
        changes.append(
            Change(
                f"{spec.name} service: start on {machine}",
                (_start(spec.name, systemd, tuple(before)),),
            )
        )
    elif redefined or new_environment or new_files or restart:
        changes.append(
            Change(
                f"{spec.name} service: restart on {machine}",
                (_stop(spec.name, systemd), _start(spec.name, systemd, tuple(before))),
            )
        )
    return changes


def remove_empty_dirs(*paths: str) -> Shell:
    """Remove each directory of ours that is empty by now (in the order given, deepest
    first), so a machine we leave has no trace of us; one still in use stays."""
    quoted = " ".join(shlex.quote(p) for p in paths)
    return Shell(f'for d in {quoted}; do rmdir "$d" 2>/dev/null || true; done')


def plan_stop(machine: str, name: str, state: ServiceState, systemd: bool) -> list[Change]:
    if not state.running:
        return []
    return [Change(f"{name} service: stop on {machine}", (_stop(name, systemd),))]


def plan_remove(machine: str, name: str, state: ServiceState, systemd: bool) -> list[Change]:
    """Stop the service and remove every file of it (definition, pid, log)."""
    if not state.running and state.definition_sha256 is None:
        return []
    commands: list[Command] = []
    if state.running:
        commands.append(_stop(name, systemd))
    if systemd:
        unit = unit_name(name)
        commands += [
            Shell(f"systemctl disable {unit} 2>/dev/null || true"),
            Shell(
                f"rm -f {shlex.quote(definition_path(name, True))} "
                f"{shlex.quote(definition_path(name, True) + '.new')}"
            ),
            Shell("systemctl daemon-reload"),
        ]
    else:
        commands += [
            Shell(f"rm -rf {shlex.quote(f'{SERVICES_DIR}/{name}')} {shlex.quote(log_path(name))}"),
            remove_empty_dirs(SERVICES_DIR, LOG_DIR),
        ]
    return [Change(f"{name} service: remove from {machine}", tuple(commands))]
