"""Keeps a caller's link grant fresh: asks the controller, hands each new JWT on.

One keeper per caller identity on this host: the host's components share one caller, and
each provider process the host starts is its own caller. A keeper asks again whenever what
its caller runs or the lattice's links change, after a failure, and at half the grant's
lifetime. Requests are signed with the
host's nkey; the caller's seed never leaves this host (a provider gets it in HostData).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable

import nkeys
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from host_agent.lattice.subjects import link_grant_subject
from host_agent.security.grants import (
    GRANT_LIFETIME,
    GrantError,
    GrantReply,
    GrantRequest,
    caller_public_key,
)

log = logging.getLogger("host_agent.grants")

REQUEST_TIMEOUT = 5.0
RETRY_AFTER = 2.0  # after a failed request


def new_caller_seed() -> str:
    """A fresh user nkey seed (``SU...``) for one caller identity."""
    return str(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode())


class GrantKeeper:
    def __init__(
        self,
        nc: NatsClient,
        lattice: str,
        host_seed: str,
        caller_seed: str,
        sources: Callable[[], list[str]],
        deliver: Callable[[str], Awaitable[None]],
        who: str,
    ) -> None:
        self._nc = nc
        self._lattice = lattice
        self._host_seed = host_seed
        self.caller_key = caller_public_key(caller_seed)
        self._sources = sources
        self._deliver = deliver
        self._who = who
        self._wanted = asyncio.Event()
        self._rounds = 0  # completed rounds
        self._round_done = asyncio.Condition()
        self._last_problem = ""
        self._task: asyncio.Task[None] | None = None
        self._running_round = False
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def changed(self) -> None:
        """What the caller runs, or the lattice's links, changed: ask again."""
        self._wanted.set()

    async def refresh(self, timeout: float = REQUEST_TIMEOUT + 1) -> None:
        """Ask again and return once a round that started after this call has ended."""
        async with self._round_done:
            target = self._rounds + (2 if self._running_round else 1)
            self._wanted.set()
            try:
                await asyncio.wait_for(
                    self._round_done.wait_for(lambda: self._rounds >= target), timeout
                )
            except TimeoutError:
                log.warning("%s: no link grant round ended within %g s", self._who, timeout)

    async def _run(self) -> None:
        # `_closing` as well as the cancel: a cancel that lands as the wait below ends
        # could be lost (asyncio.wait_for's race on 3.11), and a round that kept going
        # held up the host's stop of its provider, and every provider command after it,
        # for good (seen under load: a deleted app's provider never stopped).
        while not self._closing:
            self._wanted.clear()
            self._running_round = True
            try:
                wait = await self._round()
            finally:
                self._running_round = False
                async with self._round_done:
                    self._rounds += 1
                    self._round_done.notify_all()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wanted.wait()

    async def _round(self) -> float:
        """One request; returns how long until the next one unless something changes."""
        request = GrantRequest.signed(
            self._host_seed, self.caller_key, self._sources(), int(time.time())
        )
        try:
            msg = await self._nc.request(
                link_grant_subject(self._lattice),
                request.model_dump_json().encode(),
                timeout=REQUEST_TIMEOUT,
            )
            reply = GrantReply.parse(msg.data)
        except (NoRespondersError, NatsTimeout):
            self._problem(
                f"no controller answers link grant requests on "
                f"{link_grant_subject(self._lattice)}; {self._who} cannot call anything until "
                "one does (start the controller with WASMCLOUD_GRANT_ISSUER_FILE)"
            )
            return RETRY_AFTER
        except GrantError as error:
            self._problem(f"{self._who}: {error}")
            return RETRY_AFTER
        if reply.error or not reply.jwt:
            self._problem(f"the controller refused a link grant for {self._who}: {reply.error}")
            return RETRY_AFTER
        try:
            await self._deliver(reply.jwt)
        except Exception as error:  # e.g. NATS refused the new connection
            self._problem(f"{self._who}: the new link grant could not be used: {error}")
            return RETRY_AFTER
        self._last_problem = ""
        return GRANT_LIFETIME / 2

    def _problem(self, text: str) -> None:
        if text != self._last_problem:  # once per change, not every retry
            log.warning("%s", text)
            self._last_problem = text
