"""runtime/inline.py's rules, and the pool's answer to an inline call whose guest reads a
request body that is still arriving: it runs again in a worker, which can wait for it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.runtime.inline import (
    INLINE_WARMUP,
    RunInWorker,
    body_may_follow,
    runs_locally,
    warm_enough,
)
from host_agent.runtime.instance import ComponentTrap
from host_agent.runtime.pool import InstancePool


def test_only_components_whose_imports_are_answered_in_process_may_run_inline() -> None:
    hello_wat = ["wasi:http/types", "wasi:io/error", "wasi:io/streams"]
    assert runs_locally(hello_wat)
    assert runs_locally([])
    assert runs_locally([*hello_wat, "wasi:cli/stdout", "wasi:sockets/tcp"])
    assert not runs_locally([*hello_wat, "wasi:keyvalue/store"])  # a provider call
    assert not runs_locally([*hello_wat, "wasi:http/outgoing-handler"])
    assert not runs_locally(["wasi:blobstore/container"])
    assert not runs_locally(["wasmcloud:secrets/store"])
    assert not runs_locally(["example:logic/compute"])  # a linked component


def test_inline_needs_a_full_warm_up_of_short_runs() -> None:
    assert not warm_enough([0.0002] * (INLINE_WARMUP - 1))
    assert warm_enough([0.0002] * INLINE_WARMUP)
    assert not warm_enough([0.002] * INLINE_WARMUP)  # CPython-in-wasm guests stay in workers
    assert warm_enough([0.0002] * (INLINE_WARMUP - 1) + [0.5])  # one slow call: the median


def test_a_request_that_may_carry_a_body_is_seen_by_its_headers() -> None:
    assert not body_may_follow([("host", b"x")])
    assert not body_may_follow([("content-length", b"0")])
    assert body_may_follow([("content-length", b"12")])
    assert body_may_follow([("transfer-encoding", b"chunked")])


class EchoBody:
    """Stands in for a component instance whose guest answers with the request body (it
    traps when reading the body raises, as a guest does when its host call fails)."""

    component_id = "echo"

    def __init__(self, threads: list[str]) -> None:
        self.threads = threads

    def set_epoch_deadline(self, ticks: int) -> None:
        pass

    def handle_http(self, request: HttpRequest) -> HttpResponse:
        self.threads.append(threading.current_thread().name)
        try:
            return HttpResponse(200, [], request.read_body())
        except RunInWorker as error:
            raise ComponentTrap(str(error)) from None


def test_an_inline_guest_reading_a_body_still_arriving_is_answered_from_a_worker() -> None:
    threads: list[str] = []

    async def scenario() -> tuple[HttpResponse, list[str]]:
        pool = InstancePool(lambda: EchoBody(threads), 2, inline=True)  # type: ignore[arg-type, return-value]
        await pool.fill()
        for _ in range(INLINE_WARMUP):
            await pool.handle_http(HttpRequest("GET", "/"))
        deadline = time.monotonic() + 10
        while not pool.runs_inline:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        threads.clear()
        arriving: Any = lambda: b"the body"  # noqa: E731 - what LaterParams.wait returns
        request = HttpRequest("POST", "/", headers=[], pending_body=arriving)
        answer = await pool.handle_http(request)
        pool.close()
        return answer, threads

    answer, ran_on = asyncio.run(scenario())
    assert answer.body == b"the body"
    assert ran_on[0] == threading.main_thread().name  # tried inline first
    assert ran_on[1].startswith("component_")  # then answered by a worker
