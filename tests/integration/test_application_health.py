"""Region-by-region rollouts through an Application's health check (``health_url``).

The scenario drives the real Pulumi CLI on one local lattice with two hosts labeled as two
regions, ``eu`` and ``us``, and one counter Application per region; ``counter-us``
``depends_on`` ``counter-eu``, as a rollout region by region is written. Version 2 loses
the counter's keyvalue link in a refactor (so the component answers 500): `up` fails in
eu naming the app, the version, the URL and the answer, eu is back on version 1 and
answers, and us never saw version 2. The fixed version 2 then rolls out to both.

The cheap checks (input refusals, read of an unreachable lattice) call the provider
in-process over gRPC.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import grpc
import nats
import pytest
from pulumi.runtime.proto import provider_pb2
from pulumi.runtime.rpc import UNKNOWN

from host_agent.lattice.wadm import WadmClient
from tests.lattice import counter_manifest, free_port, http_get, run_async
from tests.provider_grpc import provider, struct
from tests.pulumi_cli import Stack, e2e_stack

APP = "urn:pulumi:test::proj::wasmcloud:index:Application::counter"

PROGRAM = """
import pulumi
import pulumi_wasmcloud as wasmcloud

config = pulumi.Config()
counter_wasm = f"file://{config.require('root')}/examples/counter/build/counter.wasm"
version = config.get("appVersion") or "v1"
forget_kv_link = config.get_bool("forgetKvLink") or False
ports = {"eu": config.require_int("httpPort"), "us": config.require_int("httpPortUs")}

lattice = wasmcloud.Lattice(
    "lattice",
    nats_port=config.require_int("natsPort"),
    state_dir=config.require("stateDir"),
    heartbeat_seconds=2,
)
hosts = {
    region: wasmcloud.Host(f"host-{region}", lattice=lattice, labels={"region": region})
    for region in ports
}


def manifest(region: str, port: int) -> dict:
    def in_region(instances: int) -> dict:
        spread = [{"name": region, "requirements": {"region": region}}]
        return {"type": "spreadscaler", "properties": {"instances": instances, "spread": spread}}

    kv_link = {
        "type": "link",
        "properties": {
            "target": {"name": "kv"},
            "namespace": "wasi",
            "package": "keyvalue",
            "interfaces": ["atomics", "store"],
        },
    }
    listen = {"name": "listen", "properties": {"address": f"127.0.0.1:{port}"}}
    http_link = {
        "type": "link",
        "properties": {
            "target": {"name": "counter"},
            "namespace": "wasi",
            "package": "http",
            "interfaces": ["incoming-handler"],
            "source": {"config": [listen]},
        },
    }
    counter_traits = [in_region(2)] + ([] if forget_kv_link else [kv_link])
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": f"counter-{region}", "annotations": {"version": version}},
        "spec": {
            "components": [
                {
                    "name": "counter",
                    "type": "component",
                    "properties": {"image": counter_wasm},
                    "traits": counter_traits,
                },
                {
                    "name": "kv",
                    "type": "capability",
                    "properties": {"image": "builtin:keyvalue-inmemory"},
                    "traits": [in_region(1)],
                },
                {
                    "name": "http",
                    "type": "capability",
                    "properties": {"image": "ghcr.io/wasmcloud/http-server:0.23.0"},
                    "traits": [in_region(1), http_link],
                },
            ]
        },
    }


previous = None
apps = {}
for region, port in ports.items():
    depends = [hosts[region]] + ([previous] if previous is not None else [])
    previous = apps[region] = wasmcloud.Application(
        f"counter-{region}",
        lattice=lattice,
        manifest=manifest(region, port),
        health_url=f"http://127.0.0.1:{port}/health",
        health_timeout_seconds=config.get_int("healthTimeout") or 60,
        opts=pulumi.ResourceOptions(depends_on=depends),
    )

pulumi.export("versions", {region: app.deployed_version for region, app in apps.items()})
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("health")

    def make() -> Stack:
        return Stack(workdir, "health", program=PROGRAM, extra_ports=("httpPortUs",))

    with e2e_stack(workdir, "health", make) as stack:
        yield stack


def url(stack: Stack, region: str, path: str) -> str:
    port = stack.ports["httpPort" if region == "eu" else "httpPortUs"]
    return f"http://127.0.0.1:{port}/{path}"


def answer(stack: Stack, region: str, path: str = "hello") -> tuple[int, str]:
    status, body = http_get(url(stack, region, path))
    return status, body.decode()


async def deployed_versions(nats_url: str) -> dict[str, tuple[str | None, list[str]]]:
    """App -> (deployed version, every version the controller holds), from the wadm API."""
    nc = await nats.connect(nats_url)
    try:
        wadm = WadmClient(nc)
        found = {}
        for app in ("counter-eu", "counter-us"):
            versions = (await wadm.versions(app)).versions
            deployed = next((v.version for v in versions if v.deployed), None)
            found[app] = (deployed, [v.version for v in versions])
        return found
    finally:
        await nc.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_version_failing_its_health_check_stops_in_the_first_region(stack: Stack) -> None:
    # Version 1 rolls out to both regions; each answers its health URL.
    stack.config("appVersion", "v1")
    done = stack.up()
    for region in ("eu", "us"):
        assert f"counter-{region}: {url(stack, region, 'health')} answered 200" in done.stdout
        status, body = answer(stack, region)
        assert (status, body) == (200, "hello -> 1"), (region, status, body)
    assert stack.outputs()["versions"] == {"eu": "v1", "us": "v1"}

    # Version 2 lost the counter's keyvalue link: preview says what up will check ...
    stack.config("appVersion", "v2")
    stack.config("forgetKvLink", "true")
    stack.config("healthTimeout", "8")
    eu_health = url(stack, "eu", "health")
    preview = stack.run("preview")
    assert f"counter-eu: once deployed, up waits up to 8 s for {eu_health}" in preview.stdout

    # ... and up fails in eu, naming the app, the version, the URL and the answer.
    failed = stack.up(ok=False)
    said = failed.stdout + failed.stderr
    assert failed.returncode != 0, said
    assert f"counter-eu: version v2 failed its health check: {eu_health} did not" in said, said
    assert 'last answer: HTTP 500 "keyvalue error:' in said, said
    assert "rolled back to version v1, which answers 2xx again" in said, said
    assert "Resources that depend on counter-eu were not changed" in said, said

    # eu is back on version 1 and counts on; us never saw version 2.
    assert answer(stack, "eu") == (200, "hello -> 2")
    assert answer(stack, "us") == (200, "hello -> 2")
    versions = asyncio.run(deployed_versions(stack.nats_url))
    assert versions["counter-eu"][0] == "v1"
    assert versions["counter-us"] == ("v1", ["v1"]), versions

    # The fixed version 2 rolls out to both. eu already holds a different v2 (the broken
    # one), so its fixed content is stored as v2+<content hash>.
    stack.config("forgetKvLink", "false")
    done = stack.up()
    versions = asyncio.run(deployed_versions(stack.nats_url))
    assert str(versions["counter-eu"][0]).startswith("v2+"), versions
    assert versions["counter-us"][0] == "v2", versions
    for region in ("eu", "us"):
        assert f"counter-{region}: {url(stack, region, 'health')} answered 200" in done.stdout
        status, body = answer(stack, region)
        assert status == 200 and body.startswith("hello -> "), (region, status, body)
    stack.run("preview", "--expect-no-changes")


async def check(stub: Any, news: dict[str, Any]) -> list[tuple[str, str]]:
    checked = await stub.Check(provider_pb2.CheckRequest(urn=APP, news=struct(news)))
    return [(f.property, f.reason) for f in checked.failures]


@run_async
async def test_health_inputs_are_parsed_strictly() -> None:
    """A wrongly typed or malformed health input is refused by name, never read as a
    default; an unknown one (another resource's output in preview) passes."""
    nats_url = f"nats://127.0.0.1:{free_port()}"  # nothing listens: no placement needed
    manifest = counter_manifest("redis://127.0.0.1:1", 1)
    async with provider(nats_url) as (stub, _):
        assert await check(stub, {"manifest": manifest}) == []
        good = {"healthUrl": "https://10.0.0.5:8443/health", "healthTimeoutSeconds": 30}
        assert await check(stub, {"manifest": manifest, **good}) == []
        assert await check(stub, {"manifest": manifest, "healthUrl": UNKNOWN}) == []

        for bad in ("ftp://x/health", "127.0.0.1:8080/health", "http:///health", "http://h:99999/"):
            failures = await check(stub, {"manifest": manifest, "healthUrl": bad})
            assert [p for p, _ in failures] == ["healthUrl"], (bad, failures)
            assert "http:// or https:// URL" in failures[0][1], failures
        failures = await check(stub, {"manifest": manifest, "healthUrl": 8080})
        assert failures == [("healthUrl", "must be a string: an http:// or https:// URL")]

        for bad_timeout in ("60", 30.5, True, 0, -5):
            failures = await check(
                stub,
                {
                    "manifest": manifest,
                    "healthUrl": good["healthUrl"],
                    "healthTimeoutSeconds": bad_timeout,
                },
            )
            assert [p for p, _ in failures] == ["healthTimeoutSeconds"], (bad_timeout, failures)


@run_async
async def test_read_of_an_unreachable_lattice_raises_naming_nats() -> None:
    """Refresh must never take a lattice that does not answer for a deleted application
    (the engine would drop it from the state, and a drift check would report a deletion)."""
    nats_url = f"nats://127.0.0.1:{free_port()}"
    manifest = counter_manifest("redis://127.0.0.1:1", 1)
    state = {"natsUrl": nats_url, "lattice": "default", "manifest": manifest, "name": "counter"}
    async with provider(nats_url) as (stub, _):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Read(
                provider_pb2.ReadRequest(id="counter", urn=APP, properties=struct(state))
            )
    details = str(raised.value.details())
    assert details.startswith(f"cannot read application counter: cannot reach NATS at {nats_url}")
    assert "Is the lattice running?" in details
