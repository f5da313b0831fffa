"""How the provider words failures, how it tells them apart (types, not message text),
and that its waits never stall the event loop every resource is served on."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import nats.errors
import pytest

from host_agent.local.supervisor import ManagedProcess, PortTaken, start_server
from pulumi_wasmcloud.provider.application_resource import still_running
from pulumi_wasmcloud.provider.handlers import InputError
from pulumi_wasmcloud.provider.live import credentials_refused
from pulumi_wasmcloud.provider.provider import user_message
from tests.lattice import free_port, run_async


def test_user_errors_read_as_their_sentence_and_bugs_name_their_type() -> None:
    assert user_message(InputError("natsPort", "choose another")) == "natsPort: choose another"
    assert user_message(RuntimeError("no controller answers")) == "no controller answers"
    bug = user_message(KeyError("manifest"))
    assert bug.startswith("internal error in the wasmcloud provider (KeyError: 'manifest')")
    assert "<class" not in bug
    timeout = user_message(nats.errors.TimeoutError())
    assert timeout.startswith("a request to the lattice got no answer") and "nats:" not in timeout


def test_a_delete_that_leaves_instances_names_them_per_host() -> None:
    message = still_running(
        "counter",
        {"counter": {"edge": 3, "core": 1}, "httpserver": {"core": 1}, "kvredis": {}},
        60,
    )
    assert "60 s later its instances still run" in message
    assert "(on core: counter x1, httpserver x1; on edge: counter x3)" in message


def test_refused_credentials_are_told_by_type_or_protocol_token() -> None:
    assert credentials_refused(nats.errors.AuthorizationError())
    # nats-py's CONNECT path: a plain Error carrying the server's -ERR.
    assert credentials_refused(nats.errors.Error("nats: 'Authorization Violation'"))
    assert not credentials_refused(nats.errors.Error("nats: no servers available"))
    assert not credentials_refused(nats.errors.NoServersError())


def _stubborn(tmp_path: Path) -> ManagedProcess:
    """A process that ignores SIGTERM (so a stop waits its whole timeout)."""
    proc = ManagedProcess("stubborn", tmp_path)
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc.start([sys.executable, "-c", code])
    return proc


async def _ready(proc: ManagedProcess) -> None:
    while "ready" not in proc.logfile.read_text():
        await asyncio.sleep(0.02)


@pytest.mark.timeout(60)
@run_async
async def test_stopping_a_process_lets_the_event_loop_run(tmp_path: Path) -> None:
    proc = _stubborn(tmp_path)
    await asyncio.wait_for(_ready(proc), 20)
    pid = proc.pid()
    other = asyncio.create_task(asyncio.sleep(0.05))  # another resource's work
    stop = asyncio.create_task(proc.stop_async(timeout=2.0))
    await asyncio.wait([other, stop], return_when=asyncio.FIRST_COMPLETED)
    assert other.done() and not stop.done()  # it ran while the stop was waiting
    assert await stop  # then SIGKILL after the timeout
    assert proc.pid() is None and not Path(f"/proc/{pid}").exists()


@pytest.mark.timeout(60)
@run_async
async def test_a_taken_port_is_its_own_error_and_waiting_for_a_port_is_async(
    tmp_path: Path,
) -> None:
    port = free_port()
    holder = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        with pytest.raises(PortTaken) as raised:
            await start_server(ManagedProcess("x", tmp_path), ["true"], port, "pick another")
        assert raised.value.port == port
        assert f"port {port} is taken" in str(raised.value)
    finally:
        holder.close()
        await holder.wait_closed()

    # A server that listens only after a second: other work runs meanwhile.
    port = free_port()
    code = (
        "import socket, time\n"
        "time.sleep(1)\n"
        f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)\n"
    )
    server = ManagedProcess("late", tmp_path)
    other = asyncio.create_task(asyncio.sleep(0.05))
    start = asyncio.create_task(
        start_server(server, [sys.executable, "-c", code], port, "pick another")
    )
    try:
        await asyncio.wait([other, start], return_when=asyncio.FIRST_COMPLETED)
        assert other.done() and not start.done()
        _, started = await start
        assert started
    finally:
        await server.stop_async(timeout=2.0)
