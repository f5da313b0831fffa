"""The provider's connection to a running lattice (thin adapter over NATS).

It reads the lattice the way a new controller leader does (``CtlClient.read_hosts``:
ping + inventories) into a read-only ``LatticeSnapshot``, and plans with the same
``inventory_for`` + ``plan_placement`` calls, so the placement shown in preview is the one
the controller will make on the same lattice. It depends on the control protocol and the
planner, never on the controller's modules.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pulumi_wasmcloud.provider.handlers import ProviderSettings

# NATS, the control and wadm clients and the planner are imported where the lattice is
# read: a preview whose lattice is not known yet (a new stack) never talks to it, and
# every preview's plugin process pays its imports (~60 ms; tests/unit/test_provider_startup.py).
if TYPE_CHECKING:
    import nats.errors
    from nats.aio.client import Client as NatsClient

    from host_agent.lattice.client import CtlClient
    from host_agent.lattice.connection import ClientTls
    from host_agent.lattice.wadm import WadmClient
    from host_agent.model.manifest import Manifest
    from host_agent.placement import HostInventory, PlacementPlan
    from host_agent.placement.lattice_view import LatticeSnapshot


class LatticeUnreachable(RuntimeError):
    def __init__(self, url: str, reason: object) -> None:
        super().__init__(
            f"cannot reach NATS at {url}: {reason}. Is the lattice running? Check the "
            "Lattice resource (or wasmcloud:natsUrl in the stack config); nothing was changed"
        )


log = logging.getLogger("pulumi_wasmcloud.provider.live")

# How long one read of the hosts serves checks and diffs. The engine calls Check one
# resource at a time, and a read waits for ping replies, so a stack of N applications
# would otherwise wait N times; within a second the lattice is the same lattice, and
# every application in one preview is planned against the same view.
VIEW_TTL = 1.0


class CredentialsRefused(LatticeUnreachable):
    def __init__(self, url: str, reason: object) -> None:
        RuntimeError.__init__(
            self,
            f"NATS at {url} refused the connection ({reason}): set the provider's "
            "credentials to the .creds file of a user of this lattice's account, e.g. "
            '`pulumi config set --secret wasmcloud:credentials -- "$(cat user.creds)"`; '
            "nothing was changed",
        )


@dataclass
class _ViewCache:
    """The last completed read, and the read in flight (shared by concurrent callers)."""

    loop: asyncio.AbstractEventLoop
    done_at: float = -1.0
    done: LatticeSnapshot | None = None
    started_at: float = -1.0
    running: asyncio.Future[LatticeSnapshot] | None = None


_views: dict[tuple[str, str], _ViewCache] = {}


@dataclass
class Lattice:
    nc: NatsClient
    lattice: str
    url: str = ""

    @property
    def ctl(self) -> CtlClient:
        from host_agent.lattice.client import CtlClient  # the lattice is read (see above)

        return CtlClient(self.nc, self.lattice)

    @property
    def wadm(self) -> WadmClient:
        from host_agent.lattice.wadm import WadmClient  # the lattice is read (see above)

        return WadmClient(self.nc, self.lattice)

    async def view(self, fresh: bool = False) -> LatticeSnapshot:
        """The hosts as the controller sees them: a read at most ``VIEW_TTL`` old, or
        with ``fresh`` one that started after this call (for checking a change this
        provider just made; concurrent callers share it)."""
        loop = asyncio.get_running_loop()
        cache = _views.get((self.url, self.lattice))
        if cache is None or cache.loop is not loop:  # another event loop (tests)
            cache = _views[(self.url, self.lattice)] = _ViewCache(loop)
        now = time.monotonic()
        if not fresh and cache.done is not None and now - cache.done_at <= VIEW_TTL:
            return cache.done
        if cache.running is None or (fresh and cache.started_at < now):
            cache.started_at, cache.running = now, asyncio.ensure_future(self._read_view())
        started, running = cache.started_at, cache.running
        try:
            snapshot = await asyncio.shield(running)
        finally:
            if cache.running is running:
                cache.running = None  # done (or failed: never serve a failed read again)
        if started >= cache.done_at:
            cache.done_at, cache.done = started, snapshot
        return snapshot

    async def _read_view(self) -> LatticeSnapshot:
        from host_agent.lattice.strict import BadRequest  # the lattice is read (see above)
        from host_agent.placement.lattice_view import HostSnapshot, LatticeSnapshot

        hosts: dict[str, HostSnapshot] = {}
        for host in await self.ctl.read_hosts(wait=0.5):
            if host.inventory is None:
                continue  # a host that does not answer host.get is not usable
            name = str(host.ping.get("friendly_name") or "")
            try:
                snapshot = HostSnapshot.from_inventory(host.inventory, name)
            except BadRequest as exc:
                # As the controller does: a host whose inventory cannot be read is not
                # planned on, and one such host must not stop every preview of the lattice.
                log.warning("ignoring host %s: its inventory is malformed: %s", host.host_id, exc)
                continue
            hosts[snapshot.id] = snapshot
        return LatticeSnapshot(hosts)

    async def plan(
        self, manifest: Manifest, fresh: bool = False
    ) -> tuple[PlacementPlan, dict[str, str]]:
        from host_agent.placement import plan_placement  # the lattice is read (see above)

        view = await self.view(fresh)
        return plan_placement(manifest, view.inventory_for(manifest)), view.names()

    async def stranded_by(self, host_id: str) -> list[str]:
        """Deployed applications whose instances could go nowhere if ``host_id`` left,
        as ``"app: component x3"``."""
        from host_agent.model.loader import parse_manifest  # the lattice is read (see above)

        view = await self.view(fresh=True)
        stranded = []
        for model in (await self.wadm.list()).models:
            if not model.deployed_version:
                continue
            reply = await self.wadm.get(model.name, model.deployed_version)
            if reply.manifest is None:
                continue
            manifest = parse_manifest(reply.manifest).manifest
            lost = newly_unplaced(manifest, view.inventory_for(manifest), host_id)
            stranded += [f"{manifest.name}: {name} x{n}" for name, n in sorted(lost.items())]
        return stranded

    async def running(self, manifest: Manifest, fresh: bool = False) -> dict[str, dict[str, int]]:
        """Manifest component name -> {host name: instances} as the lattice runs now."""
        view = await self.view(fresh)
        names = view.names()
        placement: dict[str, dict[str, int]] = {}
        for component in manifest.spec.components:
            wid = component.component_id(manifest.name)
            hosts = {names[h.id]: n for h in view.hosts.values() if (n := h.runs(wid))}
            placement[component.name] = dict(sorted(hosts.items()))
        return placement


def newly_unplaced(
    manifest: Manifest, hosts: Sequence[HostInventory], leaving: str
) -> dict[str, int]:
    """Instances of ``manifest`` that no host could run if host ``leaving`` went away
    (pure: the planner on the hosts with and without it)."""
    from host_agent.placement import plan_placement  # the lattice is read (see above)

    before = plan_placement(manifest, hosts).unplaced()
    after = plan_placement(manifest, [h for h in hosts if h.id != leaving]).unplaced()
    return {name: n - before.get(name, 0) for name, n in after.items() if n > before.get(name, 0)}


def placement_by_name(plan: PlacementPlan, names: dict[str, str]) -> dict[str, dict[str, int]]:
    return {
        workload: {names.get(host, host): count for host, count in sorted(hosts.items())}
        for workload, hosts in plan.placements().items()
    }


def lattice_tls(state: Mapping[str, Any]) -> ClientTls | None:
    """TLS towards a resource's lattice: the tooling user's pair and CA (``clientTls``,
    {caPem, certPem, keyPem}: a lattice on machines, whose nodes ask for a client
    certificate), else the CA of a secured local Lattice (``caCert``); None without TLS."""
    from host_agent.lattice.connection import ClientTls, TlsConfigError  # brings NATS

    pair = state.get("clientTls")
    if isinstance(pair, Mapping) and pair:
        ca, cert, key = (pair.get(k) for k in ("caPem", "certPem", "keyPem"))
        if not isinstance(ca, str) or not all(v is None or isinstance(v, str) for v in (cert, key)):
            raise TlsConfigError("clientTls must hold caPem, certPem and keyPem as PEM text")
        return ClientTls(ca, cert, key)
    ca = state.get("caCert")
    return ClientTls(ca) if isinstance(ca, str) and ca else None


def lattice_credentials(state: Mapping[str, Any], settings: ProviderSettings) -> str | None:
    """The .creds text the provider talks to a resource's lattice as: the lattice's tooling
    user (``credentials``, an output of a secured local Lattice the resource was given),
    else the provider's ``wasmcloud:credentials``."""
    given = state.get("credentials")
    return given if isinstance(given, str) and given else settings.credentials


_clients: dict[tuple[str, str], tuple[asyncio.AbstractEventLoop, NatsClient]] = {}


@asynccontextmanager
async def connect(
    url: str,
    lattice: str,
    credentials: str | None = None,
    tls: ClientTls | None = None,
    timeout: float = 3.0,
) -> AsyncIterator[Lattice]:
    """The lattice at ``url``, over one NATS connection per URL (and credentials and CA)
    for the provider's life: a stack of N resources would otherwise connect N times.
    ``credentials`` is the text of a NATS ``.creds`` file (user JWT + seed); ``tls`` the
    CA (and client pair) of a NATS that speaks TLS."""
    loop = asyncio.get_running_loop()
    parts = [credentials or ""]
    if tls is not None:
        parts += [tls.ca_pem, tls.cert_pem or ""]
    key = (url, hashlib.sha256("\n".join(parts).encode()).hexdigest())
    pooled = _clients.get(key)
    if pooled is None or pooled[0] is not loop or not pooled[1].is_connected:
        pooled = _clients[key] = (loop, await _open(url, timeout, credentials, tls))
    yield Lattice(pooled[1], lattice, url)


async def _open(
    url: str, timeout: float, credentials: str | None, tls: ClientTls | None
) -> NatsClient:
    import nats  # the lattice is read (see above)
    import nats.errors
    from nats.aio.client import RawCredentials

    from host_agent.lattice.connection import TlsConfigError

    async def quiet(_: Exception) -> None:
        pass  # the failure is raised below, naming the URL; nats-py would log a traceback

    try:
        context = tls.context() if tls is not None else None
    except TlsConfigError as exc:
        raise LatticeUnreachable(url, exc) from None
    try:
        # In nats-py's server loop max_reconnect_attempts=0 means "retry forever", so one
        # retry is the smallest bound; wait_for caps the whole attempt.
        return await asyncio.wait_for(
            nats.connect(
                url,
                connect_timeout=timeout,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                allow_reconnect=False,
                error_cb=quiet,
                user_credentials=RawCredentials(credentials) if credentials else None,
                tls=context,
            ),
            timeout * 2,
        )
    except nats.errors.Error as exc:
        if credentials_refused(exc):
            raise CredentialsRefused(url, exc) from None
        raise LatticeUnreachable(url, exc) from None
    except (OSError, TimeoutError) as exc:
        raise LatticeUnreachable(url, exc) from None


def credentials_refused(error: nats.errors.Error) -> bool:
    """Whether NATS refused the connection's credentials. On a live connection nats-py
    types this (AuthorizationError); on CONNECT it raises a plain ``nats.errors.Error``
    carrying the server's ``-ERR`` token, which is compared with the protocol's own
    constant, as nats-py does itself."""
    import nats.errors  # the lattice is read (see above)
    from nats.protocol.parser import AUTHORIZATION_VIOLATION

    if isinstance(error, nats.errors.AuthorizationError | nats.errors.InvalidUserCredentialsError):
        return True
    return AUTHORIZATION_VIOLATION in str(error).lower()
