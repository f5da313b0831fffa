"""kill -9 of nats-server under load, then the same server started again on its port and
JetStream store: hosts, providers and the controller reconnect on their own, the stored
app is still deployed and nothing is started twice. Converged means every provider
process answers again too (each reconnects on its own, after the hosts or before)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.checks import (
    COUNTER_WORKLOADS,
    counter_deployed,
    deployed,
    kept,
    last_status_seq,
    placed,
    providers_serving,
    statuses_since,
)
from tests.faults.load import Load, figures
from tests.integration.test_controller import clients, running
from tests.lattice import NatsServer, Processes, RedisServer, counter_manifest, free_port, run_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

NATS_DOWN_SECONDS = 4.0  # the fault's length (not a wait for anything)


@run_async
async def test_nats_server_restart_under_load(
    nats_server: NatsServer, redis_server: RedisServer, processes: Processes
) -> None:
    processes.host(zone="a")
    processes.host(zone="b")
    processes.controller()
    port = free_port()
    async with clients(nats_server) as (wadm, ctl):
        await counter_deployed(wadm, ctl, counter_manifest(redis_server.url, port))
        before = await running(ctl, 2)
        status_seq = await last_status_seq(wadm.nc, "counter")

        with Load(f"http://127.0.0.1:{port}/faults") as load:
            await load.until_served(20)
            assert nats_server.proc is not None
            nats_server.proc.kill()  # no lame-duck goodbye to any client
            nats_server.proc.wait()
            fault_at = time.monotonic()
            await load.until_failed(after=fault_at)
            # Down for longer than the hosts' timeout (3 heartbeats of 1 s): missed
            # heartbeats must not count against hosts that lost NATS with the controller.
            await asyncio.sleep(max(0.0, fault_at + NATS_DOWN_SECONDS - time.monotonic()))
            nats_server.start()  # same port, same store directory
            restarted_at = time.monotonic()
            converged = await placed(ctl, COUNTER_WORKLOADS, hosts=2)
            converged = max(converged, await deployed(wadm, "counter"))
            providers = {p: before[p] for p in ("counter-httpserver", "counter-kvredis")}
            converged = max(converged, await providers_serving(wadm.nc, providers))
            await load.settle(after=converged)
        await kept(wadm, "counter", "v0.1.0")
        # The controller never judged the lattice while it was cut off from it: a "failed
        # (no hosts)" in between is what a deploy right after the outage would have read.
        published = await statuses_since(wadm.nc, "counter", status_seq)
        assert all(status.startswith("deployed") for status in published), published
        assert await running(ctl, 2) == before  # same hosts, nothing moved or doubled
    result = figures(
        "nats-server kill -9 and restart under load", load, fault_at, converged, restarted_at
    )
    assert result.converged_seconds < 30, result.line()
