"""The JetStream store limit filled under load (another stream takes every byte the
server may store): the deployed app keeps serving (its path is NATS core and Redis), the
stored apps are kept, a new manifest is refused with a sentence that says why and what to
do, and once space is freed the same put and deploy converge."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import nats.js.errors
import pytest

from host_agent.lattice.wadm import WadmError
from tests.faults.checks import COUNTER_WORKLOADS, counter_deployed, deployed, kept, placed
from tests.faults.load import Load, figures
from tests.integration.test_controller import clients, heartbeats
from tests.lattice import NatsServer, Processes, RedisServer, counter_manifest, free_port, run_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

STORE_LIMIT = 4 * 1024 * 1024  # the controller's and hosts' buckets need a few KB
FILL_MESSAGE = 64 * 1024


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """nats-server whose JetStream may store ``STORE_LIMIT`` bytes on disk."""
    config = tmp_path / "jetstream-limits.conf"
    config.write_text(f"jetstream {{\n  max_file_store: {STORE_LIMIT}\n}}\n")
    server = NatsServer(tmp_path / "jetstream", args=("-c", str(config))).start()
    yield server
    server.stop()


@run_async
async def test_jetstream_store_full_under_load(
    nats_server: NatsServer, redis_server: RedisServer, processes: Processes
) -> None:
    processes.host(zone="a")
    processes.host(zone="b")
    processes.controller()
    port = free_port()
    manifest = counter_manifest(redis_server.url, port)
    async with clients(nats_server) as (wadm, ctl):
        await counter_deployed(wadm, ctl, manifest)
        js = wadm.nc.jetstream()

        with Load(f"http://127.0.0.1:{port}/faults") as load:
            await load.until_served(20)
            await js.add_stream(name="FILLER", subjects=["filler.>"])
            for _ in range(STORE_LIMIT // FILL_MESSAGE + 10):  # bounded: the limit, and some
                try:
                    await js.publish("filler.block", b"x" * FILL_MESSAGE)
                except nats.js.errors.ServiceUnavailableError as full:
                    assert full.err_code == 10023, full  # insufficient resources
                    break
            else:
                raise AssertionError("the JetStream store never filled")
            fault_at = time.monotonic()

            bigger = counter_manifest(redis_server.url, port)
            bigger["metadata"]["annotations"]["version"] = "v0.2.0"
            bigger["spec"]["components"][0]["traits"][0]["properties"]["instances"] = 4
            with pytest.raises(WadmError) as refused:
                await wadm.put(bigger)
            assert "JetStream store is full" in str(refused.value), refused.value
            assert "max_file_store" in str(refused.value), refused.value
            # Full for longer than the controller's lease (3 s here): it cannot renew it.
            await heartbeats(wadm.nc, 5)
            await kept(wadm, "counter", "v0.1.0")

            await js.delete_stream("FILLER")
            freed_at = time.monotonic()
            await wadm.put(bigger)
            await wadm.deploy("counter", "v0.2.0")
            converged = await placed(ctl, {**COUNTER_WORKLOADS, "counter-counter": 4}, hosts=2)
            converged = max(converged, await deployed(wadm, "counter"))
            await load.settle(after=converged)
        await kept(wadm, "counter", "v0.2.0")
    result = figures("JetStream store full", load, fault_at, converged, since=freed_at)
    # The request path does not use JetStream, so clients normally see no error at all;
    # under a loaded CI machine one request in ~15 runs timed out during the window (the
    # redeploy after space is freed), which the fault contract allows: errors only inside
    # the window (`figures` checks none came before, `settle` that 30 in a row succeed).
    assert all(o.started <= converged for o in load.outcomes if not o.ok), result.failures
    assert result.converged_seconds < 30, result.line()
