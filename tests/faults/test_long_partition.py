"""A host's network goes away for longer than NATS waits for a client: the server, pinging
every 2 s and giving up after 2 unanswered pings (``ping_interval``/``ping_max``, as an
operator shortens the 2-minute default), closes the host's connection as stale while the
link is dark. When the link comes back the host finds its connection gone, reconnects
(same host id, same components), and rejoins: the controller sees it again and the app is
served as before, nothing lost or doubled.

The short partition (test_network_partition.py) ends before the server gives up, so the
host's connection survives it; this one checks the other path, the reconnect."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.checks import COUNTER_WORKLOADS, deployed, kept, placed
from tests.faults.load import Load, figures
from tests.faults.relay import Relay
from tests.faults.test_network_partition import counter_on_zone_b, wait_not_deployed
from tests.integration.test_controller import _host_id, clients, running
from tests.lattice import HostProcess, NatsServer, Processes, RedisServer, free_port, run_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

PING_INTERVAL = 2  # seconds; the server closes a client after PING_MAX unanswered pings
PING_MAX = 2
STALE = "Stale Connection"  # nats-server's reason for a client that stopped answering


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """nats-server with a short ping interval and its monitoring port (``monitoring``)."""
    conf = tmp_path / "nats.conf"
    conf.write_text(
        f'ping_interval: "{PING_INTERVAL}s"\nping_max: {PING_MAX}\nhttp: 127.0.0.1:{free_port()}\n'
    )
    server = NatsServer(tmp_path / "jetstream", args=("-c", str(conf))).start()
    yield server
    server.stop()


@pytest.fixture
def relay(nats_server: NatsServer) -> Iterator[Relay]:
    link = Relay(nats_server.port)
    yield link
    link.close()


def monitoring(conf: Path, endpoint: str) -> dict[str, Any]:
    port = conf.read_text().split("http: 127.0.0.1:")[1].split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{endpoint}", timeout=5) as answer:
        data: dict[str, Any] = json.loads(answer.read())
    return data


def connections(conf: Path, host_id: str, state: str) -> list[dict[str, Any]]:
    """The server's ``state`` (open or closed) connections of the host ``host_id``."""
    found = monitoring(conf, f"connz?state={state}&limit=1024").get("connections") or []
    return [c for c in found if host_id in str(c.get("name", ""))]


async def until(condition: Any, what: str, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(condition):
            return time.monotonic()
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:.0f} s")


@run_async
async def test_a_partition_longer_than_the_servers_patience_ends_in_a_reconnect(
    nats_server: NatsServer,
    redis_server: RedisServer,
    processes: Processes,
    relay: Relay,
    tmp_path: Path,
) -> None:
    conf = tmp_path / "nats.conf"
    processes.host(zone="a")
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
        host_b = _host_id(zone_b)
        assert host_b is not None and list(before["counter-counter"]) == [host_b], before
        assert connections(conf, host_b, "open"), "the zone-b host has no connection to see"
        stale_before = len(connections(conf, host_b, "closed"))

        with Load(f"http://127.0.0.1:{port}/faults") as load:
            await load.until_served(20)
            relay.cut()
            fault_at = time.monotonic()
            # Dark until the server has given up on the host (closed its connection as
            # stale) and the controller has noticed the missed heartbeats.
            await until(
                lambda: any(
                    c.get("reason") == STALE
                    for c in connections(conf, host_b, "closed")[stale_before:]
                ),
                f"nats-server never closed the cut-off host's connection as {STALE!r}",
            )
            await wait_not_deployed(wadm)
            relay.restore()
            restored_at = time.monotonic()
            # The host finds its connection gone and makes a new one, as the same host.
            await until(
                lambda: bool(connections(conf, host_b, "open")), "the host never reconnected"
            )
            converged = await placed(ctl, COUNTER_WORKLOADS, hosts=2)
            converged = max(converged, await deployed(wadm, "counter"))
            await load.settle(after=converged)
        await kept(wadm, "counter", "v0.1.0")
        assert await running(ctl, 2) == before  # the same host, the same work, nothing doubled
    result = figures(
        "a partition longer than NATS's ping limit", load, fault_at, converged, restored_at
    )
    print(f"  (network away {restored_at - fault_at:.1f} s)")
    assert result.converged_seconds < 40, result.line()
