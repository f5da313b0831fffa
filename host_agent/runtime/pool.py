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

A component whose imports are all answered in-process and whose calls prove short runs
them on the event loop's thread instead, on one more instance (runtime/inline.py says
when, and why that is safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.runtime.inline import (
    INLINE_DEADLINE_TICKS,
    INLINE_DEMOTE_SECONDS,
    NO_DEADLINE_TICKS,
    RunInWorker,
    body_may_follow,
    warm_enough,
)
from host_agent.runtime.instance import ComponentTrap

log = logging.getLogger(__name__)


class PooledInstance(Protocol):
    """What the pool needs of an instance: a ComponentInstance (the Python host's,
    runtime/instance.py) or a NativeHttpInstance (runtime/native_http.py)."""

    component_id: str

    def set_epoch_deadline(self, ticks: int) -> None: ...

    def handle_http(self, request: HttpRequest) -> HttpResponse: ...

    def call_export(self, interface: str, function: str, args: list[Any]) -> Any: ...


# What a worker runs for one call: the instance's method, given the instance.
Work = Callable[[PooledInstance], Any]
# The log lines that say where a pool's calls run from now on ("{name}: {note}"); the
# request-path benchmark reads them back.
RUNS_INLINE = "calls run on the event loop's thread from now on"
RUNS_IN_WORKERS = "calls run in worker threads from now on"


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


_AGAIN = object()  # an inline call that must run again in a worker


class InstancePool:
    def __init__(
        self,
        make_instance: Callable[[], PooledInstance],
        size: int,
        *,
        inline: bool = False,
        name: str = "component",
    ) -> None:
        self._make = make_instance
        self._name = name
        self._size = size
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers = 0  # started worker threads (each owns an instance)
        self._busy = 0  # calls handed to workers and not answered yet
        self._closed = False
        self._inline_allowed = inline  # every import answered in-process
        self._warm_runs: list[float] = []  # worker run times, while deciding
        self._inline: PooledInstance | None = None  # the loop thread's, once promoted
        self._inline_starting = False
        self._needs_worker = False  # set by an inline call that must run in a worker

    @property
    def size(self) -> int:
        return self._size

    @property
    def runs_inline(self) -> bool:
        """Whether calls run on the event loop's thread now."""
        return self._inline is not None

    async def fill(self) -> None:
        """Create the first instance now (it surfaces instantiation errors); the rest lazily."""
        loop = asyncio.get_running_loop()
        started: asyncio.Future[PooledInstance] = loop.create_future()

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

    def _serve(self, instance: PooledInstance) -> None:
        """A worker thread's loop: take calls, run them in the caller's context."""
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            result = None
            error: BaseException | None = None
            try:
                started = time.thread_time()
                result = job.context.run(job.work, instance)
                if self._inline_allowed and not self._inline_starting:
                    self._measured(time.thread_time() - started, job.loop)
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

    def _measured(self, seconds: float, loop: asyncio.AbstractEventLoop) -> None:
        """In a worker: one more run time; short enough runs start the inline instance."""
        self._warm_runs.append(seconds)
        with self._lock:
            if self._inline_starting or not warm_enough(self._warm_runs):
                return
            self._inline_starting = True
        self._start_inline(loop)

    def _start_inline(self, loop: asyncio.AbstractEventLoop) -> None:
        def make() -> None:
            try:
                instance = self._make()
            except BaseException as error:
                log.warning("no inline instance: %s", error)
                return
            # The loop may have closed meanwhile: the host is stopping.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._promote, instance)

        threading.Thread(target=make, name="component_inline", daemon=True).start()

    def _promote(self, instance: PooledInstance) -> None:
        if self._inline_allowed and not self._closed:
            self._inline = instance
            log.info("%s: %s", self._name, RUNS_INLINE)

    def _demote(self, why: str) -> None:
        log.info("%s: %s (%s)", self._name, RUNS_IN_WORKERS, why)
        self._inline_allowed = False
        self._inline = None

    def _run_inline(self, instance: PooledInstance, work: Work) -> Any:
        """One call on this (the loop's) thread, within the epoch budget; _AGAIN if it
        must run again in a worker."""
        self._needs_worker = False
        instance.set_epoch_deadline(INLINE_DEADLINE_TICKS)
        started = time.thread_time()
        try:
            return work(instance)
        except ComponentTrap as trap:
            self._inline = None  # a trapped instance is dead
            if self._needs_worker:
                self._start_inline(asyncio.get_running_loop())
                return _AGAIN
            if "wasm trap: interrupt" in str(trap):
                self._demote(f"a call ran past the inline budget of {INLINE_DEADLINE_TICKS} ticks")
                return _AGAIN
            self._start_inline(asyncio.get_running_loop())
            raise _Replaced(trap) from None
        finally:
            instance.set_epoch_deadline(NO_DEADLINE_TICKS)
            elapsed = time.thread_time() - started
            if elapsed > INLINE_DEMOTE_SECONDS and self._inline_allowed:
                self._demote(f"a call took {1000 * elapsed:.1f} ms of CPU")

    def _body_needs_worker(self) -> bytes:
        self._needs_worker = True
        raise RunInWorker("the request body is still arriving")

    async def _run(self, work: Work, inline: Work | None = None) -> Any:
        if self._closed:
            raise asyncio.CancelledError()
        instance = self._inline
        if instance is not None and inline is not None:
            outcome = self._run_inline(instance, inline)
            if outcome is not _AGAIN:
                return outcome
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
        work: Work = lambda instance: instance.handle_http(request)  # noqa: E731
        inline: Work | None = None
        if self._inline is not None:
            if request.pending_body is None:
                inline = work
            elif not body_may_follow(request.headers):
                # No body expected: run inline; a guest that reads one anyway runs again
                # in a worker, which can wait for it.
                quick = replace(request, pending_body=self._body_needs_worker)
                inline = lambda instance: instance.handle_http(quick)  # noqa: E731
        try:
            result: HttpResponse = await self._run(work, inline)
        except _Replaced as replaced:
            return HttpResponse.text(500, f"component trapped: {replaced.trap}")
        return result

    async def call(self, interface: str, function: str, args: list[Any]) -> Any:
        """Call an exported function (a wRPC caller's request); a trap replaces the
        instance and is raised again for the caller to answer with."""
        work: Work = lambda instance: instance.call_export(interface, function, args)  # noqa: E731
        try:
            return await self._run(work, work)
        except _Replaced as replaced:
            raise replaced.trap from None

    def close(self) -> None:
        """Stop the workers once their current call is answered; calls still waiting for
        a worker are cancelled."""
        self._closed = True
        self._inline = None
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.loop.call_soon_threadsafe(job.future.cancel)
        for _ in range(self._workers):
            self._jobs.put(None)
