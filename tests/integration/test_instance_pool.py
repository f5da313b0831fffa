"""The instance pool with the real counter component: a pool of N runs at most N requests
in the component at once, makes instances only when the ones it has are busy, and on
close answers the requests already in the component while cancelling the ones waiting."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.runtime.engine import component_engine
from host_agent.runtime.image import ComponentImage, load_component
from host_agent.runtime.instance import ComponentInstance
from host_agent.runtime.pool import InstancePool

COUNTER = Path(__file__).resolve().parents[2] / "examples" / "counter" / "build" / "counter.wasm"
WAIT = 30.0


class HeldKeyValue:
    """A key-value store whose increments wait until the test lets them through, so the
    test sees how many requests are inside the component at the same time."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.inside = 0
        self.most_inside = 0
        self._entered = threading.Condition()
        self.data: dict[tuple[str, str], int] = {}

    def wait_inside(self, count: int) -> bool:
        with self._entered:
            return self._entered.wait_for(lambda: self.inside >= count, WAIT)

    def increment(self, bucket: str, key: str, delta: int) -> int:
        with self._entered:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            self._entered.notify_all()
        try:
            self.release.wait(WAIT)
            with self._entered:
                value = self.data[(bucket, key)] = self.data.get((bucket, key), 0) + delta
            return value
        finally:
            with self._entered:
                self.inside -= 1

    def get(self, bucket: str, key: str) -> bytes | None:
        return None

    def set(self, bucket: str, key: str, value: bytes) -> None:
        pass

    def delete(self, bucket: str, key: str) -> None:
        pass

    def exists(self, bucket: str, key: str) -> bool:
        return False

    def list_keys(self, bucket: str, cursor: int | None) -> tuple[list[str], int | None]:
        return [], None


@pytest.fixture(scope="module")
def counter() -> ComponentImage:
    if not COUNTER.exists():
        pytest.fail(f"{COUNTER} is missing: run scripts/build-components.sh (make test does)")
    # The hosts' cache and engine: compiled once for these tests and the end-to-end ones.
    return load_component(COUNTER.read_bytes(), component_engine())


def make_pool(
    counter: ComponentImage, store: HeldKeyValue, size: int
) -> tuple[InstancePool, list[int]]:
    made: list[int] = []

    def make() -> ComponentInstance:
        made.append(1)
        return ComponentInstance(counter, store, "counter")

    return InstancePool(make, size), made


def test_a_pool_of_two_runs_two_requests_at_once_and_makes_only_two_instances(
    counter: ComponentImage,
) -> None:
    store = HeldKeyValue()

    async def scenario() -> tuple[list[HttpResponse], int]:
        pool, made = make_pool(counter, store, 2)
        await pool.fill()
        calls = [asyncio.create_task(pool.handle_http(HttpRequest("GET", "/n"))) for _ in range(3)]
        assert await asyncio.to_thread(store.wait_inside, 2)
        made_while_full = len(made)
        store.release.set()
        responses = await asyncio.gather(*calls)
        pool.close()
        return responses, made_while_full

    responses, made_while_full = asyncio.run(scenario())
    assert sorted(r.body for r in responses) == [b"n -> 1", b"n -> 2", b"n -> 3"]
    assert store.most_inside == 2
    assert made_while_full == 2


def test_close_answers_the_request_inside_and_cancels_the_waiting_one(
    counter: ComponentImage,
) -> None:
    store = HeldKeyValue()

    async def scenario() -> tuple[HttpResponse, BaseException | None]:
        pool, _ = make_pool(counter, store, 1)
        await pool.fill()
        inside = asyncio.create_task(pool.handle_http(HttpRequest("GET", "/c")))
        assert await asyncio.to_thread(store.wait_inside, 1)
        waiting = asyncio.create_task(pool.handle_http(HttpRequest("GET", "/c")))
        await asyncio.sleep(0)  # let the second call reach the pool's queue
        pool.close()
        store.release.set()
        answered = await inside
        try:
            await waiting
        except asyncio.CancelledError as cancelled:
            return answered, cancelled
        return answered, None

    answered, cancelled = asyncio.run(scenario())
    assert (answered.status, answered.body) == (200, b"c -> 1")
    assert cancelled is not None, "a request still waiting for an instance was served after close"
    assert store.data == {("default", "c"): 1}
