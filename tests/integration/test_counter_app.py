"""The tutorial's counter end to end: real nats-server, redis-server, host processes,
built-in provider processes, components executed by wasmtime, and curl-style requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient

from host_agent.lattice.client import CtlClient, CtlError
from host_agent.lattice.subjects import event_subject
from tests.lattice import (
    HostProcess,
    NatsServer,
    RedisServer,
    eventually_get,
    free_port,
    http_get,
    run_async,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COUNTER = f"file://{EXAMPLES / 'counter' / 'build' / 'counter.wasm'}"
HELLO = f"file://{EXAMPLES / 'hello' / 'build' / 'hello.wasm'}"
HTTP_SERVER = "ghcr.io/wasmcloud/http-server:0.23.0"
KV_REDIS = "ghcr.io/wasmcloud/keyvalue-redis:0.28.1"


@pytest.fixture
def start_host(nats_server: NatsServer, tmp_path: Path) -> Iterator[Callable[..., HostProcess]]:
    hosts: list[HostProcess] = []

    def start(**labels: str) -> HostProcess:
        log = tmp_path / f"host{len(hosts)}.log"
        host = HostProcess(nats_server, labels, "--allow-file-load", log=log)
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.stop()


class Lattice:
    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc
        self.ctl = CtlClient(nc)
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def watch_events(self) -> None:
        async def record(msg: Any) -> None:
            event = json.loads(msg.data)
            self.events.append((event["type"].rsplit(".", 1)[-1], event["data"]))

        await self.nc.subscribe(event_subject("default", "*"), cb=record)

    async def host_ids(self, count: int) -> list[str]:
        for _ in range(100):
            hosts = await self.ctl.ping_hosts(wait=0.3)
            if len(hosts) >= count:
                return [h["id"] for h in hosts]
            await asyncio.sleep(0.1)  # hosts still starting: no responders yet
        raise AssertionError(f"fewer than {count} hosts answered")

    async def event(self, name: str, timeout: float = 10.0, **match: str) -> dict[str, Any]:
        """The first `name` event whose data has `match`; compiles on a loaded machine take
        tens of seconds, so waits for a component to start pass a longer `timeout`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for seen, data in self.events:
                if seen == name and all(data.get(k) == v for k, v in match.items()):
                    return data
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {name} event matching {match}; saw {self.events}")
            await asyncio.sleep(0.05)

    async def link(
        self, source: str, target: str, package: str, interfaces: list[str], **configs: list[str]
    ) -> None:
        await self.ctl.put_link(
            {
                "source_id": source,
                "target": target,
                "wit_namespace": "wasi",
                "wit_package": package,
                "interfaces": interfaces,
                **configs,
            }
        )

    async def serve_http(self, host_id: str, component: str, port: int) -> None:
        await self.ctl.put_config("http-listen", {"address": f"127.0.0.1:{port}"})
        await self.ctl.start_provider(host_id, "httpserver", HTTP_SERVER)
        await self.event("provider_started", provider_id="httpserver")
        await self.link(
            "httpserver", component, "http", ["incoming-handler"], source_config=["http-listen"]
        )


@asynccontextmanager
async def lattice(nats_server: NatsServer) -> AsyncIterator[Lattice]:
    nc = await nats.connect(nats_server.url)
    view = Lattice(nc)
    await view.watch_events()
    try:
        yield view
    finally:
        await nc.close()


@run_async
async def test_tutorial_counter_on_redis_then_in_memory_without_rebuild(
    nats_server: NatsServer, redis_server: RedisServer, start_host: Callable[..., HostProcess]
) -> None:
    start_host(region="local")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with lattice(nats_server) as lat:
        [host] = await lat.host_ids(1)
        await lat.ctl.put_config("redis", {"url": redis_server.url})
        await lat.ctl.start_provider(host, "kvredis", KV_REDIS)
        await lat.ctl.scale_component(host, "counter", COUNTER, 3)
        scaled = await lat.event("component_scaled", component_id="counter")
        assert scaled["max_instances"] == 3
        await lat.link(
            "counter", "kvredis", "keyvalue", ["atomics", "store"], target_config=["redis"]
        )
        await lat.serve_http(host, "counter", port)

        assert await eventually_get(f"{url}/hello") == b"hello -> 1"
        assert await asyncio.to_thread(http_get, f"{url}/hello") == (200, b"hello -> 2")
        assert await asyncio.to_thread(http_get, f"{url}/world") == (200, b"world -> 1")
        # The count really lives in Redis.
        import redis

        assert redis.Redis.from_url(redis_server.url).get("hello") == b"2"

        # Switch the keyvalue link to the in-memory provider: same component bytes.
        await lat.ctl.start_provider(host, "kvmem", "builtin:keyvalue-inmemory")
        await lat.event("provider_started", provider_id="kvmem")
        await lat.ctl.delete_link("counter", "wasi", "keyvalue")
        await lat.link("counter", "kvmem", "keyvalue", ["atomics", "store"])
        for _ in range(100):
            status, body = await asyncio.to_thread(http_get, f"{url}/hello")
            if body == b"hello -> 1":
                break
            await asyncio.sleep(0.1)
        assert (status, body) == (200, b"hello -> 1")
        inventory = await lat.ctl.get_inventory(host)
        assert [c["max_instances"] for c in inventory["components"]] == [3]
        assert {p["id"] for p in inventory["providers"]} == {"httpserver", "kvredis", "kvmem"}


@run_async
async def test_http_provider_on_one_host_reaches_the_counter_on_another(
    nats_server: NatsServer, start_host: Callable[..., HostProcess]
) -> None:
    start_host(tier="edge")
    start_host(tier="core")
    port = free_port()
    async with lattice(nats_server) as lat:
        await lat.host_ids(2)
        hosts = {h["labels"]["tier"]: h["id"] for h in await lat.ctl.ping_hosts(wait=0.3)}
        await lat.ctl.start_provider(hosts["core"], "kvnats", "builtin:keyvalue-nats")
        await lat.ctl.scale_component(hosts["core"], "counter", COUNTER, 1)
        await lat.event("component_scaled", component_id="counter")
        await lat.link("counter", "kvnats", "keyvalue", ["atomics", "store"])
        await lat.serve_http(hosts["edge"], "counter", port)
        assert await eventually_get(f"http://127.0.0.1:{port}/edge") == b"edge -> 1"
        status, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/edge")
        assert (status, body) == (200, b"edge -> 2")
        edge = await lat.ctl.get_inventory(hosts["edge"])
        assert edge["components"] == [] and [p["id"] for p in edge["providers"]] == ["httpserver"]


@run_async
async def test_bad_input_gets_clear_answers_and_the_host_keeps_serving(
    nats_server: NatsServer,
    redis_server: RedisServer,
    start_host: Callable[..., HostProcess],
    tmp_path: Path,
) -> None:
    start_host()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with lattice(nats_server) as lat:
        [host] = await lat.host_ids(1)
        # A provider reference no host can run.
        await lat.ctl.start_provider(host, "s3", "ghcr.io/acme/blobstore-s3:1.0.0")
        failed = await lat.event("provider_start_failed", provider_id="s3")
        assert "no provider implementation" in failed["error"]
        # A file that is not a component.
        junk = tmp_path / "junk.wasm"
        junk.write_bytes(b"\0asm\x0d\x00\x01\x00not really")
        await lat.ctl.scale_component(host, "junk", f"file://{junk}", 1)
        failed = await lat.event("component_scale_failed", component_id="junk")
        assert "not a runnable WebAssembly component" in failed["error"]

        # The counter with no keyvalue link yet: a wasi error, not a crash.
        await lat.ctl.scale_component(host, "counter", COUNTER, 1)
        await lat.event("component_scaled", component_id="counter")
        await lat.ctl.put_config(
            "small", {"address": f"127.0.0.1:{port}", "max_body_bytes": "1024"}
        )
        await lat.ctl.start_provider(host, "httpserver", HTTP_SERVER)
        await lat.link(
            "httpserver", "counter", "http", ["incoming-handler"], source_config=["small"]
        )
        body = await eventually_get(f"{url}/hello", want_status=500)
        assert b"no link for wasi:keyvalue/atomics" in body

        # Over the body limit: 413 from the provider.
        status, _ = await asyncio.to_thread(http_get, f"{url}/big", b"x" * 4096)
        assert status == 413

        # Redis down: an error response; Redis back on the same port: it recovers.
        await lat.ctl.put_config("redis", {"url": redis_server.url})
        await lat.ctl.start_provider(host, "kvredis", KV_REDIS)
        await lat.link(
            "counter", "kvredis", "keyvalue", ["atomics", "store"], target_config=["redis"]
        )
        assert await eventually_get(f"{url}/r") == b"r -> 1"
        redis_server.stop()
        status, body = await asyncio.to_thread(http_get, f"{url}/r")
        assert status == 500 and b"redis" in body
        redis_server.start()
        assert await eventually_get(f"{url}/r") == b"r -> 1"  # fresh Redis, no persistence

        # Unknown component in a scale request is still answered.
        with pytest.raises(CtlError):
            await lat.ctl.request(lat.ctl.subjects.component_scale(host), {"count": 1})
        assert await asyncio.to_thread(http_get, f"{url}/r") == (200, b"r -> 2")


@run_async
async def test_hello_component_and_provider_stop(
    nats_server: NatsServer, start_host: Callable[..., HostProcess]
) -> None:
    start_host()
    port = free_port()
    async with lattice(nats_server) as lat:
        [host] = await lat.host_ids(1)
        await lat.ctl.scale_component(host, "hello", HELLO, 2)
        await lat.serve_http(host, "hello", port)
        assert await eventually_get(f"http://127.0.0.1:{port}/") == b"hello from wasmCloud"
        await lat.ctl.stop_provider(host, "httpserver")
        await lat.event("provider_stopped", provider_id="httpserver")
        with pytest.raises(OSError):
            await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/")
        # Scaling to zero stops serving: the provider answers 503 once restarted.
        await lat.ctl.scale_component(host, "hello", HELLO, 0)
        await lat.ctl.start_provider(host, "httpserver", HTTP_SERVER)
        body = await eventually_get(f"http://127.0.0.1:{port}/", want_status=503)
        assert b"not running" in body


def provider_pid(host_pid: int, module: bytes) -> int:
    """The pid of the host's provider process running ``module``."""
    for task in Path(f"/proc/{host_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if module in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
    raise AssertionError(f"the host runs no {module.decode()} process")


@run_async
async def test_a_frozen_provider_is_stopped_within_washs_request_timeout(
    nats_server: NatsServer, start_host: Callable[..., HostProcess]
) -> None:
    """A provider that cannot answer its shutdown request (frozen with SIGSTOP) is killed,
    and the stop is answered inside the ctl client's 2 s timeout, wash's default."""
    host_process = start_host()
    async with lattice(nats_server) as lat:
        [host] = await lat.host_ids(1)
        await lat.ctl.start_provider(host, "httpserver", HTTP_SERVER)
        await lat.event("provider_started", provider_id="httpserver")
        pid = provider_pid(host_process.proc.pid, b"http_server")
        os.kill(pid, signal.SIGSTOP)
        try:
            assert lat.ctl.timeout == 2.0
            await lat.ctl.stop_provider(host, "httpserver")  # raises on a timeout
            await lat.event("provider_stopped", provider_id="httpserver")
            # Announced after the process was reaped: its pid is gone.
            assert not Path(f"/proc/{pid}").exists()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
