"""The controller process: serves the wadm API and, while it leads, reconciles.

Effects only: NATS subscriptions, KV/stream access and control requests. Every decision
is made by ``reconcile`` (pure) on the ``LatticeView`` (pure) that events keep current.
Reconciliation runs when something relevant happens (a host event, a manifest change,
a host's heartbeat deadline passing) and at least every ``resync_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.client import RawCredentials
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from host_agent.controller.api import WadmApi
from host_agent.controller.grants import GrantIssuer, LinkGrants
from host_agent.controller.leader import LeaderLease
from host_agent.controller.reconcile import (
    Command,
    DeleteConfig,
    DeleteLink,
    PutConfig,
    PutLink,
    ScaleComponent,
    StartProvider,
    StopProvider,
    link_key,
    owned_by,
    reconcile,
)
from host_agent.controller.storage import ManifestStore, StatusStore
from host_agent.controller.view import LatticeView, ProviderSeen
from host_agent.host.store import LatticeStore
from host_agent.lattice.client import CtlClient, CtlError
from host_agent.lattice.connection import (
    ClientTls,
    ConnectionRefused,
    NatsAddress,
    connect_nats,
    settle,
)
from host_agent.lattice.events import EVENT_TYPE_PREFIX
from host_agent.lattice.jetstream import follow, keep_watching
from host_agent.lattice.strict import BadRequest
from host_agent.lattice.subjects import (
    LINK_GRANT_QUEUE,
    WADM_API_PREFIX,
    WADM_API_QUEUE,
    events_wildcard,
    link_grant_subject,
)
from host_agent.lattice.wadm_types import Status, StatusInfo, StatusType, aggregate_status
from host_agent.model.issues import ManifestError
from host_agent.model.loader import parse_manifest
from host_agent.model.manifest import Manifest
from host_agent.telemetry import controller as telemetry
from host_agent.telemetry import otel

log = logging.getLogger("host_agent.controller")
T = TypeVar("T")

# Events that can change what an application needs (heartbeats included: they carry
# the full inventory, so drift such as a hand-scaled component shows up in them).
_RECONCILE_EVENTS = {
    "host_started",
    "host_stopped",
    "host_heartbeat",
    "labels_changed",
    "component_scaled",
    "component_scale_failed",
    "provider_started",
    "provider_start_failed",
    "provider_stopped",
    "health_check_passed",
    "health_check_failed",
    "linkdef_set",
    "linkdef_deleted",
    "config_set",
    "config_deleted",
}

# Link and config reads go to ONE host of the lattice's queue group, picked at random by
# NATS: a host cut off without a reset (its network gone dark) still gets its share until
# the server drops its connection, minutes later, and one unanswered read failed the whole
# round (tests/faults/test_network_partition.py). Reads ask again instead. Each attempt
# keeps the client's usual 2 s: a host behind a leaf node in another region, on a busy
# machine, took over 0.5 s, and rounds that all timed out left a deleted app's providers
# running (the multi-region e2e's destroy).
READ_ATTEMPTS = 3
READ_TIMEOUT = 2.0


@dataclass
class ControllerConfig:
    nats_url: str = "nats://127.0.0.1:4222"
    lattice: str = "default"
    heartbeat_interval: float = 30.0  # assumed for a host until two heartbeats are seen
    host_timeout: float | None = None  # None: three of the host's heartbeat intervals
    resync_interval: float = 10.0
    lease_ttl: float = 10.0
    js_domain: str | None = None
    credentials: str | RawCredentials | None = None  # a .creds path, or its text
    # Copies of the controller's buckets and stream (a cluster's lattice: up to 3).
    stream_replicas: int = 1
    # Signs link grants (the users of hosts' and providers' outgoing wRPC calls); None:
    # this controller answers no grant requests.
    grant_issuer: GrantIssuer | None = None
    # TLS towards NATS (the lattice's CA, and the controller's client certificate).
    tls: ClientTls | None = None


class Controller:
    def __init__(self, config: ControllerConfig) -> None:
        self.config = config
        self.id = f"controller-{uuid.uuid4().hex[:12]}"
        self.view = LatticeView(config.heartbeat_interval, config.host_timeout)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._refresh = True  # rebuild the view from ping + inventories before reconciling
        self._known: dict[str, list[Manifest]] = {}  # app -> every version seen (ownership)
        # What the next round reconciles: the apps whose manifests changed, or all of them
        # after anything that can move any app (host events, heartbeats, resync, expiry,
        # a new leader). Per-app rounds keep N deploys from costing N x N reconciles.
        self._dirty: set[str] = set()
        self._everything = True
        self._published: dict[str, Status] = {}
        self._nc: NatsClient | None = None
        self._closed_by_server: Exception | None = None
        self.ready = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        fix = (
            "the server does not accept the controller's NATS user; give it the .creds "
            "of a user of the lattice's account (--nats-creds / WADM_NATS_CREDS_FILE)"
        )
        nc = self._nc = await connect_nats(
            NatsAddress.parse(self.config.nats_url),
            None,
            who="controller",
            fix=fix,
            tls=self.config.tls,
            user_credentials=self.config.credentials,
            name=f"wasmcloud-controller {self.id}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            disconnected_cb=self._on_disconnect,
            reconnected_cb=self._on_reconnect,
            closed_cb=self._on_closed,
        )
        js = nc.jetstream(domain=self.config.js_domain)
        lattice = self.config.lattice
        replicas = self.config.stream_replicas
        self.manifests = await ManifestStore.open(js, lattice, replicas)
        self.statuses = await StatusStore.open(js, lattice, replicas)
        self.lease = await LeaderLease.open(js, lattice, self.id, self.config.lease_ttl, replicas)
        self.ctl = CtlClient(nc, lattice, headers=otel.context_headers)
        self._reads = CtlClient(nc, lattice, timeout=READ_TIMEOUT)
        api = WadmApi(self.manifests, self.statuses)

        async def on_api(msg: Msg) -> None:
            with telemetry.span("wadm.api", {"wadm.api.subject": msg.subject}):
                await msg.respond(await api.handle(msg.subject, msg.data))

        await nc.subscribe(f"{WADM_API_PREFIX}.{lattice}.>", queue=WADM_API_QUEUE, cb=on_api)
        await nc.subscribe(events_wildcard(lattice), cb=self._on_event)
        if self.config.grant_issuer is not None:
            await self._serve_link_grants(nc, js, self.config.grant_issuer)
        tasks = [asyncio.create_task(self._watch_manifests())]
        await settle(nc)
        log.info("controller started", extra={"controller": self.id, "lattice": lattice})
        self.ready.set()
        try:
            await self._loop()
        finally:
            for task in tasks:
                task.cancel()
            if self._closed_by_server is None:
                await self.lease.release()
                await nc.drain()
            log.info("controller stopped", extra={"controller": self.id})
        if self._closed_by_server is not None:
            raise ConnectionRefused("controller", self.config.nats_url, self._closed_by_server, fix)

    async def _on_closed(self) -> None:
        # nats-py closes for good, without reconnecting, when the server revokes the user
        # or its JWT expires: stop (saying why) rather than run on without NATS.
        if not self._stop.is_set() and self._nc is not None:
            self._closed_by_server = self._nc.last_error or RuntimeError("connection closed")
            self.request_stop()

    async def _serve_link_grants(
        self, nc: NatsClient, js: JetStreamContext, issuer: GrantIssuer
    ) -> None:
        lattice = self.config.lattice
        store: list[LatticeStore] = []

        async def read_links() -> list[dict[str, Any]]:
            # Opened at the first request: the hosts make the bucket, and it holds no
            # links before a host has answered a link.put.
            if not store:
                store.append(await LatticeStore.open(js, lattice))
            return await store[0].get_links()

        grants = LinkGrants(lattice, issuer, read_links)

        async def on_grant(msg: Msg) -> None:
            await msg.respond(await grants.handle(msg.data))

        await nc.subscribe(link_grant_subject(lattice), queue=LINK_GRANT_QUEUE, cb=on_grant)

    # inputs ---------------------------------------------------------------------------
    async def _on_event(self, msg: Msg) -> None:
        try:
            event = json.loads(msg.data)
            name = str(event.get("type", "")).removeprefix(EVENT_TYPE_PREFIX)
            data = event.get("data") or {}
            self.view.apply_event(name, str(event.get("source", "")), data, time.monotonic())
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
            # BadRequest (a ValueError) names the field of a malformed heartbeat.
            log.warning("ignoring malformed event on %s: %s", msg.subject, exc)
            return
        if name in _RECONCILE_EVENTS:
            self._mark_everything()

    def _mark_everything(self) -> None:
        self._everything = True
        self._wake.set()

    async def _on_disconnect(self) -> None:
        self.view.lost_the_lattice()

    async def _on_reconnect(self) -> None:
        # Otherwise a NATS restart longer than the host timeout dropped every host and
        # re-placed their work next to what still ran (tests/faults/test_nats_restart.py:
        # a second http-server), or published "no hosts" statuses that a deploy right
        # after the outage read (tests/e2e/test_crash_recovery.py).
        self.view.rejoined(time.monotonic())
        self._refresh = True  # events may have been missed while disconnected
        self._mark_everything()

    async def _watch_manifests(self) -> None:
        prefix = self.manifests.key("")

        async def watch() -> None:
            async for entry in follow(self.manifests.kv):
                if entry.key.startswith(prefix):  # one app's versions (not the index)
                    self._dirty.add(entry.key.removeprefix(prefix))
                    self._wake.set()

        await keep_watching("manifest", watch, log)

    # the loop -------------------------------------------------------------------------
    async def _loop(self) -> None:
        while not self._stop.is_set():
            timeout = self.config.resync_interval
            if not self.lease.held:
                timeout = min(timeout, self.config.lease_ttl / 3)
            expiry = self.view.next_expiry()
            if expiry is not None:
                timeout = max(0.05, min(timeout, expiry - time.monotonic() + 0.05))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                self._everything = True  # the periodic resync (or a host's deadline)
            self._wake.clear()
            if self._stop.is_set():
                break
            await asyncio.sleep(0.05)  # let a burst of events land before planning
            self._wake.clear()
            try:
                await self._until_stopped(self.step())
            except Exception:
                log.exception("reconcile round failed; retrying")
                await asyncio.sleep(1.0)

    async def _until_stopped(self, work: Coroutine[Any, Any, None]) -> None:
        """Run one round, abandoning it when a stop is requested: a round can wait seconds
        on hosts that are already gone, and every round is safe to redo."""
        round_ = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({round_, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not round_.done():
            round_.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await round_
            return
        round_.result()

    async def step(self) -> None:
        """One round: renew the lease, refresh the view if needed, drop dead hosts,
        reconcile every application."""
        was_leader = self.lease.held
        if not await self.lease.hold():
            return
        if not was_leader or self._refresh:
            self._everything = True
            await self.refresh_view()
        for host_id in self.view.expire(time.monotonic()):
            log.warning("host %s missed its heartbeats; dropped, re-placing its work", host_id)
            self._everything = True
        await self.reconcile_pending()

    async def refresh_view(self) -> None:
        self._refresh = False
        now = time.monotonic()
        for host in await self.ctl.read_hosts(wait=0.5):
            if host.inventory is None:
                log.warning("inventory of %s unavailable: %s", host.host_id, host.error)
                continue
            try:
                self.view.apply_inventory(host.inventory, now)
            except BadRequest as exc:  # one host's bad reply must not stop the controller
                log.warning("ignoring the inventory of %s: %s", host.host_id, exc)

    async def reconcile_pending(self) -> None:
        """Reconcile what changed since the last round (flags are taken first, so a
        change that lands during this round is reconciled by the next one)."""
        everything, dirty = self._everything, self._dirty
        self._everything, self._dirty = False, set()
        try:
            # Spans only for a pass that sends something (or fails): an idle lattice
            # reconciles on every heartbeat, and those passes would bury the ones that act.
            with telemetry.deferred_span("reconcile", {"wadm.controller": self.id}) as pass_:
                try:
                    links = await self._read(CtlClient.get_links)
                except nats.errors.NoRespondersError:
                    links = []  # no host is up to answer: statuses still go out ("no hosts")
                apps = set(dirty)
                if everything:
                    apps |= set(await self.manifests.names()) | set(self._known)
                for app in sorted(apps):
                    attributes = {"wadm.application": app}
                    with telemetry.deferred_span(f"reconcile {app}", attributes, pass_) as span:
                        await self.reconcile_app(app, links, span)
        except BaseException:
            self._everything, self._dirty = self._everything or everything, self._dirty | dirty
            raise

    async def reconcile_app(
        self, app: str, links: list[dict[str, Any]], span: telemetry.DeferredSpan | None = None
    ) -> None:
        stored = await self.manifests.get(app)
        versions = []
        for data in stored.manifests.values() if stored else []:
            try:
                versions.append(_parse_stored(json.dumps(data, sort_keys=True)))
            except ManifestError:
                log.warning("stored manifest of %s no longer validates; ignoring it", app)
        known = self._known.setdefault(app, [])
        known.extend(m for m in versions if m not in known)
        deployed_data = stored.deployed_manifest() if stored else None
        manifest = (
            _parse_stored(json.dumps(deployed_data, sort_keys=True)) if deployed_data else None
        )
        owned = owned_by(known)
        configs = {
            name: await self._read(functools.partial(CtlClient.get_config, name=name))
            for name in sorted(owned.config_names)
        }
        result = reconcile(app, manifest, owned, self.view, links, configs, time.monotonic())
        if result.commands and span is not None:
            span.open()  # the commands' spans are its children
        for command in result.commands:
            await self.execute(command)
        if manifest is None:
            if not result.commands and stored is None:
                self._known.pop(app, None)  # deleted and cleaned up: forget it
            await self._publish(app, Status(status=StatusInfo(type=StatusType.UNDEPLOYED)))
            return
        kinds = [s.status.type for s in result.scalers]
        overall = aggregate_status(kinds)
        message = "; ".join(
            s.status.message
            for s in result.scalers
            if s.status.type is overall and s.status.message
        )
        await self._publish(
            app,
            Status(status=StatusInfo(type=overall, message=message), scalers=list(result.scalers)),
        )

    async def _read(self, call: Callable[[CtlClient], Awaitable[T]]) -> T:
        """A read any host answers, asked again when the host NATS picked does not answer
        (each attempt goes to a random member of the hosts' queue group)."""
        for _ in range(READ_ATTEMPTS - 1):
            with contextlib.suppress(TimeoutError):
                return await call(self._reads)
        return await call(self._reads)

    async def _publish(self, app: str, status: Status) -> None:
        if self._published.get(app) != status:
            await self.statuses.publish(app, status)
            self._published[app] = status
            log.info("%s: %s %s", app, status.status.type.value, status.status.message)

    # effects ---------------------------------------------------------------------------
    async def execute(self, command: Command) -> None:
        """Send one command; on success, note it in the view so the next round does not
        repeat it before the host's event reports the outcome."""
        now = time.monotonic()
        with telemetry.command(command) as outcome:
            try:
                match command:
                    case PutConfig(name, values):
                        await self.ctl.put_config(name, values)
                    case DeleteConfig(name):
                        await self.ctl.delete_config(name)
                    case StartProvider(host_id, provider_id, image, annotations, config):
                        await self.ctl.start_provider(
                            host_id, provider_id, image, annotations, config
                        )
                        if host := self.view.hosts.get(host_id):
                            host.providers[provider_id] = ProviderSeen(
                                image, annotations, healthy=False
                            )
                    case StopProvider(host_id, provider_id):
                        await self.ctl.stop_provider(host_id, provider_id)
                        if host := self.view.hosts.get(host_id):
                            host.providers.pop(provider_id, None)
                    case ScaleComponent(host_id, component_id, image, count, annotations, config):
                        await self.ctl.scale_component(
                            host_id, component_id, image, count, annotations, config
                        )
                        # Running only once the host's component_scaled event says so.
                        self.view.expect_scale(host_id, component_id, image, count, now)
                    case PutLink(link):
                        try:
                            await self.ctl.put_link(link)
                        except (CtlError, TimeoutError) as refused:
                            reason = str(refused) or "the host did not answer link.put in time"
                            self.view.link_failures[link_key(link)] = reason
                            raise
                        self.view.link_failures.pop(link_key(link), None)
                    case DeleteLink(source_id, namespace, package, name):
                        await self.ctl.delete_link(source_id, namespace, package, name)
            except (CtlError, TimeoutError, nats.errors.Error) as exc:
                log.warning("command %s failed: %s", command, exc)
                outcome.failed(exc)
                if isinstance(command, StartProvider):
                    self.view.record_start_failure(
                        command.host_id, command.provider_id, {"error": str(exc)}, now
                    )


@functools.lru_cache(maxsize=4096)
def _parse_stored(text: str) -> Manifest:
    """Stored manifests are immutable per version, so each is validated once, not on
    every round."""
    return parse_manifest(json.loads(text)).manifest
