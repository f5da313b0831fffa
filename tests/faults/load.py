"""The fault suite's client and figures: a bounded HTTP load loop against a deployed app,
the fault window it saw, and the one line each fault test prints.

A fault test starts the load, injects its fault (``fault_at``), waits for the control
plane to converge (wadm status and host inventories, polled until true), then asks the
load for ``SETTLE_REQUESTS`` successes in a row after that point. The figures:
- served / failed: every request the loop made;
- converged: seconds from the fault to the later of the control plane converging and the
  last failed request, i.e. until the lattice is whole AND clients are served again.
A failure that ended before the fault is a bug the test reports (errors only during the
fault window); so is any failure among the settling requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit

# Successes in a row, after the control plane converged, that say clients are served again.
SETTLE_REQUESTS = 30
REQUEST_TIMEOUT = 5.0  # a request into a dead listener or a stuck call counts as failed;
# slower answers count as served (a loaded CI machine answers in seconds at times)


@dataclass(frozen=True)
class Outcome:
    started: float  # time.monotonic()
    ended: float
    ok: bool
    detail: str  # status and body, or the error


@dataclass
class Load:
    """Sequential GETs of ``url`` from a thread (one client, like a curl loop), at most
    ``max_requests`` and ``max_seconds``, ``pause`` seconds apart: bounded whatever the
    fault does, so a hung lattice fails the test instead of hanging CI."""

    url: str
    max_requests: int = 4000
    max_seconds: float = 90.0
    pause: float = 0.05
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._gate = threading.Lock()  # held around each request; paused() holds it too
        self._thread = threading.Thread(target=self._run, name="fault-load", daemon=True)
        parts = urlsplit(self.url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._path = parts.path or "/"

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=REQUEST_TIMEOUT + 5)

    def _run(self) -> None:
        started_loop = time.monotonic()
        while not self._stop.is_set() and len(self.outcomes) < self.max_requests:
            if time.monotonic() - started_loop > self.max_seconds:
                break
            with self._gate:
                self.outcomes.append(self._one())
            self._stop.wait(self.pause)

    def _one(self) -> Outcome:
        started = time.monotonic()
        conn = http.client.HTTPConnection(self._host, self._port, timeout=REQUEST_TIMEOUT)
        try:
            conn.request("GET", self._path)
            response = conn.getresponse()
            body = response.read()
            ok = response.status == 200
            detail = f"{response.status} {body[:80]!r}"
        except (OSError, http.client.HTTPException) as error:
            ok, detail = False, f"{type(error).__name__}: {error}"
        finally:
            conn.close()
        return Outcome(started, time.monotonic(), ok, detail)

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """No request in flight or sent while the block runs (a fault between two
        requests: what the first request after it meets)."""
        await asyncio.to_thread(self._gate.acquire)
        try:
            yield
        finally:
            self._gate.release()

    # reading the outcomes ----------------------------------------------------------------
    @property
    def served(self) -> int:
        return sum(o.ok for o in list(self.outcomes))

    @property
    def failed(self) -> int:
        return sum(not o.ok for o in list(self.outcomes))

    def failures_before(self, moment: float) -> list[Outcome]:
        return [o for o in list(self.outcomes) if not o.ok and o.ended < moment]

    def last_failure_end(self, after: float) -> float | None:
        ends = [o.ended for o in list(self.outcomes) if not o.ok and o.ended >= after]
        return max(ends, default=None)

    async def until_served(self, count: int, timeout: float = 30.0) -> None:
        """Wait for ``count`` successes (the app answers before the fault)."""
        await self.until(lambda: self.served >= count, f"{count} requests served", timeout)

    async def until_failed(self, after: float, timeout: float = 30.0) -> None:
        """Wait for a request started after ``after`` to fail (the fault is felt)."""

        def felt() -> bool:
            return any(not o.ok and o.started >= after for o in list(self.outcomes))

        await self.until(felt, "failed request", timeout)

    async def settle(self, after: float, timeout: float = 45.0) -> None:
        """Wait for ``SETTLE_REQUESTS`` requests started after ``after`` and require every
        one of them served (clients see no error once the lattice has converged); a
        failure among them raises at once with what the client got."""

        def tail() -> list[Outcome]:
            return [o for o in list(self.outcomes) if o.started >= after]

        def settled() -> bool:
            seen = tail()
            if failed := [o for o in seen if not o.ok]:
                raise AssertionError(
                    f"{len(failed)} of {len(seen)} requests failed after the lattice "
                    f"converged, first: {failed[0].detail}"
                )
            return len(seen) >= SETTLE_REQUESTS

        await self.until(settled, f"{SETTLE_REQUESTS} requests after convergence", timeout)

    async def until(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        """Wait for ``condition()`` while the load runs (it fails if the load stopped)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if not self._thread.is_alive():
                raise AssertionError(f"the load loop reached its bound before {what}")
            if time.monotonic() > deadline:
                last = self.outcomes[-1].detail if self.outcomes else "no request yet"
                raise AssertionError(f"no {what} within {timeout:.0f} s; last: {last}")
            await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Figures:
    fault: str
    served: int
    failed: int
    converged_seconds: float
    slowest_served: float  # seconds: how long a client waited at worst for an answer
    failures: tuple[str, ...]  # what the client got, at seconds from the fault

    def line(self) -> str:
        return (
            f"FAULT {self.fault}: requests served {self.served} / failed {self.failed} "
            f"(slowest served {self.slowest_served:.2f} s), "
            f"converged in {self.converged_seconds:.1f} s"
        )


# This process's figure lines, for the test's report (tests/faults/conftest.py): under
# pytest-xdist a worker's prints never reach the terminal, its reports' properties do.
REPORTED: list[str] = []
FIGURES_PROPERTY = "fault figures"


def wall_clock(moment: float) -> str:
    """A ``time.monotonic()`` moment as UTC wall-clock time, as the processes' logs show it."""
    wall = moment + time.time() - time.monotonic()
    return time.strftime("%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1000):03d} UTC"


def figures(
    fault: str, load: Load, fault_at: float, control_plane_at: float, since: float | None = None
) -> Figures:
    """The fault's figures once the load has settled; checks that no request failed before
    the fault (errors only during the window). Seconds to converge count from ``since``
    when the test held the fault on (the moment it ended it), else from the fault."""
    early = load.failures_before(fault_at)
    assert not early, f"requests failed before the fault: {early[0].detail}"
    recovered = max(control_plane_at, load.last_failure_end(fault_at) or fault_at)
    failures = tuple(
        f"{o.started - fault_at:+.2f} s ({wall_clock(o.started)}): {o.detail}"
        for o in list(load.outcomes)
        if not o.ok
    )
    slowest = max((o.ended - o.started for o in list(load.outcomes) if o.ok), default=0.0)
    converged = recovered - (since or fault_at)
    result = Figures(fault, load.served, load.failed, converged, slowest, failures)
    print(result.line())
    REPORTED.append(result.line())
    return result
