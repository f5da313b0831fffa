"""messaging-nats pieces without a lattice: the wasmcloud:messaging@0.2.0 wire, the
link config as upstream spells it, and the draft-vs-final check at link time."""

from __future__ import annotations

import re

import pytest

from host_agent.lattice.protocol import Link
from host_agent.providers.builtin import BUILTINS, resolve_provider
from host_agent.providers.messaging_nats import ConfigError, ConnectionConfig, Subscription
from host_agent.runtime.provider_versions import provider_version_problem
from host_agent.wrpc import messaging as wire
from host_agent.wrpc.codec import DecodeError


def test_messages_and_results_round_trip() -> None:
    message = wire.BrokerMessage("greet", b"\x00world", "_INBOX.1")
    assert wire.decode_message(wire.encode_message(message)) == message
    plain = wire.BrokerMessage("greet", b"")
    assert wire.decode_message(wire.encode_message(plain)) == plain
    assert wire.decode_request(wire.encode_request("svc", b"q", 1500)) == ("svc", b"q", 1500)
    for unit in (None, "why"):
        assert wire.decode_unit_result(wire.encode_unit_result(unit)) == unit
    for result in (message, "no responders"):
        assert wire.decode_message_result(wire.encode_message_result(result)) == result
    with pytest.raises(DecodeError, match="bytes after the broker-message"):
        wire.decode_message(wire.encode_message(message) + b"\x00")


def test_link_config_reads_upstream_keys_strictly() -> None:
    config = ConnectionConfig.parse(
        {"subscriptions": "a.*, b|workers,,", "cluster_uris": "127.0.0.1:4223,nats://h:4"},
        {},
        "link",
    )
    assert config.subscriptions == (Subscription("a.*"), Subscription("b", "workers"))
    assert config.servers == ("nats://127.0.0.1:4223", "nats://h:4")
    assert ConnectionConfig.parse({}, {}, "link").servers == ("nats://127.0.0.1:4222",)
    bad = [
        ({"subscriptions": "orders pending"}, "subscriptions='orders pending'"),
        ({"subscriptions": "jobs|"}, "'jobs|' is not a subject"),
        ({"cluster_uris": "nats://"}, "cluster_uris='nats://'"),
        ({"client_jwt": "eyJ"}, "client_jwt and client_seed go together"),
        ({"tls_ca": "not pem"}, "tls_ca is not PEM certificate text"),
    ]
    for values, refusal in bad:
        with pytest.raises(ConfigError, match=re.escape(refusal)):
            ConnectionConfig.parse(values, {}, "link")


def test_a_component_built_against_another_messaging_version_is_refused_at_link_time() -> None:
    link = Link(
        source_id="greeter",
        target="broker",
        wit_namespace="wasmcloud",
        wit_package="messaging",
        interfaces=["consumer"],
    )
    nats = BUILTINS["messaging-nats"]
    problem = provider_version_problem({"wasmcloud:messaging/consumer": "0.3.0"}, link, nats, True)
    assert problem is not None
    assert "wasmcloud:messaging/consumer@0.3.0" in problem
    assert "broker (messaging-nats) serves wasmcloud:messaging/consumer@0.2.0" in problem
    same = {"wasmcloud:messaging/consumer": "0.2.0"}
    assert provider_version_problem(same, link, nats, True) is None


def test_upstream_releases_that_serve_it_resolve_and_older_ones_are_refused() -> None:
    assert resolve_provider("ghcr.io/wasmcloud/messaging-nats:0.23.1").name == "messaging-nats"
    with pytest.raises(ValueError, match="unversioned wasmcloud:messaging"):
        resolve_provider("ghcr.io/wasmcloud/messaging-nats:0.19.0")
