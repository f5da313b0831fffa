"""The test broker of tests/kafka.py is a real Kafka: a record produced with aiokafka is
consumed back, and after the broker is killed and started again the topic still holds it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.kafka import KafkaBroker
from tests.lattice import run_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def broker() -> Iterator[KafkaBroker]:
    started = time.monotonic()
    broker = KafkaBroker().start()
    print(f"kafka formatted and started in {time.monotonic() - started:.1f} s")
    try:
        yield broker
    finally:
        broker.remove()


async def read_all(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < count:
            batch = await consumer.getmany(timeout_ms=10_000)
            if not batch:
                break
            values += [record.value for records in batch.values() for record in records]
        return values
    finally:
        await consumer.stop()


@run_async
async def test_records_are_produced_consumed_and_kept_across_a_restart(
    broker: KafkaBroker,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait("greetings", b"hello")
    finally:
        await producer.stop()
    assert await read_all(broker.bootstrap, "greetings", 1) == [b"hello"]
    broker.stop()
    broker.start()  # same port, same log directory
    assert await read_all(broker.bootstrap, "greetings", 1) == [b"hello"]
