"""Link grants: the wRPC subjects a caller may publish on, derived from the lattice's links.

Pure (no I/O): the controller, the host and the provider SDK share these shapes.

A wRPC call is a publish on ``{lattice}.{target}.wrpc.0.0.1.{instance}.{function}``. The
base NATS users of hosts and providers may serve wRPC (subscribe) and answer (publish to
``_INBOX.>``), but may not publish invocations: outgoing calls go over a second, "caller"
connection whose user JWT is a *link grant*. The grant allows publishing only on the
invocation subjects of the targets of the links whose source the caller runs, and nothing
else but inbox traffic. The controller mints grants (it holds the lattice's user signing
key) for a caller nkey the host made (its seed never travels), on a request signed with
the host's own nkey naming the sources it runs.

What this does not prove: that the host really runs those sources. In wasmCloud 1.x host
events are not authenticated per host, so anyone holding a host's NATS user could also
claim to run any component; what no request can obtain is a target no link names, or a
subject of another lattice.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence

import nacl.exceptions
import nacl.signing
import nkeys
from pydantic import Field

from host_agent.lattice.protocol import Link
from host_agent.lattice.strict import BadRequest, StrictModel, parse_json
from host_agent.security.jwt import (
    JwtError,
    Permissions,
    check_public_key,
    decode_claims,
    encode_jwt,
    public_key,
    user_claims,
)
from host_agent.wrpc.transport import WRPC_VERSION

# What nats-py's new_inbox() makes: replies, results and nested values all live below it.
INBOX_SUBTREE = "_INBOX.>"
# How long a grant stays valid; hosts renew at half of it. A grant taken away (link
# deleted) is no longer renewed, so a copy held elsewhere lapses within this time.
GRANT_LIFETIME = 600
# How far a request's clock may be from the controller's (replayed requests are refused).
MAX_CLOCK_SKEW = 60
# A subject token: no separators, wildcards or whitespace (nats-server's rule).
_TOKEN = re.compile(r"[^.*>\s]+")


class GrantError(ValueError):
    """A grant request or reply that cannot be honoured; the message names why."""


def subject_token(value: str, field: str) -> str:
    """``value`` if it can stand as one subject token; else a GrantError naming ``field``:
    an id with a dot or a wildcard would widen the subjects a grant allows."""
    if not _TOKEN.fullmatch(value):
        raise GrantError(
            f"{field} {value!r} cannot be part of a NATS subject (it is empty or has '.', "
            "'*', '>' or whitespace); rename it"
        )
    return value


def caller_public_key(seed: str) -> str:
    """The public key (``U...``) of a caller's user nkey seed, or GrantError."""
    try:
        return public_key(seed, "caller seed", "U")
    except JwtError as error:
        raise GrantError(str(error)) from None


def invocation_subjects(lattice: str, target: str) -> str:
    """Every wRPC invocation of ``target``: ``{lattice}.{target}.wrpc.0.0.1.>``."""
    return (
        f"{subject_token(lattice, 'lattice')}.{subject_token(target, 'link target')}"
        f".wrpc.{WRPC_VERSION}.>"
    )


def link_targets(links: Iterable[Link], sources: Iterable[str]) -> tuple[str, ...]:
    """The targets of every link whose source is one of ``sources`` (sorted, once each)."""
    wanted = set(sources)
    return tuple(sorted({link.target for link in links if link.source_id in wanted}))


def caller_permissions(lattice: str, targets: Sequence[str]) -> Permissions:
    """A caller may invoke ``targets`` and use inboxes (its own replies, and the nested
    parameters it streams to a callee's inbox); nothing else."""
    return Permissions(
        pub_allow=(*(invocation_subjects(lattice, target) for target in targets), INBOX_SUBTREE),
        sub_allow=(INBOX_SUBTREE,),
    )


def grant_jwt(
    *,
    account_public_key: str,
    signing_seed: str,
    caller_key: str,
    name: str,
    lattice: str,
    targets: Sequence[str],
    now: int,
    lifetime: int = GRANT_LIFETIME,
) -> str:
    """The caller's user JWT, signed with the account's signing key."""
    signer = public_key(signing_seed, "grant signing key", "A")
    issuer_account = None if signer == account_public_key else account_public_key
    claims = user_claims(
        signer,
        check_public_key(caller_key, "caller_key", "U"),
        name,
        permissions=caller_permissions(lattice, targets),
        issuer_account=issuer_account,
        expires_at=now + lifetime,
        now=now,
    )
    return encode_jwt(signing_seed, claims)


def granted_targets(jwt: str, lattice: str, field: str) -> frozenset[str]:
    """The targets a grant JWT allows invoking (read back from its pub allow list)."""
    claims = decode_claims(jwt, field)
    nats = claims.get("nats")
    pub = nats.get("pub") if isinstance(nats, dict) else None
    allow = pub.get("allow", []) if isinstance(pub, dict) else None
    if not isinstance(allow, list) or not all(isinstance(s, str) for s in allow):
        raise JwtError(f"{field}: nats.pub.allow must be a list of subjects")
    head, tail = f"{lattice}.", f".wrpc.{WRPC_VERSION}.>"
    return frozenset(
        s[len(head) : -len(tail)] for s in allow if s.startswith(head) and s.endswith(tail)
    )


# The request and the reply ----------------------------------------------------------


class GrantRequest(StrictModel):
    """Sent by a host on ``wasmbus.grant.{lattice}``: a grant for ``caller_key`` covering
    the links of ``sources`` (components of this host, or one provider it started)."""

    host_id: str = Field(min_length=1)
    caller_key: str = Field(min_length=1)
    sources: list[str]
    issued_at: int
    signature: str = ""  # base64 of the host nkey's signature over signed_bytes()

    def signed_bytes(self) -> bytes:
        body = {
            "host_id": self.host_id,
            "caller_key": self.caller_key,
            "sources": sorted(self.sources),
            "issued_at": self.issued_at,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def signed(
        cls, host_seed: str, caller_key: str, sources: Iterable[str], now: int
    ) -> GrantRequest:
        keypair = nkeys.from_seed(bytearray(host_seed.encode()))
        request = cls(
            host_id=keypair.public_key.decode(),
            caller_key=caller_key,
            sources=sorted(set(sources)),
            issued_at=now,
        )
        signature = base64.b64encode(keypair.sign(request.signed_bytes())).decode()
        return request.model_copy(update={"signature": signature})

    @classmethod
    def parse(cls, payload: bytes) -> GrantRequest:
        return parse_json(cls, payload, "link grant request")

    def verify(self, now: int) -> None:
        """Refuse (GrantError naming why) a request not signed by ``host_id``'s key, too
        old or from the future, or naming ids that cannot be subject tokens."""
        if abs(now - self.issued_at) > MAX_CLOCK_SKEW:
            raise GrantError(
                f"link grant request issued_at {self.issued_at} is more than "
                f"{MAX_CLOCK_SKEW} s away from the controller's clock ({now}); sync the clocks"
            )
        check_public_key(self.caller_key, "caller_key", "U")
        for source in self.sources:
            subject_token(source, "source")
        if not _host_signed(self.host_id, self.signed_bytes(), self.signature):
            raise GrantError(f"link grant request signature does not match host {self.host_id}")


def _host_signed(host_id: str, data: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is the signature of ``data`` by the host nkey
    ``host_id`` (N...: base32 of the prefix byte, the ed25519 key and a CRC16)."""
    try:
        raw = base64.b32decode(host_id + "=" * (-len(host_id) % 8))
        signed = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) != 35 or raw[0] != nkeys.PREFIX_BYTE_SERVER:
        return False
    if nkeys.crc16_checksum(raw[:-2]) != raw[-2:]:
        return False
    try:
        nacl.signing.VerifyKey(raw[1:33]).verify(data, signed)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


class GrantReply(StrictModel):
    """The controller's answer: the JWT (not secret: useless without the caller's seed)
    and the targets it allows, or an error."""

    jwt: str = ""
    targets: list[str] = Field(default_factory=list)
    error: str = ""

    @classmethod
    def parse(cls, payload: bytes) -> GrantReply:
        try:
            return parse_json(cls, payload, "link grant reply")
        except BadRequest as error:
            raise GrantError(str(error)) from None
