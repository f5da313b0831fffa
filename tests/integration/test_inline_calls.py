"""Calls on the event loop's thread (runtime/inline.py): a short component whose imports
are all answered in-process runs there after its warm-up in workers; a call that runs
past the inline budget is interrupted by wasmtime's epoch, answered again from a worker,
and does not hold the loop for its whole length; the component then stays in workers.
The guest is a WAT component that counts to the number it is given (no imports)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from host_agent.runtime.engine import component_engine
from host_agent.runtime.image import ComponentImage, load_component
from host_agent.runtime.inline import INLINE_WARMUP, runs_locally
from host_agent.runtime.instance import ComponentInstance, NoKeyValue
from host_agent.runtime.pool import InstancePool
from tests.lattice import VENV_BIN

SPIN_WAT = """
(component
  (core module $m
    (func (export "spin") (param i64) (result i64)
      (local $i i64)
      (block $done
        (loop $l
          (br_if $done (i64.ge_u (local.get $i) (local.get 0)))
          (local.set $i (i64.add (local.get $i) (i64.const 1)))
          (br $l)))
      (local.get $i)))
  (core instance $i (instantiate $m))
  (func $spin (param "n" u64) (result u64) (canon lift (core func $i "spin")))
  (instance $api (export "spin" (func $spin)))
  (export "test:spin/spin@0.1.0" (instance $api))
)
"""
LONG = 3_000_000_000  # several seconds of counting: far past the inline budget


@pytest.fixture(scope="module")
def spin(tmp_path_factory: pytest.TempPathFactory) -> ComponentImage:
    wasm: Path = tmp_path_factory.mktemp("spin") / "spin.wasm"
    subprocess.run(
        [str(VENV_BIN / "wasm-tools"), "parse", "-", "-o", str(wasm)],
        input=SPIN_WAT.encode(),
        check=True,
    )
    return load_component(wasm.read_bytes(), component_engine())


async def warmed_pool(image: ComponentImage) -> InstancePool:
    pool = InstancePool(
        lambda: ComponentInstance(image, NoKeyValue(), "spin"),
        2,
        inline=runs_locally(image.imports),
        name="spin",
    )
    await pool.fill()
    for _ in range(INLINE_WARMUP):
        assert await pool.call("test:spin/spin", "spin", [10]) == 10
    deadline = time.monotonic() + 10
    while not pool.runs_inline:  # the inline instance is made in a thread
        assert time.monotonic() < deadline, "the short component never ran inline"
        await asyncio.sleep(0.01)
    return pool


def test_a_short_component_with_local_imports_runs_on_the_loop_thread(
    spin: ComponentImage,
) -> None:
    async def scenario() -> None:
        pool = await warmed_pool(spin)
        assert await pool.call("test:spin/spin", "spin", [1000]) == 1000
        assert pool.runs_inline
        pool.close()

    asyncio.run(scenario())


def test_a_call_past_the_inline_budget_is_answered_from_a_worker_without_holding_the_loop(
    spin: ComponentImage,
) -> None:
    async def scenario() -> tuple[int, float, float, bool]:
        pool = await warmed_pool(spin)
        gaps: list[float] = []
        done = asyncio.Event()

        async def beat() -> None:  # how long the loop goes without running this
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        beating = asyncio.create_task(beat())
        await asyncio.sleep(0.02)
        started = time.monotonic()
        result = await pool.call("test:spin/spin", "spin", [LONG])
        took = time.monotonic() - started
        done.set()
        await beating
        still_inline = pool.runs_inline
        pool.close()
        return result, took, max(gaps), still_inline

    result, took, longest_gap, still_inline = asyncio.run(scenario())
    assert result == LONG  # answered in full, by a worker
    # The loop was held for the budget (a few 10 ms ticks), not for the whole call.
    assert longest_gap < took / 3, (longest_gap, took)
    assert not still_inline  # a component that ran that long stays in workers
