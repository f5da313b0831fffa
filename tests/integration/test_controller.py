"""The controller end to end: real nats-server (JetStream on disk), redis-server, host
processes, the controller process, real components and HTTP requests."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml

from host_agent.controller.api_types import StatusType
from host_agent.lattice.client import CtlClient
from host_agent.lattice.wadm import WadmClient, WadmError
from host_agent.model import parse_manifest
from host_agent.placement import HostInventory, plan_placement
from tests.lattice import (
    COUNTER_WASM,
    ControllerProcess,
    HostProcess,
    NatsServer,
    Processes,
    RedisServer,
    counter_manifest,
    eventually_get,
    free_port,
    http_get,
    run_async,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]


def edge_core_manifest(port: int) -> dict[str, Any]:
    """The counter split over edge and core hosts, with its providers in the core."""
    spread = [
        {"name": "edge", "requirements": {"tier": "edge"}, "weight": 50},
        {"name": "core", "requirements": {"tier": "core"}, "weight": 50},
    ]
    core = [{"name": "core", "requirements": {"tier": "core"}}]
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "shop", "annotations": {"version": "v1"}},
        "spec": {
            "components": [
                {
                    "name": "counter",
                    "type": "component",
                    "properties": {"image": f"file://{COUNTER_WASM}"},
                    "traits": [
                        {"type": "spreadscaler", "properties": {"instances": 4, "spread": spread}},
                        {
                            "type": "link",
                            "properties": {
                                "target": {"name": "kv"},
                                "namespace": "wasi",
                                "package": "keyvalue",
                                "interfaces": ["atomics", "store"],
                            },
                        },
                    ],
                },
                {
                    "name": "kv",
                    "type": "capability",
                    "properties": {"image": "builtin:keyvalue-inmemory"},
                    "traits": [
                        {"type": "spreadscaler", "properties": {"instances": 1, "spread": core}}
                    ],
                },
                {
                    "name": "http",
                    "type": "capability",
                    "properties": {"image": "ghcr.io/wasmcloud/http-server:0.23.0"},
                    "traits": [
                        {"type": "spreadscaler", "properties": {"instances": 1, "spread": core}},
                        {
                            "type": "link",
                            "properties": {
                                "target": {"name": "counter"},
                                "namespace": "wasi",
                                "package": "http",
                                "interfaces": ["incoming-handler"],
                                "source": {
                                    "config": [
                                        {
                                            "name": "listen",
                                            "properties": {"address": f"127.0.0.1:{port}"},
                                        }
                                    ]
                                },
                            },
                        },
                    ],
                },
            ]
        },
    }


@asynccontextmanager
async def clients(server: NatsServer) -> AsyncIterator[tuple[WadmClient, CtlClient]]:
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    wadm = WadmClient(nc)
    for _ in range(100):  # the controller process is still starting: no responders yet
        try:
            await wadm.list()
            break
        except nats.errors.NoRespondersError:
            await asyncio.sleep(0.1)
    try:
        yield wadm, CtlClient(nc)
    finally:
        await nc.close()


async def wait_status(
    wadm: WadmClient, app: str, want: StatusType, timeout: float = 60.0, contains: str = ""
) -> float:
    """Seconds until the app's status is ``want`` (and its message contains ``contains``)."""
    start = time.monotonic()
    last = None
    while time.monotonic() - start < timeout:
        try:
            reply = await wadm.status(app)
            last = reply.status.status if reply.status else None
            if last and last.type is want and contains in last.message:
                return time.monotonic() - start
        except (TimeoutError, nats.errors.Error):
            pass  # controller or NATS restarting
        await asyncio.sleep(0.1)
    raise AssertionError(f"{app} never reached {want.value} {contains!r}; last {last}")


async def running(ctl: CtlClient, expect_hosts: int) -> dict[str, dict[str, int]]:
    """Workload id -> {host id: instances} from every host's inventory."""
    for _ in range(50):
        hosts = await ctl.ping_hosts(wait=0.3)
        if len(hosts) >= expect_hosts:
            break
        await asyncio.sleep(0.1)
    out: dict[str, dict[str, int]] = {}
    for host in hosts:
        inventory = await ctl.get_inventory(host["id"])
        for component in inventory["components"]:
            out.setdefault(component["id"], {})[host["id"]] = component["max_instances"]
        for provider in inventory["providers"]:
            out.setdefault(provider["id"], {})[host["id"]] = 1
    return out


@run_async
async def test_tutorial_deploy_survives_nats_and_controller_restarts(
    nats_server: NatsServer, redis_server: RedisServer, processes: Processes
) -> None:
    processes.host(region="local")
    controller = processes.controller()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with clients(nats_server) as (wadm, ctl):
        put = await wadm.put(yaml.safe_dump(counter_manifest(redis_server.url, port)))
        assert (put.result, put.current_version) == ("created", "v0.1.0")
        await wadm.deploy("counter")
        await wait_status(wadm, "counter", StatusType.DEPLOYED)

        assert await eventually_get(f"{url}/hello") == b"hello -> 1"
        assert await asyncio.to_thread(http_get, f"{url}/hello") == (200, b"hello -> 2")
        assert await asyncio.to_thread(http_get, f"{url}/world") == (200, b"world -> 1")
        [model] = (await wadm.list()).models
        assert (model.name, model.version, model.deployed_version) == (
            "counter",
            "v0.1.0",
            "v0.1.0",
        )
        before = await running(ctl, 1)
        assert sorted(before) == ["counter-counter", "counter-httpserver", "counter-kvredis"]

        controller.stop()
        nats_server.stop()
        nats_server.start()  # same port, same store directory
        processes.controller()
        await wait_status(wadm, "counter", StatusType.DEPLOYED)
        [model] = (await wadm.list()).models
        assert model.deployed_version == "v0.1.0"
        await asyncio.sleep(2.0)  # a few heartbeats and reconcile rounds
        assert await running(ctl, 1) == before  # nothing lost, nothing duplicated
        assert await eventually_get(f"{url}/hello") == b"hello -> 3"


@run_async
async def test_edge_core_placement_and_host_loss(
    nats_server: NatsServer, processes: Processes
) -> None:
    processes.host(region="local", tier="edge")
    processes.host(region="local", tier="edge")
    processes.host(region="local", tier="core")
    processes.controller()
    port = free_port()
    manifest = edge_core_manifest(port)
    async with clients(nats_server) as (wadm, ctl):
        hosts = []
        for _ in range(50):
            hosts = await ctl.ping_hosts(wait=0.3)
            if len(hosts) == 3:
                break
            await asyncio.sleep(0.1)  # no responders yet: ping returns at once
        inventories = [HostInventory(id=h["id"], labels=h["labels"]) for h in hosts]
        predicted = plan_placement(parse_manifest(manifest).manifest, inventories).placements()

        await wadm.put(manifest)
        await wadm.deploy("shop")
        await wait_status(wadm, "shop", StatusType.DEPLOYED)
        placed = await running(ctl, 3)
        assert placed == {f"shop-{name}": hosts_ for name, hosts_ in predicted.items()}
        assert await eventually_get(f"http://127.0.0.1:{port}/a") == b"a -> 1"

        edge_host = next(h for h in placed["shop-counter"] if h in _edge_ids(hosts))
        victim = next(p for p in processes.started if _host_id(p) == edge_host)
        victim.kill()  # no host_stopped: only missed heartbeats tell
        killed = time.monotonic()
        after: dict[str, dict[str, int]] = {}
        while time.monotonic() - killed < 30:
            after = await running(ctl, 2)
            counter = after.get("shop-counter", {})
            if edge_host not in counter and sum(counter.values()) == 4:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"edge instances never moved off {edge_host}: {after}")
        # Heartbeats every 1 s: the host is dropped ~3 s after its last one and the next
        # round re-places its work (benchmarks/reconcile.py measures how fast).
        print(f"host loss healed in {time.monotonic() - killed:.1f}s")
        await wait_status(wadm, "shop", StatusType.DEPLOYED)
        assert await eventually_get(f"http://127.0.0.1:{port}/a") == b"a -> 2"


def _edge_ids(hosts: list[dict[str, Any]]) -> set[str]:
    return {h["id"] for h in hosts if h["labels"].get("tier") == "edge"}


def _host_id(proc: HostProcess | ControllerProcess) -> str | None:
    if not isinstance(proc, HostProcess):
        return None
    for line in proc.log.read_text().splitlines():
        if '"host started"' in line:
            return str(yaml.safe_load(line)["host_id"])
    return None


@run_async
async def test_bad_input_is_refused_or_reported_and_recovers(
    nats_server: NatsServer, redis_server: RedisServer, processes: Processes
) -> None:
    processes.host(tier="core")
    processes.controller()
    async with clients(nats_server) as (wadm, ctl):
        bad = counter_manifest(redis_server.url, free_port())
        bad["spec"]["components"][0]["traits"][0]["properties"]["instances"] = -1
        with pytest.raises(WadmError) as refused:
            await wadm.put(yaml.safe_dump(bad))
        assert "spec.components[0].traits[0].properties.instances: must be >= 0" in str(
            refused.value
        )
        assert (await wadm.list()).models == []  # nothing stored

        good = counter_manifest(redis_server.url, free_port())
        await wadm.put(good)
        with pytest.raises(WadmError, match=r"Manifest version v0\.1\.0 already exists"):
            await wadm.put(good)
        with pytest.raises(WadmError, match="Version v9 of counter not found"):
            await wadm.deploy("counter", "v9")
        assert (await wadm.deploy("nope")).result == "notfound"

        # A spread no host satisfies fails with the reason, and recovers when one joins.
        gpu = counter_manifest(redis_server.url, free_port())
        gpu["metadata"]["annotations"]["version"] = "v0.2.0"
        gpu["spec"]["components"][0]["traits"][0]["properties"]["spread"] = [
            {"name": "gpu", "requirements": {"gpu": "true"}}
        ]
        await wadm.put(gpu)
        await wadm.deploy("counter", "v0.2.0")
        await wait_status(wadm, "counter", StatusType.FAILED, contains="no hosts match spread")
        processes.host(gpu="true")
        await wait_status(wadm, "counter", StatusType.DEPLOYED)

        # Deleting a deployed application undeploys it and removes its instances.
        deleted = await wadm.delete("counter")
        assert (deleted.result, deleted.undeploy) == ("deleted", True)
        for _ in range(100):
            if not await running(ctl, 2):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"instances left after delete: {await running(ctl, 2)}")
        assert (await wadm.list()).models == []


@run_async
async def test_provider_that_fails_to_start_is_reported_and_retried(
    nats_server: NatsServer, processes: Processes
) -> None:
    processes.host()
    processes.controller()
    manifest = edge_core_manifest(free_port())
    for component in manifest["spec"]["components"]:
        for trait in component.get("traits", []):
            trait["properties"].pop("spread", None)
    manifest["spec"]["components"][1]["properties"]["image"] = "ghcr.io/example/no-such:1.0"
    async with clients(nats_server) as (wadm, _):
        failures: list[float] = []

        async def count(msg: Any) -> None:
            if b"shop-kv" in msg.data:
                failures.append(time.monotonic())

        await wadm.nc.subscribe("wasmbus.evt.default.provider_start_failed", cb=count)
        await wadm.put(manifest)
        await wadm.deploy("shop")
        await wait_status(wadm, "shop", StatusType.FAILED, contains="shop-kv")
        reply = await wadm.status("shop")
        assert reply.status is not None
        kv = next(s for s in reply.status.scalers if s.name == "shop-kv")
        assert "no provider implementation" in kv.status.message
        await asyncio.sleep(4.0)
        assert len(failures) >= 2  # retried
        gaps = [b - a for a, b in itertools.pairwise(failures)]
        assert all(gap >= 0.9 for gap in gaps)  # with backoff, not in a tight loop


@run_async
async def test_two_controllers_do_not_fight_and_a_standby_takes_over(
    nats_server: NatsServer, redis_server: RedisServer, processes: Processes
) -> None:
    processes.host()
    first = processes.controller()
    processes.controller()
    async with clients(nats_server) as (wadm, ctl):
        await wadm.put(counter_manifest(redis_server.url, free_port()))
        await wadm.deploy("counter")
        await wait_status(wadm, "counter", StatusType.DEPLOYED)
        await asyncio.sleep(2.0)  # rounds by both controllers would show up as churn
        placed = await running(ctl, 1)
        assert sorted(sum(hosts.values()) for hosts in placed.values()) == [1, 1, 3]

        first.kill()  # whichever led, the survivor (or the same one) keeps the app right
        [host_id] = placed["counter-counter"]
        await ctl.scale_component(host_id, "counter-counter", f"file://{COUNTER_WASM}", 7)
        for _ in range(150):  # lease TTL 3 s in tests, then one round
            if (await running(ctl, 1))["counter-counter"] == {host_id: 3}:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"hand-scaled count never repaired: {await running(ctl, 1)}")
