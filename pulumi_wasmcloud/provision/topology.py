"""A lattice's NATS topology on machines (pure): from the core cluster's machines and the
edge regions' leaf-node machines, each machine's nats-server settings and client URL.

- Core (``cluster``): every node routes to every other node (port 6222), runs JetStream
  on disk in the lattice's domain (``core`` by default) and listens for leaf nodes (7422).
  JetStream's meta group and each replicated stream need a majority of their nodes: a
  3-node cluster keeps serving with one node down, a 5-node one with two; a 1- or 2-node
  cluster stops JetStream when any node is down (2 nodes: replicas 2, majority 2).
- Edge (``leaf_nodes``): one nats-server per region's machine, a leaf of the core with
  every core node in its remote (so it reconnects to any node left), no JetStream of its
  own: edge clients reach the core's JetStream through the domain
  (``$JS.<domain>.API``), and control, event and wRPC subjects flow over the leaf.
- The lattice's JetStream buckets and streams get ``replicas`` = min(3, cluster size):
  they survive the loss of any minority of their nodes.
- Secured (``security``): every node in operator mode with the same accounts (a MEMORY
  resolver, nats_config.py says why), mutual TLS on its client, route and leaf listeners
  with its own server certificate (SAN: the machine's address), and each leaf node's
  remote connecting with its own credentials over TLS into the lattice's account
  (provision/security.py makes and places those files).

Names are refused with the field that holds them (``cluster[1].name``,
``leaf_nodes[0].machine.host``), so a mistake in a program reads as one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from pulumi_wasmcloud.provision.nats_config import (
    ClusterSettings,
    JetStreamSettings,
    LeafNodeSettings,
    LeafRemote,
    NatsServerSettings,
    OperatorModeSettings,
    TlsFiles,
)
from pulumi_wasmcloud.provision.operations import NATS_SERVER_STORE
from pulumi_wasmcloud.provision.secret_files import (
    LEAF_CREDS_FILE,
    NATS_CA_FILE,
    NATS_CERT_FILE,
    NATS_KEY_FILE,
)

CLIENT_PORT = 4222
CLUSTER_PORT = 6222
LEAF_PORT = 7422
MONITORING_PORT = 8222
DEFAULT_DOMAIN = "core"
DEFAULT_MAX_FILE_STORE = 10 * 1024 * 1024 * 1024
DEFAULT_MAX_MEMORY_STORE = 256 * 1024 * 1024
MAX_REPLICAS = 3  # a JetStream stream has at most 5; 3 survives one loss, as wadm runs it


class TopologyError(ValueError):
    """Input that cannot make a topology; ``field`` names where it is."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class NodeMachine:
    """One machine of the topology as far as NATS is concerned: the name previews and
    errors use and the address its nats-server listens on (the one others reach)."""

    name: str
    address: str


@dataclass(frozen=True)
class EdgeNode:
    region: str
    machine: NodeMachine


@dataclass(frozen=True)
class TopologySecurity:
    """What a secured topology's configs name: the operator and accounts (public JWTs)
    and the lattice account that leaf remotes join."""

    operator: OperatorModeSettings
    account: str


# Every node's own certificate and key, and the lattice's CA (mutual TLS everywhere).
NODE_TLS = TlsFiles(cert_file=NATS_CERT_FILE, key_file=NATS_KEY_FILE, ca_file=NATS_CA_FILE)


@dataclass(frozen=True)
class Topology:
    """Per machine name: its nats-server settings and its client URL; the core's
    domain, the cluster's name and the replicas of the lattice's JetStream state."""

    settings: Mapping[str, NatsServerSettings]
    nats_urls: Mapping[str, str]
    core: tuple[str, ...]  # machine names, cluster[0] first
    edge: Mapping[str, str]  # machine name -> region
    domain: str
    cluster_name: str
    replicas: int

    @property
    def nats_url(self) -> str:
        """cluster[0]'s client URL: what the provider, applications and tools use."""
        return self.nats_urls[self.core[0]]


def replicas_for(cluster_size: int) -> int:
    return max(1, min(MAX_REPLICAS, cluster_size))


def client_url(address: str, port: int = CLIENT_PORT) -> str:
    return f"nats://{_host_port(address, port)}"


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _check_address(address: str, field: str) -> None:
    # nats-server listens on the address itself, so it must be one (not a DNS name).
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise TopologyError(
            field,
            f"{address!r} is not an IP address; nats-server listens on the machine's "
            "address, so give it (e.g. 198.18.0.2)",
        ) from None


# Where a settings field comes from in the inputs (server_name is the machine's name).
_INPUT_FIELDS = {"server_name": "name", "host": "host"}
_JETSTREAM_FIELDS = {"domain": "jetstream_domain", "max_file_store": "max_file_store"}


def _settings(field: str, **values: object) -> NatsServerSettings:
    try:
        return NatsServerSettings.model_validate(values)
    except ValidationError as e:
        err = e.errors()[0]
        first = str(err["loc"][0]) if err["loc"] else ""
        where = f"{field}.{_INPUT_FIELDS[first]}" if first in _INPUT_FIELDS else field
        raise TopologyError(where, _message(err)) from None


def _jetstream(**values: object) -> JetStreamSettings:
    try:
        return JetStreamSettings.model_validate(values)
    except ValidationError as e:
        err = e.errors()[0]
        first = str(err["loc"][0]) if err["loc"] else ""
        raise TopologyError(_JETSTREAM_FIELDS.get(first, "jetstream"), _message(err)) from None


def _message(err: Any) -> str:
    if err["type"] == "string_pattern_mismatch":
        return (
            f"{err['input']!r} is not a name nats-server takes: letters, digits, '_', '.' "
            "and '-', starting with a letter or digit, at most 64 characters"
        )
    return str(err["msg"])


def plan_topology(
    cluster: Sequence[NodeMachine],
    leaf_nodes: Sequence[EdgeNode] = (),
    domain: str = DEFAULT_DOMAIN,
    cluster_name: str = "wasmcloud",
    max_file_store: int = DEFAULT_MAX_FILE_STORE,
    max_memory_store: int = DEFAULT_MAX_MEMORY_STORE,
    security: TopologySecurity | None = None,
) -> Topology:
    """The topology (secured with ``security``), or ``TopologyError`` naming the first
    field that cannot be used."""
    if not cluster:
        raise TopologyError(
            "cluster", "give at least one machine (three keep serving with one down)"
        )
    _check_unique(cluster, leaf_nodes)
    for i, node in enumerate(cluster):
        _check_address(node.address, f"cluster[{i}].host")
    for i, leaf in enumerate(leaf_nodes):
        _check_address(leaf.machine.address, f"leaf_nodes[{i}].machine.host")
        if not leaf.region:
            raise TopologyError(f"leaf_nodes[{i}].region", "must be a non-empty string")
    routes = {n.name: _host_port(n.address, CLUSTER_PORT) for n in cluster}
    jetstream = _jetstream(
        store_dir=NATS_SERVER_STORE,
        max_file_store=max_file_store,
        max_memory_store=max_memory_store,
        domain=domain,
    )
    tls = NODE_TLS if security is not None else None
    secured: dict[str, object] = (
        {"operator": security.operator, "tls": tls} if security is not None else {}
    )
    settings: dict[str, NatsServerSettings] = {}
    for i, node in enumerate(cluster):
        settings[node.name] = _settings(
            f"cluster[{i}]",
            server_name=node.name,
            host=node.address,
            client_port=CLIENT_PORT,
            monitoring_port=MONITORING_PORT,
            # A 1-node "cluster" needs no routes; a cluster block with none would still
            # ask nats-server to cluster (and JetStream to wait for peers).
            cluster=(
                ClusterSettings(
                    name=cluster_name,
                    port=CLUSTER_PORT,
                    routes=[r for name, r in routes.items() if name != node.name],
                    tls=tls,
                )
                if len(cluster) > 1
                else None
            ),
            jetstream=jetstream,
            leafnodes=LeafNodeSettings(listen_port=LEAF_PORT, tls=tls),
            **secured,
        )
    hubs = [_host_port(n.address, LEAF_PORT) for n in cluster]
    for i, leaf in enumerate(leaf_nodes):
        settings[leaf.machine.name] = _settings(
            f"leaf_nodes[{i}]",
            server_name=leaf.machine.name,
            host=leaf.machine.address,
            client_port=CLIENT_PORT,
            monitoring_port=MONITORING_PORT,
            # One remote listing every core node: the leaf connects to one of them and
            # moves to another when that one goes.
            leafnodes=LeafNodeSettings(
                remotes=[
                    LeafRemote(
                        urls=hubs,
                        credentials=LEAF_CREDS_FILE if security is not None else None,
                        account=security.account if security is not None else None,
                        tls=tls,
                    )
                ]
            ),
            **secured,
        )
    machines = [*cluster, *(leaf.machine for leaf in leaf_nodes)]
    return Topology(
        settings=settings,
        nats_urls={m.name: client_url(m.address) for m in machines},
        core=tuple(n.name for n in cluster),
        edge={leaf.machine.name: leaf.region for leaf in leaf_nodes},
        domain=domain,
        cluster_name=cluster_name,
        replicas=replicas_for(len(cluster)),
    )


def _check_unique(cluster: Sequence[NodeMachine], leaf_nodes: Sequence[EdgeNode]) -> None:
    names: dict[str, str] = {}
    addresses: dict[str, str] = {}
    fields = [(f"cluster[{i}]", n) for i, n in enumerate(cluster)] + [
        (f"leaf_nodes[{i}].machine", leaf.machine) for i, leaf in enumerate(leaf_nodes)
    ]
    for where, machine in fields:
        if machine.name in names:
            other = names[machine.name]
            if where.startswith("leaf") and other.startswith("cluster"):
                raise TopologyError(
                    f"{where}.name",
                    f"{machine.name!r} is {other}: a leaf node runs on its own machine, "
                    "not on a cluster node (the core nodes already serve that region's "
                    "clients, or give the leaf node another machine)",
                )
            raise TopologyError(
                f"{where}.name", f"{machine.name!r} is also {other}'s name; names must differ"
            )
        names[machine.name] = where
        if machine.address in addresses:
            other = addresses[machine.address]
            raise TopologyError(
                f"{where}.host",
                f"{machine.address} is also {other}'s address; one machine is one entry "
                "(a leaf node cannot share a cluster node's machine: both listen on 4222)",
            )
        addresses[machine.address] = where
