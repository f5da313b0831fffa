"""A scale that names another image than the one a component runs, as the 1.4.2 host
answers it: without ``allow_update`` the component is resized on the image it runs (the
reply says the image reference will not be updated, and it keeps serving the old version);
with ``allow_update`` it moves to the new image afterwards. And the controller, which
sends what wadm 0.20 sends (never ``allow_update``), still upgrades an application to a new
image: the old image is scaled to 0, then the new one started. Real nats-server, host and
controller processes, real components and HTTP requests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
import pytest
import yaml
from nats.aio.msg import Msg

from host_agent.lattice.wadm import WadmClient
from host_agent.lattice.wadm_types import StatusType
from tests.integration.test_controller import clients, wait_status
from tests.integration.test_counter_app import Lattice, lattice
from tests.lattice import (
    COUNTER_WASM,
    NatsServer,
    Processes,
    counter_on_inmemory_kv,
    eventually_get,
    free_port,
    http_get,
    http_server_to_counter,
    inmemory_kv,
    run_async,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

HELLO_WASM = COUNTER_WASM.parents[2] / "hello" / "build" / "hello.wasm"
COUNTER = f"file://{COUNTER_WASM}"
HELLO = f"file://{HELLO_WASM}"
GREETING = b"hello from wasmCloud"


def refused_message(old: str, new: str) -> str:
    """The 1.4.2 host's reply to a scale naming a new image without allow_update."""
    return (
        f"Requested to scale existing component to a different image reference: {old} != "
        f"{new}. The component will be scaled but the image reference will not be updated. "
        "If you meant to update this component to a new image ref, use the update command."
    )


def update_message(old: str, new: str) -> str:
    """The 1.4.2 host's reply to the same scale with allow_update."""
    return (
        f"Requested to scale existing component, with a changed image reference: {old} != "
        f"{new}. The component will be scaled, and the image reference will be updated "
        "afterwards."
    )


async def scale(lat: Lattice, host: str, ref: str, count: int, **extra: Any) -> dict[str, Any]:
    """One component.scale of ``web``; the host's whole reply (success, message)."""
    body = {"component_id": "web", "component_ref": ref, "count": count, **extra}
    msg = await lat.nc.request(lat.ctl.subjects.component_scale(host), json.dumps(body).encode())
    reply: dict[str, Any] = json.loads(msg.data)
    return reply


async def outcome(lat: Lattice, start: int) -> tuple[str, dict[str, Any]]:
    """The first component_scaled / component_scale_failed of ``web`` after event ``start``."""
    for _ in range(600):
        for name, data in lat.events[start:]:
            if name.startswith("component_scale") and data.get("component_id") == "web":
                return name, data
        await asyncio.sleep(0.05)
    raise AssertionError(f"no scale outcome for web; saw {lat.events[start:]}")


async def scaled_to(lat: Lattice, ref: str) -> None:
    """Wait for ``web``'s component_scaled naming ``ref`` (compiling takes seconds)."""
    for _ in range(1200):
        for name, data in lat.events:
            if name == "component_scaled" and (data["component_id"], data["image_ref"]) == (
                "web",
                ref,
            ):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"web never scaled to {ref}; saw {lat.events}")


async def answers(url: str, body: bytes) -> None:
    """Poll until ``url`` answers ``body`` (an update takes effect after its event)."""
    last: object = None
    for _ in range(300):
        try:
            last = await asyncio.to_thread(http_get, url)
        except OSError as error:
            last = error
        if last == (200, body):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered {body!r}: last {last!r}")


async def running_web(lat: Lattice, host: str) -> dict[str, Any]:
    inventory = await lat.ctl.get_inventory(host)
    [web] = [c for c in inventory["components"] if c["id"] == "web"]
    return dict(web)


@run_async
async def test_a_new_image_in_a_scale_is_refused_without_allow_update_and_applied_with_it(
    nats_server: NatsServer, processes: Processes
) -> None:
    processes.host()
    port = free_port()
    url = f"http://127.0.0.1:{port}/a"
    async with lattice(nats_server) as lat:
        [host] = await lat.host_ids(1)
        await lat.ctl.start_provider(host, "kv", "builtin:keyvalue-inmemory")
        await lat.event("provider_started", provider_id="kv")
        await lat.link("web", "kv", "keyvalue", ["atomics", "store"])
        start = len(lat.events)
        assert (await scale(lat, host, COUNTER, 1))["success"] is True
        assert (await outcome(lat, start))[0] == "component_scaled"
        await lat.serve_http(host, "web", port)
        assert await eventually_get(url) == b"a -> 1"

        # Without allow_update: resized on the image it runs, which keeps serving.
        start = len(lat.events)
        reply = await scale(lat, host, HELLO, 2)
        assert reply["success"] is True
        assert reply["message"] == refused_message(COUNTER, HELLO)
        name, data = await outcome(lat, start)
        assert (name, data["image_ref"], data["max_instances"]) == ("component_scaled", COUNTER, 2)
        assert await asyncio.to_thread(http_get, url) == (200, b"a -> 2")
        web = await running_web(lat, host)
        assert (web["image_ref"], web["max_instances"]) == (COUNTER, 2)

        # The named image is fetched first, as 1.4.2 does: one that cannot be is
        # component_scale_failed, and nothing changes.
        missing = f"file://{COUNTER_WASM.parent / 'missing.wasm'}"
        start = len(lat.events)
        assert (await scale(lat, host, missing, 3))["message"] == refused_message(COUNTER, missing)
        name, data = await outcome(lat, start)
        assert name == "component_scale_failed" and "missing.wasm" in data["error"]
        assert await asyncio.to_thread(http_get, url) == (200, b"a -> 3")
        assert (await running_web(lat, host))["max_instances"] == 2

        # With allow_update: scaled (on the old image), then moved to the new one.
        start = len(lat.events)
        reply = await scale(lat, host, HELLO, 2, allow_update=True)
        assert reply["success"] is True
        assert reply["message"] == update_message(COUNTER, HELLO)
        await scaled_to(lat, HELLO)
        scaled = [
            data["image_ref"]
            for name, data in lat.events[start:]
            if name == "component_scaled" and data["component_id"] == "web"
        ]
        assert scaled == [COUNTER, HELLO]
        await answers(url, GREETING)
        assert (await running_web(lat, host))["image_ref"] == HELLO


def app_manifest(image: str, version: str, port: int) -> dict[str, Any]:
    """One component (``image``) on two instances, the in-memory keyvalue provider and the
    http-server in front."""
    component = counter_on_inmemory_kv(2)
    component["properties"]["image"] = image
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "shop", "annotations": {"version": version}},
        "spec": {
            "components": [
                component,
                inmemory_kv(),
                http_server_to_counter(port),
            ]
        },
    }


async def deploy(wadm: WadmClient, manifest: dict[str, Any]) -> None:
    await wadm.put(yaml.safe_dump(manifest))
    await wadm.deploy("shop", manifest["metadata"]["annotations"]["version"])


@run_async
async def test_the_controller_moves_an_application_to_a_new_image(
    nats_server: NatsServer, processes: Processes
) -> None:
    processes.host()
    processes.controller()
    port = free_port()
    url = f"http://127.0.0.1:{port}/b"
    sent: list[dict[str, Any]] = []
    updates: list[bytes] = []
    async with clients(nats_server) as (wadm, ctl):
        watcher = await nats.connect(nats_server.url)
        try:

            async def record_scale(msg: Msg) -> None:
                sent.append(json.loads(msg.data))

            async def record_update(msg: Msg) -> None:
                updates.append(msg.data)

            await watcher.subscribe(ctl.subjects.component_scale("*"), cb=record_scale)
            await watcher.subscribe(ctl.subjects.component_update("*"), cb=record_update)
            await deploy(wadm, app_manifest(COUNTER, "v1", port))
            await wait_status(wadm, "shop", StatusType.DEPLOYED)
            assert await eventually_get(url) == b"b -> 1"

            first = len(sent)
            await deploy(wadm, app_manifest(HELLO, "v2", port))
            await answers(url, GREETING)
            await wait_status(wadm, "shop", StatusType.DEPLOYED)
            [host] = await ctl.ping_hosts(wait=0.3)
            inventory = await ctl.get_inventory(host["id"])
            [web] = [c for c in inventory["components"] if c["id"] == "shop-counter"]
            assert (web["image_ref"], web["max_instances"]) == (HELLO, 2)

            # What wadm sends: scales without allow_update, the old image to 0 first.
            moves = [(s["component_ref"], s["count"]) for s in sent[first:]]
            assert moves[:2] == [(COUNTER, 0), (HELLO, 2)], moves
            assert all(s["allow_update"] is False for s in sent)
            assert updates == []
        finally:
            await watcher.close()
