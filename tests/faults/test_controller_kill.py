"""kill -9 of the controller in the middle of a deploy (right after it sent the new app's
first command), while another deployed app serves under load: a controller started
again takes the lease when the dead one's expires, reads the stored manifests and
finishes the deploy; the serving app never notices (the controller is not on its path)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from host_agent.lattice.subjects import CtlSubjects
from tests.faults.checks import COUNTER_WORKLOADS, counter_deployed, deployed, kept, placed
from tests.faults.load import Load, figures
from tests.integration.test_controller import clients, running
from tests.lattice import (
    NatsServer,
    Processes,
    RedisServer,
    counter_manifest,
    counter_on_inmemory_kv,
    eventually_get,
    free_port,
    http_server_to_counter,
    inmemory_kv,
    run_async,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

SHOP_WORKLOADS = {"shop-counter": 2, "shop-kv": 1, "shop-http": 1}


def shop_manifest(port: int) -> dict[str, Any]:
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "shop", "annotations": {"version": "v1"}},
        "spec": {
            "components": [counter_on_inmemory_kv(2), inmemory_kv(), http_server_to_counter(port)]
        },
    }


@run_async
async def test_controller_kill_9_mid_deploy(
    nats_server: NatsServer, redis_server: RedisServer, processes: Processes
) -> None:
    processes.host(zone="a")
    processes.host(zone="b")
    controller = processes.controller()
    port, shop_port = free_port(), free_port()
    async with clients(nats_server) as (wadm, ctl):
        await counter_deployed(wadm, ctl, counter_manifest(redis_server.url, port))

        fault: list[float] = []

        async def kill_at_first_shop_command(msg: Any) -> None:
            if not fault and b'"shop-' in msg.data:
                controller.kill()  # mid-deploy: the rest of the shop's commands unsent
                fault.append(time.monotonic())

        watch = await wadm.nc.subscribe(CtlSubjects()(">"), cb=kill_at_first_shop_command)
        await wadm.nc.flush()
        with Load(f"http://127.0.0.1:{port}/faults") as load:
            await load.until_served(20)
            await wadm.put(shop_manifest(shop_port))
            await wadm.deploy("shop")
            await load.until(lambda: bool(fault), "the shop's first command", 30)
            await watch.unsubscribe()
            [fault_at] = fault
            shop_now = await running(ctl, 2)
            assert {w: sum(shop_now.get(w, {}).values()) for w in SHOP_WORKLOADS} != (
                SHOP_WORKLOADS
            ), f"the deploy had finished before the controller died: {shop_now}"

            processes.controller()
            converged = await placed(ctl, {**COUNTER_WORKLOADS, **SHOP_WORKLOADS}, hosts=2)
            converged = max(converged, await deployed(wadm, "shop"))
            await eventually_get(f"http://127.0.0.1:{shop_port}/a")
            converged = max(converged, time.monotonic())
            await load.settle(after=converged)
        await kept(wadm, "counter", "v0.1.0")
        await kept(wadm, "shop", "v1")
    result = figures("controller kill -9 mid-deploy", load, fault_at, converged)
    assert result.failed == 0, f"served app failed, only the controller died: {result.failures}"
    assert result.converged_seconds < 30, result.line()
