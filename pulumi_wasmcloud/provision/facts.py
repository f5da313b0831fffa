"""Read-only probes of a machine: what it is and what of ours it already has.

A ``Fact`` is a command that changes nothing plus a strict parser of its output; the
parsers are pure (tests feed them text), ``probe`` is the one effect. Absence is part of
a probe's output (``absent``), never a failed command, so a command that fails or prints
anything unexpected is an error naming the fact, not a value read as a default.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pulumi_wasmcloud.provision.connector import ProvisionError, SshConnection

T = TypeVar("T")

ABSENT = "absent"
_VERSION = re.compile(r"\d+\.\d+\.\d+")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


class FactError(ProvisionError):
    pass


@dataclass(frozen=True)
class Fact(Generic[T]):
    """``name`` is what errors call it; ``parse`` raises ValueError on unexpected output."""

    name: str
    command: str
    parse: Callable[[str], T]


def probe(connection: SshConnection, fact: Fact[T], timeout: float = 30.0) -> T:
    result = connection.run(fact.command, timeout)
    if result.exit_code != 0:
        said = result.stderr.strip() or result.stdout.strip() or "(no output)"
        raise FactError(
            f"fact {fact.name} on {connection.name}: the probe exited with code "
            f"{result.exit_code}: {said}"
        )
    try:
        return fact.parse(result.stdout)
    except ValueError as e:
        raise FactError(f"fact {fact.name} on {connection.name}: {e}") from None


def probe_many(
    connection: SshConnection, facts: Sequence[Fact[Any]], timeout: float = 60.0
) -> list[Any]:
    """Each fact's value, as ``probe`` gives it, from one command: one round trip for
    them all. After each probe's output comes a line with a random boundary and the
    probe's exit code, so one probe's output cannot pass for another's."""
    boundary = f"--wasmcloud-fact-{secrets.token_hex(8)}"
    script = "; ".join(f'( {fact.command} ); echo "\n{boundary} $?"' for fact in facts)
    result = connection.run(script, timeout)
    rest = result.stdout
    values = []
    for fact in facts:
        output, found, after = rest.partition(f"\n{boundary} ")
        code, _, rest = after.partition("\n")
        if not found or not code.isdigit():
            raise FactError(
                f"fact {fact.name} on {connection.name}: the probe did not finish "
                f"(exit code {result.exit_code}): {result.stderr.strip() or '(no output)'}"
            )
        if code != "0":
            raise FactError(
                f"fact {fact.name} on {connection.name}: the probe exited with code {code}: "
                f"{result.stderr.strip() or output.strip() or '(no output)'}"
            )
        try:
            values.append(fact.parse(output))
        except ValueError as e:
            raise FactError(f"fact {fact.name} on {connection.name}: {e}") from None
    if rest:
        raise FactError(f"facts on {connection.name}: unexpected output after the probes: {rest!r}")
    return values


def _one_line(output: str, what: str) -> str:
    lines = output.splitlines()
    if len(lines) != 1 or not lines[0].strip():
        raise ValueError(f"expected one line with {what}, got {output!r}")
    return lines[0].strip()


# --- OS ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OsRelease:
    id: str  # "debian", "ubuntu", "alpine"
    version_id: str | None  # "12"; rolling releases have none

    def __str__(self) -> str:
        return f"{self.id} {self.version_id}" if self.version_id else self.id


_OS_RELEASE_LINE = re.compile(r"([A-Z][A-Z0-9_]*)=(.*)")


def parse_os_release(output: str) -> OsRelease:
    """os-release(5): KEY=value lines, values optionally quoted; ID is required."""
    values: dict[str, str] = {}
    for line in output.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        matched = _OS_RELEASE_LINE.fullmatch(line)
        if matched is None:
            raise ValueError(f"expected KEY=value lines as in /etc/os-release, got {line!r}")
        key, raw = matched.groups()
        try:
            words = shlex.split(raw)
        except ValueError:
            raise ValueError(f"the value of {key} is not a shell word: {raw!r}") from None
        if len(words) > 1:
            raise ValueError(f"the value of {key} has unquoted spaces: {raw!r}")
        values[key] = words[0] if words else ""
    os_id = values.get("ID", "")
    if not re.fullmatch(r"[a-z0-9._-]+", os_id):
        raise ValueError(f"no valid ID= line in /etc/os-release (got {os_id!r})")
    return OsRelease(os_id, values.get("VERSION_ID") or None)


OS_RELEASE = Fact("os", "cat /etc/os-release", parse_os_release)


# --- architecture --------------------------------------------------------------------


def parse_arch(output: str) -> str:
    arch = _one_line(output, "the machine's architecture (uname -m)")
    if not re.fullmatch(r"[a-z0-9_]+", arch):
        raise ValueError(f"not an architecture name: {arch!r}")
    return arch


ARCH = Fact("arch", "uname -m", parse_arch)


# --- init system -----------------------------------------------------------------------


def parse_systemd_is_init(output: str) -> bool:
    """Whether PID 1 is systemd (from /proc/1/comm)."""
    return _one_line(output, "the name of PID 1") == "systemd"


SYSTEMD_IS_INIT = Fact("systemd", "cat /proc/1/comm", parse_systemd_is_init)


# --- versions --------------------------------------------------------------------------


def parse_python_version(output: str) -> str | None:
    line = _one_line(output, f"a Python version or {ABSENT!r}")
    if line == ABSENT:
        return None
    if not _VERSION.fullmatch(line):
        raise ValueError(f"expected a version like 3.11.2 or {ABSENT!r}, got {line!r}")
    return line


PYTHON = Fact(
    "python",
    "if command -v python3 >/dev/null 2>&1; then "
    "python3 -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])'; "
    f"else echo {ABSENT}; fi",
    parse_python_version,
)


def parse_nats_server_version(output: str) -> str | None:
    """``nats-server --version`` prints ``nats-server: v2.12.1``."""
    line = _one_line(output, f"'nats-server: vX.Y.Z' or {ABSENT!r}")
    if line == ABSENT:
        return None
    matched = re.fullmatch(r"nats-server: v(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)", line)
    if matched is None:
        raise ValueError(f"expected 'nats-server: vX.Y.Z' or {ABSENT!r}, got {line!r}")
    return matched.group(1)


def nats_server_version(binary: str) -> Fact[str | None]:
    """The version of the nats-server at ``binary``; None when there is none."""
    path = shlex.quote(binary)
    return Fact(
        "nats_server_version",
        f"if [ -x {path} ]; then {path} --version; else echo {ABSENT}; fi",
        parse_nats_server_version,
    )


# --- files ---------------------------------------------------------------------------


def parse_sha256(output: str) -> str | None:
    """``sha256sum < file`` prints ``<hex>  -``."""
    line = _one_line(output, f"a sha256 or {ABSENT!r}")
    if line == ABSENT:
        return None
    digest = line.split()[0]
    if not _HEX_SHA256.fullmatch(digest) or line.split()[1:] not in ([], ["-"]):
        raise ValueError(f"expected a sha256 digest or {ABSENT!r}, got {line!r}")
    return digest


def file_sha256(path: str) -> Fact[str | None]:
    """The sha256 of the regular file at ``path``; None when there is none."""
    quoted = shlex.quote(path)
    return Fact(
        f"sha256 of {path}",
        f"if [ -f {quoted} ]; then sha256sum < {quoted}; else echo {ABSENT}; fi",
        parse_sha256,
    )


# --- the machine as a whole ----------------------------------------------------------


@dataclass(frozen=True)
class MachineFacts:
    os: OsRelease
    arch: str
    python: str | None
    systemd: bool


MACHINE_FACTS: tuple[Fact[Any], ...] = (OS_RELEASE, ARCH, PYTHON, SYSTEMD_IS_INIT)


def machine_facts(connection: SshConnection) -> MachineFacts:
    """One round trip."""
    os_release, arch, python, systemd = probe_many(connection, MACHINE_FACTS)
    return MachineFacts(os=os_release, arch=arch, python=python, systemd=systemd)
