"""The nats-server config as rendered, and settings refused by name. The real
nats-server checks these configs in tests/integration/test_provision_nats.py."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pulumi_wasmcloud.provision.nats_config import NatsServerSettings, render

CORE: dict[str, Any] = {
    "server_name": "core-1",
    "host": "198.18.0.2",
    "cluster": {"name": "core", "routes": ["198.18.0.3:6222", "198.18.0.4:6222"]},
    "jetstream": {"store_dir": "/var/lib/wasmcloud/nats", "max_file_store": 1 << 30},
    "leafnodes": {"listen_port": 7422},
}


def test_a_core_node_listens_on_its_address_with_routes_jetstream_and_a_leaf_listener() -> None:
    text = render(NatsServerSettings.model_validate(CORE))
    assert text.splitlines()[1:] == [
        'server_name: "core-1"',
        'listen: "198.18.0.2:4222"',
        'http: "198.18.0.2:8222"',
        "jetstream {",
        '  store_dir: "/var/lib/wasmcloud/nats"',
        "  max_memory_store: 268435456",
        "  max_file_store: 1073741824",
        "}",
        "cluster {",
        '  name: "core"',
        '  listen: "198.18.0.2:6222"',
        '  routes: ["nats-route://198.18.0.3:6222", "nats-route://198.18.0.4:6222"]',
        "}",
        "leafnodes {",
        '  listen: "198.18.0.2:7422"',
        "}",
    ]


def test_an_edge_node_connects_to_its_hubs_as_a_leaf() -> None:
    edge = {
        "server_name": "edge-1",
        "host": "198.18.0.5",
        "monitoring_port": None,
        "leafnodes": {"remotes": [{"urls": ["198.18.0.2:7422", "198.18.0.3:7422"]}]},
    }
    text = render(NatsServerSettings.model_validate(edge))
    assert "http:" not in text
    assert (
        'leafnodes {\n  remotes: [\n    { urls: ["nats-leaf://198.18.0.2:7422", '
        '"nats-leaf://198.18.0.3:7422"] }\n  ]\n}\n' in text
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"client_port": "4222"}, "client_port"),
        ({"client_port": 70000}, "client_port"),
        ({"server_name": 'core"1'}, "server_name"),
        ({"host": "198.18.0.2\ncluster {"}, "host"),
        ({"cluster": {"name": "core", "routes": ["198.18.0.3"]}}, "cluster.routes.0"),
        ({"jetstream": {"store_dir": "relative/dir"}}, "jetstream.store_dir"),
        ({"jetstream": {"store_dir": "/x", "max_file_store": "1G"}}, "jetstream.max_file_store"),
        ({"leafnodes": {}}, "listen_port, remotes"),
        ({"leafnodes": {"remotes": [{"urls": []}]}}, "leafnodes.remotes.0.urls"),
        ({"monitoring_port": 4222}, "monitoring_port and client_port are both 4222"),
        ({"debug": True}, "debug"),
    ],
)
def test_settings_of_the_wrong_shape_are_refused_by_name(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        NatsServerSettings.model_validate({**CORE, **change})
    assert field in str(refused.value)
