"""One SSH connection to one machine (paramiko), with the failures a user can act on.

The host key is verified before we authenticate: a machine is trusted only when it shows
the key we were given (``known_host_key``, the key recorded in state), unless the caller
opts out explicitly with ``verify_host_key=False``, or has no key yet and records the one
shown (``record_host_key``: the Pulumi provider keeps it in state and verifies every
later connection against it); the keys shown are in ``SshConnection.host_keys_seen()``.
Connection failures (refused, no route, timeouts, a handshake cut short) are retried a
bounded number of times; a refused host key or key login is never retried, since
retrying cannot fix it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import paramiko

DEFAULT_PORT = 22


class ProvisionError(Exception):
    """A failure on a machine, said as a sentence that names the machine and the fix."""


class Unreachable(ProvisionError):
    pass


class AuthenticationFailed(ProvisionError):
    pass


class HostKeyRefused(ProvisionError):
    pass


class CommandTimedOut(ProvisionError):
    pass


class ConnectionLost(ProvisionError):
    pass


class CommandFailed(ProvisionError):
    """A command exited non-zero; its output is in the message and in ``result``."""

    def __init__(self, machine: str, command: str, result: CommandResult) -> None:
        self.machine = machine
        self.command = command
        self.result = result
        output = (result.stderr.strip() or result.stdout.strip() or "(no output)")[-4000:]
        super().__init__(
            f"`{command}` failed on {machine} with exit code {result.exit_code}: {output}"
        )


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str


def parse_public_key(line: str, field_name: str) -> paramiko.PKey:
    """An OpenSSH public key line (``ssh-ed25519 AAAA... [comment]``); ``field_name`` is
    what a refusal names."""
    parts = line.split()
    if len(parts) < 2:
        raise ValueError(
            f"{field_name}: expected an OpenSSH public key line "
            f"('ssh-ed25519 AAAA...'), got {line!r}"
        )
    key_type, blob = parts[0], parts[1]
    try:
        data = base64.b64decode(blob, validate=True)
        return paramiko.PKey.from_type_string(key_type, data)
    except (binascii.Error, paramiko.SSHException, ValueError) as e:
        raise ValueError(f"{field_name}: not a valid {key_type} public key ({e})") from None


def parse_private_key(text: str, field_name: str) -> paramiko.PKey:
    """An unencrypted private key in OpenSSH or PEM form (ed25519, ECDSA or RSA)."""
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except paramiko.PasswordRequiredException:
            raise ValueError(
                f"{field_name}: the private key is encrypted; give it decrypted "
                "(from a secret) instead"
            ) from None
        except (paramiko.SSHException, ValueError, IndexError, TypeError):
            continue
    raise ValueError(
        f"{field_name}: not an unencrypted ed25519, ECDSA or RSA private key in OpenSSH or PEM form"
    )


def public_key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


# The host key algorithms that present a key of each type (RSA keys sign in three ways).
_HOST_KEY_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


@dataclass(frozen=True)
class SshTarget:
    """How to reach one machine. ``name`` is how errors and previews call it."""

    name: str
    host: str
    private_key: str = field(repr=False)
    user: str = "root"
    port: int = DEFAULT_PORT
    known_host_key: str | None = None
    verify_host_key: bool = True
    bastion: SshTarget | None = None
    # Run commands through `sudo -n` (a NOPASSWD rule); by default when not root.
    sudo: bool | None = None
    # No key known yet and the caller records the one shown (the Pulumi provider keeps it
    # in state and verifies every later connection against it): accepted once, then
    # `SshConnection.host_keys_seen` says what to record.
    record_host_key: bool = False
    connect_timeout: float = 10.0
    attempts: int = 3
    retry_delay: float = 1.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: a machine needs a name for previews and errors")
        if not 0 < self.port < 65536:
            raise ValueError(f"port of {self.name}: {self.port} is not a TCP port")
        if self.attempts < 1:
            raise ValueError(f"attempts of {self.name}: must be at least 1")
        if self.connect_timeout <= 0:
            raise ValueError(f"connect_timeout of {self.name}: must be positive")
        if self.verify_host_key and self.known_host_key is None and not self.record_host_key:
            raise ValueError(
                f"known_host_key of {self.name}: give the machine's host key "
                "(`ssh-keyscan` it and check the fingerprint out of band), or set "
                "verify_host_key to false to accept whatever key it shows"
            )
        if self.known_host_key is not None:
            parse_public_key(self.known_host_key, f"known_host_key of {self.name}")
        parse_private_key(self.private_key, f"private_key for {self.name}")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def uses_sudo(self) -> bool:
        return self.sudo if self.sudo is not None else self.user != "root"


class SshConnection:
    """An authenticated SSH session to one machine. ``run`` and ``put_file`` are the
    only effects; ``commands_run`` counts them (a converged machine runs none)."""

    def __init__(
        self,
        target: SshTarget,
        transport: paramiko.Transport,
        bastion: SshConnection | None,
    ) -> None:
        self.target = target
        self.name = target.name
        self._transport = transport
        self._bastion = bastion
        key = transport.get_remote_server_key()
        self.host_key = public_key_line(key)
        self.host_key_fingerprint = key.fingerprint
        self.commands_run = 0

    @classmethod
    def connect(cls, target: SshTarget) -> SshConnection:
        """Connect (through the bastion if any), verify the host key, log in with the key.
        Retries connection failures ``target.attempts`` times; raises ``Unreachable``,
        ``HostKeyRefused`` or ``AuthenticationFailed``."""
        bastion = cls.connect(target.bastion) if target.bastion is not None else None
        try:
            transport = _connect_with_retries(target, bastion)
        except BaseException:
            if bastion is not None:
                bastion.close()
            raise
        connection = cls(target, transport, bastion)
        if target.uses_sudo:
            try:
                connection._check_sudo()
            except BaseException:
                connection.close()
                raise
        return connection

    def host_keys_seen(self) -> dict[str, str]:
        """The host key each machine on the way showed (the bastions', then this one's),
        by machine name: what a caller records after a first connection."""
        seen = self._bastion.host_keys_seen() if self._bastion is not None else {}
        return {**seen, self.name: self.host_key}

    def _check_sudo(self) -> None:
        allowed = self.run("true")
        if allowed.exit_code != 0:
            said = allowed.stderr.strip() or allowed.stdout.strip() or "(no output)"
            raise AuthenticationFailed(
                f"{self.target.user} on {self.name} cannot use sudo without a password "
                f"({said}). Give that user a NOPASSWD sudoers rule, or log in as root."
            )

    def __enter__(self) -> SshConnection:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()
        if self._bastion is not None:
            self._bastion.close()

    def open_tunnel(self, host: str, port: int, timeout: float) -> paramiko.Channel:
        """A TCP connection from this machine to ``host:port`` (for a machine behind it)."""
        return self._transport.open_channel(
            "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout
        )

    def run(self, command: str, timeout: float = 120.0, stdin: bytes = b"") -> CommandResult:
        """Run ``command`` with ``sh``, through ``sudo -n`` when the target uses sudo; its
        exit code and output. Raises ``CommandTimedOut`` when it has not finished within
        ``timeout`` seconds and ``ConnectionLost`` when the connection drops before it
        finishes. Counted in ``commands_run`` (probes and the sudo check too)."""
        self.commands_run += 1
        deadline = time.monotonic() + timeout
        try:
            channel = self._transport.open_session(timeout=min(timeout, 30.0))
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise self._lost(command, e) from None
        try:
            return self._exchange(channel, command, stdin, deadline, timeout)
        finally:
            channel.close()

    def _exchange(
        self,
        channel: paramiko.Channel,
        command: str,
        stdin: bytes,
        deadline: float,
        timeout: float,
    ) -> CommandResult:
        stdout: list[bytes] = []
        stderr: list[bytes] = []
        channel.settimeout(max(deadline - time.monotonic(), 0.001))
        # stderr is read beside stdout so a command that fills one pipe never blocks.
        stderr_reader = threading.Thread(
            target=_read_until_timeout, args=(channel.recv_stderr, stderr), daemon=True
        )
        # Every command runs in `sh` whatever the login shell is, as root through sudo
        # when the login is not root.
        wrapped = f"sh -c {shlex.quote(command)}"
        if self.target.uses_sudo:
            wrapped = f"sudo -n -- {wrapped}"
        try:
            channel.exec_command(wrapped)
            stderr_reader.start()
            # In pieces: paramiko's sendall copies what is left after each packet it
            # sends (quadratic: 0.6 s of CPU for one 17 MB upload in one piece).
            for start in range(0, len(stdin), 65536):
                channel.sendall(stdin[start : start + 65536])
            channel.shutdown_write()
            _read_all(channel.recv, stdout)
            stderr_reader.join(max(deadline - time.monotonic(), 0.001))
            finished = channel.status_event.wait(max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            finished = False
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise self._lost(command, e) from None
        if not finished or stderr_reader.is_alive():
            raise CommandTimedOut(
                f"`{_short(command)}` did not finish on {self.name} within {timeout:g}s; "
                "it may still be running there. Look at the machine, then re-run."
            )
        status = channel.recv_exit_status()
        if status == -1:
            raise self._lost(command, None)
        return CommandResult(
            status,
            b"".join(stdout).decode(errors="replace"),
            b"".join(stderr).decode(errors="replace"),
        )

    def _lost(self, command: str, cause: BaseException | None) -> ConnectionLost:
        why = f": {_cause(cause)}" if cause is not None else ""
        return ConnectionLost(
            f"the SSH connection to {self.name} ({self.target.address}) dropped while "
            f"running `{_short(command)}`{why}. Re-run: what was done is kept, the rest is "
            "done then."
        )

    def check(self, command: str, timeout: float = 120.0, stdin: bytes = b"") -> CommandResult:
        """``run``, raising ``CommandFailed`` (with its output) on a non-zero exit."""
        result = self.run(command, timeout, stdin)
        if result.exit_code != 0:
            raise CommandFailed(self.name, _short(command), result)
        return result

    def put_file(self, data: bytes, path: str, mode: int, timeout: float = 300.0) -> None:
        """Write ``data`` to ``path`` with ``mode``, atomically: readers see the old file or
        the new one, never a part (a temporary file beside it, renamed over it)."""
        if not path.startswith("/"):
            raise ValueError(f"{path}: a file on {self.name} is named by its absolute path")
        quoted = shlex.quote(path)
        directory = shlex.quote(path.rsplit("/", 1)[0] or "/")
        script = (
            f"set -e; mkdir -p {directory}; "
            f"tmp=$(mktemp {shlex.quote(path + '.')}XXXXXX); "
            "trap 'rm -f \"$tmp\"' EXIT; "
            f'cat > "$tmp"; chmod {mode:o} "$tmp"; mv -f "$tmp" {quoted}; trap - EXIT'
        )
        result = self.run(script, timeout, stdin=data)
        if result.exit_code != 0:
            raise CommandFailed(self.name, f"write {path}", result)


def _read_all(receive: Callable[[int], bytes], into: list[bytes]) -> None:
    while chunk := receive(65536):
        into.append(chunk)


def _read_until_timeout(receive: Callable[[int], bytes], into: list[bytes]) -> None:
    # A reader thread that outlives the deadline shows as alive; the caller reports that.
    with contextlib.suppress(TimeoutError, OSError, EOFError, paramiko.SSHException):
        _read_all(receive, into)


def _short(command: str) -> str:
    return command if len(command) <= 200 else command[:197] + "..."


def _cause(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    text = str(error).strip()
    return text or type(error).__name__


def _connect_with_retries(target: SshTarget, bastion: SshConnection | None) -> paramiko.Transport:
    last: BaseException | None = None
    for attempt in range(target.attempts):
        if attempt:
            time.sleep(target.retry_delay)  # a back-off between attempts, not a wait for an event
        try:
            sock = _open_socket(target, bastion)
        except (OSError, paramiko.SSHException) as e:
            last = e
            continue
        transport = paramiko.Transport(sock)
        try:
            _handshake(target, transport)
            return transport
        except (HostKeyRefused, AuthenticationFailed):
            transport.close()
            raise
        except (OSError, EOFError, paramiko.SSHException) as e:
            transport.close()
            last = e
    via = f" through {target.bastion.name}" if target.bastion is not None else ""
    assert last is not None
    raise Unreachable(
        f"cannot reach {target.name} at {target.address}{via}: {_cause(last)} "
        f"({target.attempts} attempt{'s' if target.attempts != 1 else ''}, "
        f"{target.connect_timeout:g}s timeout each). Check that "
        f"the machine is up, that sshd listens on port {target.port}, and that the address "
        "is routable from here."
    )


def _open_socket(
    target: SshTarget, bastion: SshConnection | None
) -> socket.socket | paramiko.Channel:
    if bastion is None:
        return socket.create_connection((target.host, target.port), timeout=target.connect_timeout)
    try:
        return bastion.open_tunnel(target.host, target.port, target.connect_timeout)
    except paramiko.ChannelException as e:
        # The bastion's sshd says why it could not connect onward (refused, no route...).
        raise OSError(f"{bastion.name} could not connect onward: {e.text}") from None


def _handshake(target: SshTarget, transport: paramiko.Transport) -> None:
    transport.banner_timeout = target.connect_timeout
    transport.handshake_timeout = target.connect_timeout
    transport.auth_timeout = target.connect_timeout
    known = (
        parse_public_key(target.known_host_key, f"known_host_key of {target.name}")
        if target.known_host_key is not None
        else None
    )
    if known is not None and target.verify_host_key:
        # Ask only for the recorded key's type, so a machine with several host keys shows
        # the one we can compare.
        wanted = _HOST_KEY_ALGORITHMS.get(known.get_name(), (known.get_name(),))
        options = transport.get_security_options()
        options.key_types = tuple(k for k in options.key_types if k in wanted) or wanted
    try:
        transport.start_client(timeout=target.connect_timeout)
    except paramiko.SSHException as e:
        if known is not None and target.verify_host_key and "host key" in str(e).lower():
            raise HostKeyRefused(
                f"refused: {target.name} shows no {known.get_name()} host key, the type of "
                f"its known key {known.fingerprint}; its host keys changed. If that was "
                "expected, give its new key as known_host_key."
            ) from None
        raise
    shown = transport.get_remote_server_key()
    if known is not None and target.verify_host_key and shown != known:
        raise HostKeyRefused(
            f"refused: host key of {target.name} changed from {known.fingerprint} to "
            f"{shown.fingerprint}. If the machine was reinstalled, check the new key out of "
            "band and give it as known_host_key; otherwise something is answering in its "
            f"place at {target.address}."
        )
    key = parse_private_key(target.private_key, f"private_key for {target.name}")
    try:
        remaining = transport.auth_publickey(target.user, key)
    except paramiko.AuthenticationException as e:
        raise AuthenticationFailed(
            f"{target.name} refused the login as {target.user} with key {key.fingerprint} "
            f"({_cause(e)}). Add the key's public half to ~{target.user}/.ssh/authorized_keys "
            "on the machine, or give the key it has."
        ) from None
    if remaining or not transport.is_authenticated():
        raise AuthenticationFailed(
            f"{target.name} wants more than a key to log in as {target.user} "
            f"(also: {', '.join(remaining)}); allow key-only logins for that user."
        )
