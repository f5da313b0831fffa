"""Where a lattice's NATS is and who may connect: the address, the user credentials, and
a first connect that fails plainly when the server refuses them.

The host, its providers and the Pulumi provider all reach NATS this way. A NATS user is a
JWT (signed by the account) and the user's nkey seed: the real host takes them as
``--nats-jwt``/``--nats-seed`` (or a ``.creds`` file holding both) and hands them to the
providers it starts in ``HostData`` (``lattice_rpc_user_jwt``/``lattice_rpc_user_seed``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
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


async def connect_nats(
    address: NatsAddress,
    credentials: NatsCredentials | None,
    *,
    who: str,
    fix: str,
    **options: Any,
) -> NatsClient:
    """``nats.connect`` to ``address`` as ``credentials``, retrying an unreachable server
    as ``options`` say, but raising ``ConnectionRefused`` (naming ``fix``) at once when
    the server refuses the credentials: nats-py would otherwise retry that forever."""
    nc = NatsClient()
    connecting = True
    on_error = options.pop("error_cb", None)

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
        if on_error is not None:
            await on_error(error)

    try:
        await nc.connect(
            address.url,
            user_credentials=RawCredentials(credentials.creds()) if credentials else None,
            error_cb=errors,
            **options,
        )
    except ConnectionRefused:
        await nc.close()
        raise
    connecting = False
    return nc
