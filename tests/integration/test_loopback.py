"""The local default listens on loopback only: the example manifests say 127.0.0.1, and
the http-server provider given an address without a host listens on 127.0.0.1.

Listening sockets are read from /proc/net/tcp{,6} (what `ss -ltn` shows).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
import yaml

from host_agent.lattice.wadm import WadmClient
from tests.integration.test_counter_app import HTTP_SERVER, lattice
from tests.lattice import (
    COUNTER_WASM,
    ROOT,
    NatsServer,
    Processes,
    RedisServer,
    eventually_get,
    free_port,
    run_async,
)

EXAMPLES = ROOT / "examples"
TCP_LISTEN = "0A"


def _address(hex_address: str) -> str:
    """/proc/net/tcp's little-endian hex address, as dotted or colon text."""
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = struct.unpack("<4I", raw)  # four host-order 32-bit words
    return str(ipaddress.IPv6Address(struct.pack(">4I", *words)))


def listening_on(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on `port`."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == TCP_LISTEN and int(hex_port, 16) == port:
                found.add(_address(address))
    return found


async def listening_soon(port: int) -> set[str]:
    """Wait (bounded) for the provider's listener: it opens when the link reaches it."""
    for _ in range(150):
        found = listening_on(port)
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port}")


# Examples whose hosts run on other machines (SSH): there an http-server serves the
# machine's interfaces, which is the point; everything that runs on this machine listens
# on loopback only.
ON_MACHINES = (EXAMPLES / "edge-core", EXAMPLES / "multi-region")


def example_manifests() -> list[Path]:
    return sorted(
        p
        for p in EXAMPLES.rglob("*.yaml")
        if "build" not in p.parts and not any(p.is_relative_to(d) for d in ON_MACHINES)
    )


def http_addresses(data: Any) -> list[str]:
    """Every `address` property anywhere in a manifest."""
    if isinstance(data, dict):
        found = [v for k, v in data.items() if k == "address" and isinstance(v, str)]
        return found + [a for v in data.values() for a in http_addresses(v)]
    if isinstance(data, list):
        return [a for v in data for a in http_addresses(v)]
    return []


def test_example_manifests_listen_on_loopback_only() -> None:
    manifests = example_manifests()
    assert EXAMPLES / "counter" / "wadm.yaml" in manifests
    addresses = []
    for path in manifests:
        text = path.read_text()
        assert "0.0.0.0" not in text and "[::]" not in text, f"{path} binds every interface"
        addresses += http_addresses(yaml.safe_load(text))
    assert addresses, "no listen address found in the examples"
    for address in addresses:
        host = address.rpartition(":")[0].strip("[]")
        assert ipaddress.ip_address(host).is_loopback, address


@pytest.mark.slow
@pytest.mark.timeout(180)
@run_async
async def test_the_counter_example_deployed_listens_on_127_0_0_1(
    nats_server: NatsServer, redis_server: RedisServer, processes: Processes
) -> None:
    processes.host(region="local", tier="core")
    processes.host(region="local", tier="edge")
    processes.controller()
    port = free_port()
    # The example as written; only what must differ in a test: the wasm path, this
    # test's Redis and a free port (the host part of the address is kept).
    data = yaml.safe_load((EXAMPLES / "counter" / "wadm.yaml").read_text())
    counter, _, http = data["spec"]["components"]
    counter["properties"]["image"] = f"file://{COUNTER_WASM}"
    counter["traits"][1]["properties"]["target_config"][0]["properties"]["url"] = redis_server.url
    listen = http["traits"][0]["properties"]["source_config"][0]["properties"]
    listen["address"] = f"{listen['address'].rpartition(':')[0]}:{port}"

    nc = await nats.connect(nats_server.url)
    try:
        wadm = WadmClient(nc)
        for _ in range(100):  # the controller is still starting: no responders yet
            try:
                await wadm.list()
                break
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.1)
        await wadm.put(yaml.safe_dump(data))
        await wadm.deploy("counter")
        assert await eventually_get(f"http://127.0.0.1:{port}/hello", tries=1200) == b"hello -> 1"
    finally:
        await nc.close()
    assert listening_on(port) == {"127.0.0.1"}


@pytest.mark.timeout(120)
@run_async
async def test_an_address_without_a_host_listens_on_loopback(
    nats_server: NatsServer, processes: Processes
) -> None:
    processes.host()
    port = free_port()
    async with lattice(nats_server) as lat:
        [host] = await lat.host_ids(1)
        await lat.ctl.put_config("bare-port", {"address": f":{port}"})
        await lat.ctl.start_provider(host, "httpserver", HTTP_SERVER)
        await lat.event("provider_started", provider_id="httpserver")
        await lat.link("httpserver", "anything", "http", ["incoming-handler"],
                       source_config=["bare-port"])  # fmt: skip
        assert await listening_soon(port) == {"127.0.0.1"}
