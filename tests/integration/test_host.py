"""The host agent on a real NATS lattice: discovery, heartbeats, inventory, labels, links,
config, bad input, NATS restarts and shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import pytest

from host_agent.lattice.client import CtlClient, CtlError
from host_agent.lattice.subjects import CtlSubjects
from tests.lattice import HostProcess, NatsServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def start_host(nats_server: NatsServer, tmp_path: Path) -> Iterator[Callable[..., HostProcess]]:
    hosts: list[HostProcess] = []

    def start(labels: dict[str, str], *args: str) -> HostProcess:
        host = HostProcess(nats_server, labels, *args, log=tmp_path / f"host{len(hosts)}.log")
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.stop()


@asynccontextmanager
async def client(server: NatsServer) -> AsyncIterator[CtlClient]:
    nc = await nats.connect(server.url)
    try:
        yield CtlClient(nc)
    finally:
        await nc.close()


async def wait_for(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.2)


async def hosts_by_label(ctl: CtlClient, count: int) -> dict[str, dict[str, Any]]:
    async def seen() -> list[dict[str, Any]] | None:
        hosts = await ctl.ping_hosts(wait=0.5)
        return hosts if len(hosts) >= count else None

    hosts = await wait_for(seen)
    return {h["labels"].get("zone", ""): h for h in hosts}


async def listen(nc: Any, subject: str) -> Any:
    """Subscribe and return once the server has the subscription, so every event published
    after this call is delivered (no sleep hoping the subscription got there first)."""
    sub = await nc.subscribe(subject)
    await nc.flush()
    return sub


async def next_events(
    sub: Any, count: int, timeout: float = 15.0, types: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The next ``count`` events on a subscription from ``listen`` (then unsubscribes)."""
    events = []
    try:
        while len(events) < count:
            msg = await sub.next_msg(timeout=timeout)
            event = json.loads(msg.data)
            if not types or event["type"].rsplit(".", 1)[-1] in types:
                events.append(event)
    finally:
        await sub.unsubscribe()
    return events


def test_two_hosts_are_discovered_with_labels_heartbeats_and_inventory(
    nats_server: NatsServer, start_host: Callable[..., HostProcess]
) -> None:
    start_host({"zone": "east", "tier": "edge"})
    start_host({"zone": "west"}, "--label", "tier=core")

    async def scenario() -> None:
        async with client(nats_server) as ctl:
            hosts = await hosts_by_label(ctl, 2)
            east, west = hosts["east"], hosts["west"]
            assert east["id"].startswith("N") and len(east["id"]) == 56
            assert east["id"] != west["id"]
            assert east["labels"]["tier"] == "edge" and west["labels"]["tier"] == "core"
            for host in (east, west):
                assert host["lattice"] == "default"
                assert {"hostcore.os", "hostcore.osfamily", "hostcore.arch"} <= set(host["labels"])

            beats = await next_events(await listen(ctl.nc, "wasmbus.evt.default.host_heartbeat"), 4)
            by_source = {b["source"]: b for b in beats}
            assert set(by_source) == {east["id"], west["id"]}
            beat = by_source[east["id"]]
            assert beat["type"] == "com.wasmcloud.lattice.host_heartbeat"
            assert beat["data"]["labels"]["zone"] == "east"
            for key in (
                "components",
                "providers",
                "friendly_name",
                "version",
                "uptime_human",
                "uptime_seconds",
            ):
                assert key in beat["data"]

            inventory = await ctl.get_inventory(west["id"])
            assert inventory["host_id"] == west["id"]
            assert inventory["labels"]["zone"] == "west"
            assert inventory["components"] == [] and inventory["providers"] == []

    asyncio.run(scenario())


def test_labels_links_and_config_are_shared_across_the_lattice(
    nats_server: NatsServer, start_host: Callable[..., HostProcess]
) -> None:
    start_host({"zone": "east"})
    start_host({"zone": "west"})

    async def scenario() -> None:
        async with client(nats_server) as ctl:
            hosts = await hosts_by_label(ctl, 2)
            east = hosts["east"]["id"]

            changed = await listen(ctl.nc, "wasmbus.evt.default.labels_changed")
            await ctl.put_label(east, "gpu", "true")
            [event] = await next_events(changed, 1)
            assert event["source"] == east and event["data"]["labels"]["gpu"] == "true"
            assert (await ctl.get_inventory(east))["labels"]["gpu"] == "true"
            await ctl.delete_label(east, "gpu")
            assert "gpu" not in (await ctl.get_inventory(east))["labels"]

            link = {
                "source_id": "app-counter",
                "target": "app-kv",
                "wit_namespace": "wasi",
                "wit_package": "keyvalue",
                "interfaces": ["atomics", "store"],
                "target_config": ["app-redis"],
            }
            with pytest.raises(CtlError, match="config 'app-redis' does not exist"):
                await ctl.put_link(link)
            await ctl.put_config("app-redis", {"url": "redis://127.0.0.1:6379"})
            assert await ctl.get_config("app-redis") == {"url": "redis://127.0.0.1:6379"}
            await ctl.put_link(link)
            links = await ctl.get_links()
            assert links == [{**link, "name": "default", "source_config": []}]
            with pytest.raises(CtlError, match="different target"):
                await ctl.put_link({**link, "target": "other"})
            await ctl.delete_link("app-counter", "wasi", "keyvalue")
            assert await ctl.get_links() == []
            await ctl.delete_config("app-redis")
            assert await ctl.get_config("app-redis") is None

    asyncio.run(scenario())


def test_bad_requests_get_clear_failures_and_the_host_keeps_serving(
    nats_server: NatsServer, start_host: Callable[..., HostProcess]
) -> None:
    start_host({"zone": "east"})

    async def scenario() -> None:
        async with client(nats_server) as ctl:
            host_id = (await hosts_by_label(ctl, 1))["east"]["id"]
            s = ctl.subjects
            cases = [
                (s.component_scale(host_id), b"{not json", "not valid JSON"),
                (s.component_scale(host_id), b'{"count": 1}', "component_id: required but missing"),
                (
                    s.component_scale(host_id),
                    b'{"component_id": "x", "colour": 1}',
                    "colour: unknown field",
                ),
                (
                    s.component_update(host_id),
                    b'{"component_id": "ghost", "new_component_ref": "file:///x.wasm"}',
                    "component ghost not found",
                ),
                (
                    s.provider_stop(host_id),
                    b'{"provider_id": "nope"}',
                    "provider with that ID is not running",
                ),
                (s.label_put(host_id), b'{"value": "x"}', "key: required but missing"),
                (
                    s.config_put("bad"),
                    b'{"port": 8080}',
                    "config data should be a map of string -> string",
                ),
                (s("host", "explode", host_id), b"", "unsupported subject"),
            ]
            for subject, payload, expected in cases:
                with pytest.raises(CtlError, match=expected):
                    await ctl.request(subject, payload)
            assert (await ctl.get_inventory(host_id))["host_id"] == host_id

    asyncio.run(scenario())


def test_component_scale_loads_files_and_reports_events(
    nats_server: NatsServer, start_host: Callable[..., HostProcess], tmp_path: Path
) -> None:
    wat = tmp_path / "empty.wat"
    wat.write_text("(component)")
    component = tmp_path / "empty.wasm"
    subprocess.run(["wasm-tools", "parse", str(wat), "-o", str(component)], check=True)
    core = tmp_path / "core.wasm"
    core.write_bytes(b"\0asm\x01\x00\x00\x00")
    start_host({"zone": "east"}, "--allow-file-load")

    async def scenario() -> None:
        async with client(nats_server) as ctl:
            host_id = (await hosts_by_label(ctl, 1))["east"]["id"]
            annotations = {"wasmcloud.dev/managed-by": "wadm", "wasmcloud.dev/appspec": "app"}
            events = await listen(ctl.nc, "wasmbus.evt.default.>")
            await ctl.scale_component(host_id, "app-hello", f"file://{component}", 3, annotations)
            await ctl.scale_component(host_id, "app-core", f"file://{core}", 1)
            scaled_or_failed = ("component_scaled", "component_scale_failed")
            by_type = {
                e["type"].rsplit(".", 1)[-1]: e
                for e in await next_events(events, 2, types=scaled_or_failed)
            }
            scaled, failed = by_type["component_scaled"], by_type["component_scale_failed"]
            assert scaled["type"].endswith("component_scaled")
            assert scaled["source"] == host_id
            assert scaled["data"]["max_instances"] == 3
            assert scaled["data"]["annotations"] == annotations
            assert failed["type"].endswith("component_scale_failed")
            assert "core WebAssembly module, not a component" in failed["data"]["error"]
            [described] = (await ctl.get_inventory(host_id))["components"]
            assert described["id"] == "app-hello" and described["max_instances"] == 3
            assert described["annotations"] == annotations

            await ctl.scale_component(host_id, "app-hello", f"file://{component}", 0)
            await wait_for(lambda: _no_components(ctl, host_id))

    asyncio.run(scenario())


async def _no_components(ctl: CtlClient, host_id: str) -> bool:
    return (await ctl.get_inventory(host_id))["components"] == []


def test_host_survives_a_nats_restart_and_keeps_state(
    nats_server: NatsServer, start_host: Callable[..., HostProcess]
) -> None:
    start_host({"zone": "east"})

    async def before() -> str:
        async with client(nats_server) as ctl:
            host_id: str = (await hosts_by_label(ctl, 1))["east"]["id"]
            await ctl.put_label(host_id, "kept", "yes")
            await ctl.put_config("survives", {"a": "b"})
            return host_id

    host_id = asyncio.run(before())
    nats_server.stop()
    nats_server.start()  # same port, same store directory

    async def after() -> None:
        async with client(nats_server) as ctl:
            beats = await next_events(
                await listen(ctl.nc, "wasmbus.evt.default.host_heartbeat"), 1, timeout=30
            )
            assert beats[0]["source"] == host_id
            assert beats[0]["data"]["labels"]["kept"] == "yes"
            assert await ctl.get_config("survives") == {"a": "b"}

    asyncio.run(after())


def test_sigterm_publishes_host_stopped_and_exits_cleanly(
    nats_server: NatsServer, start_host: Callable[..., HostProcess]
) -> None:
    host = start_host({"zone": "east"})

    async def scenario() -> None:
        async with client(nats_server) as ctl:
            host_id = (await hosts_by_label(ctl, 1))["east"]["id"]
            stopped = await listen(ctl.nc, "wasmbus.evt.default.host_stopped")
            host.proc.send_signal(signal.SIGTERM)
            [event] = await next_events(stopped, 1)
            assert event["source"] == host_id
            assert event["data"]["labels"]["zone"] == "east"
            assert await ctl.ping_hosts(wait=0.5) == []

    asyncio.run(scenario())
    assert host.proc.wait(timeout=15) == 0


def test_stop_host_request_shuts_the_host_down(
    nats_server: NatsServer, start_host: Callable[..., HostProcess]
) -> None:
    host = start_host({"zone": "east"})

    async def scenario() -> None:
        async with client(nats_server) as ctl:
            host_id = (await hosts_by_label(ctl, 1))["east"]["id"]
            with pytest.raises(CtlError, match="does not match"):
                await ctl.request(CtlSubjects().host_stop(host_id), {"host_id": "Nother"})
            await ctl.stop_host(host_id)

    asyncio.run(scenario())
    assert host.proc.wait(timeout=15) == 0
