"""When a component's calls may run on the host's event-loop thread instead of a worker.

A call handed to a worker thread costs two hand-overs of the GIL (the loop to the worker,
the worker back to the loop), and each waits until the thread holding the GIL lets go:
on hello-wat they were about half of a request's time in the host (~650 of ~1,300 us, two
cores under load), for a guest that itself runs ~200 us. A component whose every import
is answered inside this process (nothing waits on the event loop: no keyvalue, blobstore,
outgoing HTTP or linked-component call) and whose calls are short can run on the loop's
thread directly, which is what the GIL makes of a Python host anyway.

The rules (pure, below; the pool applies them):
- only components whose imports are all local (`runs_locally`);
- only after INLINE_WARMUP calls in workers with a median run under INLINE_MAX_SECONDS
  (of the thread's CPU time: a thread descheduled on a busy machine is not "slow");
- never longer than the epoch budget: an inline call that runs past it is interrupted
  by wasmtime (engine.py ticks the epoch) and run again in a worker; as is one whose
  guest asks for a request body still arriving (it would have to wait on the loop);
  running again is safe because such a component has no effect outside its instance;
- a component whose inline call took over INLINE_DEMOTE_SECONDS of CPU, or was interrupted,
  goes back to workers for the life of its pool.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

INLINE_WARMUP = 20
INLINE_MAX_SECONDS = 0.001
INLINE_DEMOTE_SECONDS = 0.005
# The epoch ticks every EPOCH_TICK_SECONDS (engine.py); an inline call may run for
# INLINE_DEADLINE_TICKS of them (50-100 ms) before wasmtime interrupts it.
INLINE_DEADLINE_TICKS = 2
# A worker's call: a deadline no call reaches (over a thousand years of ticks).
NO_DEADLINE_TICKS = 1 << 40

# Imports answered inside the host process without the event loop.
_LOCAL_PREFIXES = (
    "wasi:http/types",
    "wasi:io/",
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:logging/",
    "wasi:filesystem/",  # trapped (no preopens): answered locally all the same
    "wasi:sockets/",  # trapped likewise
)


class RunInWorker(Exception):
    """Raised by a host function that would have to wait on the event loop when its call
    runs inline (a request body still arriving): the call runs again in a worker."""


def runs_locally(imports: Iterable[str]) -> bool:
    """Whether every import (``namespace:package/interface``) is answered in-process."""
    return all(name.startswith(_LOCAL_PREFIXES) for name in imports)


def warm_enough(runs: list[float]) -> bool:
    """Whether the calls measured in workers allow running inline from now on."""
    return len(runs) >= INLINE_WARMUP and statistics.median(runs) < INLINE_MAX_SECONDS


def body_may_follow(headers: Iterable[tuple[str, bytes]]) -> bool:
    """Whether an HTTP request with these headers may have a body (content-length above
    0, or a transfer-encoding): such a request goes straight to a worker, where reading
    its body can wait."""
    for name, value in headers:
        if name == "transfer-encoding":
            return True
        if name == "content-length" and value.strip() not in (b"0", b""):
            return True
    return False
