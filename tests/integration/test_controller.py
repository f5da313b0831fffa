"""The controller end to end: real nats-server (JetStream on disk), redis-server, host
processes, the controller process, real components and HTTP requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest
import yaml

from host_agent.lattice.client import CtlClient
from host_agent.lattice.subjects import WADM_LEADER_BUCKET, CtlSubjects, event_subject
from host_agent.lattice.wadm import WadmClient, WadmError
from host_agent.lattice.wadm_types import StatusType
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
    counter_on_inmemory_kv,
    eventually_get,
    first_host_id,
    free_port,
    http_get,
    http_server_to_counter,
    inmemory_kv,
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
                counter_on_inmemory_kv(4, spread),
                inmemory_kv(core),
                http_server_to_counter(port, core),
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
        await heartbeats(wadm.nc, 3)  # each one a reconcile round
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
async def test_provider_reference_no_host_runs_is_refused_at_put(
    nats_server: NatsServer, processes: Processes
) -> None:
    """A provider our hosts would refuse (provider_start_failed, retried with backoff forever:
    tests/unit/test_controller.py covers the retry) is refused when the manifest is put,
    naming the reference and what is supported; nothing is stored or started."""
    processes.host()
    processes.controller()
    manifest = edge_core_manifest(free_port())
    kv = manifest["spec"]["components"][1]
    async with clients(nats_server) as (wadm, ctl):
        for image, reason in [
            ("ghcr.io/example/no-such:1.0", "supported: builtin:http-server"),
            ("ghcr.io/wasmcloud/keyvalue-redis:0.23.0", "releases before 0.24.0 serve"),
        ]:
            kv["properties"]["image"] = image
            with pytest.raises(WadmError) as refused:
                await wadm.put(manifest)
            message = str(refused.value)
            assert "spec.components[1].properties.image:" in message
            assert repr(image) in message and reason in message
        assert (await wadm.list()).models == []
        host = await first_host_id(wadm.nc)
        assert (await ctl.get_inventory(host))["providers"] == []


# Control requests that change a host or the lattice (reads such as host.get are left out).
_COMMANDS = {
    ("component", "scale"),
    ("component", "update"),
    ("provider", "start"),
    ("provider", "stop"),
    ("link", "put"),
    ("link", "del"),
    ("config", "put"),
    ("config", "del"),
    ("label", "put"),
    ("label", "del"),
}


class CommandLog:
    """Every state-changing control request on the lattice, in the order NATS delivered
    them, as (operation, what it names, body): what the controllers actually told hosts."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    async def follow(self, nc: Any, lattice: str = "default") -> None:
        subjects = CtlSubjects(lattice)

        async def record(msg: Any) -> None:
            tokens = subjects.operation(msg.subject)
            if tuple(tokens[:2]) not in _COMMANDS:
                return
            body = json.loads(msg.data) if msg.data else {}
            named = next(
                (str(body[k]) for k in ("component_id", "provider_id", "source_id") if k in body),
                ".".join(tokens[2:]),
            )
            self.seen.append((".".join(tokens[:2]), named, body))

        await nc.subscribe(subjects(">"), cb=record)
        await nc.flush()  # subscribed at the server before anything is deployed

    def since(self, mark: int) -> list[tuple[str, str, dict[str, Any]]]:
        return self.seen[mark:]

    def scales(self, mark: int = 0) -> list[tuple[str, int]]:
        return [
            (named, body["count"])
            for op, named, body in self.since(mark)
            if op == "component.scale"
        ]

    def duplicates(self, mark: int = 0) -> list[tuple[str, str]]:
        bodies = [
            json.dumps([op, named, body], sort_keys=True) for op, named, body in self.since(mark)
        ]
        return [tuple(json.loads(b)[:2]) for b in sorted(set(bodies)) if bodies.count(b) > 1]


async def heartbeats(nc: Any, count: int, timeout: float = 30.0) -> None:
    """Return after ``count`` host heartbeats: each one starts a reconcile round in every
    controller that believes it leads, so a second leader would act in between."""
    sub = await nc.subscribe(event_subject("default", "host_heartbeat"))
    try:
        for _ in range(count):
            await sub.next_msg(timeout=timeout)
    finally:
        await sub.unsubscribe()


async def leader_id(nc: Any, lattice: str = "default") -> str:
    """The controller id in the leader lease (host_agent/controller/leader.py), once held."""
    kv = await nc.jetstream().key_value(WADM_LEADER_BUCKET)
    for _ in range(150):
        with contextlib.suppress(nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            entry = await kv.get(lattice)
            if entry.value:
                return entry.value.decode()
        await asyncio.sleep(0.1)
    raise AssertionError("no controller took the leader lease")


@run_async
async def test_two_controllers_send_each_command_once_and_the_standby_takes_over(
    nats_server: NatsServer, redis_server: RedisServer, processes: Processes
) -> None:
    processes.host()
    controllers = [processes.controller(), processes.controller()]
    commands = CommandLog()
    async with clients(nats_server) as (wadm, ctl):
        await commands.follow(wadm.nc)
        await wadm.put(counter_manifest(redis_server.url, free_port()))
        await wadm.deploy("counter")
        await wait_status(wadm, "counter", StatusType.DEPLOYED)
        await heartbeats(wadm.nc, 3)  # rounds by a second leader would send commands again

        placed = await running(ctl, 1)
        [host_id] = placed["counter-counter"]
        assert sorted(sum(hosts.values()) for hosts in placed.values()) == [1, 1, 3]
        assert commands.scales() == [("counter-counter", 3)], commands.seen
        starts = sorted(named for op, named, _ in commands.seen if op == "provider.start")
        assert starts == ["counter-httpserver", "counter-kvredis"], commands.seen
        assert sum(op == "link.put" for op, _, _ in commands.seen) == 2, commands.seen
        assert commands.duplicates() == [], commands.seen

        # Kill the real leader (no lease release: what a crash looks like).
        ids = {proc.controller_id(): proc for proc in controllers}
        leading = await leader_id(wadm.nc)
        assert leading in ids, (leading, list(ids))
        [standby] = [cid for cid in ids if cid != leading]
        ids[leading].kill()

        mark = len(commands.seen)
        await ctl.scale_component(host_id, "counter-counter", f"file://{COUNTER_WASM}", 7)
        for _ in range(150):  # lease TTL 3 s in tests, then one round
            if (await running(ctl, 1))["counter-counter"] == {host_id: 3}:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"hand-scaled count never repaired: {await running(ctl, 1)}")
        assert await leader_id(wadm.nc) == standby
        await heartbeats(wadm.nc, 3)
        # Ours (7), then exactly one repair by the new leader, and nothing else redone.
        assert commands.scales(mark) == [("counter-counter", 7), ("counter-counter", 3)], (
            commands.since(mark)
        )
        assert commands.duplicates(mark) == [], commands.since(mark)
        await wait_status(wadm, "counter", StatusType.DEPLOYED)
