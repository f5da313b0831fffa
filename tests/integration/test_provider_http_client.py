"""http-client end to end: a wadm manifest deployed through the controller on a local
lattice (real nats-server, host and controller processes), the example component
examples/http-client making outgoing requests through the built-in http-client provider
to an HTTP server this test runs on loopback."""

from __future__ import annotations

import asyncio
import copy
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats.errors
import pytest
import yaml
from aiohttp import web

from host_agent.lattice.wadm import WadmClient
from host_agent.lattice.wadm_types import StatusType
from host_agent.security.permissions import Role
from tests.integration import test_link_authorization
from tests.integration.test_controller import clients, wait_status
from tests.integration.test_link_authorization import LATTICE, connected
from tests.lattice import (
    ROOT,
    NatsServer,
    Processes,
    eventually_get,
    free_port,
    http_get,
    run_async,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# The operator-mode lattice with link grants (host and controller processes), shared.
secured = test_link_authorization.secured

EXAMPLE = ROOT / "examples" / "http-client"
WASM = EXAMPLE / "build" / "http-client.wasm"
# Bytes /big and /streamed answer with, over the link's max_body_bytes: /big declares its
# length, which is refused before the body is read (the error names it in full).
BIG = 200_000
LIMIT = 1000


def manifest(port: int, bad_port: int) -> dict[str, Any]:
    """examples/http-client/wadm.yaml on this test's ports, with a max_body_bytes of LIMIT,
    plus a second fetcher whose link config is wrong."""
    data: dict[str, Any] = yaml.safe_load((EXAMPLE / "wadm.yaml").read_text())
    fetcher, _, http = data["spec"]["components"]
    fetcher["properties"]["image"] = f"file://{WASM}"
    client_config = fetcher["traits"][1]["properties"]["target"]["config"][0]["properties"]
    client_config["max_body_bytes"] = str(LIMIT)
    http["traits"][0]["properties"]["source"]["config"][0]["properties"]["address"] = (
        f"127.0.0.1:{port}"
    )
    misconfigured = copy.deepcopy(fetcher)
    misconfigured["name"] = "misconfigured"
    target = misconfigured["traits"][1]["properties"]["target"]
    target["config"] = [{"name": "bad-client", "properties": {"max_body_bytes": "lots"}}]
    link = copy.deepcopy(http["traits"][0])
    link["properties"]["name"] = "misconfigured"
    link["properties"]["target"] = {"name": "misconfigured"}
    listen = {"name": "misconfigured-listen", "properties": {"address": f"127.0.0.1:{bad_port}"}}
    link["properties"]["source"]["config"] = [listen]
    data["spec"]["components"].append(misconfigured)
    http["traits"].append(link)
    return data


@asynccontextmanager
async def upstream(port: int) -> AsyncIterator[asyncio.Event]:
    """The system the component talks to: an aiohttp server on 127.0.0.1:``port``.
    Yields an event that releases /slow's answer (set when the test is done with it)."""
    release = asyncio.Event()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello, {request.headers.get('x-sent-by', 'nobody')}")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=b"echo: " + await request.read())

    async def slow(request: web.Request) -> web.Response:
        await release.wait()  # the component's first-byte timeout ends the wait
        return web.Response(text="too late")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * BIG)

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no content-length to refuse it by
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(BIG // 1000):
            await response.write(b"y" * 1000)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_post("/echo", echo)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    app.router.add_get("/streamed", streamed)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield release
    finally:
        release.set()
        await runner.cleanup()


def fetch_url(port: int, upstream_port: int, path: str, **params: str) -> str:
    query = urllib.parse.urlencode(
        {"authority": f"127.0.0.1:{upstream_port}", "path": path, **params}
    )
    return f"http://127.0.0.1:{port}/fetch?{query}"


async def get(url: str, data: bytes | None = None) -> tuple[int, str]:
    status, body = await asyncio.to_thread(http_get, url, data)
    return status, body.decode()


@run_async
async def test_a_component_sends_http_through_the_http_client_provider(
    nats_server: NatsServer, processes: Processes, tmp_path: Path
) -> None:
    host = processes.host()
    processes.controller()
    port, bad_port, upstream_port = free_port(), free_port(), free_port()
    async with clients(nats_server) as (wadm, _), upstream(upstream_port):
        await wadm.put(yaml.safe_dump(manifest(port, bad_port)))
        await wadm.deploy("outgoing")
        await wait_status(wadm, "outgoing", StatusType.DEPLOYED, timeout=120)

        # A GET and a POST go out and their answers come back to the component.
        body = await eventually_get(fetch_url(port, upstream_port, "/hello"))
        assert body.decode() == "200 hello, http-client example"
        status, text = await get(fetch_url(port, upstream_port, "/echo"), b"ping")
        assert (status, text) == (200, "200 echo: ping")
        # A request body over the link's max_body_bytes is refused before it goes out.
        status, text = await get(fetch_url(port, upstream_port, "/echo"), b"z" * (LIMIT + 1))
        assert (status, text) == (502, f"error HttpRequestBodySize {LIMIT + 1}")

        # The component's first-byte timeout (request-options) ends a slow exchange.
        url = fetch_url(port, upstream_port, "/slow", first_byte_timeout_ms="300")
        assert await get(url) == (502, "error HttpResponseTimeout")
        # The link's max_body_bytes refuses a bigger response, naming its size.
        assert await get(fetch_url(port, upstream_port, "/big")) == (
            502,
            f"error HttpResponseBodySize {BIG}",
        )
        status, text = await get(fetch_url(port, upstream_port, "/streamed"))
        assert status == 502 and text.startswith("error HttpResponseBodySize "), text
        assert int(text.rsplit(" ", 1)[1]) > LIMIT
        # A link whose config is wrong: the component hears which value and the fix.
        status, text = await get(fetch_url(bad_port, upstream_port, "/hello"))
        assert status == 502 and "max_body_bytes='lots'" in text, text
        assert 'write e.g. max_body_bytes: "16777216"' in text, text

    # The upstream is gone: the component gets connection-refused, the host lives on.
    assert await get(fetch_url(port, upstream_port, "/hello")) == (502, "error ConnectionRefused")
    assert host.proc.poll() is None
    # ... and once it is back, the same link works again.
    async with upstream(upstream_port):
        status, text = await get(fetch_url(port, upstream_port, "/hello"))
        assert (status, text) == (200, "200 hello, http-client example")


@run_async
async def test_outgoing_http_works_under_per_link_authorization(secured: dict[str, Any]) -> None:
    """The same example on an operator-mode lattice with link grants (the local default's
    security): the component's outgoing-handler calls go out on its host's link grant."""
    server, issuer = secured["server"], secured["issuer"]
    port, bad_port, upstream_port = free_port(), free_port(), free_port()
    async with (
        connected(server, issuer.issue(Role.TOOLING, "tooling", LATTICE)) as tooling,
        upstream(upstream_port),
    ):
        wadm = WadmClient(tooling, LATTICE, timeout=10)
        for _ in range(300):  # the controller process is still starting
            try:
                await wadm.list()
                break
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.1)
        await wadm.put(yaml.safe_dump(manifest(port, bad_port)))
        await wadm.deploy("outgoing")
        await wait_status(wadm, "outgoing", StatusType.DEPLOYED, timeout=120)
        body = await eventually_get(fetch_url(port, upstream_port, "/hello"))
        assert body.decode() == "200 hello, http-client example"
