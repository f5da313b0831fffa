"""kill -9 of the host that serves the counter's HTTP listener, under load: no goodbye
(host_stopped) is sent, so only its missed heartbeats tell the controller, which re-places
the listener, the keyvalue provider and the counter's instances on the other host."""

from __future__ import annotations

import time

import pytest

from tests.faults.checks import COUNTER_WORKLOADS, counter_deployed, deployed, kept, placed
from tests.faults.load import Load, figures
from tests.integration.test_controller import _host_id, clients, running
from tests.lattice import NatsServer, Processes, RedisServer, counter_manifest, free_port, run_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


@run_async
async def test_kill_9_of_the_listening_host_under_load(
    nats_server: NatsServer, redis_server: RedisServer, processes: Processes
) -> None:
    hosts = [processes.host(zone="a"), processes.host(zone="b")]
    processes.controller()
    port = free_port()
    async with clients(nats_server) as (wadm, ctl):
        await counter_deployed(wadm, ctl, counter_manifest(redis_server.url, port))
        [listening] = (await running(ctl, 2))["counter-httpserver"]
        victim = next(h for h in hosts if _host_id(h) == listening)

        with Load(f"http://127.0.0.1:{port}/faults") as load:
            await load.until_served(20)
            victim.kill()
            fault_at = time.monotonic()
            converged = await placed(ctl, COUNTER_WORKLOADS, hosts=1, avoid=frozenset({listening}))
            converged = max(converged, await deployed(wadm, "counter"))
            await load.settle(after=converged)
        await kept(wadm, "counter", "v0.1.0")
    result = figures("kill -9 of a host under load", load, fault_at, converged)
    assert result.converged_seconds < 30, result.line()
