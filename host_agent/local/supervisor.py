"""Detached processes that outlive the command that started them.

Each process has a name, a pidfile and a log under one state folder. ``start`` is
idempotent (a live process with the same name is reused), ``stop`` sends SIGTERM, waits,
then SIGKILL. A pidfile records the pid and the process's start time (from /proc), and is
trusted only if both still match, so a recycled pid is never signalled by mistake.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


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

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop it if it runs; True if something was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _start_time(pid) is not None:
            time.sleep(0.1)
        if _start_time(pid) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)
        return True


class StartError(RuntimeError):
    """A process could not be started; the message says what to do."""


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def start_server(
    proc: ManagedProcess, argv: list[str], port: int, fix: str, timeout: float = 20.0
) -> tuple[int, bool]:
    """Start a server process unless it already runs, and wait until ``port`` answers.
    (pid, started?). A port held by a process we did not start is refused with ``fix``."""
    existing = proc.pid()
    if existing is not None:
        return existing, False
    if listening(port):
        raise StartError(
            f"port {port} is taken by a process this command did not start; stop it or {fix}"
        )
    pid, _ = proc.start(argv)
    deadline = time.monotonic() + timeout
    while not listening(port):
        if proc.exited_early() or time.monotonic() > deadline:
            raise StartError(f"{proc.name} did not start; see {proc.logfile}")
        time.sleep(0.05)
    return pid, True


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
