"""A wRPC client whose calls go out as a link grant's user (host_agent/security/grants.py).

The caller's NATS user may publish only on the invocation subjects of the targets its
grant names. A new grant (links changed, or the old one nears expiry) is a new JWT for the
same caller nkey: the client connects with it, later calls use the new connection, and
the old one is closed once the calls made on it had time to finish, so no call is cut.

A call to a target the current grant does not name waits (briefly) for a newer grant, since
a link put a moment ago is usually granted a moment later; then it fails naming the link to
put, instead of publishing into a permissions violation and timing out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsClient

from host_agent.lattice.connection import NatsCredentials
from host_agent.security.grants import granted_targets
from host_agent.wrpc.transport import Payload, PendingPaths, WrpcClient, WrpcError

log = logging.getLogger("host_agent.wrpc.granted")

Connect = Callable[[NatsCredentials], Awaitable[NatsClient]]
# How long a call waits for a grant naming its target before it fails.
GRANT_WAIT = 5.0
# How long a replaced connection stays open for the calls still running on it.
RETIRE_AFTER = 30.0


class UngrantedCall(WrpcError):
    """The caller holds no grant for the target (no link from its source to it)."""


class GrantedClient(WrpcClient):
    """A WrpcClient on the connection of the newest grant installed with ``install``."""

    def __init__(self, lattice: str, caller_seed: str, connect: Connect, who: str) -> None:
        self.lattice = lattice
        self._seed = caller_seed
        self._connect = connect
        self._who = who
        self._jwt = ""
        self.targets: frozenset[str] = frozenset()
        self._changed = asyncio.Condition()
        self._connections: list[NatsClient] = []
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def ready(self) -> bool:
        return bool(self._jwt)

    async def install(self, jwt: str) -> None:
        """Connect as the grant ``jwt`` and route later calls over it."""
        if jwt == self._jwt or self._closed:
            return
        targets = granted_targets(jwt, self.lattice, "link grant")
        nc = await self._connect(NatsCredentials(jwt, self._seed))
        old = self._connections[-1] if self._connections else None
        self.nc = nc
        self._connections.append(nc)
        self._jwt, self.targets = jwt, targets
        log.info("%s may now call %s", self._who, ", ".join(sorted(targets)) or "nothing")
        if old is not None:
            task = asyncio.get_running_loop().create_task(self._retire(old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        async with self._changed:
            self._changed.notify_all()

    async def _retire(self, nc: NatsClient) -> None:
        await asyncio.sleep(RETIRE_AFTER)
        await self._close(nc)

    async def _close(self, nc: NatsClient) -> None:
        if nc in self._connections:
            self._connections.remove(nc)
        with contextlib.suppress(Exception):
            await nc.close()

    async def allowing(self, target: str, timeout: float = GRANT_WAIT) -> None:
        """Return once the grant names ``target``; UngrantedCall after ``timeout``."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: target in self.targets), timeout
                )
            except TimeoutError:
                raise UngrantedCall(
                    f"{self._who} holds no link grant to call {target}: calls need a link "
                    f"from it to {target} and a controller that signs grants "
                    "(wasmcloud-controller --grant-issuer-file); see the host's log"
                ) from None

    async def invoke(
        self,
        target: str,
        instance: str,
        function: str,
        params: Payload,
        *,
        pending_results: PendingPaths | None = None,
        source_id: str = "",
        link_name: str = "default",
        timeout: float = 10.0,
        max_nested_bytes: int | None = None,
    ) -> Payload:
        if target not in self.targets:
            await self.allowing(target, min(GRANT_WAIT, timeout))
        return await super().invoke(
            target,
            instance,
            function,
            params,
            pending_results=pending_results,
            source_id=source_id,
            link_name=link_name,
            timeout=timeout,
            max_nested_bytes=max_nested_bytes,
        )

    async def close(self) -> None:
        self._closed = True
        for task in list(self._retiring):
            task.cancel()
        for nc in list(self._connections):
            await self._close(nc)
