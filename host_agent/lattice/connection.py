"""Where a lattice's NATS is and who may connect: the address, the user credentials, and
a first connect that fails plainly when the server refuses them.

The host, its providers and the Pulumi provider all reach NATS this way. A NATS user is a
JWT (signed by the account) and the user's nkey seed: the real host takes them as
``--nats-jwt``/``--nats-seed`` (or a ``.creds`` file holding both) and hands them to the
providers it starts in ``HostData`` (``lattice_rpc_user_jwt``/``lattice_rpc_user_seed``).

TLS (``ClientTls``): the lattice's CA certificate, and for mutual TLS this process's client
certificate and key. They come from files named by ``--tls-ca-path`` /
``WASMCLOUD_TLS_CA_PATH`` and ``WASMCLOUD_NATS_TLS_CERT`` / ``WASMCLOUD_NATS_TLS_KEY`` (never
argv), or in ``HostData`` for providers. With TLS given, a server that does not require TLS
is refused, and a handshake the server rejects is an error naming the cause, not a retry.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import re
import ssl
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats.errors
import nkeys
from nats.aio.client import Client as NatsClient
from nats.aio.client import RawCredentials
from nats.protocol.parser import AUTHORIZATION_VIOLATION

DEFAULT_PORT = 4222
SCHEMES = ("nats", "tls")


class AddressError(ValueError):
    """A NATS URL that does not parse; the message says what to write instead."""


@dataclass(frozen=True)
class NatsAddress:
    """One NATS server: ``nats://host:port``, or ``tls://host:port`` to require TLS."""

    host: str
    port: int = DEFAULT_PORT
    tls: bool = False

    @classmethod
    def parse(cls, url: object) -> NatsAddress:
        if not isinstance(url, str):
            raise AddressError(
                f"expected a string such as nats://127.0.0.1:4222, got {type(url).__name__}"
            )
        example = "e.g. nats://127.0.0.1:4222 or tls://nats.example.com:4222"
        shown = repr(_without_userinfo(url))
        if "," in url:
            raise AddressError(f"{shown} lists several servers; give one NATS URL, {example}")
        if "://" not in url:
            raise AddressError(f"{shown} has no scheme; write it as a URL, {example}")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            reason = str(exc).replace(url, _without_userinfo(url))
            raise AddressError(f"{shown} is not a valid URL ({reason}); {example}") from None
        if parts.scheme not in SCHEMES:
            raise AddressError(
                f"{shown}: scheme {parts.scheme!r} is not supported; use nats:// or tls://"
            )
        if parts.username is not None or parts.password is not None:
            # The URL is kept in plain state and shown in outputs: no secret may ride in it.
            raise AddressError(
                f"{parts.scheme}://...@{parts.hostname}: a user or password in the URL would "
                "be stored and shown in plain text; give the NATS user's .creds as the "
                "secret wasmcloud:credentials (or WASMCLOUD_NATS_CREDS) instead"
            )
        if not parts.hostname:
            raise AddressError(f"{shown} names no host; {example}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise AddressError(f"{shown}: a NATS URL has no path, query or fragment; {example}")
        if port == 0:
            raise AddressError(f"{shown}: port 0 is not a server port; {example}")
        return cls(parts.hostname, DEFAULT_PORT if port is None else port, parts.scheme == "tls")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'tls' if self.tls else 'nats'}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.url


def _without_userinfo(url: str) -> str:
    """``url`` as an error may show it: a user or password before ``@`` left out (it is
    refused anyway, and the refusal must not carry the password into logs or state)."""
    userinfo, at, rest = url.rpartition("@")
    if not at:
        return url
    scheme, sep, _ = userinfo.partition("://")
    return f"{scheme}{sep}...@{rest}" if sep else f"...@{rest}"


class CredentialsError(ValueError):
    """Credentials that are not a NATS user's JWT and seed; the message names the fix."""


_JWT_BLOCK = re.compile(
    r"-{3,}\s*BEGIN NATS USER JWT\s*-{3,}\s*\n\s*(\S+)\s*\n\s*-{3,}\s*END NATS USER JWT\s*-{3,}"
)
_SEED_BLOCK = re.compile(
    r"-{3,}\s*BEGIN USER NKEY SEED\s*-{3,}\s*\n\s*(\S+)\s*\n\s*-{3,}\s*END USER NKEY SEED\s*-{3,}"
)
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _claims(jwt: str) -> dict[str, Any]:
    body = jwt.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        raise CredentialsError("the user JWT's claims are not base64 JSON") from None
    if not isinstance(claims, dict):
        raise CredentialsError("the user JWT's claims are not a JSON object")
    return claims


@dataclass(frozen=True)
class NatsCredentials:
    """A NATS user: its JWT and its nkey seed (``SU...``; secret, never in a repr)."""

    jwt: str
    seed: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _JWT.fullmatch(self.jwt):
            raise CredentialsError(
                "the user JWT is not a JWT (three base64url parts joined by '.'); give the "
                "JWT from the user's .creds file (nsc generate creds)"
            )
        if not self.seed.startswith("SU"):
            raise CredentialsError(
                "the NATS seed must be a user nkey seed starting with 'SU' (the one in the "
                "user's .creds file); got one of another kind"
            )
        try:
            public_key = nkeys.from_seed(bytearray(self.seed.encode())).public_key.decode()
        except Exception:  # nkeys raises several unrelated error types
            raise CredentialsError("the NATS user seed is not a valid nkey seed") from None
        subject = _claims(self.jwt).get("sub")
        if subject != public_key:
            raise CredentialsError(
                f"the user JWT is for {subject!r} but the seed is user {public_key}: the JWT "
                "and the seed must come from the same .creds file"
            )

    @classmethod
    def from_creds(cls, text: str, source: str = "credentials") -> NatsCredentials:
        """Parse the text of a ``.creds`` file (the JWT block, then the seed block)."""
        jwt, seed = _JWT_BLOCK.search(text), _SEED_BLOCK.search(text)
        if jwt is None or seed is None:
            missing = "BEGIN NATS USER JWT" if jwt is None else "BEGIN USER NKEY SEED"
            raise CredentialsError(
                f"{source} is not a NATS .creds file: it has no {missing} block; give "
                "the whole text of the user's .creds file (nsc generate creds)"
            )
        try:
            return cls(jwt.group(1), seed.group(1))
        except CredentialsError as exc:
            raise CredentialsError(f"{source}: {exc}") from None

    def creds(self) -> str:
        """The ``.creds`` file text, as nsc writes it."""
        return (
            f"-----BEGIN NATS USER JWT-----\n{self.jwt}\n------END NATS USER JWT------\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{self.seed}\n------END USER NKEY SEED------\n"
        )


CA_PATH_ENV = "WASMCLOUD_TLS_CA_PATH"
CLIENT_CERT_ENV = "WASMCLOUD_NATS_TLS_CERT"
CLIENT_KEY_ENV = "WASMCLOUD_NATS_TLS_KEY"
DEFAULT_TLS_FIX = (
    "give this process the lattice's CA certificate (--tls-ca-path / WASMCLOUD_TLS_CA_PATH) "
    "and a client certificate and key the lattice's CA issued (WASMCLOUD_NATS_TLS_CERT / "
    "WASMCLOUD_NATS_TLS_KEY); `pulumi up` issues them and renews those due within 30 days"
)


class TlsConfigError(ValueError):
    """TLS settings that cannot work (a missing half, a file that is not PEM); the message
    names the setting and the fix, never a key."""


@dataclass(frozen=True)
class ClientTls:
    """TLS towards NATS: the CA certificate(s) the server's certificate must chain to (a
    bundle may hold the old and the new CA during a CA rotation), and for mutual TLS this
    process's client certificate and key (PEM text; the key never in a repr)."""

    ca_pem: str
    cert_pem: str | None = None
    key_pem: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.ca_pem, str) or "-----BEGIN CERTIFICATE-----" not in self.ca_pem:
            raise TlsConfigError(
                "the TLS CA must be PEM text holding at least one -----BEGIN CERTIFICATE----- "
                "block: give the lattice's CA certificate"
            )
        for name in ("cert_pem", "key_pem"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TlsConfigError(f"the TLS {name} must be PEM text, got {type(value).__name__}")
        if (self.cert_pem is None) != (self.key_pem is None):
            raise TlsConfigError(
                "a TLS client certificate needs its key, and a key its certificate: give both "
                f"({CLIENT_CERT_ENV} and {CLIENT_KEY_ENV}) or neither"
            )

    @classmethod
    def from_files(
        cls,
        ca_files: Sequence[str | Path],
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
    ) -> ClientTls:
        """Read the CA file(s) and the client pair, checking each names what it should:
        certificates that parse, and a key that is the certificate's."""
        from host_agent.security.tls import KeyPairPem, TlsError, check_cert_and_key, expires_at

        if not ca_files:
            raise TlsConfigError(
                "TLS needs the CA certificate that signed the server's certificate: give "
                f"--tls-ca-path or {CA_PATH_ENV}"
            )
        if (cert_file is None) != (key_file is None):
            raise TlsConfigError(
                "a TLS client certificate needs its key, and a key its certificate: give both "
                f"{CLIENT_CERT_ENV} and {CLIENT_KEY_ENV} (or --nats-tls-cert and "
                "--nats-tls-key), or neither"
            )
        cas = [
            _read_pem(path, f"TLS CA file {path} (--tls-ca-path / {CA_PATH_ENV})")
            for path in ca_files
        ]
        try:
            for path, text in zip(ca_files, cas, strict=True):
                expires_at(text, f"TLS CA file {path}")
            if cert_file is None or key_file is None:
                return cls("".join(cas))
            cert = _read_pem(
                cert_file, f"TLS client certificate file {cert_file} ({CLIENT_CERT_ENV})"
            )
            key = _read_pem(key_file, f"TLS client key file {key_file} ({CLIENT_KEY_ENV})")
            check_cert_and_key(
                KeyPairPem(cert, key), f"the TLS client pair ({cert_file}, {key_file})"
            )
        except TlsError as exc:
            raise TlsConfigError(str(exc)) from None
        return cls("".join(cas), cert, key)

    def context(self) -> ssl.SSLContext:
        """A client context: the server's certificate must chain to ``ca_pem`` and name
        the address dialled; this process's certificate is offered when the server asks."""
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=self.ca_pem)
        except ssl.SSLError as exc:
            raise TlsConfigError(
                f"the TLS CA certificate does not load ({exc.reason}); give the lattice's CA "
                "certificate file unchanged"
            ) from None
        if self.cert_pem is not None and self.key_pem is not None:
            with _pem_files(self.cert_pem, self.key_pem) as (cert_path, key_path):
                try:
                    context.load_cert_chain(cert_path, key_path)
                except ssl.SSLError as exc:
                    raise TlsConfigError(
                        f"the TLS client certificate and key do not load together "
                        f"({exc.reason}); give the pair the lattice's CA issued, unchanged"
                    ) from None
        return context


def _read_pem(path: str | Path, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise TlsConfigError(f"cannot read the {what}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TlsConfigError(f"the {what} is not PEM text; give the PEM file") from None


@contextlib.contextmanager
def _pem_files(*texts: str) -> Iterator[list[str]]:
    """``ssl`` loads a certificate and key only from files. The key must not be written to
    disk, so on Linux the files are anonymous memory (memfd) reached through /proc."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fds: list[int] = []
        try:
            for text in texts:
                fd = os.memfd_create("nats-tls", os.MFD_CLOEXEC)
                fds.append(fd)
                with open(fd, "w", closefd=False) as out:
                    out.write(text)
            yield [f"/proc/self/fd/{fd}" for fd in fds]
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="nats-tls-") as folder:  # created 0700
        paths = []
        for index, text in enumerate(texts):
            path = os.path.join(folder, str(index))
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
                out.write(text)
            paths.append(path)
        yield paths


class ConnectionRefused(RuntimeError):
    """The NATS server refused the credentials (or their absence) at the first connect."""

    def __init__(self, who: str, address: str, reason: object, fix: str) -> None:
        super().__init__(f"NATS at {address} refused the {who}'s connection ({reason}): {fix}")


def refused_credentials(error: BaseException) -> bool:
    # nats-server answers a refused CONNECT with `-ERR 'Authorization Violation'`, the
    # protocol's one error for "these credentials (or none) are not accepted"; nats-py
    # passes that line on as the message of a plain nats.errors.Error (and compares it
    # in lower case itself).
    return isinstance(error, nats.errors.AuthorizationError) or (
        isinstance(error, nats.errors.Error) and AUTHORIZATION_VIOLATION in str(error).lower()
    )


def _expired_at(credentials: NatsCredentials | None) -> str | None:
    """When the user JWT expired (UTC), if it has: nats-server then says only
    "Authorization Violation"."""
    expires = _claims(credentials.jwt).get("exp") if credentials is not None else None
    if isinstance(expires, int) and not isinstance(expires, bool) and expires <= time.time():
        return datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return None


class TlsRefused(ConnectionRefused):
    """The TLS handshake with NATS failed for a reason a retry cannot fix: the server refused
    this client's certificate (or its absence), this client does not trust the server's,
    or the server does not use TLS although this client requires it."""

    def __init__(self, who: str, address: str, reason: str, fix: str) -> None:
        RuntimeError.__init__(
            self, f"TLS with NATS at {address} failed for the {who}: {reason}; {fix}"
        )


class _PlaintextServer(nats.errors.Error):
    def __str__(self) -> str:
        return "nats: the server does not require TLS"


class _TlsOnlyClient(NatsClient):
    """nats-py goes on in plain text when the server's INFO does not ask for TLS, even
    when given a TLS context; with TLS settings that would be a silent downgrade (a
    stand-in server could see the connection). This client refuses it, on every connect."""

    async def _process_info(self, info: dict[str, Any], initial_connection: bool = False) -> None:
        if initial_connection and not info.get("tls_required"):
            raise _PlaintextServer()
        await super()._process_info(info, initial_connection)


# What the server's TLS alert says about this client's certificate (OpenSSL's reason
# names; Go's crypto/tls sends unknown_ca, certificate_expired, certificate_required or
# bad_certificate for a client certificate it refuses).
_ALERTS = (
    ("CERTIFICATE_REQUIRED", "it requires a client certificate and none was offered"),
    ("UNKNOWN_CA", "it does not trust the CA that signed this client's certificate"),
    ("CERTIFICATE_EXPIRED", "it finds this client's certificate expired (or not yet valid)"),
    ("HANDSHAKE_FAILURE", "it rejected the handshake (it requires a client certificate)"),
    ("BAD_CERTIFICATE", "it rejected this client's certificate"),
    ("CERTIFICATE_UNKNOWN", "it rejected this client's certificate"),
    ("UNSUPPORTED_CERTIFICATE", "it cannot use this client's certificate"),
)
_ACCEPTED = "accepted"


def _server_verdict(error: BaseException) -> str | None:
    if not isinstance(error, ssl.SSLError):
        return None
    text = f"{error.reason} {error}".upper()
    return next((verdict for alert, verdict in _ALERTS if alert in text), None)


def _local_finding(tls: ClientTls) -> str | None:
    """What is wrong with this client's own certificate, as far as it can tell: none, or
    expired / not yet valid / not signed by the CA it trusts itself."""
    from host_agent.security.tls import KeyPairPem, TlsError, check_pair

    if tls.cert_pem is None or tls.key_pem is None:
        return f"this client has no certificate ({CLIENT_CERT_ENV} / {CLIENT_KEY_ENV} unset)"
    try:
        check_pair(KeyPairPem(tls.cert_pem, tls.key_pem), tls.ca_pem, "CLIENT", datetime.now(UTC))
    except TlsError as exc:
        finding = str(exc).split("; ")[0]
        return finding.replace("CLIENT.cert_pem", "this client's certificate").replace(
            "CLIENT.key_pem", "this client's key"
        )
    return None


async def _probe(address: NatsAddress, tls: ClientTls, timeout: float) -> str | None:
    """The server's verdict on this client's certificate, from a TLS 1.2 handshake: there
    the server judges the client certificate inside the handshake and says why with an
    alert. (Under TLS 1.3 it judges after the client finished, and its alert is often lost
    in the reset of the connection.) None: no verdict (unreachable, or TLS 1.2 refused)."""
    context = tls.context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address.host, address.port), timeout
        )
    except (OSError, TimeoutError):
        return None
    try:
        if not (await asyncio.wait_for(reader.readline(), timeout)).startswith(b"INFO"):
            return None
        await asyncio.wait_for(writer.start_tls(context, server_hostname=address.host), timeout)
        return _ACCEPTED
    except ssl.SSLError as exc:
        return _server_verdict(exc)
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), timeout)


async def tls_refusal(
    error: BaseException, address: NatsAddress, tls: ClientTls | None, timeout: float = 2.0
) -> str | None:
    """Why a failed first connect is a TLS refusal no retry can fix, or None when it is
    not one (an unreachable server, say)."""
    if isinstance(error, _PlaintextServer):
        return (
            "the server does not use TLS, and this client was given TLS settings, so it "
            "will not talk to it in plain text (a stand-in server could be listening); "
            "check the address, or the server's tls { } settings"
        )
    if isinstance(error, ssl.SSLCertVerificationError) and tls is None:
        return (
            f"the server requires TLS and this client has no CA to check its certificate "
            f"against ({error.verify_message})"
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"this client does not trust the server's certificate ({error.verify_message}): "
            "the server's certificate must be signed by the CA given in --tls-ca-path / "
            f"{CA_PATH_ENV} and name the address dialled ({address.host}) among its DNS "
            "names or IP addresses"
        )
    if tls is None:
        return None
    verdict = _server_verdict(error)
    if verdict is None and isinstance(
        error, ConnectionResetError | BrokenPipeError | nats.errors.UnexpectedEOF
    ):
        # Under TLS 1.3 a refused client certificate looks like a reset right after the
        # handshake. Ask again in a way that gets the server's reason; a handshake that
        # now succeeds means the reset was something else, and nats-py retries it.
        verdict = await _probe(address, tls, timeout)
        if verdict == _ACCEPTED:
            return None
    if verdict is None:
        return None
    finding = _local_finding(tls)
    return f"the server refused the handshake: {verdict}" + (f" ({finding})" if finding else "")


async def connect_nats(
    address: NatsAddress,
    credentials: NatsCredentials | None,
    *,
    who: str,
    fix: str,
    tls: ClientTls | None = None,
    tls_fix: str = DEFAULT_TLS_FIX,
    **options: Any,
) -> NatsClient:
    """``nats.connect`` to ``address`` as ``credentials`` (over TLS with ``tls``), retrying
    an unreachable server as ``options`` say, but raising ``ConnectionRefused`` (naming
    ``fix``) at once when the server refuses the credentials, and ``TlsRefused`` (naming
    ``tls_fix``) when the TLS handshake cannot succeed: nats-py would retry those forever."""
    nc = NatsClient() if tls is None else _TlsOnlyClient()
    connecting = True
    # Without an error_cb, errors are logged as nats-py logs them by default (a
    # permissions violation, say), not dropped.
    on_error = options.pop("error_cb", None) or _log_error
    # A caller holding only a .creds path (the controller) passes nats-py's own option.
    user_credentials = options.pop("user_credentials", None)
    if credentials is not None:
        user_credentials = RawCredentials(credentials.creds())
    if tls is not None:
        options["tls"] = tls.context()

    async def errors(error: Exception) -> None:
        if connecting and refused_credentials(error):
            expired = _expired_at(credentials)
            if expired is not None:  # the one cause the client can tell by itself
                raise ConnectionRefused(
                    who,
                    address.url,
                    f"its user JWT expired at {expired}",
                    "give it a new user JWT (`pulumi up` issues new ones for the users it made)",
                )
            raise ConnectionRefused(who, address.url, error, fix)
        if connecting:
            refusal = await tls_refusal(error, address, tls)
            if refusal is not None:
                raise TlsRefused(who, address.url, refusal, tls_fix)
        await on_error(error)

    try:
        await nc.connect(
            address.url,
            user_credentials=user_credentials,
            error_cb=errors,
            **options,
        )
    except TlsRefused:
        _abort(nc)
        raise
    except ConnectionRefused:
        await nc.close()
        raise
    connecting = False
    return nc


async def _log_error(error: Exception) -> None:
    logging.getLogger("nats.aio.client").error("nats: encountered error", exc_info=error)


def _abort(nc: NatsClient) -> None:
    """Close the socket of a connect whose TLS handshake failed. nats-py's own close
    would wait forever there: the stream it waits on handed its socket to the failed TLS
    layer and never hears that the socket closed."""
    writer = getattr(getattr(nc, "_transport", None), "_io_writer", None)
    if writer is not None:
        writer.transport.abort()


async def settle(nc: Any, timeout: float = 10.0) -> None:
    """Return once the server has every command written so far on ``nc`` (a SUB just
    made included). nats-py's ``flush()`` alone does not promise that: it writes its PING
    straight to the socket, ahead of commands still waiting in the client's buffer for
    its flusher task, so the PONG can come back before the server has seen a new
    subscription, and another connection's request to it gets "no responders".
    Raises nats-py's ``FlushTimeoutError`` when that takes longer than ``timeout``."""
    started = time.monotonic()
    try:
        # The buffer is on the socket. nats-py bounds this wait only by its connect
        # option flush_timeout, which is unset unless given: bound it here.
        await asyncio.wait_for(nc._flush_pending(force_flush=True), timeout)
    except TimeoutError:
        raise nats.errors.FlushTimeoutError from None
    await nc.flush(timeout=max(0.001, timeout - (time.monotonic() - started)))
