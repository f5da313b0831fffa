"""keyvalue-nats's store in a lattice spread over a core cluster and an edge leaf node, on
loopback: three nats-servers clustered with JetStream in domain "core", and a leaf node
without JetStream. A component's counts must live in the core (reached from the edge
through the link's `js_domain`) and be replicated like the lattice's own data, so losing
one core node loses neither."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest

from host_agent.lattice.jetstream import kv_stream, open_kv
from host_agent.lattice.subjects import links_bucket
from host_agent.local.supervisor import listening_async
from host_agent.providers.contract import HostData
from host_agent.providers.keyvalue_nats import backend
from tests.lattice import VENV_BIN, free_port, run_async

pytestmark = [pytest.mark.timeout(120)]

DOMAIN = "core"
LATTICE = "default"


def write_configs(folder: Path) -> tuple[list[Path], list[int], int]:
    """Three core nodes (routes between all, JetStream in the domain, a leaf listener on
    the first) and one leaf node; the configs, the core client ports, the leaf's."""
    clients = [free_port() for _ in range(3)]
    routes = [free_port() for _ in range(3)]
    leaf_listen, leaf_client = free_port(), free_port()
    route_urls = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in routes)
    configs = []
    for i in range(3):
        conf = folder / f"core-{i}.conf"
        leaf_block = f'leafnodes {{ listen: "127.0.0.1:{leaf_listen}" }}\n' if i == 0 else ""
        conf.write_text(
            f'listen: "127.0.0.1:{clients[i]}"\nserver_name: "core-{i}"\n'
            f'jetstream {{ store_dir: "{folder / f"js-{i}"}", domain: "{DOMAIN}" }}\n'
            f'cluster {{ name: "core", listen: "127.0.0.1:{routes[i]}", '
            f"routes: [{route_urls}] }}\n" + leaf_block
        )
        configs.append(conf)
    leaf = folder / "leaf.conf"
    leaf.write_text(
        f'listen: "127.0.0.1:{leaf_client}"\nserver_name: "edge"\n'
        f'leafnodes {{ remotes: [ {{ urls: ["nats-leaf://127.0.0.1:{leaf_listen}"] }} ] }}\n'
    )
    configs.append(leaf)
    return configs, clients, leaf_client


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[int], int]]:
    configs, clients, leaf = write_configs(tmp_path)
    servers = [
        subprocess.Popen(
            [str(VENV_BIN / "nats-server"), "-c", str(conf)], stderr=subprocess.DEVNULL
        )
        for conf in configs
    ]
    try:
        yield clients, leaf
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)


async def until_ready(url: str, action: str) -> nats.NATS:
    """A connection to ``url`` once JetStream in the domain answers through it (the
    cluster has elected its meta leader and, from a leaf, the leaf connection is up)."""
    deadline = time.monotonic() + 30
    nc = await nats.connect(url, max_reconnect_attempts=-1)
    js = nc.jetstream(domain=DOMAIN, timeout=2)
    while True:
        try:
            await js.account_info()
            return nc
        except (nats.js.errors.Error, nats.errors.Error, TimeoutError):
            if time.monotonic() > deadline:
                await nc.close()
                raise AssertionError(f"JetStream did not answer {action} within 30 s") from None
            await asyncio.sleep(0.2)


def host_data() -> HostData:
    return HostData.model_validate(
        {
            "host_id": "N" + "A" * 55,
            "lattice_rpc_prefix": LATTICE,
            "lattice_rpc_url": "nats://127.0.0.1:4222",
            "provider_key": "counter-kv",
            "link_name": "default",
            "instance_id": "i",
            "config": {},
            "link_definitions": [],
            "env_values": {},
        }
    )


@run_async
async def test_counts_from_the_edge_live_in_the_core_replicated_like_the_lattice(
    cluster: tuple[list[int], int],
) -> None:
    clients, leaf = cluster
    for port in [*clients, leaf]:
        deadline = time.monotonic() + 10
        while not await listening_async(port):
            assert time.monotonic() < deadline, f"nats-server on {port} did not listen"
    core = await until_ready(f"nats://127.0.0.1:{clients[1]}", "in the core")
    try:
        # What the Lattice resource does before any host starts: the lattice's own data,
        # replicated on every core node.
        await open_kv(core.jetstream(domain=DOMAIN), links_bucket(LATTICE), replicas=3)
        edge = await until_ready(f"nats://127.0.0.1:{leaf}", "from the leaf node")
        try:
            store = backend({"js_domain": DOMAIN, "bucket": "counts"}, edge, host_data(), {})
            assert await store.increment("ignored", "hits", 2) == 2
            assert await store.increment("ignored", "hits", 3) == 5
            await store.set("ignored", "name", b"edge")
            assert await store.get("ignored", "name") == b"edge"
            assert (await store.list_keys("ignored", None))[0] == ["hits", "name"]
        finally:
            await edge.close()
        info = await core.jetstream(domain=DOMAIN).stream_info(kv_stream("counts"))
        assert info.config.num_replicas == 3, "the counts are not replicated like the lattice"
        assert (info.state.last_seq, info.state.messages) == (3, 2)  # 3 writes, 2 keys
    finally:
        await core.close()


@run_async
async def test_without_the_lattices_data_a_bucket_has_one_copy(
    cluster: tuple[list[int], int],
) -> None:
    clients, _ = cluster
    for port in clients:
        deadline = time.monotonic() + 10
        while not await listening_async(port):
            assert time.monotonic() < deadline, f"nats-server on {port} did not listen"
    core = await until_ready(f"nats://127.0.0.1:{clients[0]}", "in the core")
    try:
        store = backend({}, core, host_data(), {})
        await store.set("plain", "k", b"v")
        info = await core.jetstream().stream_info(kv_stream("plain"))
        assert info.config.num_replicas == 1
    finally:
        await core.close()
