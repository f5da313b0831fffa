"""Link-time WIT version checks against races and targets on other hosts, on a real host.

The last tests use components made from WAT with wasm-tools (one import each, at the
version under test): a wasi: interface the host's runtime serves (wasi:keyvalue), and a
provider another host runs, known to this one from that host's events.

The component is tests/components/notes-old-draft: it imports wasmcloud:postgres@0.1.0-draft,
and the built-in sqldb-postgres provider serves 0.1.1-draft. The host runs in this process so
a test can hold its compile (a threading event in the compile step) and its store write at a
chosen point; it is started without its link watch, so its link index never shows a link put
after it started, as when the KV watch is behind the link.put it answered.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import pytest

from host_agent.host.components import LinkedComponents
from host_agent.host.links import LinkIndex
from host_agent.host.process import Host, HostConfig
from host_agent.host.store import LatticeStore
from host_agent.lattice.client import CtlError
from host_agent.lattice.protocol import Link
from host_agent.runtime.custom import ComponentCallError, CustomInterface
from tests.integration.test_counter_app import Lattice, lattice
from tests.lattice import ROOT, VENV_BIN, NatsServer, run_async

pytestmark = pytest.mark.timeout(180)

OLD_DRAFT = f"file://{ROOT / 'tests/components/notes-old-draft/build/notes-old-draft.wasm'}"
IMPORTED = "wasmcloud:postgres/query@0.1.0-draft"
SERVED = "wasmcloud:postgres/query@0.1.1-draft"
START = 120.0  # seconds: an 18 MB component's first compile on a loaded machine


@asynccontextmanager
async def host_in_process(nats_server: NatsServer) -> AsyncIterator[Host]:
    host = Host(HostConfig(nats_url=nats_server.url, heartbeat_interval=60, allow_file_load=True))
    await host.start()  # no run(): no link watch (see the module docstring)
    try:
        yield host
    finally:
        await host.shutdown()


class CompileGate:
    """Holds the host's compile step until released: `started` is set when it is entered."""

    def __init__(self, host: Host) -> None:
        assert host.components is not None
        self.started = threading.Event()
        self.release = threading.Event()
        compile_step = host.components._verify_and_compile

        def held(wasm: bytes) -> Any:
            self.started.set()
            if not self.release.wait(START):
                raise TimeoutError("the test never released the compile")
            return compile_step(wasm)

        host.components._verify_and_compile = held  # type: ignore[method-assign]

    async def wait_started(self) -> None:
        assert await asyncio.to_thread(self.started.wait, START), "the compile never started"


async def outcome(lat: Lattice, component_id: str) -> tuple[str, dict[str, Any]]:
    """component_scaled or component_scale_failed, whichever the host publishes first."""
    waits = {
        asyncio.ensure_future(lat.event(name, START, component_id=component_id)): name
        for name in ("component_scaled", "component_scale_failed")
    }
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    first = done.pop()
    return waits[first], first.result()


async def start_postgres_provider(lat: Lattice, host: Host) -> None:
    await lat.ctl.start_provider(host.host_id, "pg", "builtin:sqldb-postgres")
    await lat.event("provider_started", provider_id="pg")


def postgres_link(target: str, name: str = "default") -> dict[str, Any]:
    return {
        "source_id": "notes",
        "target": target,
        "name": name,
        "wit_namespace": "wasmcloud",
        "wit_package": "postgres",
        "interfaces": ["query"],
    }


async def link_to(lat: Lattice, target: str, name: str = "default") -> None:
    await lat.ctl.put_link(postgres_link(target, name))


@run_async
async def test_a_link_put_while_the_component_compiles_refuses_its_start(
    nats_server: NatsServer,
) -> None:
    async with host_in_process(nats_server) as host, lattice(nats_server) as lat:
        await start_postgres_provider(lat, host)
        gate = CompileGate(host)
        await lat.ctl.scale_component(host.host_id, "notes", OLD_DRAFT, 1)
        await gate.wait_started()
        # The host cannot judge the link yet (it has no image): it is accepted...
        await link_to(lat, "pg")
        gate.release.set()
        # ...and the start judges it, though the link index does not show it yet.
        event, data = await outcome(lat, "notes")
        assert event == "component_scale_failed", data
        assert IMPORTED in data["error"] and SERVED in data["error"], data


@run_async
async def test_a_link_another_host_stored_while_the_component_compiles_refuses_its_start(
    nats_server: NatsServer,
) -> None:
    """link.put goes to any host of the lattice (a queue group): one that does not run the
    component cannot judge the link and stores it; the component's host catches it."""
    async with host_in_process(nats_server) as host, lattice(nats_server) as lat:
        await start_postgres_provider(lat, host)
        gate = CompileGate(host)
        await lat.ctl.scale_component(host.host_id, "notes", OLD_DRAFT, 1)
        await gate.wait_started()
        other_host = await LatticeStore.open(lat.nc.jetstream(), "default")
        await other_host.put_link(Link.model_validate(postgres_link("pg")))
        gate.release.set()
        event, data = await outcome(lat, "notes")
        assert event == "component_scale_failed", data
        assert IMPORTED in data["error"] and SERVED in data["error"], data


@run_async
async def test_a_start_during_a_link_put_waits_for_it_and_is_refused(
    nats_server: NatsServer,
) -> None:
    async with host_in_process(nats_server) as host, lattice(nats_server) as lat:
        await start_postgres_provider(lat, host)
        components = host.components
        assert components is not None and host._store is not None
        gate = CompileGate(host)
        # link.put has judged the link (no image yet) and is writing it to the store...
        storing, stored = asyncio.Event(), asyncio.Event()
        put_link = host._store.put_link

        async def held_put(link: Any) -> None:
            storing.set()
            await stored.wait()
            await put_link(link)

        host._store.put_link = held_put  # type: ignore[method-assign]
        # ...when the compile ends and the start wants to check the links.
        checks: list[str] = []
        checking = asyncio.Event()
        lock = components.link_check

        class ObservedLock(asyncio.Lock):
            async def acquire(self) -> Literal[True]:
                checks.append("acquire")
                checking.set()
                return await lock.acquire()

            def release(self) -> None:
                lock.release()

            def locked(self) -> bool:
                return lock.locked()

        components.link_check = ObservedLock()
        await lat.ctl.scale_component(host.host_id, "notes", OLD_DRAFT, 1)
        await gate.wait_started()
        put = asyncio.ensure_future(link_to(lat, "pg"))
        await storing.wait()
        checking.clear()
        gate.release.set()
        started = asyncio.ensure_future(lat.event("component_scaled", START, component_id="notes"))
        wanted = asyncio.ensure_future(checking.wait())
        await asyncio.wait([started, wanted], return_when=asyncio.FIRST_COMPLETED)
        assert not started.done(), "the component started while its link was being put"
        started.cancel()
        stored.set()
        await put  # accepted: the image was not known when link.put judged it
        event, data = await outcome(lat, "notes")
        assert event == "component_scale_failed", data
        assert IMPORTED in data["error"] and SERVED in data["error"], data


@run_async
async def test_a_target_that_is_not_a_provider_here_is_not_judged_as_one(
    nats_server: NatsServer,
) -> None:
    """A target this host does not run may be a component on another host that exports
    the 0.1.0-draft the source imports: neither the start nor a link put is refused."""
    async with host_in_process(nats_server) as host, lattice(nats_server) as lat:
        await link_to(lat, "notes-db-on-another-host")
        await lat.ctl.scale_component(host.host_id, "notes", OLD_DRAFT, 1)
        event, data = await outcome(lat, "notes")
        assert event == "component_scaled", data
        await link_to(lat, "another-peer", name="second")
        # A provider running here is still judged, both versions named.
        await start_postgres_provider(lat, host)
        with pytest.raises(CtlError) as refused:
            await link_to(lat, "pg", name="third")
        assert IMPORTED in str(refused.value) and SERVED in str(refused.value)


def call_without_link(base: str, version: str) -> str:
    linked = LinkedComponents(
        "notes",
        LinkIndex,
        client=None,  # type: ignore[arg-type]  # never reached: there is no link
        loop=None,  # type: ignore[arg-type]
        imports={base: CustomInterface(base, version, {})},
    )
    with pytest.raises(ComponentCallError) as error:
        linked.call(f"{base}@{version}", "query", [])
    return str(error.value)


def test_a_call_without_a_link_names_a_provider_for_a_provider_interface() -> None:
    message = call_without_link("wasmcloud:postgres/query", "0.1.0-draft")
    assert message == (
        "notes has no link for wasmcloud:postgres/query; link notes to a provider that "
        "serves wasmcloud:postgres/query@0.1.1-draft"
    )
    custom = call_without_link("example:logic/compute", "0.1.0")
    assert custom.endswith("link notes to a component that exports example:logic/compute")


def wat_component(tmp_path: Path, name: str, imported: str) -> str:
    """A component whose one import is ``imported`` (an empty instance), as a file:// URL."""
    wasm = tmp_path / f"{name}.wasm"
    subprocess.run(
        [str(VENV_BIN / "wasm-tools"), "parse", "-", "-o", str(wasm)],
        input=f'(component (import "{imported}" (instance)))'.encode(),
        check=True,
    )
    return f"file://{wasm}"


async def until(condition: Any, what: str, within: float = 10.0) -> None:
    """Until ``condition()`` holds: a host applies an event a moment after the test saw it."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


@run_async
async def test_a_component_on_another_wasi_keyvalue_draft_is_refused_at_link_time(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """wasi:keyvalue is served by the host's runtime, which speaks 0.2.0-draft to
    components and to keyvalue providers: a component built against 0.2.0-draft2 cannot
    start, and its link to a keyvalue provider is refused naming both versions."""
    url = wat_component(tmp_path, "counter-draft2", "wasi:keyvalue/store@0.2.0-draft2")
    async with host_in_process(nats_server) as host, lattice(nats_server) as lat:
        await lat.ctl.start_provider(host.host_id, "kv", "builtin:keyvalue-inmemory")
        await lat.event("provider_started", provider_id="kv")
        await lat.ctl.scale_component(host.host_id, "counter", url, 1)
        event, data = await outcome(lat, "counter")
        assert event == "component_scale_failed", data
        assert "wasi:keyvalue/store@0.2.0-draft2" in data["error"], data
        link = {
            "source_id": "counter",
            "target": "kv",
            "wit_namespace": "wasi",
            "wit_package": "keyvalue",
            "interfaces": ["store"],
        }
        with pytest.raises(CtlError) as refused:
            await lat.ctl.put_link(link)
        assert str(refused.value).endswith(
            "counter imports wasi:keyvalue/store@0.2.0-draft2 but kv (keyvalue-inmemory) "
            "serves wasi:keyvalue/store@0.2.0-draft; rebuild counter against "
            "wasi:keyvalue/store@0.2.0-draft (its WIT dependencies), or link it to a "
            "provider that serves wasi:keyvalue/store@0.2.0-draft2"
        ), refused.value


@run_async
async def test_a_provider_on_another_host_is_judged_by_what_it_serves(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Host A runs the component, host B the provider: A knows from B's provider_started
    event that `pg` is sqldb-postgres, so both the link put A answers and A's start of a
    component whose link was stored before are refused naming both versions."""
    url = wat_component(tmp_path, "notes-old", IMPORTED)
    async with (
        host_in_process(nats_server) as a,
        host_in_process(nats_server) as b,
        lattice(nats_server) as lat,
    ):
        await lat.ctl.scale_component(a.host_id, "notes", url, 1)
        event, data = await outcome(lat, "notes")
        assert event == "component_scaled", data  # no link yet
        assert a.lattice_providers.provider("pg") is None
        await start_postgres_provider(lat, b)
        await until(lambda: a.lattice_providers.provider("pg") is not None, "A never heard of pg")
        # link.put goes to either host (a queue group): ask A, the one that can judge it.
        assert a.handlers is not None
        reply = json.loads(await a.handlers.put_link(Link.model_validate(postgres_link("pg"))))
        assert reply["success"] is False, reply
        assert (
            f"notes imports {IMPORTED} but pg (sqldb-postgres) serves {SERVED}"
            in (reply["message"])
        )
        # Stored by a host that could not judge it, then the component starts on A.
        store = await LatticeStore.open(lat.nc.jetstream(), "default")
        stored = {**postgres_link("pg"), "source_id": "notes2"}
        await store.put_link(Link.model_validate(stored))
        await lat.ctl.scale_component(a.host_id, "notes2", url, 1)
        event, data = await outcome(lat, "notes2")
        assert event == "component_scale_failed", data
        assert (
            f"notes2 imports {IMPORTED} but pg (sqldb-postgres) serves {SERVED}" in (data["error"])
        )
