"""N instances of one component, each owned by one worker thread.

`max_instances` from component.scale is the pool size: it bounds how many requests run
in the component at once. Calls run in worker threads so a component blocked on a
key-value round trip does not stall the host's event loop. An instance that traps is
thrown away and replaced; the request that hit the trap gets a 500.

Why not a ThreadPoolExecutor: each call through one (submit, a concurrent Future chained
to an asyncio Future, then an idle-instance queue) cost about twice the hop of a plain
queue, on every request of a guest whose own work is a few hundred microseconds. Here a
worker thread owns its instance and takes calls from one queue; the answer goes back
with one `call_soon_threadsafe`. Workers (and their instances) start lazily, one more
whenever a call finds all the started ones busy, up to the pool's size.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.runtime.instance import ComponentInstance, ComponentTrap

log = logging.getLogger(__name__)

# What a worker runs for one call: the instance's method, given the instance.
Work = Callable[[ComponentInstance], Any]


class _Job:
    __slots__ = ("context", "future", "loop", "work")

    def __init__(
        self,
        work: Work,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        context: contextvars.Context,
    ) -> None:
        self.work = work
        self.loop = loop
        self.future = future
        self.context = context


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """On the event loop: hand a worker's answer to the waiting call (unless it gave up)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _Replaced(Exception):
    """A call trapped; carries the trap after the worker replaced its instance."""

    def __init__(self, trap: ComponentTrap) -> None:
        super().__init__(str(trap))
        self.trap = trap


class InstancePool:
    def __init__(self, make_instance: Callable[[], ComponentInstance], size: int) -> None:
        self._make = make_instance
        self._size = size
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers = 0  # started worker threads (each owns an instance)
        self._busy = 0  # calls handed to workers and not answered yet
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    async def fill(self) -> None:
        """Create the first instance now (it surfaces instantiation errors); the rest lazily."""
        loop = asyncio.get_running_loop()
        started: asyncio.Future[ComponentInstance] = loop.create_future()

        def first() -> None:
            try:
                instance = self._make()
            except BaseException as error:
                loop.call_soon_threadsafe(_settle, started, None, error)
                return
            loop.call_soon_threadsafe(_settle, started, instance, None)
            self._serve(instance)

        self._workers = 1
        threading.Thread(target=first, name="component_0", daemon=True).start()
        try:
            await started
        except BaseException:
            self._workers = 0
            raise

    def _start_worker(self) -> None:
        """Another worker, which makes its own instance (called with the lock held)."""
        number = self._workers
        self._workers += 1

        def run() -> None:
            try:
                instance = self._make()
            except BaseException as error:
                log.warning("a new instance could not be made: %s", error)
                with self._lock:
                    self._workers -= 1
                # The calls waiting for a worker are answered by the ones that run.
                if self._workers == 0:
                    self._fail_waiting(error)
                return
            self._serve(instance)

        threading.Thread(target=run, name=f"component_{number}", daemon=True).start()

    def _fail_waiting(self, error: BaseException) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is None:
                return
            job.loop.call_soon_threadsafe(_settle, job.future, None, error)

    def _serve(self, instance: ComponentInstance) -> None:
        """A worker thread's loop: take calls, run them in the caller's context."""
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            result = None
            error: BaseException | None = None
            try:
                result = job.context.run(job.work, instance)
            except ComponentTrap as trap:
                log.warning("%s trapped: %s; replacing the instance", instance.component_id, trap)
                try:
                    instance = self._make()
                except BaseException as failure:
                    error = failure
                else:
                    error = _Replaced(trap)
            except BaseException as failure:
                error = failure
            job.loop.call_soon_threadsafe(_settle, job.future, result, error)

    async def _run(self, work: Work) -> Any:
        if self._closed:
            raise asyncio.CancelledError()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        # The caller's context goes with the call into the worker thread: the trace span
        # of this invocation is then the parent of the component's keyvalue calls.
        job = _Job(work, loop, future, contextvars.copy_context())
        with self._lock:
            self._busy += 1
            if self._busy > self._workers and self._workers < self._size:
                self._start_worker()
        self._jobs.put(job)
        try:
            return await future
        finally:
            self._busy -= 1

    async def handle_http(self, request: HttpRequest) -> HttpResponse:
        try:
            result: HttpResponse = await self._run(lambda instance: instance.handle_http(request))
        except _Replaced as replaced:
            return HttpResponse.text(500, f"component trapped: {replaced.trap}")
        return result

    async def call(self, interface: str, function: str, args: list[Any]) -> Any:
        """Call an exported function (a wRPC caller's request); a trap replaces the
        instance and is raised again for the caller to answer with."""
        try:
            return await self._run(lambda instance: instance.call_export(interface, function, args))
        except _Replaced as replaced:
            raise replaced.trap from None

    def close(self) -> None:
        """Stop the workers once their current call is answered; calls still waiting for
        a worker are cancelled."""
        self._closed = True
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.loop.call_soon_threadsafe(job.future.cancel)
        for _ in range(self._workers):
            self._jobs.put(None)
