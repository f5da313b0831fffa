"""NATS JWTs (version 2, as nats-io/jwt v2 defines them and nats-server 2.x checks them),
encoded and decoded with nkeys; pure but for the randomness of new keys.

A JWT is ``base64url(header).base64url(claims).base64url(ed25519 signature)`` with the
header ``{"typ": "JWT", "alg": "ed25519-nkey"}``; the signature covers the first two parts
and is made with the issuer's nkey seed. The claims carry the registered fields (``iss``,
``sub``, ``iat``, ``exp``, ``jti``, ``name``) and a ``nats`` object whose ``type`` says
what the subject is (``operator``, ``account`` or ``user``) and ``version`` is 2.

Claim builders here make exactly the shapes nats-server reads; no Python library issues
NATS JWTs, hence this module. Decoding is strict: a claim of the wrong type is refused
with its name, never read as a default.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nacl.exceptions
import nacl.signing
import nkeys

HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
CLAIMS_VERSION = 2
NO_LIMIT = -1

# nkey public key prefixes (the first letter of the base32 text) and seed prefixes.
OPERATOR_PREFIX = "O"
ACCOUNT_PREFIX = "A"
USER_PREFIX = "U"
_SEED_PREFIX_BYTES = {
    OPERATOR_PREFIX: nkeys.PREFIX_BYTE_OPERATOR,
    ACCOUNT_PREFIX: nkeys.PREFIX_BYTE_ACCOUNT,
    USER_PREFIX: nkeys.PREFIX_BYTE_USER,
}
_KINDS = {OPERATOR_PREFIX: "operator", ACCOUNT_PREFIX: "account", USER_PREFIX: "user"}


class JwtError(ValueError):
    """A JWT or nkey that is not what it must be; the message names the field."""


@dataclass(frozen=True)
class Permissions:
    """What a NATS user may publish and subscribe to (nats-server's user permissions).

    An empty allow list means "everything" to nats-server, so a role always lists what it
    may do; ``allow_responses`` lets the user publish once to the reply subject of each
    request it received (a service answering requests it cannot otherwise publish to)."""

    pub_allow: tuple[str, ...]
    pub_deny: tuple[str, ...] = ()
    sub_allow: tuple[str, ...] = ()
    sub_deny: tuple[str, ...] = ()
    allow_responses: bool = False

    def claims(self) -> dict[str, Any]:
        """The ``pub``/``sub``/``resp`` part of a user JWT's ``nats`` claims."""
        claims: dict[str, Any] = {
            "pub": _subject_list(self.pub_allow, self.pub_deny),
            "sub": _subject_list(self.sub_allow, self.sub_deny),
        }
        if self.allow_responses:
            # One reply per request, no time limit (ttl 0), as `nsc --allow-pub-response`.
            claims["resp"] = {"max": 1, "ttl": 0}
        return claims

    def merged(self, other: Permissions) -> Permissions:
        """Both sets of permissions in one (each list in order, without repeats)."""
        return Permissions(
            pub_allow=_unique(self.pub_allow + other.pub_allow),
            pub_deny=_unique(self.pub_deny + other.pub_deny),
            sub_allow=_unique(self.sub_allow + other.sub_allow),
            sub_deny=_unique(self.sub_deny + other.sub_deny),
            allow_responses=self.allow_responses or other.allow_responses,
        )


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _subject_list(allow: Sequence[str], deny: Sequence[str]) -> dict[str, list[str]]:
    listed: dict[str, list[str]] = {}
    if allow:
        listed["allow"] = list(allow)
    if deny:
        listed["deny"] = list(deny)
    return listed


# Keys -----------------------------------------------------------------------------------


def new_seed(kind: str, entropy: bytes) -> str:
    """A new nkey seed of ``kind`` (``O``, ``A`` or ``U``) from 32 random bytes."""
    if len(entropy) != 32:
        raise JwtError("an nkey seed needs exactly 32 random bytes")
    return bytes(nkeys.encode_seed(entropy, _SEED_PREFIX_BYTES[kind])).decode()


def public_key(seed: str, field: str, kind: str | None = None) -> str:
    """The public key of the nkey seed ``seed``; ``kind`` (``O``/``A``/``U``) when only
    that kind of key will do. The seed itself never appears in an error."""
    if not isinstance(seed, str):
        raise JwtError(f"{field} must be an nkey seed (a string), got {type(seed).__name__}")
    try:
        key = bytes(nkeys.from_seed(bytearray(seed.encode())).public_key).decode()
    except Exception:  # nkeys raises several unrelated error types
        raise JwtError(f"{field} is not a valid nkey seed") from None
    if kind is not None and not key.startswith(kind):
        raise JwtError(
            f"{field} must be an {_KINDS[kind]} nkey seed (S{kind}...), got one of another kind"
        )
    return key


def check_public_key(key: object, field: str, kind: str) -> str:
    """``key`` if it is a valid nkey public key of ``kind``; else a JwtError naming ``field``."""
    if not isinstance(key, str):
        raise JwtError(f"{field} must be an nkey public key (a string), got {type(key).__name__}")
    if not key.startswith(kind) or len(key) != 56:
        raise JwtError(f"{field} must be an {_KINDS[kind]} public key ({kind}... 56 characters)")
    _verify_key(key, field)
    return key


def _verify_key(key: str, field: str) -> nacl.signing.VerifyKey:
    """The ed25519 key inside an nkey public key: base32 of a prefix byte, the 32 key
    bytes and a CRC16 (little endian) of both."""
    try:
        raw = base64.b32decode(key + "=" * (-len(key) % 8))
    except (binascii.Error, ValueError):
        raise JwtError(f"{field} is not an nkey public key (not base32)") from None
    if len(raw) != 35 or nkeys.crc16_checksum(raw[:-2]) != raw[-2:]:
        raise JwtError(f"{field} is not a valid nkey public key (bad length or checksum)")
    if not nkeys.valid_public_prefix_byte(raw[0]):
        raise JwtError(f"{field} is not an nkey public key (unknown prefix)")
    return nacl.signing.VerifyKey(raw[1:33])


# Encoding ---------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str, field: str, part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise JwtError(f"{field}: the JWT's {part} is not base64url") from None


def _claims_id(claims: Mapping[str, Any]) -> str:
    # nats-io/jwt v2: the base32 (unpadded) SHA-512/256 hash of the claims with an empty jti.
    body = json.dumps(
        {k: v for k, v in claims.items() if k != "jti"}, sort_keys=True, separators=(",", ":")
    )
    digest = hashlib.new("sha512_256", body.encode()).digest()
    return base64.b32encode(digest).decode().rstrip("=")


def encode_jwt(signer_seed: str, claims: dict[str, Any]) -> str:
    """``claims`` signed by ``signer_seed`` (whose public key must be the claims' ``iss``);
    ``jti`` is filled in."""
    issuer = public_key(signer_seed, "the signing seed")
    if claims.get("iss") != issuer:
        raise JwtError(f"claims.iss is {claims.get('iss')!r} but the signing seed is {issuer}")
    body = {**claims, "jti": _claims_id(claims)}
    head = _b64(json.dumps(HEADER, separators=(",", ":")).encode())
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    signer = nkeys.from_seed(bytearray(signer_seed.encode()))
    signature = _b64(signer.sign(f"{head}.{payload}".encode()))
    return f"{head}.{payload}.{signature}"


def _parts(jwt: object, field: str) -> tuple[str, str, str]:
    if not isinstance(jwt, str):
        raise JwtError(f"{field} must be a JWT (a string), got {type(jwt).__name__}")
    parts = jwt.strip().split(".")
    if len(parts) != 3 or not all(parts):
        raise JwtError(f"{field} is not a JWT (three base64url parts joined by '.')")
    return parts[0], parts[1], parts[2]


def _int(claims: Mapping[str, Any], name: str, field: str) -> int | None:
    value: object = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise JwtError(f"{field}: claim {name} must be an integer, got {type(value).__name__}")
    return value


def _str(claims: Mapping[str, Any], name: str, field: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        shown = "missing" if value is None else f"a {type(value).__name__}"
        raise JwtError(f"{field}: claim {name} must be a non-empty string, got {shown}")
    return value


def decode_claims(jwt: str, field: str) -> dict[str, Any]:
    """The claims of ``jwt`` (signature NOT checked: see ``verify_jwt``), checked strictly:
    the header is ed25519-nkey, ``iss``/``sub`` are strings, ``iat``/``exp``/``nbf`` are
    integers, ``nats`` is an object with a string ``type`` and ``version`` 2."""
    head, body, _ = _parts(jwt, field)
    try:
        header = json.loads(_unb64(head, field, "header"))
        claims = json.loads(_unb64(body, field, "claims"))
    except json.JSONDecodeError:
        raise JwtError(f"{field}: the JWT's header or claims are not JSON") from None
    if not isinstance(header, dict) or str(header.get("typ", "")).upper() != "JWT":
        raise JwtError(f"{field}: the JWT header's typ must be JWT")
    if header.get("alg") != HEADER["alg"]:
        raise JwtError(
            f"{field}: the JWT is signed with {header.get('alg')!r}, not ed25519-nkey "
            "(a NATS v2 JWT is expected)"
        )
    if not isinstance(claims, dict):
        raise JwtError(f"{field}: the JWT's claims are not a JSON object")
    _str(claims, "iss", field)
    _str(claims, "sub", field)
    for name in ("iat", "exp", "nbf"):
        _int(claims, name, field)
    nats = claims.get("nats")
    if not isinstance(nats, dict):
        raise JwtError(f"{field}: claim nats must be an object")
    if not isinstance(nats.get("type"), str):
        raise JwtError(f"{field}: claim nats.type must be a string")
    version = nats.get("version")
    if version != CLAIMS_VERSION or isinstance(version, bool):
        raise JwtError(f"{field}: claim nats.version must be 2 (NATS JWT v2), got {version!r}")
    return claims


def verify_jwt(jwt: str, issuer_public_key: str, field: str) -> dict[str, Any]:
    """The claims of ``jwt`` once its signature is checked against ``issuer_public_key``
    (which must also be its ``iss``)."""
    claims = decode_claims(jwt, field)
    if claims["iss"] != issuer_public_key:
        raise JwtError(f"{field} was issued by {claims['iss']}, not by {issuer_public_key}")
    head, body, signature = _parts(jwt, field)
    verifier = _verify_key(issuer_public_key, "the issuer's public key")
    try:
        verifier.verify(f"{head}.{body}".encode(), _unb64(signature, field, "signature"))
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise JwtError(f"{field}: the JWT's signature does not match {issuer_public_key}") from None
    return claims


def when(seconds: int) -> str:
    """A unix time as people read it in an error (UTC)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def check_times(claims: Mapping[str, Any], field: str, now: int, fix: str) -> None:
    """Refuse claims that expired (``exp``) or are not valid yet (``nbf``) at ``now``."""
    expires = _int(claims, "exp", field)
    if expires is not None and expires <= now:
        raise JwtError(f"{field} expired at {when(expires)}; {fix}")
    starts = _int(claims, "nbf", field)
    if starts is not None and starts > now:
        raise JwtError(f"{field} is not valid before {when(starts)}; {fix}")


# Claims --------------------------------------------------------------------------------


def _base(issuer: str, subject: str, name: str, now: int, expires_at: int | None) -> dict[str, Any]:
    claims: dict[str, Any] = {"iat": now, "iss": issuer, "name": name, "sub": subject}
    if expires_at is not None:
        claims["exp"] = expires_at
    return claims


def operator_claims(
    operator: str,
    name: str,
    *,
    system_account: str,
    signing_keys: Sequence[str] = (),
    now: int,
) -> dict[str, Any]:
    """A self-signed operator JWT's claims naming the system account."""
    nats: dict[str, Any] = {"system_account": system_account, "type": "operator"}
    if signing_keys:
        nats["signing_keys"] = list(signing_keys)
    nats["version"] = CLAIMS_VERSION
    return {**_base(operator, operator, name, now, None), "nats": nats}


UNLIMITED_ACCOUNT = {
    "subs": NO_LIMIT,
    "data": NO_LIMIT,
    "payload": NO_LIMIT,
    "imports": NO_LIMIT,
    "exports": NO_LIMIT,
    "wildcards": True,
    "conn": NO_LIMIT,
    "leaf": NO_LIMIT,
}
# JetStream: no limits inside what the server itself allows (a zero would disable it).
UNLIMITED_JETSTREAM = {
    "mem_storage": NO_LIMIT,
    "disk_storage": NO_LIMIT,
    "streams": NO_LIMIT,
    "consumer": NO_LIMIT,
}


def account_claims(
    operator: str,
    account: str,
    name: str,
    *,
    jetstream: bool,
    signing_keys: Sequence[str] = (),
    revocations: Mapping[str, int] | None = None,
    exports: Sequence[Mapping[str, Any]] = (),
    now: int,
) -> dict[str, Any]:
    """An account JWT's claims, signed by the operator. ``revocations`` maps a user's
    public key to a unix time: nats-server refuses that user's JWTs issued at or before
    it (and drops its connections when the account JWT is updated)."""
    limits: dict[str, Any] = dict(UNLIMITED_ACCOUNT)
    limits.update(UNLIMITED_JETSTREAM if jetstream else {"mem_storage": 0, "disk_storage": 0})
    nats: dict[str, Any] = {"limits": limits}
    if exports:
        nats["exports"] = [dict(export) for export in exports]
    if signing_keys:
        nats["signing_keys"] = list(signing_keys)
    if revocations:
        nats["revocations"] = dict(sorted(revocations.items()))
    nats |= {"default_permissions": {"pub": {}, "sub": {}}, "type": "account"}
    nats["version"] = CLAIMS_VERSION
    return {**_base(operator, account, name, now, None), "nats": nats}


def user_claims(
    issuer: str,
    user: str,
    name: str,
    *,
    permissions: Permissions | None,
    issuer_account: str | None = None,
    expires_at: int | None = None,
    now: int,
) -> dict[str, Any]:
    """A user JWT's claims. When ``issuer`` is one of the account's signing keys,
    ``issuer_account`` names the account (nats-server then checks the key is listed)."""
    nats: dict[str, Any] = permissions.claims() if permissions else {"pub": {}, "sub": {}}
    if issuer_account is not None:
        nats["issuer_account"] = issuer_account
    nats |= {"subs": NO_LIMIT, "data": NO_LIMIT, "payload": NO_LIMIT, "type": "user"}
    nats["version"] = CLAIMS_VERSION
    return {**_base(issuer, user, name, now, expires_at), "nats": nats}
