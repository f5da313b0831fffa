"""N instances of one component, each used by one thread at a time.

`max_instances` from component.scale is the pool size: it bounds how many requests run
in the component at once. Calls run in worker threads so a component blocked on a
key-value round trip does not stall the host's event loop. An instance that traps is
thrown away and replaced; the request that hit the trap gets a 500.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.runtime.instance import ComponentInstance, ComponentTrap

log = logging.getLogger(__name__)


class InstancePool:
    def __init__(self, make_instance: Callable[[], ComponentInstance], size: int) -> None:
        self._make = make_instance
        self._size = size
        self._idle: asyncio.Queue[ComponentInstance] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="component")
        self._created = 0

    @property
    def size(self) -> int:
        return self._size

    async def fill(self) -> None:
        """Create the first instance now (it surfaces instantiation errors); the rest lazily."""
        loop = asyncio.get_running_loop()
        first = await loop.run_in_executor(self._executor, self._make)
        self._created = 1
        self._idle.put_nowait(first)

    async def _acquire(self) -> ComponentInstance:
        if self._idle.empty() and self._created < self._size:
            self._created += 1
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(self._executor, self._make)
            except Exception:
                self._created -= 1
                raise
        return await self._idle.get()

    async def handle_http(self, request: HttpRequest) -> HttpResponse:
        instance = await self._acquire()
        loop = asyncio.get_running_loop()
        try:
            # The caller's context goes with the call into the worker thread: the trace span
            # of this invocation is then the parent of the component's keyvalue calls.
            in_context = contextvars.copy_context().run
            return await loop.run_in_executor(
                self._executor, in_context, instance.handle_http, request
            )
        except ComponentTrap as trap:
            log.warning("%s trapped: %s; replacing the instance", instance.component_id, trap)
            instance = await loop.run_in_executor(self._executor, self._make)
            return HttpResponse.text(500, f"component trapped: {trap}")
        finally:
            self._idle.put_nowait(instance)

    async def call(self, interface: str, function: str, args: list[Any]) -> Any:
        """Call an exported function (a wRPC caller's request); a trap replaces the
        instance and is raised again for the caller to answer with."""
        instance = await self._acquire()
        loop = asyncio.get_running_loop()
        try:
            in_context = contextvars.copy_context().run
            return await loop.run_in_executor(
                self._executor, in_context, instance.call_export, interface, function, args
            )
        except ComponentTrap as trap:
            log.warning("%s trapped: %s; replacing the instance", instance.component_id, trap)
            instance = await loop.run_in_executor(self._executor, self._make)
            raise
        finally:
            self._idle.put_nowait(instance)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
