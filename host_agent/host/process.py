"""The running host: NATS connection, subscriptions, heartbeats, events, shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from host_agent import __version__
from host_agent.host.caller import GrantKeeper, new_caller_seed
from host_agent.host.components import ComponentHost
from host_agent.host.handlers import CtlHandlers, HostOptions
from host_agent.host.identity import HostIdentity, default_labels
from host_agent.host.lattice_providers import LatticeProviders
from host_agent.host.links import LinkIndex
from host_agent.host.log_stream import HostLogStream
from host_agent.host.providers import ProviderSupervisor
from host_agent.host.state import HostState
from host_agent.host.store import LatticeStore
from host_agent.lattice.connection import (
    ClientTls,
    ConnectionRefused,
    NatsAddress,
    NatsCredentials,
    connect_nats,
    settle,
)
from host_agent.lattice.events import EVENT_TYPE_PREFIX, cloud_event
from host_agent.lattice.jetstream import keep_watching
from host_agent.lattice.protocol import Link
from host_agent.lattice.subjects import (
    DEFAULT_CTL_PREFIX,
    PROVIDER_EVENTS,
    CtlSubjects,
    event_subject,
    host_log_subject,
)
from host_agent.secrets.host import HostSecrets, split_config_names
from host_agent.telemetry import ctl as ctl_telemetry
from host_agent.telemetry.config import TelemetryConfig
from host_agent.wrpc.granted import GrantedClient
from host_agent.wrpc.transport import WrpcClient, WrpcServer

log = logging.getLogger("host_agent.host")


@dataclass
class HostConfig:
    nats_url: str = "nats://127.0.0.1:4222"
    lattice: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    seed: str | None = field(default=None, repr=False)  # secret
    friendly_name: str | None = None
    heartbeat_interval: float = 30.0
    allow_file_load: bool = False
    ctl_prefix: str = DEFAULT_CTL_PREFIX
    js_domain: str | None = None
    # The NATS user this host connects as; its providers connect as the same user.
    credentials: NatsCredentials | None = None
    # Per-link authorization: outgoing wRPC calls (of components and providers) go out as
    # link grants from the controller, for a lattice whose host users may not invoke.
    link_grants: bool = False
    # TLS towards NATS (the lattice's CA, this host's client certificate); its providers
    # connect with the same settings.
    tls: ClientTls | None = None
    # OpenTelemetry: what this host exports; its providers get the same (HostData).
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    # Publish this process's log records on host_log_subject (`wasmcloud logs`): the
    # wasmcloud-host command does; a Host inside another program (tests) does not.
    publish_logs: bool = False


class Host:
    def __init__(self, config: HostConfig) -> None:
        self.config = config
        identity = (
            HostIdentity.from_seed(config.seed, config.friendly_name)
            if config.seed
            else HostIdentity.generate(config.friendly_name)
        )
        self.state = HostState(
            identity, config.lattice, __version__, {**default_labels(), **config.labels}
        )
        self.subjects = CtlSubjects(config.lattice, config.ctl_prefix)
        self._stop = asyncio.Event()
        self._nc: NatsClient | None = None
        self._closed_by_server: Exception | None = None
        self._subscriptions: list[Subscription] = []
        self.handlers: CtlHandlers | None = None
        # Which provider each other host runs, from their events (_on_event).
        self.lattice_providers = LatticeProviders(self.state.host_id)
        self.links = LinkIndex()
        self.components: ComponentHost | None = None
        self.providers: ProviderSupervisor | None = None
        self._store: LatticeStore | None = None
        self._caller: GrantedClient | None = None
        self._grants: GrantKeeper | None = None
        self._log_stream: HostLogStream | None = None

    @property
    def host_id(self) -> str:
        return self.state.host_id

    async def publish_event(self, name: str, data: dict[str, Any]) -> None:
        assert self._nc is not None
        await self._nc.publish(
            event_subject(self.config.lattice, name), cloud_event(name, self.host_id, data)
        )

    def request_stop(self) -> None:
        self._stop.set()

    async def start(self) -> None:
        """Connect, join the lattice and announce the host."""
        self._nc = await connect_nats(
            NatsAddress.parse(self.config.nats_url),
            self.config.credentials,
            who="host",
            fix=self._credentials_fix(),
            tls=self.config.tls,
            name=f"wasmcloud-host {self.host_id}",
            max_reconnect_attempts=-1,  # keep trying: a host outlives NATS restarts
            reconnect_time_wait=0.5,
            disconnected_cb=self._on_disconnect,
            reconnected_cb=self._on_reconnect,
            error_cb=self._on_error,
            closed_cb=self._on_closed,
        )
        if self.config.publish_logs:
            self._log_stream = HostLogStream(
                self._nc,
                host_log_subject(self.config.lattice, self.host_id),
                self.host_id,
                self._secrets(),
            )
            self._log_stream.start()
        js = self._nc.jetstream(domain=self.config.js_domain)
        store = self._store = await LatticeStore.open(js, self.config.lattice)
        options = HostOptions(
            allow_file_load=self.config.allow_file_load, nats_url=self.config.nats_url
        )
        lattice = self.config.lattice
        self.links = LinkIndex(Link.model_validate(link) for link in await store.get_links())
        client = WrpcClient(self._nc, lattice)
        if self.config.link_grants:
            client = self._caller = self._granted_caller()
        self.components = ComponentHost(
            lattice, client, WrpcServer(self._nc, lattice), lambda: self.links
        )
        if self._grants is not None:
            self.components.on_change = self._grants.changed
            self._grants.start()
        self.providers = ProviderSupervisor(
            self.state,
            self._nc,
            self.config.nats_url,
            self.publish_event,
            self._read_configs,
            self.config.credentials,
            link_grants=self.config.link_grants,
            tls=self.config.tls,
            telemetry=self.config.telemetry,
            secrets=HostSecrets(
                self._nc,
                store.get_config,
                self.host_id,
                self.state.identity.friendly_name,
            ),
        )
        self.handlers = CtlHandlers(
            self.state,
            store,
            self.subjects,
            options,
            self.publish_event,
            self.request_stop,
            self.components,
            self.providers,
            self.lattice_providers,
        )
        # Which provider each other host runs, before this host answers anything: a link
        # to one is judged by the WIT it serves (runtime/provider_versions.py).
        for event in PROVIDER_EVENTS:
            subject = event_subject(lattice, event)
            self._subscriptions.append(await self._nc.subscribe(subject, cb=self._on_event))
        for subject, queue in self.subjects.host_subscriptions(self.host_id):
            sub = await self._nc.subscribe(subject, queue=queue, cb=self._on_request)
            self._subscriptions.append(sub)
        await settle(self._nc)
        await self.publish_event(
            "host_started",
            {
                "friendly_name": self.state.identity.friendly_name,
                "labels": dict(self.state.labels),
                "uptime_seconds": 0,
                "version": self.state.version,
            },
        )
        log.info(
            "host started",
            extra={
                "host_id": self.host_id,
                "lattice": self.config.lattice,
                "labels": self.state.labels,
            },
        )

    def _granted_caller(self) -> GrantedClient:
        """The connection this host's components call on, as their link grant's user."""
        assert self._nc is not None
        seed = new_caller_seed()
        who = f"host {self.host_id}"

        async def connect(credentials: NatsCredentials) -> NatsClient:
            return await connect_nats(
                NatsAddress.parse(self.config.nats_url),
                credentials,
                who=f"{who} (outgoing wRPC calls)",
                fix="the link grant the controller signed is not accepted by this server",
                tls=self.config.tls,
                name=f"wasmcloud-host {self.host_id} calls",
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
            )

        caller = GrantedClient(self.config.lattice, seed, connect, who)
        self._grants = GrantKeeper(
            self._nc,
            self.config.lattice,
            self.state.identity.seed,
            seed,
            lambda: sorted(self.components.running) if self.components else [],
            caller.install,
            f"the components of host {self.host_id}",
        )
        return caller

    def _secrets(self) -> list[str]:
        """What this host holds that no log record may show."""
        found = [self.config.seed or "", self.state.identity.seed]
        if self.config.credentials is not None:
            found.append(self.config.credentials.seed)
        if self.config.tls is not None and self.config.tls.key_pem:
            found.append(self.config.tls.key_pem)
        return found

    def _credentials_fix(self) -> str:
        if self.config.credentials is None:
            return (
                "this NATS requires a user; give the host the .creds of a user of the "
                "lattice's account: WASMCLOUD_NATS_CREDS=<file>, or WASMCLOUD_NATS_JWT and "
                "WASMCLOUD_NATS_SEED (the Pulumi provider passes wasmcloud:credentials)"
            )
        return (
            "the server does not accept this host's NATS user; check that its .creds "
            "(WASMCLOUD_NATS_CREDS or WASMCLOUD_NATS_JWT/SEED) belong to an account of "
            "this NATS server and have not expired or been revoked"
        )

    async def _read_configs(self, names: list[str]) -> dict[str, str]:
        """Named configs merged in order (later names win), as providers receive them."""
        assert self._store is not None
        merged: dict[str, str] = {}
        # A secret reference is never config: its values go through HostSecrets.
        for name in split_config_names(names)[0]:
            merged.update(await self._store.get_config(name) or {})
        return merged

    async def _follow_links(self) -> None:
        # Links are written by whichever host answered link.put; every host follows the
        # KV bucket so its components route calls and its providers hear about links.
        store, providers = self._store, self.providers
        assert store is not None and providers is not None
        by_source: dict[str, list[Link]] = {}

        async def watch() -> None:
            async for source_id, links in store.watch_links():
                by_source[source_id] = [Link.model_validate(link) for link in links]
                every = [link for source in sorted(by_source) for link in by_source[source]]
                # Providers first, then routing: a component's first call over a new
                # link must reach a provider that already has the link's config (a
                # keyvalue-redis without it would use its default Redis URL).
                await providers.links_changed(every)
                self.links = LinkIndex(every)
                if self._grants is not None:
                    self._grants.changed()

        await keep_watching("link", watch, log)

    async def _follow_configs(self) -> None:
        # A named config put again under the same name (an application update that moves
        # the http-server's address) leaves its links unchanged, so the link watch stays
        # quiet: every host follows the config bucket too, with one watcher, and its
        # providers get the links naming that config again with the values resolved
        # anew (ProviderSupervisor.config_changed says what upstream does).
        store, providers = self._store, self.providers
        assert store is not None and providers is not None

        async def watch() -> None:
            async for name in store.watch_configs():
                await providers.config_changed(name)

        await keep_watching("config", watch, log)

    async def run(self) -> None:
        await self.start()
        tasks = [
            asyncio.create_task(self._heartbeats()),
            asyncio.create_task(self._follow_links()),
            asyncio.create_task(self._follow_configs()),
        ]
        try:
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await self.shutdown()
        if self._closed_by_server is not None:
            raise ConnectionRefused(
                "host", self.config.nats_url, self._closed_by_server, self._credentials_fix()
            )

    async def shutdown(self) -> None:
        if self._nc is None or self._nc.is_closed:
            return
        if self.handlers is not None:
            await self.handlers.wait_background()
        if self.components is not None:
            await self.components.stop_all()
        if self.providers is not None:
            await self.providers.stop_all()
        if self._grants is not None:
            await self._grants.stop()
        if self._caller is not None:
            await self._caller.close()
        self.state.components.clear()
        self.state.providers.clear()
        if self._log_stream is not None:
            await self._log_stream.stop()
        try:
            # Stop answering first, so nobody sees this host after host_stopped.
            for sub in self._subscriptions:
                await sub.unsubscribe()
            await self.publish_event("host_stopped", {"labels": dict(self.state.labels)})
            await self._nc.drain()
        except Exception:
            log.warning("NATS unavailable during shutdown; host_stopped not delivered")
            await self._nc.close()
        log.info("host stopped", extra={"host_id": self.host_id})

    async def _heartbeats(self) -> None:
        # Like the real host, the first heartbeat comes one interval after start.
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            if self._nc is not None and not self._nc.is_connected:
                # nats-py would hold it back and send it with the others on reconnecting:
                # stale, and a burst; _on_reconnect sends a fresh one instead.
                continue
            try:
                await self.publish_event("host_heartbeat", self.state.inventory())
            except Exception:
                log.warning("heartbeat not published (NATS unavailable); will retry")

    async def _on_event(self, msg: Msg) -> None:
        try:
            event = json.loads(msg.data)
            name = str(event["type"]).removeprefix(EVENT_TYPE_PREFIX)
            source, data = event["source"], event["data"]
        except (ValueError, KeyError, TypeError):
            log.debug("unreadable event on %s ignored", msg.subject)
            return
        if isinstance(source, str) and isinstance(data, dict):
            self.lattice_providers.apply(name, source, data)

    async def _on_request(self, msg: Msg) -> None:
        assert self.handlers is not None
        # A controller's command carries its span (traceparent): the host continues it.
        with ctl_telemetry.request_span(self.subjects.operation(msg.subject), msg.headers):
            reply = await self.handlers.handle(msg.subject, msg.data)
        if reply is not None and msg.reply:
            await msg.respond(reply)

    async def _on_closed(self) -> None:
        # nats-py closes for good, without reconnecting, when the server revokes the user
        # or its JWT expires: a host left so would look alive and do nothing. It stops
        # instead, saying why (the server's last error).
        if not self._stop.is_set() and self._nc is not None:
            self._closed_by_server = self._nc.last_error or RuntimeError("connection closed")
            self.request_stop()

    async def _on_disconnect(self) -> None:
        log.warning("disconnected from NATS; reconnecting")

    async def _on_reconnect(self) -> None:
        log.info("reconnected to NATS")
        # While NATS was away the controller may have dropped this host (missed
        # heartbeats) and rebuilt its view before this host was back: say it is here now,
        # not one heartbeat interval later, so a deploy right after the outage finds it.
        try:
            await self.publish_event("host_heartbeat", self.state.inventory())
        except Exception as exc:  # the interval's heartbeat comes anyway
            log.warning("heartbeat after reconnecting not published: %s", exc)

    async def _on_error(self, exc: Exception) -> None:
        if self._log_stream is not None and self._log_stream.refused(exc):
            # A host user issued before host logs: stop, or each refusal's warning would
            # be published (and refused) in turn; once, though several may be in flight.
            stream, self._log_stream = self._log_stream, None
            await stream.stop(publish_queued=False)
            log.warning(
                "this host's NATS user may not publish its log records (%s), so `wasmcloud "
                "logs` cannot follow this host: the user was issued before host logs; give "
                "the host a new one (e.g. `pulumi up --replace` its Host)",
                exc,
            )
            return
        log.warning("NATS error: %s", exc)
