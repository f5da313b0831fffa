"""kill -9 of redis-server under load, then the same server started again on its port:
the counter's requests fail while Redis is gone (the keyvalue provider answers an error,
the component a 500) and are served again once it is back; nothing in the lattice moves.
Then a restart between two requests, which no client may notice: the provider's pooled
connection is dead, and the next call replaces it instead of failing."""

from __future__ import annotations

import time

import pytest

from tests.faults.checks import COUNTER_WORKLOADS, counter_deployed, deployed, kept, placed
from tests.faults.load import Load, figures
from tests.integration.test_controller import clients, running
from tests.lattice import NatsServer, Processes, RedisServer, counter_manifest, free_port, run_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


@run_async
async def test_redis_server_restart_under_load(
    nats_server: NatsServer, redis_server: RedisServer, processes: Processes
) -> None:
    processes.host(zone="a")
    processes.host(zone="b")
    processes.controller()
    port = free_port()
    async with clients(nats_server) as (wadm, ctl):
        await counter_deployed(wadm, ctl, counter_manifest(redis_server.url, port))
        before = await running(ctl, 2)

        with Load(f"http://127.0.0.1:{port}/faults") as load:
            await load.until_served(20)
            assert redis_server.proc is not None
            redis_server.proc.kill()
            redis_server.proc.wait()
            fault_at = time.monotonic()
            await load.until_failed(after=fault_at)
            redis_server.start()  # same port; without persistence, counts start again
            converged = await placed(ctl, COUNTER_WORKLOADS, hosts=2)
            converged = max(converged, await deployed(wadm, "counter"))
            await load.settle(after=converged)

            # Restarted between two requests: the pooled connection is dead, and the next
            # request must still be served (no client sees this restart at all).
            async with load.paused():
                redis_server.proc.kill()
                redis_server.proc.wait()
                redis_server.start()
                quiet_restart = time.monotonic()
            await load.settle(after=quiet_restart)
        await kept(wadm, "counter", "v0.1.0")
        assert await running(ctl, 2) == before  # a backend's restart moves nothing
    result = figures("redis-server kill -9 and restart under load", load, fault_at, converged)
    assert result.converged_seconds < 30, result.line()
