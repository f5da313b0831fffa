"""Region-by-region rollouts through an Application's health check (``health_url``).

The scenario drives the real Pulumi CLI on one local lattice with two hosts labeled as two
regions, ``eu`` and ``us``, and one counter Application per region; ``counter-us``
``depends_on`` ``counter-eu``, as a rollout region by region is written. Version 2 loses
the counter's keyvalue link in a refactor (so the component answers 500): `up` fails in
eu naming the app, the version, the URL and the answer, eu is back on version 1 and
answers, and us never saw version 2. The fixed version 2 then rolls out to both, and a
new application broken from its first version is undeployed, leaving nothing behind.

The cheap checks call the provider in-process over gRPC (input refusals, read of an
unreachable lattice) or probe a real HTTP server on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import grpc
import nats
import pytest
from aiohttp import web
from pulumi.runtime.proto import provider_pb2
from pulumi.runtime.rpc import UNKNOWN

from host_agent.lattice.wadm import WadmClient
from pulumi_wasmcloud.provider.health import Answer, HealthCheck, probe
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
hosts_of = {"eu": "eu", "us": "us"}
if config.get_bool("newApp"):  # one more application, created broken, on eu's host
    ports["new"], hosts_of["new"] = config.require_int("httpPortNew"), "eu"

lattice = wasmcloud.Lattice(
    "lattice",
    nats_port=config.require_int("natsPort"),
    state_dir=config.require("stateDir"),
    heartbeat_seconds=2,
    secure=False,  # the test reads NATS as anyone; test_local_security.py covers secured
)
hosts = {
    region: wasmcloud.Host(f"host-{region}", lattice=lattice, labels={"region": region})
    for region in ("eu", "us")
}


def manifest(app: str, region: str, port: int, broken: bool) -> dict:
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
    counter_traits = [in_region(2)] + ([] if broken else [kv_link])
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": f"counter-{app}", "annotations": {"version": version}},
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
for app, port in ports.items():
    region = hosts_of[app]
    depends = [hosts[region]] + ([previous] if previous is not None else [])
    broken = forget_kv_link or app == "new"
    previous = apps[app] = wasmcloud.Application(
        f"counter-{app}",
        lattice=lattice,
        manifest=manifest(app, region, port, broken),
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
        ports = ("httpPortUs", "httpPortNew")
        return Stack(workdir, "health", program=PROGRAM, extra_ports=ports)

    with e2e_stack(workdir, "health", make) as stack:
        yield stack


def url(stack: Stack, app: str, path: str) -> str:
    port = stack.ports[{"eu": "httpPort", "us": "httpPortUs", "new": "httpPortNew"}[app]]
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
        for app in ("counter-eu", "counter-us", "counter-new"):
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
    said: list[str] = []  # every up's output

    def up(ok: bool = True) -> str:
        done = stack.up(ok=ok)
        assert (done.returncode == 0) == ok, done.stdout + done.stderr
        said.append(done.stdout + done.stderr)
        return said[-1]

    stack.config("appVersion", "v1")
    output = up()
    for region in ("eu", "us"):
        assert f"counter-{region}: {url(stack, region, 'health')} answered 200" in output
        assert answer(stack, region) == (200, "hello -> 1"), region
    assert stack.outputs()["versions"] == {"eu": "v1", "us": "v1"}

    # Version 2 lost the counter's keyvalue link: preview says what up will check ...
    stack.config("appVersion", "v2")
    stack.config("forgetKvLink", "true")
    stack.config("healthTimeout", "8")
    eu_health = url(stack, "eu", "health")
    preview = stack.run("preview")
    assert f"counter-eu: once deployed, up waits up to 8 s for {eu_health}" in preview.stdout

    # ... and up fails in eu, naming the app, the version, the URL and the answer.
    output = up(ok=False)
    assert f"counter-eu: version v2 failed its health check: {eu_health} did not" in output
    assert 'last answer: HTTP 500 "keyvalue error:' in output, output
    assert "rolled back to version v1, which answers 2xx again" in output, output
    assert "Resources that depend on counter-eu were not changed" in output, output

    # eu is back on version 1 (the failed version is gone from the controller) and counts
    # on; us never saw version 2.
    assert answer(stack, "eu") == (200, "hello -> 2")
    assert answer(stack, "us") == (200, "hello -> 2")
    versions = asyncio.run(deployed_versions(stack.nats_url))
    assert versions["counter-eu"] == ("v1", ["v1"]), versions
    assert versions["counter-us"] == ("v1", ["v1"]), versions

    # The fixed version 2 rolls out to both, under its own version name.
    stack.config("forgetKvLink", "false")
    output = up()
    versions = asyncio.run(deployed_versions(stack.nats_url))
    assert versions["counter-eu"] == ("v2", ["v1", "v2"]), versions
    assert versions["counter-us"] == ("v2", ["v1", "v2"]), versions
    for region in ("eu", "us"):
        assert f"counter-{region}: {url(stack, region, 'health')} answered 200" in output
        status, body = answer(stack, region)
        assert status == 200 and body.startswith("hello -> "), (region, status, body)

    # A new application that is broken from its first version: nothing to roll back to,
    # so it is undeployed and nothing of it is left (the failed create leaves no state).
    stack.config("newApp", "true")
    output = up(ok=False)
    assert "counter-new: version v2 failed its health check" in output, output
    assert "no earlier version to roll back to, so counter-new was undeployed" in output
    assert asyncio.run(deployed_versions(stack.nats_url))["counter-new"] == (None, [])
    with pytest.raises(OSError):  # its http-server stopped: nothing listens
        answer(stack, "new")
    stack.config("newApp", None)

    # Every wait for links and configs ended because the lattice held them.
    assert not [out for out in said if "still differs from the manifest" in out]
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
        assert failures == [("healthUrl", "expected a string, got a number (8080)")]  # schema

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


@run_async
async def test_probe_waits_for_2xx_and_keeps_the_last_answer() -> None:
    """The probe against a real HTTP server on loopback: it retries until 2xx, reports a
    redirect instead of following it, names a refused connection, and bounds a URL that
    never answers by the timeout."""
    statuses = iter([500, 503, 200])
    never = asyncio.Event()  # the end of the test

    async def health(_: web.Request) -> web.Response:
        status = next(statuses)
        return web.Response(status=status, text=f"status {status}")

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("/login")

    async def hangs(_: web.Request) -> web.Response:
        await never.wait()  # set only when the test ends, long after the probe gave up
        return web.Response(status=200)

    server = web.Application()
    server.add_routes(
        [web.get("/health", health), web.get("/moved", moved), web.get("/hangs", hangs)]
    )
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    seen: list[str] = []

    async def progress(answer: Answer, _: float) -> None:
        seen.append(str(answer))

    try:
        answer, _ = await probe(HealthCheck(f"http://127.0.0.1:{port}/health", 30), progress)
        assert (answer.ok, seen) == (True, ['HTTP 500 "status 500"', 'HTTP 503 "status 503"'])

        answer, _ = await probe(HealthCheck(f"http://127.0.0.1:{port}/moved", 1), progress)
        assert str(answer) == 'HTTP 302 "redirect to /login"'

        answer, _ = await probe(HealthCheck(f"http://127.0.0.1:{port}/hangs", 1), progress)
        assert str(answer) == "no answer within 1 s"
    finally:
        never.set()
        await runner.cleanup()
    answer, _ = await probe(HealthCheck(f"http://127.0.0.1:{port}/health", 1), progress)
    assert str(answer).startswith("cannot connect: "), answer
