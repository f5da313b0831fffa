"""messaging-kafka: wasmcloud:messaging@0.2.0 on an Apache Kafka cluster.

Two kinds of link on wasmcloud:messaging:

- component -> provider on `consumer`, read as wasmCloud's messaging-kafka 1.x reads it:
  its target_config says where the component's `publish` goes and, when it names a
  `topic`, what to consume for it (upstream consumes its default `my-topic` even when
  none is named; here a link without `topic` only publishes);
- provider -> component on `handler`, as messaging-nats takes its subscriptions: its
  source_config's `topic` is consumed and delivered to the component. On a lattice with
  link grants (the local default), this is the link that lets the provider call the
  component's `handle-message`: a grant covers the targets of the caller's own links.

Config (either link, over the provider's own config):

- `hosts`: comma-separated bootstrap servers `host:port` (default 127.0.0.1:9092);
  prefer a secret of that name, as upstream does;
- `topic`: the one topic consumed for this component; each record is delivered to
  the component's `handle-message` with `reply-to` `<topic>.reply`;
- `consumer_group`: the consumer group (committed offsets survive restarts), optional;
- `consumer_partitions` / `producer_partitions`: comma-separated partition numbers to
  consume from / to send each published message to (default: all / the partitioner's).

The component's `publish` sends a record with the message's subject as its topic.
Kafka has no request/reply, so `request` answers an error saying so (as upstream).
A value of the wrong shape is refused naming it and the fix: the component's calls
answer the sentence, and the provider reports unhealthy with it. A broker that is down
is retried; a publish meanwhile is an error to the component naming the hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from nats.aio.client import Client as NatsClient

from host_agent.providers.contract import HostData, InterfaceLinkDefinition
from host_agent.providers.messaging_delivery import deliver
from host_agent.providers.sdk import run_provider
from host_agent.secrets.provider import host_secrets, link_secrets
from host_agent.wrpc import messaging as wire
from host_agent.wrpc.codec import DecodeError
from host_agent.wrpc.transport import Payload, WrpcClient, WrpcError, WrpcServer

log = logging.getLogger("host_agent.provider.messaging_kafka")

DEFAULT_HOSTS = "127.0.0.1:9092"
RETRY_WAIT = 0.5
REQUEST_TIMEOUT_MS = 5000  # one produce or metadata request to the broker
# How soon a topic created after the link (by its first producer) is consumed: the client
# learns of new topics only when it refreshes its metadata (its default is 5 minutes).
METADATA_MAX_AGE_MS = 3000
# Kafka's legal topic names (kafka.common.internals.Topic): at most 249 of these.
TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
KNOWN_KEYS = ("hosts", "topic", "consumer_group", "consumer_partitions", "producer_partitions")


class ConfigError(ValueError):
    pass


def _partitions(values: dict[str, str], key: str, where: str) -> tuple[int, ...]:
    raw = values.get(key, "")
    found = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit():
            raise ConfigError(
                f"{where} {key}={raw!r}: {part!r} is not a partition number; write "
                'comma-separated partition numbers, e.g. "0,1"'
            )
        found.append(int(part))
    return tuple(found)


@dataclass(frozen=True)
class KafkaConfig:
    hosts: tuple[str, ...]
    topic: str | None
    consumer_group: str | None
    consumer_partitions: tuple[int, ...]
    producer_partitions: tuple[int, ...]

    @classmethod
    def parse(cls, values: dict[str, str], secrets: dict[str, str], where: str) -> KafkaConfig:
        """Strictly from string config values; `where` names them in refusals."""
        for name, value in values.items():
            if not isinstance(value, str):
                raise ConfigError(f"{where} {name} must be a string, not {type(value).__name__}")
        raw_hosts = secrets.get("hosts") or values.get("hosts") or DEFAULT_HOSTS
        hosts = []
        for entry in raw_hosts.split(","):
            entry = entry.strip()
            host, colon, port = entry.rpartition(":")
            if not (colon and host and port.isdigit() and 0 < int(port) < 65536) or "/" in entry:
                raise ConfigError(
                    f"{where} hosts={raw_hosts!r}: {entry!r} is not a bootstrap server; write "
                    'comma-separated host:port pairs, e.g. "127.0.0.1:9092,kafka-2:9092"'
                )
            hosts.append(entry)
        topic = values.get("topic")
        if topic is not None and (not TOPIC_NAME.fullmatch(topic) or topic in (".", "..")):
            raise ConfigError(
                f"{where} topic={topic!r} is not a Kafka topic name; use one name of up to 249 "
                "letters, digits, '.', '_' or '-' (one topic per link, as upstream)"
            )
        group = values.get("consumer_group") or None
        return cls(
            tuple(hosts),
            topic,
            group,
            _partitions(values, "consumer_partitions", where),
            _partitions(values, "producer_partitions", where),
        )

    @property
    def bootstrap(self) -> str:
        return ",".join(self.hosts)


@dataclass
class ComponentLink:
    """One link: its producer (consumer links), its consumer delivering to `component`."""

    link: InterfaceLinkDefinition
    config: KafkaConfig
    component: str
    producer: AIOKafkaProducer | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("messaging-kafka: %s stopped", task.get_coro(), exc_info=task.exception())


class MessagingKafkaProvider:
    def __init__(self) -> None:
        self.provider_id = ""
        self._host: HostData | None = None
        self.client: WrpcClient | None = None
        # component -> provider links by source component id, and provider -> component
        # links by (target component, link name): the link, or the sentence refusing it
        self._links: dict[str, ComponentLink | str] = {}
        self._handlers: dict[tuple[str, str], ComponentLink | str] = {}

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

    async def link_put(self, link: InterfaceLinkDefinition) -> None:
        if (link.wit_namespace, link.wit_package) != ("wasmcloud", "messaging"):
            return
        if link.target == self.provider_id:
            await self._drop(self._links, link.source_id)
            self._links[link.source_id] = self._open(link, "target", link.source_id)
        if link.source_id == self.provider_id and "handler" in link.interfaces:
            key = (link.target, link.name)
            await self._drop(self._handlers, key)
            self._handlers[key] = self._open(link, "source", link.target)

    def _open(
        self, link: InterfaceLinkDefinition, side: str, component: str
    ) -> ComponentLink | str:
        assert self._host is not None
        config_values = link.target_config if side == "target" else link.source_config
        values = {**self._host.config, **config_values}
        secrets = host_secrets(self._host) | link_secrets(link, self._host, side)
        where = f"link {link.name!r} {link.source_id} -> {link.target}: {side}_config"
        try:
            config = KafkaConfig.parse(values, secrets, where)
        except ConfigError as error:
            log.error("%s", error)
            return str(error)
        if side == "source" and config.topic is None:
            refusal = f"{where} has no topic; name the Kafka topic to deliver to {component}"
            log.error("%s", refusal)
            return refusal
        entry = ComponentLink(link, config, component)
        loop = asyncio.get_running_loop()
        work = [self._produce(entry)] if side == "target" else []
        if config.topic is not None:
            work.append(self._consume(entry, config.topic))
        for coroutine in work:
            task = loop.create_task(coroutine)
            task.add_done_callback(_report_failure)
            entry.tasks.append(task)
        return entry

    async def link_del(self, link: InterfaceLinkDefinition) -> None:
        if link.target == self.provider_id:
            await self._drop(self._links, link.source_id)
        if link.source_id == self.provider_id:
            await self._drop(self._handlers, (link.target, link.name))

    async def _drop(self, table: dict[Any, ComponentLink | str], key: object) -> None:
        old = table.pop(key, None)
        if isinstance(old, ComponentLink):
            await old.close()

    async def _produce(self, entry: ComponentLink) -> None:
        """Start the link's producer, retrying while the brokers are unreachable."""
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=entry.config.bootstrap,
                client_id=f"messaging-kafka-{entry.component}",
                request_timeout_ms=REQUEST_TIMEOUT_MS,
                retry_backoff_ms=200,
                metadata_max_age_ms=METADATA_MAX_AGE_MS,
            )
            try:
                await producer.start()
            except KafkaError as error:
                log.warning("cannot reach Kafka at %s yet (%s)", entry.config.bootstrap, error)
                with contextlib.suppress(Exception):
                    await producer.stop()
                await asyncio.sleep(RETRY_WAIT)
                continue
            entry.producer = producer
            return

    async def _consume(self, entry: ComponentLink, topic: str) -> None:
        """Deliver each record of the link's topic to the component, in order; a broker
        that goes away is reconnected to by the client, one that is not up yet retried."""
        config = entry.config
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=config.bootstrap,
                group_id=config.consumer_group,
                client_id=f"messaging-kafka-{entry.component}",
                request_timeout_ms=REQUEST_TIMEOUT_MS,
                retry_backoff_ms=200,
                auto_offset_reset="latest",
                metadata_max_age_ms=METADATA_MAX_AGE_MS,
            )
            if config.consumer_partitions:
                consumer.assign([TopicPartition(topic, p) for p in config.consumer_partitions])
            else:
                consumer.subscribe([topic])
            try:
                await consumer.start()
            except KafkaError as error:
                log.warning("cannot reach Kafka at %s yet (%s)", config.bootstrap, error)
                with contextlib.suppress(Exception):
                    await consumer.stop()
                await asyncio.sleep(RETRY_WAIT)
                continue
            break
        log.info("delivering topic %s to %s", topic, entry.component)
        try:
            async for record in consumer:
                await self._deliver(entry, record.topic, record.value or b"")
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _deliver(self, entry: ComponentLink, topic: str, body: bytes) -> None:
        assert self.client is not None
        link = entry.link
        message = wire.BrokerMessage(topic, body, f"{topic}.reply")
        error = await deliver(self.client, entry.component, message, self.provider_id, link.name)
        if error is not None:
            log.warning("record on %s for %s: %s", topic, entry.component, error)

    def _link_of(self, headers: dict[str, str]) -> ComponentLink | str:
        source = headers.get("source-id", "")
        entry = self._links.get(source)
        if entry is None:
            return (
                f"no link from {source or 'an unnamed caller'} to {self.provider_id} on "
                "wasmcloud:messaging/consumer has reached it; put one"
            )
        return entry

    async def _publish(self, params: Payload, headers: dict[str, str]) -> Payload:
        try:
            message = wire.decode_message(params.data)
        except DecodeError as error:
            raise WrpcError(
                f"the parameters of {wire.CONSUMER_INSTANCE}.publish: {error}"
            ) from None
        entry = self._link_of(headers)
        if isinstance(entry, str):
            return Payload(wire.encode_unit_result(entry))
        if not TOPIC_NAME.fullmatch(message.subject):
            return Payload(
                wire.encode_unit_result(
                    f"{message.subject!r} is not a Kafka topic name (letters, digits, '.', '_', "
                    "'-'; at most 249)"
                )
            )
        producer = entry.producer
        if producer is None:
            waiting = f"not connected to Kafka at {entry.config.bootstrap} yet (retrying)"
            return Payload(wire.encode_unit_result(waiting))
        partitions: tuple[int | None, ...] = entry.config.producer_partitions or (None,)
        problem: str | None = None
        try:
            for partition in partitions:
                await producer.send_and_wait(message.subject, message.body, partition=partition)
        except KafkaError as error:
            problem = (
                f"publish to topic {message.subject!r} on Kafka at {entry.config.bootstrap} "
                f"failed: {str(error) or type(error).__name__}"
            )
        return Payload(wire.encode_unit_result(problem))

    async def _request(self, params: Payload, headers: dict[str, str]) -> Payload:
        try:
            subject, _body, _timeout_ms = wire.decode_request(params.data)
        except DecodeError as error:
            raise WrpcError(
                f"the parameters of {wire.CONSUMER_INSTANCE}.request: {error}"
            ) from None
        return Payload(
            wire.encode_message_result(
                f"request to {subject!r}: Kafka has no request/reply; publish the message and "
                "consume the answer from a topic instead"
            )
        )

    async def health(self) -> tuple[bool, str]:
        entries = [*self._links.values(), *self._handlers.values()]
        refused = [entry for entry in entries if isinstance(entry, str)]
        if refused:
            return False, "; ".join(refused)
        return True, f"{len(self._links)} consumer link(s), {len(self._handlers)} handler link(s)"

    async def stop(self) -> None:
        for source in list(self._links):
            await self._drop(self._links, source)
        for key in list(self._handlers):
            await self._drop(self._handlers, key)


def main() -> None:
    run_provider(MessagingKafkaProvider())


if __name__ == "__main__":
    main()
