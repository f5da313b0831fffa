"""Component-to-component calls over custom WIT interfaces: real nats-server, host
processes, the http-server provider, and the componentize-py components under
tests/components (types-caller imports test:types/zoo; types-callee exports it).

The caller's `/all` route calls every zoo function with values of each WIT kind and
writes `<name> ok` per call when what came back equals what it sent."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from nats.aio.msg import Msg

from host_agent.lattice.client import CtlError
from host_agent.wrpc.codec import Reader, Writer
from host_agent.wrpc.transport import (
    Payload,
    WrpcClient,
    WrpcError,
    WrpcServer,
    invocation_subject,
)
from tests.integration.test_counter_app import Lattice, lattice
from tests.lattice import (
    HostProcess,
    NatsServer,
    Processes,
    eventually_get,
    free_port,
    http_get,
    run_async,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

COMPONENTS = Path(__file__).resolve().parents[1] / "components"
HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello" / "build" / "hello.wasm"
ZOO = "test:types/zoo@0.1.0"
CHECKS = [
    "echo-point",
    "echo-shape circle",
    "echo-shape rect",
    "echo-shape empty",
    "echo-color",
    "echo-perms",
    "echo-perms none",
    "echo-option some",
    "echo-option none",
    "echo-result ok",
    "echo-result err",
    "echo-points",
    "echo-points empty",
    "echo-bytes",
    "echo-tuple",
    "echo-string",
    "echo-numbers",
    "echo-floats",
    "describe",
    "divide",
    "divide by zero",
    "note",
]
DESCRIBED = "π ünïcode ✓ at (-7, 2147483647)"


def component(name: str) -> str:
    path = COMPONENTS / name / "build" / f"{name}.wasm"
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/build-components.sh (make test does)")
    return f"file://{path}"


async def link_zoo(lat: Lattice, source: str, target: str) -> None:
    await lat.ctl.put_link(
        {
            "source_id": source,
            "target": target,
            "wit_namespace": "test",
            "wit_package": "types",
            "interfaces": ["zoo"],
        }
    )


async def event(lat: Lattice, name: str, timeout: float = 90.0, **match: Any) -> dict[str, Any]:
    """The first `name` event matching `match`; a first compile of a component can take
    a while on a busy machine (later starts load the compiled cache)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for seen, data in lat.events:
            if seen == name and all(data.get(k) == v for k, v in match.items()):
                return data
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {name} event matching {match} within {timeout:g} s")


async def scale(lat: Lattice, host_id: str, name: str, count: int = 1) -> None:
    await lat.ctl.scale_component(host_id, name, component(name), count)
    await event(lat, "component_scaled", component_id=name, host_id=host_id, max_instances=count)


async def hosts_by_tier(lat: Lattice, count: int) -> dict[str, str]:
    await lat.host_ids(count)
    return {h["labels"]["tier"]: h["id"] for h in await lat.ctl.ping_hosts(wait=0.3)}


def get(url: str) -> tuple[int, str, float]:
    started = time.monotonic()
    status, body = http_get(url)
    return status, body.decode(), time.monotonic() - started


def notes(host: HostProcess) -> int:
    """How many zoo.note calls the callee ran on this host (it prints each one)."""
    return host.log.read_text().count("types-callee stdout: note: from the caller")


@asynccontextmanager
async def silent_peer(lat: Lattice, target: str, reply: bytes | None) -> AsyncIterator[None]:
    """A wRPC peer serving `target`'s zoo.describe that accepts each call, then answers
    `reply` as the results (None: never answers)."""

    async def on_call(msg: Msg) -> None:
        inbox = lat.nc.new_inbox()
        await lat.nc.publish(msg.reply, b"", reply=inbox)  # accept
        if reply is not None:
            await lat.nc.publish(f"{msg.reply}.results", reply)
            await lat.nc.publish(f"{msg.reply}.results", b"")

    subject = invocation_subject("default", target, ZOO, "describe")
    sub = await lat.nc.subscribe(subject, cb=on_call)
    try:
        yield
    finally:
        await sub.unsubscribe()


@run_async
async def test_a_caller_on_the_edge_calls_the_callee_on_core_with_every_kind_of_value(
    nats_server: NatsServer, processes: Processes
) -> None:
    edge = processes.host(tier="edge")
    core = processes.host(tier="core")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with lattice(nats_server) as lat:
        hosts = await hosts_by_tier(lat, 2)
        await scale(lat, hosts["edge"], "types-caller")
        await scale(lat, hosts["core"], "types-callee")
        await link_zoo(lat, "types-caller", "types-callee")
        await lat.serve_http(hosts["edge"], "types-caller", port)

        body = (await eventually_get(f"{url}/all")).decode()
        assert body.splitlines() == [f"{name} ok" for name in CHECKS], body
        # The callee ran on core (it printed the note there), not on the edge host.
        assert (notes(core), notes(edge)) == (1, 0)

        for text in ["", "plain", "ünïcødé ✓ 🚀", "a" * 4000, "quotes ' \" and \\ slashes"]:
            status, echoed, _ = await asyncio.to_thread(get, f"{url}/echo?s={quote(text)}")
            assert (status, echoed) == (200, text)

        # Inventory: each host runs only its own component.
        edge_inventory = await lat.ctl.get_inventory(hosts["edge"])
        assert [c["id"] for c in edge_inventory["components"]] == ["types-caller"]
        core_inventory = await lat.ctl.get_inventory(hosts["core"])
        assert [c["id"] for c in core_inventory["components"]] == ["types-callee"]


@run_async
async def test_calls_spread_over_every_host_that_runs_the_callee(
    nats_server: NatsServer, processes: Processes
) -> None:
    edge = processes.host(tier="edge")
    core = processes.host(tier="core")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with lattice(nats_server) as lat:
        hosts = await hosts_by_tier(lat, 2)
        await scale(lat, hosts["edge"], "types-caller")
        await scale(lat, hosts["edge"], "types-callee")  # same host as the caller...
        await scale(lat, hosts["core"], "types-callee")  # ...and another one
        await link_zoo(lat, "types-caller", "types-callee")
        await lat.serve_http(hosts["edge"], "types-caller", port)
        await eventually_get(f"{url}/all")
        for _ in range(19):
            status, body, _ = await asyncio.to_thread(get, f"{url}/all")
            assert status == 200 and "MISMATCH" not in body
        # One queue group: every call ran once, on one of the two hosts, and both served.
        assert notes(edge) + notes(core) == 20
        assert notes(edge) > 0 and notes(core) > 0


@run_async
async def test_failed_calls_fail_the_caller_quickly_and_every_host_keeps_serving(
    nats_server: NatsServer, processes: Processes
) -> None:
    processes.host(tier="edge")
    processes.host(tier="core")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with lattice(nats_server) as lat:
        hosts = await hosts_by_tier(lat, 2)
        await scale(lat, hosts["edge"], "types-caller")
        await lat.serve_http(hosts["edge"], "types-caller", port)

        # No link yet: the import call traps the caller, which answers 500 and why.
        body = (await eventually_get(f"{url}/describe", want_status=500)).decode()
        assert "types-caller has no link for test:types/zoo" in body

        # A link, but the callee runs nowhere: an error at once (no responders).
        await link_zoo(lat, "types-caller", "types-callee")
        for _ in range(100):
            status, body, took = await asyncio.to_thread(get, f"{url}/describe")
            if "no running instance" in body:
                break
            await asyncio.sleep(0.1)  # the caller's host has not seen the link yet
        assert status == 500 and took < 2.0, (status, body, took)
        assert f"no running instance of types-callee serves {ZOO}.describe" in body

        # The callee starts on core: the same caller now gets its answer.
        await scale(lat, hosts["core"], "types-callee")
        assert (await eventually_get(f"{url}/describe")).decode() == DESCRIBED

        # The callee traps: the caller gets an error naming it at once, never a hang;
        # both keep serving (their trapped instances are replaced).
        status, body, took = await asyncio.to_thread(get, f"{url}/crash")
        assert status == 500 and took < 5.0, (status, body, took)
        assert f"types-callee trapped in {ZOO}.crash" in body
        status, body, _ = await asyncio.to_thread(get, f"{url}/describe")
        assert (status, body) == (200, DESCRIBED)

        # Parameters that do not decode: the callee's host answers an error, keeps serving.
        client = WrpcClient(lat.nc, "default")
        with pytest.raises(
            WrpcError, match=r"parameters of .*describe for types-callee do not decode"
        ):
            await client.invoke("types-callee", ZOO, "describe", Payload(b"\xff\xff"), timeout=5)

        # A peer answering with bytes that do not decode as the result: a clear error.
        await lat.ctl.scale_component(hosts["core"], "types-callee", component("types-callee"), 0)
        await event(lat, "component_scaled", component_id="types-callee", max_instances=0)
        async with silent_peer(lat, "types-callee", b"\x05ab"):
            status, body, _ = await asyncio.to_thread(get, f"{url}/describe")
        assert (
            status == 500 and "the reply of types-callee to" in body and "does not decode" in body
        )

        # A peer that accepts and never answers: the caller fails after the bounded time.
        async with silent_peer(lat, "types-callee", None):
            status, body, took = await asyncio.to_thread(get, f"{url}/describe")
        assert status == 500 and f"did not answer {ZOO}.describe within 5 s" in body
        assert 5.0 < took < 8.0, took

        # And the caller's host still serves: the callee back, the answer back.
        await scale(lat, hosts["core"], "types-callee")
        assert (await eventually_get(f"{url}/describe")).decode() == DESCRIBED


@run_async
async def test_links_to_components_are_checked_against_what_they_export(
    nats_server: NatsServer, processes: Processes
) -> None:
    # One host knows every image, so whichever host answers link.put can judge.
    processes.host(tier="one")
    async with lattice(nats_server) as lat:
        [host] = await lat.host_ids(1)
        for name in ["types-caller", "types-callee", "types-caller-v2"]:
            await scale(lat, host, name)
        await lat.ctl.scale_component(host, "hello", f"file://{HELLO}", 1)
        await event(lat, "component_scaled", component_id="hello")

        with pytest.raises(CtlError) as refused:
            await link_zoo(lat, "types-caller", "hello")
        message = str(refused.value)
        assert "hello does not export test:types/zoo" in message
        assert "wasi:http/incoming-handler@0.2" in message  # what it does export
        failed = await lat.event("linkdef_set_failed", target="hello")
        assert failed["error"] == message

        with pytest.raises(CtlError) as refused:
            await link_zoo(lat, "types-caller-v2", "types-callee")
        assert (
            "types-caller-v2 imports test:types/zoo@0.2.0 but types-callee exports "
            "test:types/zoo@0.1.0" in str(refused.value)
        )

        await link_zoo(lat, "types-caller", "types-callee")  # matching: accepted
        links = await lat.ctl.get_links()
        assert [(link["source_id"], link["target"]) for link in links] == [
            ("types-caller", "types-callee")
        ]


COUNTER = "test:types/counter@0.1.0"


class CounterPeer:
    """A wRPC peer serving test:types/counter for `target`, as a wasmCloud 1.4.2 provider
    (wit-bindgen-wrpc) serves a resource: the constructor on `counter`, the method on
    `counter.add` with the handle bytes it made as the first parameter, no drop function.
    Every subject published under `target`'s counter instance is recorded."""

    def __init__(self, lat: Lattice, target: str) -> None:
        self.lat = lat
        self.target = target
        self.counters: dict[bytes, int] = {}
        self.subjects: list[str] = []

    async def construct(self, params: Payload, headers: dict[str, str]) -> Payload:
        reader = Reader(params.data)
        handle = uuid.uuid4().bytes
        self.counters[handle] = reader.u(32)
        writer = Writer()
        writer.list_u8(handle)
        return Payload(writer.finish())

    async def add(self, params: Payload, headers: dict[str, str]) -> Payload:
        reader = Reader(params.data)
        handle, n = reader.list_u8(), reader.u(32)
        if handle not in self.counters:
            raise WrpcError(f"unknown counter handle {handle.hex()}")
        self.counters[handle] += n
        writer = Writer()
        writer.u(self.counters[handle])
        return Payload(writer.finish())

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[CounterPeer]:
        server = WrpcServer(self.lat.nc, "default")

        async def record(msg: Msg) -> None:
            self.subjects.append(msg.subject.rpartition(f"{COUNTER}.")[2])

        subs = [
            await server.serve(self.target, COUNTER, "counter", self.construct),
            await server.serve(self.target, COUNTER, "counter.add", self.add),
            await self.lat.nc.subscribe(
                invocation_subject("default", self.target, COUNTER, ">"), cb=record
            ),
        ]
        try:
            yield self
        finally:
            for sub in subs:
                await sub.unsubscribe()


@run_async
async def test_a_resource_a_provider_serves_is_created_used_and_dropped_through_its_handle(
    nats_server: NatsServer, processes: Processes
) -> None:
    processes.host(tier="edge")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with lattice(nats_server) as lat, CounterPeer(lat, "counter-provider").serving() as peer:
        [host] = await lat.host_ids(1)
        await scale(lat, host, "types-caller")
        await lat.ctl.put_link(
            {
                "source_id": "types-caller",
                "target": "counter-provider",
                "wit_namespace": "test",
                "wit_package": "types",
                "interfaces": ["counter"],
            }
        )
        await lat.serve_http(host, "types-caller", port)

        assert (await eventually_get(f"{url}/counter/new?start=5")).decode() == "created"
        [handle] = peer.counters
        assert (await asyncio.to_thread(get, f"{url}/counter/add?n=3"))[:2] == (200, "8")
        assert (await asyncio.to_thread(get, f"{url}/counter/add?n=4"))[:2] == (200, "12")
        assert peer.counters == {handle: 12}  # both calls carried the handle the peer made

        # The guest drops its handle: nothing goes on the wire (wRPC 0.24.1 has no drop).
        assert (await asyncio.to_thread(get, f"{url}/counter/drop"))[:2] == (200, "dropped")
        assert (await asyncio.to_thread(get, f"{url}/counter/new?start=1"))[:2] == (
            200,
            "created",
        )
        assert peer.subjects == ["counter", "counter.add", "counter.add", "counter"]

        # The provider forgot its handles (a restart): the call fails at once, naming why.
        peer.counters.clear()
        status, body, took = await asyncio.to_thread(get, f"{url}/counter/add?n=1")
        assert status == 500 and took < 2.0, (status, body, took)
        assert f"counter-provider failed {COUNTER}.counter.add: unknown counter handle" in body
        # The trapped caller was replaced; a new counter works again.
        assert (await asyncio.to_thread(get, f"{url}/counter/new?start=40"))[:2] == (
            200,
            "created",
        )
        assert (await asyncio.to_thread(get, f"{url}/counter/add?n=2"))[:2] == (200, "42")


@run_async
async def test_a_component_that_exports_a_resource_is_refused_naming_it(
    nats_server: NatsServer, processes: Processes
) -> None:
    processes.host(tier="one")
    async with lattice(nats_server) as lat:
        [host] = await lat.host_ids(1)
        await lat.ctl.scale_component(host, "types-counter", component("types-counter"), 1)
        failed = await event(lat, "component_scale_failed", component_id="types-counter")
        assert (
            f"exports {COUNTER} with resource counter: resources a component exports are not "
            "served across the lattice" in failed["error"]
        ), failed
        assert "serve counter from a provider" in failed["error"]
