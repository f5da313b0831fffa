"""An Application's `up` on a local lattice returns only once its http-server links'
addresses accept connections (pulumi_wasmcloud/provider/http_listeners.py): which
addresses it waits for (the pure part), and the wait itself against real loopback
sockets. The integration test through the Pulumi CLI is
tests/integration/test_up_serves_at_once.py."""

from __future__ import annotations

import asyncio
import copy
import socket
from pathlib import Path
from typing import Any

import pytest

from host_agent.model.loader import load_manifest, parse_manifest
from host_agent.model.manifest import Manifest
from pulumi_wasmcloud.provider import application_resource
from pulumi_wasmcloud.provider.application_resource import ApplicationResource
from pulumi_wasmcloud.provider.engine_log import EngineLog
from pulumi_wasmcloud.provider.handlers import ProviderSettings
from pulumi_wasmcloud.provider.http_listeners import (
    HttpAddress,
    http_addresses,
    local_lattice,
    named_source_configs,
    until_listening,
)

ROOT = Path(__file__).resolve().parents[2]
COUNTER = load_manifest(str(ROOT / "examples/counter/wadm.yaml")).manifest.to_data()
RUNNING = {"counter": {"local-edge": 3}, "kvredis": {"local-core": 1}, "httpserver": {"a": 1}}


def counter_with(source_config: list[dict[str, Any]] | None) -> Manifest:
    """The counter app whose http-server link has ``source_config`` (None: none at all)."""
    data = copy.deepcopy(COUNTER)
    link = data["spec"]["components"][2]["traits"][0]["properties"]
    if source_config is None:
        link.pop("source_config", None)
    else:
        link["source_config"] = source_config
    return parse_manifest(data).manifest


def addresses(manifest: Manifest, **named: dict[str, str]) -> list[str]:
    found, refusals = http_addresses(manifest, RUNNING, named)
    assert refusals == []
    return [f"{a.provider}->{a.target} {a.address} dial {a.host}:{a.port}" for a in found]


def test_the_counter_waits_for_its_http_address() -> None:
    manifest = parse_manifest(COUNTER).manifest
    assert addresses(manifest) == ["httpserver->counter 127.0.0.1:8080 dial 127.0.0.1:8080"]


@pytest.mark.parametrize(
    ("source_config", "named", "expected"),
    [
        # No address: the provider's default.
        (None, {}, "127.0.0.1:8000 dial 127.0.0.1:8000"),
        # Merged in order, later values win (as the host hands them to the provider).
        (
            [
                {"name": "first", "properties": {"address": "127.0.0.1:9001"}},
                {"name": "second", "properties": {"address": "127.0.0.2:9002"}},
            ],
            {},
            "127.0.0.2:9002 dial 127.0.0.2:9002",
        ),
        # A named config the lattice holds (no inline properties) is read from it.
        ([{"name": "shared-http"}], {"shared-http": {"address": "[::1]:9003"}}, "[::1]:9003"),
        # No host means loopback; the wildcard listens on loopback too.
        ([{"name": "a", "properties": {"address": ":9004"}}], {}, ":9004 dial 127.0.0.1:9004"),
        ([{"name": "a", "properties": {"address": "0.0.0.0:9005"}}], {}, "dial 127.0.0.1:9005"),
        ([{"name": "a", "properties": {"address": "localhost:9006"}}], {}, "dial 127.0.0.1:9006"),
        # A secret reference is no config: the default stays.
        ([{"name": "SECRET_http"}], {"SECRET_http": {"address": "127.0.0.1:1"}}, ":8000"),
    ],
)
def test_the_address_is_read_as_the_provider_reads_it(
    source_config: list[dict[str, Any]] | None, named: dict[str, dict[str, str]], expected: str
) -> None:
    manifest = counter_with(source_config)
    (found,) = addresses(manifest, **named)
    assert found.startswith("httpserver->counter ") and expected in found
    assert named_source_configs(manifest) == sorted(n for n in named if not n.startswith("SECRET"))


def test_an_address_not_on_loopback_is_not_waited_for() -> None:
    """The effect dials loopback only: a LAN address, a name, another machine's are left."""
    for address in (
        "192.168.1.20:8080",
        "10.0.0.1:80",
        "web.internal:8080",
        "[2001:db8::1]:80",
        "127.0.0.1:0",  # a port the system picks
    ):
        manifest = counter_with([{"name": "h", "properties": {"address": address}}])
        assert addresses(manifest) == [], address


def test_an_http_server_no_host_runs_opens_nothing() -> None:
    manifest = parse_manifest(COUNTER).manifest
    for running in ({"counter": {"a": 3}}, {"httpserver": {}}, {"httpserver": {"a": 0}}):
        assert http_addresses(manifest, running, {}) == ([], [])


def test_only_http_server_links_are_waited_for() -> None:
    data = copy.deepcopy(COUNTER)
    data["spec"]["components"][2]["properties"]["image"] = "ghcr.io/wasmcloud/keyvalue-redis:0.28.1"
    assert http_addresses(parse_manifest(data).manifest, RUNNING, {}) == ([], [])
    builtin = copy.deepcopy(COUNTER)
    builtin["spec"]["components"][2]["properties"]["image"] = "builtin:http-server"
    assert addresses(parse_manifest(builtin).manifest) == [
        "httpserver->counter 127.0.0.1:8080 dial 127.0.0.1:8080"
    ]


@pytest.mark.parametrize("address", ["8080", "127.0.0.1:http", "127.0.0.1:70000"])
def test_an_address_the_provider_refuses_is_named(address: str) -> None:
    manifest = counter_with([{"name": "h", "properties": {"address": address}}])
    assert http_addresses(manifest, RUNNING, {}) == (
        [],
        [
            f"the http-server link from httpserver to counter: source_config address {address!r} "
            "is not host:port, so the provider opens no listener; write e.g. address: "
            '"127.0.0.1:8000"'
        ],
    )


@pytest.mark.parametrize(
    ("nats_url", "client_tls", "local"),
    [
        ("nats://127.0.0.1:4222", None, True),  # the local Lattice's natsUrl
        ("nats://127.0.0.1:4222", {}, True),  # a secured local Lattice's empty clientTls
        ("tls://localhost:4222", None, True),
        ("nats://[::1]:4222,nats://127.0.0.1:4223", None, True),
        ("127.0.0.1:4222", None, True),
        # A lattice on machines: its tooling user's TLS pair, its NATS on a machine.
        ("nats://127.0.0.1:4222", {"caPem": "ca", "certPem": "c", "keyPem": "k"}, False),
        ("nats://198.18.3.2:4222", None, False),
        ("nats://ec2-3-120-1-1.eu-central-1.compute.amazonaws.com:4222", None, False),
        ("nats://127.0.0.1:4222,nats://198.18.3.2:4222", None, False),
        ("", None, False),
        (None, None, False),
    ],
)
def test_only_a_local_lattice_is_dialled(nats_url: Any, client_tls: Any, local: bool) -> None:
    assert local_lattice(nats_url, client_tls) is local


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_wait_ends_when_the_listener_opens() -> None:
    port = free_port()
    heard: list[tuple[list[str], float]] = []

    async def progress(pending: list[HttpAddress], waited: float) -> None:
        heard.append(([a.address for a in pending], waited))

    async def scenario() -> tuple[list[HttpAddress], int]:
        accepted = 0
        ready = asyncio.Event()

        async def serve(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal accepted
            accepted += 1
            writer.close()

        async def open_later() -> asyncio.Server:
            while len(heard) < 3:  # refused three times first
                await asyncio.sleep(0.01)
            server = await asyncio.start_server(serve, "127.0.0.1", port)
            ready.set()
            return server

        opener = asyncio.create_task(open_later())
        address = HttpAddress("httpserver", "counter", f"127.0.0.1:{port}", "127.0.0.1", port)
        refused = await until_listening([address], 30, progress)
        assert ready.is_set()
        server = await opener
        await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()
        return refused, accepted

    refused, accepted = asyncio.run(scenario())
    assert refused == [] and accepted >= 1
    assert [pending for pending, _ in heard[:3]] == [[f"127.0.0.1:{port}"]] * 3


def test_the_wait_gives_up_after_its_timeout_naming_what_refuses() -> None:
    port = free_port()
    address = HttpAddress("httpserver", "counter", f"127.0.0.1:{port}", "127.0.0.1", port)

    async def progress(pending: list[HttpAddress], waited: float) -> None:
        pass

    assert asyncio.run(until_listening([address], 0.3, progress)) == [address]


# -- the Application's use of it: its up's error, its diff's drift ---------------------


def counter_state(port: int, **more: Any) -> dict[str, Any]:
    """An Application's state: the counter on a local lattice, listening on ``port``."""
    manifest = counter_with([{"name": "h", "properties": {"address": f"127.0.0.1:{port}"}}])
    return {"natsUrl": "nats://127.0.0.1:4222", "manifest": manifest.to_data(), **more}


def application() -> ApplicationResource:
    return ApplicationResource(EngineLog(None), ProviderSettings())


def test_up_fails_naming_the_address_the_provider_and_where_to_look(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(application_resource, "DEPLOY_TIMEOUT", 0.3)
    port = free_port()
    state = counter_state(port)
    manifest = parse_manifest(state["manifest"]).manifest
    # No named config to read: the lattice is not asked.
    wait = application()._until_listening(None, state, manifest, RUNNING)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError) as failed:
        asyncio.run(wait)
    assert str(failed.value) == (
        f"counter: the http-server httpserver does not accept connections on 127.0.0.1:{port} "
        "(its link to counter) 0 s after the application deployed. Check the http-server "
        "provider's log (host-a.log in the Host's stateDir: it says whether the provider "
        "took the link, on which address, or refused it) and the link's source_config "
        "(address: a port another process holds, or a malformed value), then run `pulumi up` "
        "again"
    )


def test_a_deployed_app_whose_address_refuses_is_drift_on_a_local_lattice_only() -> None:
    port = free_port()
    live = {"placement": RUNNING}

    async def refused(state: dict[str, Any]) -> list[str]:
        return await application()._refused_now(state, live)

    assert asyncio.run(refused(counter_state(port))) == [f"127.0.0.1:{port}"]
    machines = counter_state(port, clientTls={"caPem": "ca", "certPem": "c", "keyPem": "k"})
    assert asyncio.run(refused(machines)) == []  # never dialled from here

    async def listening() -> list[str]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        async with server:
            return await refused(counter_state(port))

    assert asyncio.run(listening()) == []
