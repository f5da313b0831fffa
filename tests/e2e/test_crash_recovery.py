"""One `pulumi up` after a crash converges: `kill -9` of nats-server, a host, the
controller or redis-server, then a single `up` (what a user runs once), and the counter
keeps counting from where it was. The real Pulumi CLI on a temporary project
(tests/e2e/program.py), one stack for the module; every scenario starts from whatever
count the stack is at and leaves it converged (`preview --expect-no-changes`), so the
scenarios do not depend on each other's order.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from host_agent.local.supervisor import ManagedProcess, wait_for_exit
from tests.lattice import ROOT, free_port, http_get
from tests.pulumi_cli import cli_environment, write_project

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


class Stack:
    """The e2e program as a Pulumi project + stack in a temporary folder (file backend)."""

    def __init__(self, workdir: Path) -> None:
        program = (Path(__file__).parent / "program.py").read_text()
        self.dir = write_project(workdir / "project", "wasmcloud-crash", program)
        self.state = workdir / "state"
        self.ports = {"natsPort": free_port(), "redisPort": free_port(), "httpPort": free_port()}
        self.env = cli_environment(workdir, "crash")
        self.run("stack", "init", "crash")
        for key, value in {**self.ports, "root": ROOT, "stateDir": self.state}.items():
            self.run("config", "set", "--", key, str(value))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["pulumi", "--non-interactive", *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def up(self) -> subprocess.CompletedProcess[str]:
        return self.run("up", "--yes")  # with its preview first, as `make up` runs it

    def count(self, key: str) -> int:
        """One request to the counter: the count it answers for ``key``."""
        status, body = http_get(f"http://127.0.0.1:{self.ports['httpPort']}/{key}")
        assert status == 200, body
        match = re.fullmatch(rf"{key} -> (\d+)", body.decode())
        assert match, body
        return int(match.group(1))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("crash"))
    try:
        stack.up()
        yield stack
    finally:
        subprocess.run(
            ["pulumi", "--non-interactive", "destroy", "--yes"],
            cwd=stack.dir,
            env=stack.env,
            capture_output=True,
            timeout=600,
        )
        for pidfile in stack.state.glob("*.pid"):  # whatever destroy could not stop
            ManagedProcess(pidfile.stem, stack.state).stop()


# The process each scenario kills, by its pidfile's name in the stack's state folder:
# e2e-core runs the http-server and keyvalue providers, e2e-edge the counter.
VICTIMS = ["nats-server", "host-e2e-core", "host-e2e-edge", "controller", "redis-server"]


@pytest.mark.parametrize("victim", VICTIMS)
def test_one_up_after_kill_9_converges_and_the_count_goes_on(stack: Stack, victim: str) -> None:
    before = stack.count("crash")
    process = ManagedProcess(victim, stack.state)
    pid = process.pid()
    assert pid is not None, f"{victim} does not run before the crash"
    os.kill(pid, signal.SIGKILL)
    assert asyncio.run(wait_for_exit(pid, 30))

    stack.up()

    restarted = process.pid()
    assert restarted is not None and restarted != pid, f"{victim} was not restarted"
    assert stack.count("crash") == before + 1  # Redis kept the count through the crash
    # Converged: nothing left for another up to do.
    stack.run("preview", "--expect-no-changes", "--diff")
