"""Hosts running components pulled from a real registry (Debian's docker-registry on
loopback): by digest and by tag, the on-disk cache shared by a second host, moving a
component to a new reference, and every registry fault as component_scale_failed while the
host keeps serving what it runs."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from host_agent.oci import Credentials, layout, push_component
from host_agent.oci.client import RegistrySession, wasm_config
from host_agent.oci.reference import parse_reference
from tests.integration.test_counter_app import KV_REDIS, Lattice, lattice
from tests.lattice import (
    HostProcess,
    NatsServer,
    RedisServer,
    eventually_get,
    free_port,
    http_get,
    refused_port,
    run_async,
)
from tests.registry import RegistryProcess, registry_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(480),
    pytest.mark.skipif(not registry_available(), reason="docker-registry is not installed"),
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COUNTER = EXAMPLES / "counter" / "build" / "counter.wasm"
HELLO = EXAMPLES / "hello" / "build" / "hello.wasm"


@pytest.fixture
def start_host(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., HostProcess]]:
    """Hosts configured by environment, like the real one; all share one cache directory."""
    hosts: list[HostProcess] = []
    monkeypatch.setenv("WASMCLOUD_CACHE_DIR", str(tmp_path / "cache"))

    def start(**env: str) -> HostProcess:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        host = HostProcess(nats_server, {}, log=tmp_path / f"host{len(hosts)}.log")
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.stop()


# A cold compile of a componentize-py component took 25-44 s on this 2-core machine under
# load; an outcome event is waited for this long (a bound, not a sleep).
COMPILE_WAIT = 120.0


async def log_line(host: HostProcess, *words: str) -> str:
    """Wait for the host's log to have a line with all `words`."""
    for _ in range(200):
        for line in host.log.read_text().splitlines():
            if all(word in line for word in words):
                return line
        await asyncio.sleep(0.05)
    raise AssertionError(f"no log line with {words} in {host.log}:\n{host.log.read_text()}")


async def scale(lat: Lattice, host: str, component: str, ref: str) -> tuple[str, dict[str, str]]:
    """Scale; wait for the outcome event ("component_scaled" or "component_scale_failed")."""
    start = len(lat.events)
    await lat.ctl.scale_component(host, component, ref, 1)
    for _ in range(int(COMPILE_WAIT / 0.05)):
        for name, data in lat.events[start:]:
            outcome = ("component_scaled", "component_scale_failed")
            if name in outcome and data.get("component_id") == component:
                return name, data
        await asyncio.sleep(0.05)
    raise AssertionError(f"no outcome for scaling {component} to {ref}")


async def serve_counter(lat: Lattice, host: str, redis: RedisServer, port: int) -> None:
    await lat.ctl.put_config("redis", {"url": redis.url})
    await lat.ctl.start_provider(host, "kvredis", KV_REDIS)
    await lat.event("provider_started", provider_id="kvredis")
    await lat.link("counter", "kvredis", "keyvalue", ["atomics", "store"], target_config=["redis"])
    await lat.serve_http(host, "counter", port)


@run_async
async def test_hosts_run_the_counter_by_digest_and_tag_and_share_the_cache(
    nats_server: NatsServer,
    redis_server: RedisServer,
    registry: RegistryProcess,
    start_host: Callable[..., HostProcess],
) -> None:
    tag_ref = f"{registry.address}/components/counter:0.1.0"
    digest = await push_component(COUNTER, tag_ref, insecure=True)
    digest_ref = f"{registry.address}/components/counter@{digest}"
    first = start_host(WASMCLOUD_OCI_ALLOWED_INSECURE=registry.address)
    port = free_port()
    async with lattice(nats_server) as lat:
        [host_a] = await lat.host_ids(1)
        outcome, data = await scale(lat, host_a, "counter", digest_ref)
        assert outcome == "component_scaled", data
        assert data["image_ref"] == digest_ref
        await log_line(first, "pulled", digest)
        await serve_counter(lat, host_a, redis_server, port)
        assert await eventually_get(f"http://127.0.0.1:{port}/oci") == b"oci -> 1"

        second = start_host()
        host_b = next(h for h in await lat.host_ids(2) if h != host_a)
        outcome, data = await scale(lat, host_b, "counter-by-tag", tag_ref)
        assert outcome == "component_scaled", data
        line = await log_line(second, "cache hit", tag_ref)
        assert digest in line

        # component.update moves the running component to a new reference
        hello_digest = await push_component(
            HELLO, f"{registry.address}/components/hello:0.1.0", insecure=True
        )
        hello_ref = f"{registry.address}/components/hello@{hello_digest}"
        start = len(lat.events)
        await lat.ctl.request(
            lat.ctl.subjects.component_update(host_a),
            {"component_id": "counter", "new_component_ref": hello_ref},
        )
        await lat.event(
            "component_scaled", timeout=COMPILE_WAIT, component_id="counter", image_ref=hello_ref
        )
        assert len(lat.events) > start
        inventory = await lat.ctl.get_inventory(host_a)
        [running] = [c for c in inventory["components"] if c["id"] == "counter"]
        assert running["image_ref"] == hello_ref


async def push_raw(registry: RegistryProcess, ref: str, layer_type: str, data: bytes) -> str:
    """Push an artifact whose one layer has `layer_type` (not what push_component writes)."""
    async with RegistrySession(parse_reference(ref), insecure=True, credentials=None) as session:
        layer = await session.put_blob(data, None)
        config_bytes = wasm_config(layer.digest)
        config = await session.put_blob(config_bytes, None)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": layout.OCI_MANIFEST,
                "config": {
                    "mediaType": layout.WASM_CONFIG,
                    "digest": config.digest,
                    "size": config.size,
                },
                "layers": [{"mediaType": layer_type, "digest": layer.digest, "size": layer.size}],
            }
        ).encode()
        return await session.put_manifest(manifest, layout.OCI_MANIFEST)


def tamper_blob(registry: RegistryProcess, data: bytes) -> None:
    """Change a stored blob's bytes in the registry's storage (it serves them unverified)."""
    hexdigest = hashlib.sha256(data).hexdigest()
    [blob] = list(registry.storage.rglob(f"blobs/sha256/{hexdigest[:2]}/{hexdigest}/data"))
    blob.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))


@run_async
async def test_registry_faults_fail_the_scale_and_the_host_keeps_serving(
    nats_server: NatsServer,
    redis_server: RedisServer,
    registry: RegistryProcess,
    tmp_path: Path,
    start_host: Callable[..., HostProcess],
) -> None:
    counter_digest = await push_component(
        COUNTER, f"{registry.address}/components/counter:0.1.0", insecure=True
    )
    await push_component(COUNTER, f"{registry.address}/components/counter:latest", insecure=True)
    hello = HELLO.read_bytes()
    await push_component(HELLO, f"{registry.address}/components/tampered:1.0.0", insecure=True)
    tamper_blob(registry, hello)
    await push_raw(
        registry,
        f"{registry.address}/providers/par:1.0.0",
        layout.PROVIDER_ARCHIVE_LAYER,
        b"not a component",
    )
    limit = max(len(hello), COUNTER.stat().st_size) + 1024
    big = hello + b"\0" * limit  # a component's header, but over the limit set below
    await push_raw(registry, f"{registry.address}/components/big:1.0.0", layout.WASM_LAYER, big)
    await push_raw(
        registry,
        f"{registry.address}/components/core:1.0.0",
        layout.WASM_LAYER,
        b"\0asm\x01\x00\x00\x00",
    )
    auth = RegistryProcess(tmp_path / "auth-registry", users={"ci": "s3cret"}).start()
    with refused_port() as closed:
        nowhere = f"127.0.0.1:{closed}"
        try:
            await push_component(
                COUNTER,
                f"{auth.address}/private/counter:1.0.0",
                insecure=True,
                credentials=Credentials("ci", "s3cret"),
            )
            start_host(
                WASMCLOUD_OCI_ALLOWED_INSECURE=f"{registry.address},{auth.address},{nowhere}",
                WASMCLOUD_MAX_COMPONENT_SIZE=str(limit),
            )
            port = free_port()
            url = f"http://127.0.0.1:{port}/faults"
            async with lattice(nats_server) as lat:
                [host] = await lat.host_ids(1)
                ref = f"{registry.address}/components/counter@{counter_digest}"
                assert (await scale(lat, host, "counter", ref))[0] == "component_scaled"
                await serve_counter(lat, host, redis_server, port)
                assert await eventually_get(url) == b"faults -> 1"
                served = 1

                faults = {
                    f"{nowhere}/components/counter:0.1.0": f"cannot reach registry {nowhere}",
                    f"{auth.address}/private/counter:1.0.0": f"registry {auth.address} (http) asks "
                    "for a user name and password",
                    f"{registry.address}/components/counter:9.9.9": "has no 9.9.9 in repository",
                    f"{registry.address}/components/tampered:1.0.0": "refusing it",
                    f"{registry.address}/providers/par:1.0.0": "is not a component artifact",
                    f"{registry.address}/components/core:1.0.0": "is a core WebAssembly module",
                    f"{registry.address}/components/big:1.0.0": "over this host's",
                    f"{registry.address}/components/counter:latest": "WASMCLOUD_OCI_ALLOW_LATEST",
                    f"localhost:{registry.port}/components/counter:0.1.0": (
                        f"WASMCLOUD_OCI_ALLOWED_INSECURE=localhost:{registry.port}"
                    ),
                }
                for index, (ref, reason) in enumerate(faults.items()):
                    outcome, data = await scale(lat, host, f"broken{index}", ref)
                    assert outcome == "component_scale_failed", (ref, data)
                    assert reason in data["error"], (ref, data["error"])
                    served += 1
                    status, body = await asyncio.to_thread(http_get, url)
                    assert (status, body) == (200, f"faults -> {served}".encode()), ref

                # credentials from registry.put make the private one work
                await lat.ctl.request(
                    lat.ctl.subjects("registry", "put"),
                    {auth.address: {"username": "ci", "password": "s3cret"}},
                )
                private = f"{auth.address}/private/counter:1.0.0"
                assert (await scale(lat, host, "private", private))[0] == "component_scaled"

                # a registry that is down fails the scale; once it is back, the next one works
                registry.stop()
                fresh = f"{registry.address}/components/counter:0.1.0"
                outcome, data = await scale(lat, host, "after-outage", fresh)
                assert outcome == "component_scale_failed"
                assert f"cannot reach registry {registry.address}" in data["error"]
                registry.start()
                assert (await scale(lat, host, "after-outage", fresh))[0] == "component_scaled"
        finally:
            auth.stop()
