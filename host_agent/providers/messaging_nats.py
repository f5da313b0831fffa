"""messaging-nats: wasmcloud:messaging@0.2.0 on a NATS server (not the lattice's own).

Two kinds of link, read as wasmCloud's messaging-nats 1.x reads them:

- provider -> component on wasmcloud:messaging `handler`: the link's source_config
  `subscriptions` (comma-separated subjects; `subject|queue` for a queue group) are
  subscribed on the server its `cluster_uris` names, and each message is delivered to
  the component's `handle-message` over wRPC. A message with a reply subject is
  answered by the component itself (`consumer.publish` to `reply-to`): request/reply.
- component -> provider on wasmcloud:messaging `consumer`: the link's target_config
  says where that component's `publish` and `request` go.

Config (link config over the provider's own): `cluster_uris` (comma-separated NATS
URLs, default nats://127.0.0.1:4222), `subscriptions`, `client_jwt` + `client_seed`
(prefer secrets of those names), `tls_ca` (PEM text), `custom_inbox_prefix`. A value of
the wrong shape is refused naming it: the component's calls answer the sentence, and
the provider reports unhealthy with it. A server that is down is retried every
half-second; messages published meanwhile are errors to the component, not lost calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, field

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.client import RawCredentials
from nats.aio.msg import Msg

from host_agent.lattice.connection import (
    AddressError,
    CredentialsError,
    NatsAddress,
    NatsCredentials,
    settle,
)
from host_agent.providers.contract import HostData, InterfaceLinkDefinition
from host_agent.providers.messaging_delivery import deliver
from host_agent.providers.sdk import run_provider
from host_agent.secrets.provider import host_secrets, link_secrets
from host_agent.wrpc import messaging as wire
from host_agent.wrpc.codec import DecodeError
from host_agent.wrpc.transport import Payload, WrpcClient, WrpcError, WrpcServer

log = logging.getLogger("host_agent.provider.messaging_nats")

DEFAULT_URL = "nats://127.0.0.1:4222"
RECONNECT_WAIT = 0.5
CONCURRENT_DELIVERIES = 64  # messages being handled at once, per subscription link


class ConfigError(ValueError):
    pass


def _bad_token(part: str) -> bool:
    return not part or any(c.isspace() for c in part)


@dataclass(frozen=True)
class Subscription:
    subject: str
    queue: str = ""


@dataclass(frozen=True)
class ConnectionConfig:
    servers: tuple[str, ...]
    subscriptions: tuple[Subscription, ...]
    credentials: NatsCredentials | None
    tls_ca: str | None
    inbox_prefix: str | None

    @classmethod
    def parse(cls, values: dict[str, str], secrets: dict[str, str], where: str) -> ConnectionConfig:
        """Strictly from string config values; `where` names them in refusals."""
        for name, value in values.items():
            if not isinstance(value, str):
                raise ConfigError(f"{where} {name} must be a string, not {type(value).__name__}")
        servers = []
        for url in values.get("cluster_uris", DEFAULT_URL).split(","):
            url = url.strip()
            if "://" not in url and url:
                url = f"nats://{url}"  # upstream's form, host:port
            try:
                servers.append(NatsAddress.parse(url).url)
            except AddressError as error:
                raise ConfigError(
                    f"{where} cluster_uris={values.get('cluster_uris')!r}: {error}"
                ) from None
        subscriptions = []
        for entry in values.get("subscriptions", "").split(","):
            entry = entry.strip()
            if not entry:
                continue  # upstream skips empty entries ("a,,b", a trailing comma)
            subject, bar, queue = entry.partition("|")
            if _bad_token(subject) or (bar and _bad_token(queue)):
                raise ConfigError(
                    f"{where} subscriptions={values['subscriptions']!r}: {entry!r} is not a "
                    'subject (optionally "|queue"); write comma-separated subjects without '
                    'spaces, e.g. "orders.*,jobs|workers"'
                )
            subscriptions.append(Subscription(subject, queue))
        jwt = secrets.get("client_jwt") or values.get("client_jwt")
        seed = secrets.get("client_seed") or values.get("client_seed")
        credentials = None
        if jwt or seed:
            if not (jwt and seed):
                raise ConfigError(
                    f"{where}: client_jwt and client_seed go together (a NATS user); give "
                    "both, preferably as secrets"
                )
            try:
                credentials = NatsCredentials(jwt, seed)
            except CredentialsError as error:
                raise ConfigError(f"{where} client_jwt/client_seed: {error}") from None
        tls_ca = values.get("tls_ca") or None
        if tls_ca is not None:
            try:
                ssl.create_default_context(cadata=tls_ca)
            except (ssl.SSLError, ValueError):
                raise ConfigError(
                    f"{where} tls_ca is not PEM certificate text; give the CA certificate "
                    "(-----BEGIN CERTIFICATE----- ...) that signed the server's"
                ) from None
        return cls(
            tuple(servers),
            tuple(subscriptions),
            credentials,
            tls_ca,
            values.get("custom_inbox_prefix") or None,
        )

    def same_server(self, other: ConnectionConfig) -> bool:
        return (self.servers, self.credentials, self.tls_ca, self.inbox_prefix) == (
            other.servers,
            other.credentials,
            other.tls_ca,
            other.inbox_prefix,
        )


@dataclass
class Connection:
    """One link's connection to its NATS server; connects (and reconnects) on its own."""

    config: ConnectionConfig
    who: str
    nc: NatsClient | None = None
    task: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        options: dict[str, object] = {
            "servers": list(self.config.servers),
            "name": self.who,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": RECONNECT_WAIT,
            "connect_timeout": 2,
            "allow_reconnect": True,
        }
        if self.config.credentials is not None:
            options["user_credentials"] = RawCredentials(self.config.credentials.creds())
        if self.config.tls_ca is not None:
            options["tls"] = ssl.create_default_context(cadata=self.config.tls_ca)
        if self.config.inbox_prefix is not None:
            options["inbox_prefix"] = self.config.inbox_prefix

        async def quiet(error: Exception) -> None:
            log.debug("%s: %s", self.who, error)

        while True:
            try:
                self.nc = await nats.connect(**options, error_cb=quiet)  # type: ignore[arg-type]
                break
            except Exception as error:  # down or refusing: try again, as reconnects do
                log.warning("%s: cannot reach %s yet (%s)", self.who, self.config.servers, error)
                await asyncio.sleep(RECONNECT_WAIT)
        self.ready.set()

    def problem(self) -> str | None:
        """Why calls cannot go out now, or None."""
        if self.nc is None:
            return f"not connected to NATS at {', '.join(self.config.servers)} yet (retrying)"
        if not self.nc.is_connected:
            return f"the NATS server at {', '.join(self.config.servers)} is unreachable (retrying)"
        return None

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()


@dataclass
class Subscriber:
    """A provider -> component link: its subscriptions, delivered to the component."""

    link: InterfaceLinkDefinition
    connection: Connection
    subscribing: asyncio.Task[None] | None = None


class MessagingNatsProvider:
    def __init__(self) -> None:
        self.provider_id = ""
        self._host: HostData | None = None
        self.client: WrpcClient | None = None
        # component -> provider links (consumer), by source component id
        self._consumers: dict[str, Connection | str] = {}
        # provider -> component links (handler), by (target component, link name)
        self._subscribers: dict[tuple[str, str], Subscriber | str] = {}
        self._deliveries = asyncio.Semaphore(CONCURRENT_DELIVERIES)

    async def start(self, host: HostData, nc: NatsClient) -> None:
        self.provider_id = host.provider_key
        self._host = host
        self.client = WrpcClient(nc, host.lattice_rpc_prefix)
        server = WrpcServer(nc, host.lattice_rpc_prefix)
        await server.serve(host.provider_key, wire.CONSUMER_INSTANCE, "publish", self._publish)
        await server.serve(host.provider_key, wire.CONSUMER_INSTANCE, "request", self._request)

    def use_caller(self, client: WrpcClient) -> None:
        """handle-message calls go out on the link grant's connection (per-link grants)."""
        self.client = client

    def _config(self, link: InterfaceLinkDefinition, side: str) -> ConnectionConfig:
        assert self._host is not None
        values = {
            **self._host.config,
            **(link.source_config if side == "source" else link.target_config),
        }
        secrets = host_secrets(self._host) | link_secrets(link, self._host, side)
        where = f"link {link.name!r} {link.source_id} -> {link.target}: {side}_config"
        return ConnectionConfig.parse(values, secrets, where)

    async def link_put(self, link: InterfaceLinkDefinition) -> None:
        if (link.wit_namespace, link.wit_package) != ("wasmcloud", "messaging"):
            return
        if link.target == self.provider_id and "consumer" in link.interfaces:
            await self._drop_consumer(link.source_id)
            try:
                config = self._config(link, "target")
            except ConfigError as error:
                log.error("%s", error)
                self._consumers[link.source_id] = str(error)
                return
            connection = Connection(config, f"messaging-nats for {link.source_id}")
            connection.start()
            self._consumers[link.source_id] = connection
        if link.source_id == self.provider_id and "handler" in link.interfaces:
            key = (link.target, link.name)
            await self._drop_subscriber(key)
            try:
                config = self._config(link, "source")
            except ConfigError as error:
                log.error("%s", error)
                self._subscribers[key] = str(error)
                return
            connection = Connection(config, f"messaging-nats subscriptions of {link.target}")
            connection.start()
            subscriber = Subscriber(link, connection)
            subscriber.subscribing = asyncio.get_running_loop().create_task(
                self._subscribe(subscriber)
            )
            self._subscribers[key] = subscriber

    async def link_del(self, link: InterfaceLinkDefinition) -> None:
        if link.target == self.provider_id:
            await self._drop_consumer(link.source_id)
        if link.source_id == self.provider_id:
            await self._drop_subscriber((link.target, link.name))

    async def _drop_consumer(self, source_id: str) -> None:
        old = self._consumers.pop(source_id, None)
        if isinstance(old, Connection):
            await old.close()

    async def _drop_subscriber(self, key: tuple[str, str]) -> None:
        old = self._subscribers.pop(key, None)
        if isinstance(old, Subscriber):
            if old.subscribing is not None:
                old.subscribing.cancel()
            await old.connection.close()

    async def _subscribe(self, subscriber: Subscriber) -> None:
        """Once connected: one subscription per subject (nats-py resubscribes them after a
        reconnect, so a server that comes back delivers again)."""
        connection = subscriber.connection
        await connection.ready.wait()
        assert connection.nc is not None
        link = subscriber.link

        async def deliver(msg: Msg) -> None:
            async with self._deliveries:
                await self._deliver(link, msg)

        async def on_message(msg: Msg) -> None:
            asyncio.get_running_loop().create_task(deliver(msg))

        for subscription in connection.config.subscriptions:
            await connection.nc.subscribe(
                subscription.subject, queue=subscription.queue, cb=on_message
            )
        await settle(connection.nc)
        log.info(
            "delivering %s to %s",
            ", ".join(s.subject for s in connection.config.subscriptions) or "nothing",
            link.target,
        )

    async def _deliver(self, link: InterfaceLinkDefinition, msg: Msg) -> None:
        assert self.client is not None
        message = wire.BrokerMessage(msg.subject, msg.data, msg.reply or None)
        error = await deliver(self.client, link.target, message, self.provider_id, link.name)
        if error is not None:
            log.warning("message on %s for %s: %s", msg.subject, link.target, error)

    def _connection(self, headers: dict[str, str]) -> Connection | str:
        source = headers.get("source-id", "")
        connection = self._consumers.get(source)
        if connection is None:
            return (
                f"no link from {source or 'an unnamed caller'} to {self.provider_id} on "
                "wasmcloud:messaging/consumer has reached it; put one"
            )
        return connection

    async def _publish(self, params: Payload, headers: dict[str, str]) -> Payload:
        try:
            message = wire.decode_message(params.data)
        except DecodeError as error:
            raise WrpcError(
                f"the parameters of {wire.CONSUMER_INSTANCE}.publish: {error}"
            ) from None
        connection = self._connection(headers)
        problem = connection if isinstance(connection, str) else connection.problem()
        if problem is None:
            assert isinstance(connection, Connection) and connection.nc is not None
            try:
                await connection.nc.publish(
                    message.subject, message.body, reply=message.reply_to or ""
                )
            except nats.errors.Error as error:
                problem = f"publish to {message.subject!r} failed: {error or type(error).__name__}"
        return Payload(wire.encode_unit_result(problem))

    async def _request(self, params: Payload, headers: dict[str, str]) -> Payload:
        try:
            subject, body, timeout_ms = wire.decode_request(params.data)
        except DecodeError as error:
            raise WrpcError(
                f"the parameters of {wire.CONSUMER_INSTANCE}.request: {error}"
            ) from None
        connection = self._connection(headers)
        problem = connection if isinstance(connection, str) else connection.problem()
        if problem is not None:
            return Payload(wire.encode_message_result(problem))
        assert isinstance(connection, Connection) and connection.nc is not None
        try:
            reply = await connection.nc.request(subject, body, timeout=max(timeout_ms, 1) / 1000)
        except nats.errors.NoRespondersError:
            result: wire.BrokerMessage | str = f"no responders on {subject!r}"
        except nats.errors.TimeoutError:
            result = f"request to {subject!r} timed out after {timeout_ms} ms"
        except nats.errors.Error as error:
            result = f"request to {subject!r} failed: {error or type(error).__name__}"
        else:
            result = wire.BrokerMessage(reply.subject, reply.data, reply.reply or None)
        return Payload(wire.encode_message_result(result))

    async def health(self) -> tuple[bool, str]:
        refused = [
            entry
            for entry in [*self._consumers.values(), *self._subscribers.values()]
            if isinstance(entry, str)
        ]
        if refused:
            return False, "; ".join(refused)
        return True, (
            f"{len(self._consumers)} consumer link(s), {len(self._subscribers)} subscriber link(s)"
        )

    async def stop(self) -> None:
        for source in list(self._consumers):
            await self._drop_consumer(source)
        for key in list(self._subscribers):
            await self._drop_subscriber(key)


def main() -> None:
    run_provider(MessagingNatsProvider())


if __name__ == "__main__":
    main()
