"""messaging-kafka end to end: examples/messaging/kafka.wadm.yaml deployed through the
controller on a local lattice (real nats-server, host and controller processes) runs the
messaging example's greeter, whose messages come from and go to a real Apache Kafka broker
(tests/kafka.py, KRaft on loopback) through the built-in messaging-kafka provider: records
on the link's topic reach the component, its answers land on `<topic>.reply`; the broker
killed (publish is an error naming it, no host crash) and started again (delivery
resumes); a link with bad config refused naming the value and the fix."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import nats.errors
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from host_agent.lattice.wadm import WadmClient
from host_agent.lattice.wadm_types import StatusType
from host_agent.providers.contract import HEALTH, provider_subject
from host_agent.security.permissions import Role
from host_agent.wrpc import messaging as wire
from host_agent.wrpc.transport import Payload, WrpcClient
from tests.integration import test_link_authorization
from tests.integration.test_controller import clients, wait_status
from tests.integration.test_link_authorization import LATTICE, connected
from tests.kafka import KafkaBroker
from tests.lattice import ROOT, NatsServer, Processes, run_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# The operator-mode lattice with link grants (host and controller processes), shared.
secured = test_link_authorization.secured

EXAMPLE = ROOT / "examples" / "messaging"
WASM = EXAMPLE / "build" / "messaging.wasm"
APP = "kafka-chat"
# wadm's ids: <app>-<name>, with the app's '-' written '_'
PROVIDER_ID = "kafka_chat-kafka"
COMPONENT_ID = "kafka_chat-greeter"


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    """One broker for the module's tests (a JVM start is ~10 s); each test's app is gone
    when the next begins, and the consumer group resumes where the last one stopped."""
    started = time.monotonic()
    broker = KafkaBroker().start()
    print(f"kafka formatted and started in {time.monotonic() - started:.1f} s")
    try:
        yield broker
    finally:
        broker.remove()


def manifest(hosts: str, version: str, **extra: str) -> dict[str, Any]:
    """examples/messaging/kafka.wadm.yaml on this test's broker, the handler link's
    source_config overridden by `extra`."""
    data: dict[str, Any] = yaml.safe_load((EXAMPLE / "kafka.wadm.yaml").read_text())
    data["metadata"]["annotations"]["version"] = version
    greeter, provider = data["spec"]["components"]
    greeter["properties"]["image"] = f"file://{WASM}"
    target = greeter["traits"][1]["properties"]["target"]["config"][0]
    source = provider["traits"][0]["properties"]["source"]["config"][0]
    for named in (target, source):
        # A config of a new name per version: the link changes, so the provider gets it again.
        named["name"] = f"{named['name']}-{version}"
        named["properties"]["hosts"] = hosts
    source["properties"].update(extra)
    return data


async def greet(broker: KafkaBroker, body: bytes, within: float = 60.0) -> bytes:
    """Produce `body` on `greet` until the component's answer arrives on `greet.reply`: the
    provider's consumer joins after the deploy is reported and starts at the end of the
    topic, and a broker that just came back needs its reconnection."""
    replies = AIOKafkaConsumer(
        "greet.reply",
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        metadata_max_age_ms=1000,  # the topic appears with the component's first answer
    )
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    await replies.start()
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            await producer.send_and_wait("greet", body)
            batch = await replies.getmany(timeout_ms=2000)
            for records in batch.values():
                for record in records:
                    if record.value == b"hello, " + body:
                        return record.value
        raise AssertionError(f"no answer to {body!r} on greet.reply within {within:g} s")
    finally:
        await replies.stop()
        await producer.stop()


async def publish_as_component(wrpc: WrpcClient, topic: str, body: bytes = b"x") -> str | None:
    """What the component's consumer.publish gets back (its host's call, made here)."""
    reply = await wrpc.invoke(
        PROVIDER_ID,
        wire.CONSUMER_INSTANCE,
        "publish",
        Payload(wire.encode_message(wire.BrokerMessage(topic, body))),
        source_id=COMPONENT_ID,
    )
    return wire.decode_unit_result(reply.data)


@run_async
async def test_a_component_handles_and_sends_messages_through_kafka(
    nats_server: NatsServer, processes: Processes, broker: KafkaBroker
) -> None:
    host = processes.host()
    processes.controller()
    async with clients(nats_server) as (wadm, _):
        await wadm.put(yaml.safe_dump(manifest(broker.bootstrap, "v1")))
        await wadm.deploy(APP)
        await wait_status(wadm, APP, StatusType.DEPLOYED, timeout=120)
        # A record on the link's topic reaches the component; its answer goes to reply-to.
        assert await greet(broker, b"world") == b"hello, world"
        wrpc = WrpcClient(wadm.nc, "default")
        assert await publish_as_component(wrpc, "greeted") is None
        # Kafka has no request/reply: the component's request is an error saying so.
        reply = await wrpc.invoke(
            PROVIDER_ID,
            wire.CONSUMER_INSTANCE,
            "request",
            Payload(wire.encode_request("backend", b"hi", 1000)),
            source_id=COMPONENT_ID,
        )
        answer = wire.decode_message_result(reply.data)
        assert isinstance(answer, str) and "Kafka has no request/reply" in answer, answer

        # The broker goes away: the component's publish is an error naming it.
        broker.stop()
        down = await publish_as_component(wrpc, "greeted")
        assert down is not None, "a publish to a dead broker succeeded"
        assert f"publish to topic 'greeted' on Kafka at {broker.bootstrap} failed" in down, down
        assert host.proc.poll() is None, "the host died with the broker"
        broker.start()  # same port and data
        assert await greet(broker, b"again") == b"hello, again"
        assert await publish_as_component(wrpc, "greeted") is None

        # A link whose topic is not a Kafka topic name: refused, named, with the fix.
        await wadm.put(yaml.safe_dump(manifest(broker.bootstrap, "v2", topic="orders pending")))
        await wadm.deploy(APP, "v2")
        message = await unhealthy_message(wadm.nc)
        assert "source_config topic='orders pending' is not a Kafka topic name" in message
        assert "letters, digits, '.', '_' or '-'" in message, message
        # Bootstrap servers that are not host:port pairs: named, with an example.
        await wadm.put(yaml.safe_dump(manifest("kafka://127.0.0.1", "v3")))
        await wadm.deploy(APP, "v3")
        message = await unhealthy_message(wadm.nc, "hosts=")
        assert "hosts='kafka://127.0.0.1'" in message, message
        assert 'e.g. "127.0.0.1:9092,kafka-2:9092"' in message, message
        assert host.proc.poll() is None

        # Upstream's form: one consumer link whose target_config names the topic, no
        # handler link (enough where there are no link grants, as on this lattice).
        data = manifest(broker.bootstrap, "v4")
        greeter, provider = data["spec"]["components"]
        provider["traits"] = []
        greeter["traits"][1]["properties"]["target"]["config"][0]["properties"]["topic"] = "greet"
        await wadm.put(yaml.safe_dump(data))
        await wadm.deploy(APP, "v4")
        assert await greet(broker, b"upstream") == b"hello, upstream"


async def unhealthy_message(nc: Any, contains: str = "") -> str:
    subject = provider_subject("default", PROVIDER_ID, HEALTH)
    message = ""
    for _ in range(200):
        reply = json.loads((await nc.request(subject, b"{}", timeout=3)).data)
        if not reply["healthy"] and contains in reply["message"]:
            return str(reply["message"])
        message = reply["message"]
        await asyncio.sleep(0.1)  # the new link has not reached the provider yet
    raise AssertionError(f"the provider stayed healthy: {message}")


@run_async
async def test_kafka_messages_reach_a_component_under_per_link_authorization(
    secured: dict[str, Any], broker: KafkaBroker
) -> None:
    """The same example on an operator-mode lattice with link grants (the local default's
    security): the provider's handle-message calls go out on its handler link's grant."""
    server, issuer = secured["server"], secured["issuer"]
    async with connected(server, issuer.issue(Role.TOOLING, "tooling", LATTICE)) as tooling:
        wadm = WadmClient(tooling, LATTICE, timeout=10)
        for _ in range(300):  # the controller process is still starting
            try:
                await wadm.list()
                break
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.1)
        await wadm.put(yaml.safe_dump(manifest(broker.bootstrap, "v1")))
        await wadm.deploy(APP)
        await wait_status(wadm, APP, StatusType.DEPLOYED, timeout=120)
        assert await greet(broker, b"secured") == b"hello, secured"
