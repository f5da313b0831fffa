"""messaging-kafka pieces without a broker: link config read strictly, as upstream's
provider names it, and the upstream image names that resolve to it."""

from __future__ import annotations

import pytest

from host_agent.providers.builtin import resolve_provider
from host_agent.providers.messaging_kafka import ConfigError, KafkaConfig


def test_link_config_is_read_as_upstream_names_it() -> None:
    config = KafkaConfig.parse(
        {
            "hosts": "127.0.0.1:9092, kafka-2:9093",
            "topic": "orders.v1",
            "consumer_group": "billing",
            "consumer_partitions": "0,2",
            "producer_partitions": "1",
        },
        {},
        "link",
    )
    assert config == KafkaConfig(
        ("127.0.0.1:9092", "kafka-2:9093"), "orders.v1", "billing", (0, 2), (1,)
    )
    assert config.bootstrap == "127.0.0.1:9092,kafka-2:9093"
    # No topic: the link only publishes; a `hosts` secret wins over plain config.
    default = KafkaConfig.parse({"hosts": "10.0.0.1:1"}, {"hosts": "secret-kafka:9092"}, "link")
    assert default == KafkaConfig(("secret-kafka:9092",), None, None, (), ())


@pytest.mark.parametrize(
    ("values", "named", "fix"),
    [
        ({"hosts": "kafka://h:9092"}, "hosts='kafka://h:9092'", "host:port pairs"),
        ({"hosts": "h:9092,h"}, "'h' is not a bootstrap server", "host:port pairs"),
        ({"hosts": "h:99999"}, "'h:99999' is not a bootstrap server", "e.g."),
        ({"topic": "a b"}, "topic='a b' is not a Kafka topic name", "letters, digits"),
        ({"topic": "a,b"}, "topic='a,b'", "one topic per link"),
        ({"topic": "x" * 250}, "is not a Kafka topic name", "up to 249"),
        ({"consumer_partitions": "0,one"}, "consumer_partitions='0,one'", '"0,1"'),
        ({"producer_partitions": "-1"}, "producer_partitions='-1'", "partition numbers"),
        ({"topic": 7}, "topic must be a string, not int", ""),
    ],
)
def test_bad_values_are_refused_naming_them_and_the_fix(
    values: dict[str, str], named: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        KafkaConfig.parse(values, {}, "link 'default' greeter -> kafka: target_config")
    message = str(refused.value)
    assert message.startswith("link 'default' greeter -> kafka: target_config"), message
    assert named in message and fix in message, message


def test_upstream_releases_that_serve_it_resolve_and_older_ones_are_refused() -> None:
    provider = resolve_provider("ghcr.io/wasmcloud/messaging-kafka:0.6.1")
    assert provider.name == "messaging-kafka"
    assert "wasmcloud:messaging/consumer@0.2.0" in provider.exports
    with pytest.raises(ValueError, match="wasmCloud 0\\.x's messaging contract"):
        resolve_provider("ghcr.io/wasmcloud/messaging-kafka:0.2.0")
