"""The wasmtime Engine hosts run components on.

Concurrency support (the component-model-async machinery) is off: wasmtime 50 loses the
call context when one host call lifts two borrows of handles the guest owns (wasi:blobstore's
``container.write-data(name, borrow<outgoing-value>)`` on a ``container`` it owns traps
with "BUG: deferred host scope has no call context"). Components here are WASI 0.2 and
synchronous, so nothing needs it. Code compiled by such an engine is not valid for a
default one (and the other way round), so its cached artifacts carry their own suffix.

Epoch interruption is on, and a daemon thread per engine advances the epoch every
EPOCH_TICK_SECONDS: a call run on the event loop's thread gets a deadline of a few ticks
(runtime/inline.py), every other call one it never reaches (ComponentInstance sets it).
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wasmtime import Engine

_COMPONENT_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
FLAVOUR = "-sync-epoch"
# Each tick wakes a thread that takes the GIL: 20 a second cost the loop next to nothing.
EPOCH_TICK_SECONDS = 0.05


def component_engine() -> Engine:
    from wasmtime import Config, Engine
    from wasmtime import _bindings as ffi

    config = Config()
    ffi.wasmtime_config_concurrency_support_set(config.ptr(), False)
    config.epoch_interruption = True
    engine = Engine(config)
    _COMPONENT_ENGINES.add(engine)
    _start_epoch_ticker(engine)
    return engine


def _start_epoch_ticker(engine: Engine) -> None:
    """Advance ``engine``'s epoch every tick until the engine is gone."""
    ref = weakref.ref(engine)

    def tick() -> None:
        while True:
            time.sleep(EPOCH_TICK_SECONDS)
            alive = ref()
            if alive is None:
                return
            alive.increment_epoch()
            del alive

    threading.Thread(target=tick, name="epoch_ticker", daemon=True).start()


def cache_flavour(engine: Engine) -> str:
    """What a compiled artifact's cache name adds for this engine's configuration."""
    return FLAVOUR if engine in _COMPONENT_ENGINES else ""
