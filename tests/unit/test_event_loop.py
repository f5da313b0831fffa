"""Our NATS clients run on uvloop (TLS in Cython: benchmarks/ctl.py's secured/plain
target), and on asyncio's own loop where uvloop cannot be imported."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from host_agent.lattice import event_loop


async def loop_and_answer() -> tuple[asyncio.AbstractEventLoop, int]:
    await asyncio.sleep(0)
    return asyncio.get_running_loop(), 42


def test_run_returns_the_result_on_uvloop() -> None:
    loop, answer = event_loop.run(loop_and_answer())
    assert answer == 42
    assert isinstance(loop, uvloop.Loop)
    assert loop.is_closed()


def test_without_uvloop_the_standard_loop_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    loop, answer = event_loop.run(loop_and_answer())
    assert answer == 42
    assert not isinstance(loop, uvloop.Loop)
    assert isinstance(loop, asyncio.BaseEventLoop)


def test_an_error_in_the_coroutine_reaches_the_caller() -> None:
    async def refused() -> None:
        raise ConnectionRefusedError("nats: authorization violation")

    with pytest.raises(ConnectionRefusedError, match="authorization violation"):
        event_loop.run(refused())
