"""A lattice's NATS topology from its machines: each node's settings (what its config will
say), the client URLs hosts use, the replicas of the lattice's JetStream state, and
input that cannot make a topology refused naming its field; the Lattice handler's check
of a lattice on machines refuses bad input by its wire field."""

from __future__ import annotations

import asyncio

import pytest

from pulumi_wasmcloud.provider.lattice_resource import LatticeResource
from pulumi_wasmcloud.provision.nats_config import render
from pulumi_wasmcloud.provision.topology import (
    EdgeNode,
    NodeMachine,
    TopologyError,
    plan_topology,
)
from tests.machines import KeyPair

CORE = [
    NodeMachine("core-1", "198.18.0.2"),
    NodeMachine("core-2", "198.18.0.3"),
    NodeMachine("core-3", "198.18.0.4"),
]
EDGE = [
    EdgeNode("eu", NodeMachine("edge-1", "198.18.0.5")),
    EdgeNode("us", NodeMachine("edge-2", "198.18.0.6")),
]


def test_core_nodes_route_to_each_other_and_run_jetstream_in_the_domain() -> None:
    topology = plan_topology(CORE, EDGE)
    core_2 = topology.settings["core-2"]
    assert core_2.server_name == "core-2"
    assert core_2.host == "198.18.0.3"
    assert core_2.client_port == 4222
    assert core_2.monitoring_port == 8222
    assert core_2.cluster is not None
    assert core_2.cluster.routes == ["198.18.0.2:6222", "198.18.0.4:6222"]  # not itself
    assert core_2.jetstream is not None
    assert core_2.jetstream.domain == "core"
    assert core_2.jetstream.store_dir == "/var/lib/wasmcloud/nats"
    assert core_2.leafnodes is not None and core_2.leafnodes.listen_port == 7422
    # Every core node is in the same cluster.
    names = {s.cluster.name for n, s in topology.settings.items() if s.cluster is not None}
    assert len(names) == 1


def test_a_leaf_node_knows_every_core_node_and_has_no_jetstream() -> None:
    topology = plan_topology(CORE, EDGE, domain="hub", max_file_store=1 << 30)
    edge = topology.settings["edge-1"]
    assert edge.jetstream is None and edge.cluster is None
    assert edge.leafnodes is not None and edge.leafnodes.listen_port is None
    [remote] = edge.leafnodes.remotes
    assert remote.urls == ["198.18.0.2:7422", "198.18.0.3:7422", "198.18.0.4:7422"]
    config = render(topology.settings["core-1"])
    assert 'domain: "hub"' in config and f"max_file_store: {1 << 30}" in config
    assert topology.edge == {"edge-1": "eu", "edge-2": "us"}


def test_urls_per_machine_and_the_lattice_url_is_the_first_core_node() -> None:
    topology = plan_topology(CORE, EDGE)
    assert topology.nats_urls == {
        "core-1": "nats://198.18.0.2:4222",
        "core-2": "nats://198.18.0.3:4222",
        "core-3": "nats://198.18.0.4:4222",
        "edge-1": "nats://198.18.0.5:4222",
        "edge-2": "nats://198.18.0.6:4222",
    }
    assert topology.nats_url == "nats://198.18.0.2:4222"
    assert topology.core == ("core-1", "core-2", "core-3")


@pytest.mark.parametrize(("size", "replicas"), [(1, 1), (2, 2), (3, 3), (5, 3)])
def test_replicas_follow_the_cluster_size_up_to_three(size: int, replicas: int) -> None:
    cluster = [NodeMachine(f"core-{i}", f"198.18.0.{i + 2}") for i in range(size)]
    assert plan_topology(cluster).replicas == replicas


def test_a_single_core_node_runs_no_cluster_block() -> None:
    topology = plan_topology(CORE[:1], EDGE[:1])
    assert topology.settings["core-1"].cluster is None
    assert "cluster {" not in render(topology.settings["core-1"])
    assert topology.settings["core-1"].jetstream is not None


def test_ipv6_addresses_are_bracketed_in_urls_and_routes() -> None:
    cluster = [NodeMachine("a", "2001:db8::1"), NodeMachine("b", "2001:db8::2")]
    topology = plan_topology(cluster)
    assert topology.nats_urls["a"] == "nats://[2001:db8::1]:4222"
    assert topology.settings["a"].cluster is not None
    assert topology.settings["a"].cluster.routes == ["[2001:db8::2]:6222"]


@pytest.mark.parametrize(
    ("cluster", "leaves", "options", "field", "says"),
    [
        ([], [], {}, "cluster", "at least one machine"),
        ([CORE[0], NodeMachine("core-1", "198.18.0.9")], [], {}, "cluster[1].name", "core-1"),
        ([CORE[0], NodeMachine("core-2", "198.18.0.2")], [], {}, "cluster[1].host", "198.18.0.2"),
        (CORE, [EdgeNode("eu", CORE[1])], {}, "leaf_nodes[0].machine.name", "cluster node"),
        (
            CORE,
            [EdgeNode("eu", NodeMachine("edge-1", "198.18.0.3"))],
            {},
            "leaf_nodes[0].machine.host",
            "cluster[1]",
        ),
        (
            CORE,
            [*EDGE, EdgeNode("eu", NodeMachine("edge-1", "198.18.0.9"))],
            {},
            "leaf_nodes[2].machine.name",
            "leaf_nodes[0].machine",
        ),
        ([NodeMachine("core-1", "core-1.example")], [], {}, "cluster[0].host", "IP address"),
        (
            CORE,
            [EdgeNode("eu", NodeMachine("edge-1", "edge.example"))],
            {},
            "leaf_nodes[0].machine.host",
            "IP address",
        ),
        ([NodeMachine("core 1", "198.18.0.2")], [], {}, "cluster[0].name", "'core 1'"),
        (CORE, [EdgeNode("", NodeMachine("e", "198.18.0.9"))], {}, "leaf_nodes[0].region", ""),
        (CORE, [], {"domain": "my domain"}, "jetstream_domain", "'my domain'"),
        (CORE, [], {"max_file_store": -1}, "max_file_store", "greater than or equal to 0"),
    ],
)
def test_input_that_cannot_make_a_topology_is_refused_by_field(
    cluster: list[NodeMachine],
    leaves: list[EdgeNode],
    options: dict[str, object],
    field: str,
    says: str,
) -> None:
    with pytest.raises(TopologyError) as refused:
        plan_topology(cluster, leaves, **options)  # type: ignore[arg-type]
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    assert says in refused.value.reason


# --- the Lattice handler's check with `cluster` (no machine is contacted) ---------------

KEY = KeyPair.generate().private_openssh


def machine(name: str, host: str, **fields: object) -> dict[str, object]:
    return {"name": name, "host": host, "privateKey": KEY, **fields}


def lattice_inputs(**fields: object) -> dict[str, object]:
    inputs: dict[str, object] = {
        "lattice": "default",
        "cluster": [machine(node.name, node.address) for node in CORE],
        "leafNodes": [{"region": "eu", "machine": machine("edge-1", "198.18.0.5")}],
    }
    return {**inputs, **fields}


def refusals(inputs: dict[str, object]) -> dict[str, str]:
    checked = asyncio.run(LatticeResource().check({}, inputs))
    return {failure.property: failure.reason for failure in checked.failures}


def test_a_lattice_on_machines_checks_clean_with_its_defaults() -> None:
    checked = asyncio.run(LatticeResource().check({}, lattice_inputs()))
    assert checked.failures == []
    assert checked.inputs["jetstreamDomain"] == "core"
    assert checked.inputs["heartbeatSeconds"] == 30
    assert "natsPort" not in checked.inputs and "stateDir" not in checked.inputs


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"cluster": []}, "cluster", "at least one machine"),
        ({"cluster": "core-1"}, "cluster", 'expected a list of machines, got a string ("core-1")'),
        (
            {"cluster": [machine("core-1", "198.18.0.2", port="22")]},
            "cluster[0].port",
            'expected a whole number, got a string ("22")',
        ),
        (
            {"cluster": [machine("core-1", "198.18.0.2"), machine("core-1", "198.18.0.3")]},
            "cluster[1].name",
            "'core-1' is also cluster[0]'s name",
        ),
        (
            {"leafNodes": [{"region": "eu", "machine": machine("core-2", "198.18.0.9")}]},
            "leafNodes[0].machine.name",
            "a leaf node runs on its own machine",
        ),
        (
            {"leafNodes": [{"region": 3, "machine": machine("e", "198.18.0.9")}]},
            "leafNodes[0].region",
            "a number (3)",
        ),
        ({"leafNodes": [{"region": "eu"}]}, "leafNodes[0].machine", "required"),
        (
            {"leafNodes": [{"region": "eu", "machine": machine("e", "198.18.0.9"), "port": 1}]},
            "leafNodes[0].port",
            "unknown field",
        ),
        ({"jetstreamDomain": "my domain"}, "jetstreamDomain", "'my domain'"),
        ({"maxFileStore": "10G"}, "maxFileStore", 'expected a whole number, got a string ("10G")'),
        ({"maxFileStore": 1024}, "maxFileStore", "at least 1048576"),
        ({"registryPort": 70000}, "registryPort", "between 1 and 65535"),
        ({"heartbeatSeconds": 1.5}, "heartbeatSeconds", "a number (1.5)"),
        ({"natsPort": 4223}, "natsPort", "every machine's NATS serves clients on 4222"),
        ({"redisPort": 6379}, "redisPort", "no redis-server"),
    ],
)
def test_a_lattice_on_machines_refuses_bad_input_by_field(
    fields: dict[str, object], field: str, says: str
) -> None:
    found = refusals(lattice_inputs(**fields))
    assert field in found, found
    assert says in found[field]
