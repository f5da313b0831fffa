"""The event loop every NATS-speaking process of ours runs on: uvloop.

Why: on a secured lattice every NATS connection is TLS, and the standard asyncio loop
runs TLS through its pure-Python SSL transport, which made a control request on a
secured lattice 1.35-1.5x as slow as on a plain one (benchmarks/ctl.py). uvloop does the
TLS record layer in Cython; with it, secured stays within the 1.3x the project allows.
uvloop is a pinned dependency, so it is in every machine's wheelhouse; where it cannot be
imported (a platform it has no wheel for, such as Windows) the standard loop runs, which
is slower on TLS but behaves the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None (asyncio's own loop) without uvloop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop above."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
