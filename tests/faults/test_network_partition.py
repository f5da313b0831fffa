"""A host's network goes away and comes back, under load: the host that runs every
counter instance is cut off from nats-server (no reset, no close: bytes wait, as behind
a dead link) until the controller notices its missed heartbeats, then the link comes
back. Requests time out while it is away (the server still routes them to it); once it
is back its heartbeats and inventory reach the controller again, nothing is lost or
doubled, and the app is served."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from host_agent.lattice.wadm_types import StatusType
from tests.faults.checks import COUNTER_WORKLOADS, deployed, kept, placed
from tests.faults.load import Load, figures
from tests.faults.relay import Relay
from tests.integration.test_controller import _host_id, clients, running
from tests.lattice import (
    HostProcess,
    NatsServer,
    Processes,
    RedisServer,
    counter_manifest,
    free_port,
    run_async,
    spreadscaler,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


@pytest.fixture
def relay(nats_server: NatsServer) -> Iterator[Relay]:
    link = Relay(nats_server.port)
    yield link
    link.close()


def counter_on_zone_b(redis_url: str, port: int) -> dict[str, Any]:
    """The counter with its instances on the zone-b host and its providers on zone a."""
    manifest = counter_manifest(redis_url, port)
    counter, kvredis, http = manifest["spec"]["components"]
    counter["traits"][0] = spreadscaler(3, [{"name": "b", "requirements": {"zone": "b"}}])
    for provider in (kvredis, http):
        traits = provider.setdefault("traits", [])
        traits.insert(0, spreadscaler(1, [{"name": "a", "requirements": {"zone": "a"}}]))
    return manifest


@run_async
async def test_a_hosts_network_goes_away_and_comes_back_under_load(
    nats_server: NatsServer,
    redis_server: RedisServer,
    processes: Processes,
    relay: Relay,
    tmp_path: Any,
) -> None:
    processes.host(zone="a")
    # Only its address: the zone-b host (and what it starts) reach NATS through the relay.
    through_relay = NatsServer(nats_server.store, port=relay.port)
    zone_b = HostProcess(through_relay, {"zone": "b"}, "--allow-file-load", log=tmp_path / "b.log")
    processes.started.append(zone_b)
    processes.controller()
    port = free_port()
    async with clients(nats_server) as (wadm, ctl):
        await wadm.put(counter_on_zone_b(redis_server.url, port))
        await wadm.deploy("counter")
        await placed(ctl, COUNTER_WORKLOADS, hosts=2)
        await deployed(wadm, "counter")
        before = await running(ctl, 2)
        assert list(before["counter-counter"]) == [_host_id(zone_b)], before

        with Load(f"http://127.0.0.1:{port}/faults") as load:
            await load.until_served(20)
            relay.cut()
            fault_at = time.monotonic()
            # Away until the controller has noticed (the app is no longer deployed).
            await wait_not_deployed(wadm)
            relay.restore()
            restored_at = time.monotonic()
            converged = await placed(ctl, COUNTER_WORKLOADS, hosts=2)
            converged = max(converged, await deployed(wadm, "counter"))
            await load.settle(after=converged)
        await kept(wadm, "counter", "v0.1.0")
        assert await running(ctl, 2) == before  # back where it was, nothing doubled
    result = figures("a host's network away and back under load", load, fault_at, converged)
    print(f"  (network away {restored_at - fault_at:.1f} s)")
    assert result.converged_seconds < 40, result.line()


async def wait_not_deployed(wadm: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = await wadm.status("counter")
        if reply.status and reply.status.status.type is not StatusType.DEPLOYED:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the controller never noticed the host's network was gone")
