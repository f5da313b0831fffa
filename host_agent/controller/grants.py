"""The controller's link grant service: signs the user JWTs of outgoing wRPC calls.

A host asks on ``wasmbus.grant.{lattice}`` for a grant covering the sources it runs (its
components, or one provider it started), signed with its host nkey; the answer is a user
JWT for the host's caller key allowing invocations of exactly the targets of those
sources' links, read from the lattice's link bucket at that moment (see
host_agent/security/grants.py for the shapes and the limits of what this proves).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from host_agent.lattice.protocol import Link
from host_agent.lattice.strict import BadRequest
from host_agent.security.grants import (
    GrantError,
    GrantReply,
    GrantRequest,
    grant_jwt,
    link_targets,
)
from host_agent.security.jwt import JwtError

log = logging.getLogger("host_agent.controller.grants")


class GrantIssuer(Protocol):
    """What signs grants: the lattice account's public key and a signing key of it
    (host_agent.security.authority.UserIssuer)."""

    @property
    def account_public_key(self) -> str: ...

    @property
    def signing_seed(self) -> str: ...


class LinkGrants:
    def __init__(
        self,
        lattice: str,
        issuer: GrantIssuer,
        read_links: Callable[[], Awaitable[list[dict[str, Any]]]],
    ) -> None:
        self.lattice = lattice
        self._issuer = issuer
        self._read_links = read_links

    async def handle(self, payload: bytes) -> bytes:
        return (await self.grant(payload)).model_dump_json().encode()

    async def grant(self, payload: bytes, now: int | None = None) -> GrantReply:
        now = int(time.time()) if now is None else now
        try:
            request = GrantRequest.parse(payload)
            request.verify(now)
        except (BadRequest, GrantError, JwtError) as error:
            log.warning("link grant refused: %s", error)
            return GrantReply(error=str(error))
        try:
            links = [Link.model_validate(link) for link in await self._read_links()]
        except Exception as error:  # the host hears why and asks again
            log.warning("link grant: cannot read the lattice's links: %s", error)
            return GrantReply(error=f"the controller cannot read the lattice's links: {error}")
        targets = link_targets(links, request.sources)
        try:
            jwt = grant_jwt(
                account_public_key=self._issuer.account_public_key,
                signing_seed=self._issuer.signing_seed,
                caller_key=request.caller_key,
                name=f"wrpc caller of {request.host_id}",
                lattice=self.lattice,
                targets=targets,
                now=now,
            )
        except (GrantError, JwtError) as error:
            # A link whose target cannot be a subject token: refuse the whole grant,
            # naming it, rather than grant a wider subject.
            log.warning("link grant refused: %s", error)
            return GrantReply(error=str(error))
        log.info(
            "link grant for host %s (%s): %s",
            request.host_id,
            ", ".join(request.sources) or "no sources",
            ", ".join(targets) or "no targets",
        )
        return GrantReply(jwt=jwt, targets=list(targets))
