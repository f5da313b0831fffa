"""A named config put again under the same name reaches the providers whose links name
it: real nats-server, a host process, the built-in http-server provider and the
hello-wat component. The link itself never changes, so only the host's config watch can
tell the http-server that its address moved."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from host_agent.host.identity import HostIdentity
from host_agent.host.providers import ProviderSupervisor, RunningProvider
from host_agent.host.state import HostState, ProviderRecord
from host_agent.lattice.protocol import Link
from host_agent.providers.builtin import resolve_provider
from host_agent.providers.contract import LINK_PUT, provider_subject
from tests.integration.test_counter_app import HTTP_SERVER, lattice
from tests.lattice import HostProcess, NatsServer, Processes, eventually_get, free_port, run_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

HELLO_WAT = Path(__file__).resolve().parents[2] / "examples" / "hello-wat" / "build"
HELLO_WAT_WASM = HELLO_WAT / "hello-wat.wasm"
PUSHED = "linkdefs.put httpserver -> hello to provider httpserver"


def refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


async def moved(old: int, new: int, timeout: float = 30.0) -> None:
    """Until `new` answers hello and `old` refuses connections, within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(refuses, old):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"127.0.0.1:{old} still accepts after {timeout:g} s")
    assert await eventually_get(f"http://127.0.0.1:{new}/") == b"hello\n"


async def logged(host: HostProcess, text: str, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.log.read_text().count(text) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not logged {count} times in {host.log}")


@run_async
async def test_a_link_config_changed_under_the_same_name_moves_the_listener(
    nats_server: NatsServer, processes: Processes
) -> None:
    if not HELLO_WAT_WASM.exists():
        pytest.fail(f"{HELLO_WAT_WASM} is missing: run examples/hello-wat/build.sh")
    host = processes.host()
    first, second, third = free_port(), free_port(), free_port()
    async with lattice(nats_server) as lat:
        [host_id] = await lat.host_ids(1)
        await lat.ctl.scale_component(host_id, "hello", f"file://{HELLO_WAT_WASM}", 1)
        await lat.event("component_scaled", timeout=90, component_id="hello")
        await lat.ctl.put_config("http-listen", {"address": f"127.0.0.1:{first}"})
        await lat.ctl.put_config("http-settings", {"greeting": "one"})
        await lat.ctl.start_provider(host_id, "httpserver", HTTP_SERVER, config=["http-settings"])
        await lat.event("health_check_passed", timeout=30, provider_id="httpserver")
        await lat.link(
            "httpserver", "hello", "http", ["incoming-handler"], source_config=["http-listen"]
        )
        assert await eventually_get(f"http://127.0.0.1:{first}/") == b"hello\n"

        # Same name, new address: the link is delivered again, once, and the listener moves.
        await lat.ctl.put_config("http-listen", {"address": f"127.0.0.1:{second}"})
        await moved(first, second)
        assert host.log.read_text().count(PUSHED) == 2

        # A config no link names, and the same values again: nothing is delivered. The
        # config watch handles puts in order, so once the third address answers, the two
        # puts before it were handled.
        await lat.ctl.put_config("unrelated", {"address": "127.0.0.1:1"})
        await lat.ctl.put_config("http-listen", {"address": f"127.0.0.1:{second}"})
        await lat.ctl.put_config("http-listen", {"address": f"127.0.0.1:{third}"})
        await moved(second, third)
        assert host.log.read_text().count(PUSHED) == 3

        # The provider's own config (its start command's names) goes on config.update,
        # as upstream's host sends it.
        await lat.ctl.put_config("http-settings", {"greeting": "two", "more": "yes"})
        await logged(host, "config update received (2 values)", 1)


@run_async
async def test_a_sync_that_read_the_old_values_never_undoes_a_config_change(
    nats_server: NatsServer,
) -> None:
    """The link watch and the config watch sync the same provider: a link-watch sync that
    read the config before it changed must not push the old values after the config-watch
    sync pushed the new ones (the provider would keep the old address), nor may both push
    the new values (one change, one delivery). The values are read from a dict here so
    the test decides when the first sync's read returns."""
    nc = await nats.connect(nats_server.url)
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", "")
    try:
        values = {"http-listen": {"address": "127.0.0.1:1"}}
        hold = asyncio.Event()
        held: list[dict[str, str]] = []

        async def read(names: list[str]) -> dict[str, str]:
            merged = {k: v for name in names for k, v in values.get(name, {}).items()}
            if pushes and not held and merged == {"address": "127.0.0.1:1"}:
                held.append(merged)  # a read after the first push: answered late
                await hold.wait()
            return merged

        async def publish(name: str, data: dict[str, object]) -> None:
            pass  # host events: not what this test looks at

        state = HostState(HostIdentity.generate(), "default", "test", {})
        supervisor = ProviderSupervisor(state, nc, nats_server.url, publish, read)
        record = ProviderRecord("httpserver", HTTP_SERVER)
        running = RunningProvider(record, resolve_provider(HTTP_SERVER), process, ready=True)
        supervisor.running["httpserver"] = running
        pushes: list[object] = []
        subject = provider_subject("default", "httpserver", LINK_PUT)

        async def received(msg: Msg) -> None:
            pushes.append(json.loads(msg.data))

        await nc.subscribe(subject, cb=received)
        served = Link.model_validate(
            {
                "source_id": "httpserver",
                "target": "hello",
                "wit_namespace": "wasi",
                "wit_package": "http",
                "interfaces": ["incoming-handler"],
                "source_config": ["http-listen"],
            }
        )

        async def delivered(count: int) -> None:
            # A marker after the pushes: one subscription's messages are handled in order.
            await nc.publish(subject, b'"end"')
            deadline = time.monotonic() + 10
            while "end" not in pushes and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            pushes.remove("end")
            assert len(pushes) == count, pushes

        await supervisor.links_changed([served])
        await delivered(1)
        # The link watch syncs again (another link changed, say) and reads the old value...
        link_watch = asyncio.create_task(supervisor.links_changed([served]))
        while not held:
            await asyncio.sleep(0)
        # ...then the config changes and the config watch syncs; its read is not held.
        values["http-listen"] = {"address": "127.0.0.1:2"}
        config_watch = asyncio.create_task(supervisor.config_changed("http-listen"))
        for _ in range(100):  # no I/O before its push: a few turns of the loop suffice
            if config_watch.done():
                break
            await asyncio.sleep(0)
        hold.set()
        await asyncio.gather(link_watch, config_watch)
        await delivered(2)
        assert [push["source_config"] for push in pushes] == [  # type: ignore[index]
            {"address": "127.0.0.1:1"},
            {"address": "127.0.0.1:2"},
        ]
    finally:
        await process.wait()
        await nc.close()
