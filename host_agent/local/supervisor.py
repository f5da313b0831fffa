"""Detached processes that outlive the command that started them.

Each process has a name, a pidfile and a log under one state folder. ``start`` is
idempotent (a live process with the same name is reused), ``stop_async`` sends SIGTERM,
waits for the exit, then SIGKILL. A pidfile records the pid and the process's start time
(from /proc), and is trusted only if both still match, so a recycled pid is never
signalled by mistake.

Waiting is asynchronous (the Pulumi provider serves every resource on one event loop,
so a blocking wait would stall all of them): a process's exit is awaited on its pidfd,
which becomes readable when the process ends. ``stop`` is the same, for synchronous
callers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ManagedProcess:
    name: str
    state_dir: Path

    @property
    def pidfile(self) -> Path:
        return self.state_dir / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.state_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The live pid of this process, or None (stale pidfiles are removed)."""
        try:
            pid_text, _, started = self.pidfile.read_text().partition("\n")
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        if _start_time(pid) != started.strip():
            self.pidfile.unlink(missing_ok=True)
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def start(
        self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> tuple[int, bool]:
        """(pid, started?) — an already running process is left alone."""
        existing = self.pid()
        if existing is not None:
            return existing, False
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.logfile.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,  # not killed with the terminal or `make`
            )
        self.pidfile.write_text(f"{proc.pid}\n{_start_time(proc.pid)}\n")
        return proc.pid, True

    def exited_early(self) -> bool:
        return self.pidfile.exists() and self.pid() is None

    async def stop_async(self, timeout: float = 15.0) -> bool:
        """Stop it if it runs (SIGTERM, then SIGKILL after ``timeout``); True if something
        was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not await wait_for_exit(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            await wait_for_exit(pid, 5.0)
        self.pidfile.unlink(missing_ok=True)
        return True

    def stop(self, timeout: float = 15.0) -> bool:
        """``stop_async`` for synchronous callers."""
        return run_blocking(self.stop_async(timeout))


class StartError(RuntimeError):
    """A process could not be started; the message says what to do."""


class PortTaken(StartError):
    """The port is held by a process this command did not start."""

    def __init__(self, port: int, fix: str) -> None:
        super().__init__(
            f"port {port} is taken by a process this command did not start; stop it or {fix}"
        )
        self.port = port


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port`` (blocks at most 0.2 s;
    for synchronous callers)."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


async def listening_async(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def start_server(
    proc: ManagedProcess, argv: list[str], port: int, fix: str, timeout: float = 20.0
) -> tuple[int, bool]:
    """Start a server process unless it already runs, and wait until ``port`` answers.
    (pid, started?). A port held by a process we did not start is refused with ``fix``."""
    existing = proc.pid()
    if existing is not None:
        return existing, False
    if await listening_async(port):
        raise PortTaken(port, fix)
    pid, _ = proc.start(argv)
    exited = asyncio.ensure_future(wait_for_exit(pid, timeout))
    try:
        deadline = time.monotonic() + timeout
        while not await listening_async(port):
            if (exited.done() and exited.result()) or time.monotonic() > deadline:
                raise StartError(f"{proc.name} did not start; see {proc.logfile}")
            # No event says "listening"; retry soon, or at once if the process dies.
            await asyncio.wait([exited], timeout=0.05)
    finally:
        exited.cancel()
    return pid, True


async def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait until process ``pid`` has exited (on its pidfd, readable once it ends), at
    most ``timeout`` seconds; True if it is gone."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[None] = loop.create_future()

        def exited() -> None:
            if not gone.done():
                gone.set_result(None)

        loop.add_reader(fd, exited)
        try:
            await asyncio.wait_for(gone, timeout)
        except TimeoutError:
            pass
        finally:
            loop.remove_reader(fd)
    finally:
        os.close(fd)
    return _start_time(pid) is None


def run_blocking(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to completion for a synchronous caller: on this thread when no event
    loop runs here, else on a worker thread (never nested in the caller's loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


def _start_time(pid: int) -> str | None:
    """When the process started (clock ticks since boot), or None if it is gone; zombies
    (exited, not yet reaped) count as gone and are reaped when they are our children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    if fields[0] == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return None
    return fields[19]  # field 22 of stat; the first two were cut off with the name
