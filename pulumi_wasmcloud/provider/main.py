"""``pulumi-resource-wasmcloud``: the provider plugin process the Pulumi engine starts.

The engine starts this process anew for every preview, up, refresh and destroy, and
waits for it to start and, at the end, to exit: both are in the time of every command.
So the process imports the provider's core only (the resource types' modules load on
first use, see ``provider.HANDLER_CLASSES``), leaves nats-py's aiohttp (its WebSocket
transport; we dial TCP) unloaded until something uses it, and skips the interpreter's
teardown once everything has stopped.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import logging
import os
import signal
import sys
import threading
import types
from importlib.machinery import ModuleSpec
from typing import Any

from pulumi_wasmcloud import __version__

# Modules imported at start-up by a dependency but used on few paths, loaded when first
# used instead. aiohttp (~0.2 s of every start, most of it its SSL contexts): nats-py
# imports it for its WebSocket transport (we dial nats:// and tls://), host_agent.oci
# for registry pushes, which only an up of an application with registry images makes.
DEFERRED_MODULES = ("aiohttp",)


class DeferredModule(types.ModuleType):
    """Stands in sys.modules for a module until an attribute of it is first read: then
    the real module is imported, takes its place in sys.modules and answers that read
    and every later one through this stand-in. (importlib's LazyLoader does not do here:
    on Python 3.11 an ``import`` statement of a lazy module already executes it.)"""

    def __init__(self, name: str, spec: ModuleSpec) -> None:
        super().__init__(name)
        self.__spec__ = spec  # what ``import name`` checks; reading it loads nothing
        self._deferred_real: types.ModuleType | None = None
        self._deferred_lock = threading.Lock()

    def __getattr__(self, attribute: str) -> Any:  # only for what is not set above
        with self._deferred_lock:
            if self._deferred_real is None:
                if sys.modules.get(self.__name__) is self:
                    del sys.modules[self.__name__]
                self._deferred_real = importlib.import_module(self.__name__)
        return getattr(self._deferred_real, attribute)


def defer_loading(name: str) -> None:
    """A DeferredModule for ``name``; nothing if it is loaded already or not installed."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is not None:
        sys.modules[name] = DeferredModule(name, spec)


class Exit:
    """Leaves the process without the interpreter's teardown (freeing every module's
    objects, botocore's models among them: 0.1-0.4 s the engine waits for at the end of
    each command), once the server has stopped normally. Registered with atexit before
    anything else of ours, so it runs after every other exit handler and after the
    worker threads were joined: only the teardown is skipped."""

    def __init__(self) -> None:
        self.served = False

    def __call__(self) -> None:
        if not self.served:
            return  # an error is on its way out: let Python report it and set the status
        logging.shutdown()  # registered before us (asyncio imports logging): run it now
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


async def _serve(args: list[str], engine: str | None) -> None:
    from pulumi_wasmcloud.provider.provider import WasmcloudProvider, grpc_server

    # The SDK's `experimental.server.main` does the same, minus the interceptor that turns
    # failures into plain sentences (provider.PlainErrors).
    server, port = grpc_server(WasmcloudProvider(engine), __version__, args, engine)
    await server.start()
    sys.stdout.buffer.write(f"{port}\n".encode())  # the engine reads the port from stdout
    sys.stdout.buffer.flush()
    # The engine ends a command with SIGINT. Our own handler, not asyncio.run's cancel
    # of this task: a cancel that reached grpc's wait_for_termination could be lost
    # under load, and the plugin then never ended (CI waited 60 s for it, twice).
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted.set)
    terminated = asyncio.ensure_future(server.wait_for_termination())
    stopping = asyncio.ensure_future(interrupted.wait())
    await asyncio.wait({terminated, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    await server.stop(None)
    terminated.cancel()


def main() -> None:
    args = sys.argv[1:]
    engine = next((arg for arg in args if not arg.startswith("-")), None)
    leave = Exit()
    atexit.register(leave)
    for name in DEFERRED_MODULES:
        defer_loading(name)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args, engine))
    leave.served = True


if __name__ == "__main__":
    main()
