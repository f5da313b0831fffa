"""The claims a signed component carries, and the `claims.get` shape that reports them.

`wash claims sign` embeds a wascap JWT (Ed25519, signed by an account nkey `A...`, for
a component nkey `M...`) in a top-level custom section named `wasmcloud_jwt` (`jwt`
before wascap 0.9). Like host 1.4.2, this host refuses a signed component whose token
does not verify (bad signature, expired, not yet valid, or, from wascap revision 3, a
hash that does not match the component without its signature) and reports the claims of
those that do; an unsigned component has no claims and runs as before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing
import nkeys
from pydantic import BaseModel, ConfigDict, ValidationError

from host_agent.lattice.strict import describe_errors

JWT_SECTIONS = ("wasmcloud_jwt", "jwt")
CUSTOM_SECTION = 0
HEADER_LENGTH = 8  # magic + version/layer, for modules and components alike
HASH_CHECKED_FROM_REVISION = 3  # wascap's MIN_WASCAP_INTERNAL_REVISION


class ClaimsError(ValueError):
    """A signed component whose claims do not verify; the message says why."""


class _NotWasm(ValueError):
    """The bytes do not parse as sections: compiling them says what is wrong, better."""


class _Wire(BaseModel):
    model_config = ConfigDict(strict=True)  # serde: wrong types refused, unknown ignored


class _ComponentMetadata(_Wire):
    name: str | None = None
    hash: str
    tags: list[str] | None = None
    rev: int | None = None
    ver: str | None = None
    call_alias: str | None = None
    prov: bool = False


class _Claims(_Wire):
    exp: int | None = None
    jti: str
    iat: int
    iss: str
    sub: str
    nbf: int | None = None
    wascap: _ComponentMetadata | None = None
    wascap_revision: int | None = None


class _Header(_Wire):
    typ: str
    alg: str


@dataclass(frozen=True)
class ComponentClaims:
    issuer: str  # the signing account, A...
    subject: str  # the component's own key, M...
    name: str
    revision: int
    version: str
    tags: tuple[str, ...]
    call_alias: str


class _StoredComponentClaims(_Wire):
    """How claims are kept in `LATTICEDATA_{lattice}` under `CLAIMS_{subject}` (1.4.2's
    StoredComponentClaims), so every host, ours or Rust, answers claims.get the same."""

    call_alias: str
    issuer: str
    name: str
    revision: str
    subject: str
    tags: list[str]
    version: str


def _to_stored(claims: ComponentClaims) -> _StoredComponentClaims:
    return _StoredComponentClaims(
        call_alias=claims.call_alias,
        issuer=claims.issuer,
        name=claims.name,
        revision=str(claims.revision),
        subject=claims.subject,
        tags=list(claims.tags),
        version=claims.version,
    )


def stored_json(claims: ComponentClaims) -> bytes:
    """The `CLAIMS_{subject}` value for `claims`."""
    return _to_stored(claims).model_dump_json().encode()


def claims_entry(value: bytes) -> dict[str, str] | None:
    """A `CLAIMS_*` value as a claims.get entry; None for one that is not component
    claims (e.g. a provider's, which this host never writes)."""
    try:
        stored = _StoredComponentClaims.model_validate_json(value)
    except ValidationError:
        return None
    return _entry(stored)


def _entry(stored: _StoredComponentClaims) -> dict[str, str]:
    """One claims.get entry, with 1.4.2's keys (including the legacy `iss`/`sub`/`rev`
    duplicates it still sends)."""
    return {
        "call_alias": stored.call_alias,
        "iss": stored.issuer,
        "issuer": stored.issuer,
        "name": stored.name,
        "rev": stored.revision,
        "revision": stored.revision,
        "sub": stored.subject,
        "subject": stored.subject,
        "tags": ",".join(stored.tags),
        "version": stored.version,
    }


def _leb128(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise _NotWasm("the binary ends inside a section header")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
        if shift > 35:
            raise _NotWasm("a section length is not a valid u32")


def _jwt_and_rest(wasm: bytes) -> tuple[str | None, bytes]:
    """The embedded token (if any) and the binary without the token's sections."""
    token: str | None = None
    kept = bytearray(wasm[:HEADER_LENGTH])
    at = HEADER_LENGTH
    while at < len(wasm):
        start = at
        section_id = wasm[at]
        size, body = _leb128(wasm, at + 1)
        end = body + size
        if end > len(wasm):
            raise _NotWasm("a section runs past the end of the binary")
        at = end
        if section_id == CUSTOM_SECTION:
            name_length, name_at = _leb128(wasm, body)
            name = wasm[name_at : name_at + name_length]
            if name.decode("utf-8", "replace") in JWT_SECTIONS:
                if token is None:  # the first one counts, as in wascap
                    data = wasm[name_at + name_length : end]
                    try:
                        token = data.decode()
                    except UnicodeDecodeError:
                        raise ClaimsError("the embedded token is not UTF-8 text") from None
                continue
        kept += wasm[start:end]
    return token, bytes(kept)


def _segment(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ClaimsError("a token segment is not base64url") from None


def _verify_key(account: str) -> nacl.signing.VerifyKey:
    """An account public key (`A...`, base32 with prefix byte and CRC16) as a verify key."""
    try:
        raw = base64.b32decode(account + "=" * (-len(account) % 8))
    except (binascii.Error, ValueError):
        raise ClaimsError(f"iss {account!r} is not an nkey") from None
    if len(raw) != 35 or raw[0] != nkeys.PREFIX_BYTE_ACCOUNT:
        raise ClaimsError(f"iss {account!r} is not an account public key (A...)")
    if nkeys.crc16(bytearray(raw[:-2])) != int.from_bytes(raw[-2:], "little"):
        raise ClaimsError(f"iss {account!r} has a bad checksum")
    return nacl.signing.VerifyKey(raw[1:-2])


def _parse(model: type[Any], segment: str, what: str) -> Any:
    try:
        return model.model_validate(json.loads(_segment(segment)))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ClaimsError(f"the token's {what} is not JSON") from None
    except ValidationError as error:
        raise ClaimsError(f"the token's {what}: {describe_errors(error)}") from None


def component_claims(wasm: bytes, now: float | None = None) -> ComponentClaims | None:
    """The verified claims of a signed component; None for an unsigned one (or for bytes
    that are not WebAssembly at all, which the compiler then refuses with its reason)."""
    if not wasm.startswith(b"\0asm"):
        return None
    try:
        token, unsigned = _jwt_and_rest(wasm)
    except _NotWasm:
        return None
    if token is None:
        return None
    try:
        header_text, claims_text, signature_text = token.split(".")
    except ValueError:
        raise ClaimsError("the embedded token is not a JWT (three dot-separated parts)") from None
    header: _Header = _parse(_Header, header_text, "header")
    if (header.typ, header.alg) != ("jwt", "Ed25519"):
        raise ClaimsError(f"the token is {header.typ}/{header.alg}, expected jwt/Ed25519")
    claims: _Claims = _parse(_Claims, claims_text, "claims")
    if not claims.iss or not claims.sub:
        raise ClaimsError("the token has no issuer (iss) or no subject (sub)")
    key = _verify_key(claims.iss)
    signature = _segment(signature_text)
    try:
        key.verify(f"{header_text}.{claims_text}".encode(), signature)
    except (nacl.exceptions.BadSignatureError, ValueError):
        message = f"the token's signature does not verify for issuer {claims.iss}"
        raise ClaimsError(message) from None
    moment = time.time() if now is None else now
    if claims.exp is not None and claims.exp < moment:
        raise ClaimsError(f"the token expired at {claims.exp} (unix time)")
    if claims.nbf is not None and moment < claims.nbf:
        raise ClaimsError(f"the token cannot be used before {claims.nbf} (unix time)")
    meta = claims.wascap
    if meta is None:
        raise ClaimsError("the token has no component metadata (wascap)")
    if (claims.wascap_revision or 0) >= HASH_CHECKED_FROM_REVISION:
        digest = hashlib.sha256(unsigned).hexdigest().upper()
        if meta.hash != digest:
            raise ClaimsError("the component was changed after it was signed (hash mismatch)")
    return ComponentClaims(
        issuer=claims.iss,
        subject=claims.sub,
        name=meta.name or "",
        revision=meta.rev or 0,
        version=meta.ver or "",
        tags=tuple(meta.tags or ()),
        call_alias=meta.call_alias or "",
    )
