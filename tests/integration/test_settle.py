"""``settle(nc)``, the barrier every subscriber waits on before it is served, is bounded:
a server that stops reading (stopped, or a network that holds packets) makes it raise
FlushTimeoutError after its timeout, instead of hanging the host's or the controller's
start for good."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import nats
import nats.errors
import pytest

from host_agent.lattice.connection import settle
from tests.lattice import NatsServer, run_async

CHUNK = 512 * 1024


@run_async
async def test_settle_gives_up_when_the_server_stops_reading(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url, pending_size=256 * 1024 * 1024)
    assert nats_server.proc is not None
    pid = nats_server.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        # More than the loopback socket's buffers hold: nats-py's flusher then waits on
        # the socket, and every flush queued behind it with it.
        for _ in range(128):
            await nc.publish("settle.test", b"x" * CHUNK)
        started = time.monotonic()
        with pytest.raises(nats.errors.FlushTimeoutError):
            await asyncio.wait_for(settle(nc, timeout=0.5), 10)  # unbounded: TimeoutError
        assert time.monotonic() - started < 5
    finally:
        os.kill(pid, signal.SIGCONT)
        await nc.close()
