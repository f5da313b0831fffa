"""examples/edge-core-app across three hosts: gateway on the edge host calls logic on a
core host over NATS, through the example:logic/compute interface the two components
share; nothing but the link tells gateway where logic runs.

Real parts throughout: nats-server, redis-server, three host processes (one labeled
tier=edge, two tier=core), the controller, the example's wadm.yaml deployed through the
wadm API, and HTTP requests to the edge host's http-server. Each component names the
instance that did its part in the body and prints that name once when the instance
first runs; the host logs guest stdout, so a body is traced to the hosts that made it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from host_agent.lattice.client import CtlClient
from host_agent.lattice.subjects import event_subject
from host_agent.lattice.wadm import WadmClient
from host_agent.lattice.wadm_types import StatusType
from host_agent.model import normalize_name
from tests.integration.test_controller import clients, running, wait_status
from tests.lattice import (
    HostProcess,
    NatsServer,
    Processes,
    RedisServer,
    eventually_get,
    free_port,
    http_get,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "edge-core-app"
APP = "edge-core-app"
# Component ids as wadm derives them: <normalized app name>-<component name>.
GATEWAY_ID, LOGIC_ID = (f"{normalize_name(APP)}-{name}" for name in ("gateway", "logic"))
# The body's two lines (gateway/component/app.py); the names are 8 hex digits.
BODY = re.compile(
    r"gateway (?P<gateway>[0-9a-f]{8}): sum of \[1, 2, 3\]\n"
    r"logic (?P<logic>[0-9a-f]{8}): 6 \(even\), computation (?P<count>\d+), "
    r"for gateway (?P=gateway)\n"
)


def manifest(redis_url: str, port: int) -> dict[str, Any]:
    """examples/edge-core-app/wadm.yaml with this test's Redis, port and built files."""
    data: dict[str, Any] = yaml.safe_load((EXAMPLE / "wadm.yaml").read_text())
    gateway, logic, _kv, http = data["spec"]["components"]
    for component in (gateway, logic):
        wasm = EXAMPLE / component["name"] / "build" / f"{component['name']}.wasm"
        if not wasm.exists():
            pytest.fail(f"{wasm} is missing: run scripts/build-components.sh (make test does)")
        component["properties"]["image"] = f"file://{wasm}"
    [kv_config] = logic["traits"][1]["properties"]["target"]["config"]
    kv_config["properties"]["url"] = redis_url
    [listen] = http["traits"][1]["properties"]["source"]["config"]
    listen["properties"]["address"] = f"127.0.0.1:{port}"
    return data


def host_id(host: HostProcess) -> str:
    for line in host.log.read_text().splitlines():
        if '"host started"' in line:
            return str(json.loads(line)["host_id"])
    raise AssertionError(f"{host.log} has no 'host started' line")


def hosts_that_printed(hosts: dict[str, HostProcess], line: str) -> list[str]:
    """Ids of the hosts whose log holds a guest's stdout ``line``."""
    return [hid for hid, host in hosts.items() if line in host.log.read_text()]


@dataclass
class Lattice:
    url: str
    edge: str  # host ids
    cores: list[str]
    hosts: dict[str, HostProcess]
    wadm: WadmClient
    ctl: CtlClient

    async def logic_host(self, hosts_up: int = 3) -> str:
        """The one host running logic, read from the inventories of ``hosts_up`` hosts."""
        placed = await running(self.ctl, hosts_up)
        [host] = placed[LOGIC_ID]
        return host


@asynccontextmanager
async def deployed(
    nats_server: NatsServer, redis_server: RedisServer, processes: Processes
) -> AsyncIterator[Lattice]:
    started = [
        processes.host(tier="edge"),
        processes.host(tier="core"),
        processes.host(tier="core"),
    ]
    processes.controller()
    port = free_port()
    async with clients(nats_server) as (wadm, ctl):
        await wadm.put(manifest(redis_server.url, port))
        await wadm.deploy(APP)
        await wait_status(wadm, APP, StatusType.DEPLOYED, timeout=120)
        hosts = {host_id(host): host for host in started}
        edge, *cores = hosts
        yield Lattice(f"http://127.0.0.1:{port}", edge, cores, hosts, wadm, ctl)


@pytest.fixture
def lattice_processes(
    tmp_path: Path,
) -> Iterator[tuple[NatsServer, RedisServer, Processes]]:
    nats_server = NatsServer(tmp_path / "jetstream").start()
    redis_server = RedisServer(tmp_path / "redis").start()
    processes = Processes(nats_server, tmp_path)
    try:
        yield nats_server, redis_server, processes
    finally:
        for proc in reversed(processes.started):
            proc.stop()
        redis_server.stop()
        nats_server.stop()


def test_a_request_at_the_edge_is_computed_in_the_core(
    lattice_processes: tuple[NatsServer, RedisServer, Processes],
) -> None:
    asyncio.run(_request_at_the_edge(*lattice_processes))


async def _request_at_the_edge(
    nats_server: NatsServer, redis_server: RedisServer, processes: Processes
) -> None:
    async with deployed(nats_server, redis_server, processes) as lattice:
        placed = await running(lattice.ctl, 3)
        assert list(placed[GATEWAY_ID]) == [lattice.edge]
        [logic_host] = placed[LOGIC_ID]
        assert logic_host in lattice.cores

        body = (await eventually_get(f"{lattice.url}/sum/1,2,3")).decode()
        first = BODY.fullmatch(body)
        assert first, body
        # Each side's work came from where the manifest put it: the gateway instance
        # that answered printed its name on the edge host, the logic instance on the
        # core host that runs logic.
        gateway_line = f"gateway instance {first['gateway']} serving"
        logic_line = f"logic instance {first['logic']} serving"
        assert hosts_that_printed(lattice.hosts, gateway_line) == [lattice.edge]
        assert hosts_that_printed(lattice.hosts, logic_line) == [logic_host]
        print(
            f"gateway {first['gateway']} on edge host {lattice.edge[:12]}..., "
            f"logic {first['logic']} on core host {logic_host[:12]}..."
        )

        # The count lives in Redis through the keyvalue provider: it goes on.
        status, again = await asyncio.to_thread(http_get, f"{lattice.url}/sum/1,2,3")
        second = BODY.fullmatch(again.decode())
        assert status == 200 and second, again
        assert int(second["count"]) == int(first["count"]) + 1

        # The contract's other shapes cross the wire too: a variant with a payload, and
        # the error variant of the result, each as the caller sees it.
        status, overflow = await asyncio.to_thread(
            http_get, f"{lattice.url}/product/9223372036854775807,2"
        )
        assert status == 200, overflow
        assert (
            b"9223372036854775807 (overflow: exceeds the s64 maximum by 9223372036854775807)"
            in (overflow)
        )
        status, refused = await asyncio.to_thread(http_get, f"{lattice.url}/max/")
        assert status == 422, refused
        assert b"logic refused: the maximum of no numbers is undefined" in refused
        status, negative = await asyncio.to_thread(http_get, f"{lattice.url}/max/-5,-9")
        assert status == 200 and b": -5 (odd)" in negative, negative


# The fault run: REQUESTS requests paced at RATE per second (about 33 s of load, long
# enough to hold a re-placement) from up to CONCURRENCY clients; the core host running
# logic is killed once KILL_AFTER of them have succeeded.
REQUESTS = 500
RATE = 15.0
CONCURRENCY = 16
KILL_AFTER = 60
HTTP_TIMEOUT = 10.0  # tests.lattice.http_get's: a hung call shows up as a failure


@dataclass(frozen=True)
class Outcome:
    index: int
    started: float  # time.monotonic()
    ended: float
    status: int  # 0: no HTTP answer
    body: str


async def paced_load(
    url: str, count: int, rate: float, done: asyncio.Queue[Outcome]
) -> list[Outcome]:
    """Send ``count`` GETs, the i-th at start + i/rate, each reported on ``done``."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(CONCURRENCY) as pool:

        async def one(index: int) -> None:
            # Pacing the load, not waiting for a state: the schedule is the load's shape.
            await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
            began = time.monotonic()
            try:
                status, body = await loop.run_in_executor(pool, http_get, url)
            except OSError as error:  # refused, reset or timed out
                status, body = 0, str(error).encode()
            outcome = Outcome(index, began, time.monotonic(), status, body.decode(errors="replace"))
            outcomes.append(outcome)
            done.put_nowait(outcome)

        await asyncio.gather(*(one(i) for i in range(count)))
    return sorted(outcomes, key=lambda o: o.index)


def test_killing_the_core_host_of_logic_under_load_fails_only_until_it_is_replaced(
    lattice_processes: tuple[NatsServer, RedisServer, Processes],
) -> None:
    asyncio.run(_kill_under_load(*lattice_processes))


async def _kill_under_load(
    nats_server: NatsServer, redis_server: RedisServer, processes: Processes
) -> None:
    async with deployed(nats_server, redis_server, processes) as lattice:
        url = f"{lattice.url}/sum/1,2,3"
        await eventually_get(url)  # links are in place before the clock starts
        victim = await lattice.logic_host()
        [survivor] = [core for core in lattice.cores if core != victim]
        kv_moves = victim in (await running(lattice.ctl, 3))[f"{normalize_name(APP)}-kv"]

        # When logic starts on the survivor: the host's own event, sent once it serves.
        replaced = asyncio.get_running_loop().create_future()

        async def scaled(msg: Any) -> None:
            event = json.loads(msg.data)
            data = event["data"]
            if (
                event["source"] == survivor
                and data.get("component_id") == LOGIC_ID
                and data.get("max_instances", 0) > 0
                and not replaced.done()
            ):
                replaced.set_result(time.monotonic())

        sub = await lattice.wadm.nc.subscribe(
            event_subject("default", "component_scaled"), cb=scaled
        )
        await lattice.wadm.nc.flush()

        done: asyncio.Queue[Outcome] = asyncio.Queue()
        load = asyncio.create_task(paced_load(url, REQUESTS, RATE, done))
        successes = 0
        while successes < KILL_AFTER:  # the kill waits on the load's own progress
            try:  # every request ends within HTTP_TIMEOUT, so only an ended load is silent
                successes += (await asyncio.wait_for(done.get(), HTTP_TIMEOUT + 5)).status == 200
            except TimeoutError:
                raise AssertionError(
                    f"the load ended after {successes} successes, before the kill at {KILL_AFTER}"
                ) from None
        lattice.hosts[victim].kill()  # SIGKILL: no goodbye, only missed heartbeats tell
        killed = time.monotonic()
        outcomes = await load
        await sub.unsubscribe()

        failures = [o for o in outcomes if o.status != 200]
        assert not [o for o in failures if o.ended < killed], "requests failed before the kill"
        assert replaced.done(), f"logic was never started on the other core host {survivor}"
        assert await lattice.logic_host(hosts_up=2) == survivor
        after_kill = [o for o in outcomes if o.started >= killed]
        recovered = next((o for o in after_kill if o.status == 200), None)
        assert recovered is not None, (
            f"nothing succeeded after the kill: {failures[-1].body if failures else 'no requests'}"
        )
        late = [o for o in outcomes if o.started >= recovered.started and o.status != 200]
        assert not late, (
            f"{len(late)} request(s) failed after the first success following the kill, "
            f"e.g. #{late[0].index}: {late[0].status} {late[0].body!r}"
        )
        # The requests after the move were computed on the survivor.
        tail = BODY.fullmatch(outcomes[-1].body)
        assert tail, outcomes[-1].body
        logic_line = f"logic instance {tail['logic']} serving"
        assert hosts_that_printed(lattice.hosts, logic_line) == [survivor]
        slowest = max((o.ended - o.started for o in failures), default=0.0)
        assert slowest < HTTP_TIMEOUT, "a failing call hung instead of failing"

        window = (
            max(o.ended for o in failures) - min(o.started for o in failures) if failures else 0.0
        )
        samples = {o.status: o.body.strip().splitlines()[-1][:160] for o in failures}
        print(
            f"\nfault run: {REQUESTS} requests at {RATE:g}/s; the core host running logic "
            f"(and {'the' if kv_moves else 'not the'} keyvalue provider) killed after "
            f"{KILL_AFTER} successes\n"
            f"  failures: {len(failures)}, all within {window:.2f}s (first failure's start "
            f"to last failure's end); slowest failure {slowest:.2f}s; "
            f"{len(outcomes) - len(failures)} succeeded\n"
            f"  kill -> logic running on the other core host: {replaced.result() - killed:.2f}s; "
            f"kill -> first success: {recovered.ended - killed:.2f}s\n"
            + "".join(
                f"  {sum(o.status == status for o in failures)} x {status}: {sample}\n"
                for status, sample in sorted(samples.items())
            )
        )
