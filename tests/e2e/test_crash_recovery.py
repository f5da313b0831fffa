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
import signal
from collections.abc import Iterator

import pytest

from host_agent.local.supervisor import ManagedProcess, wait_for_exit
from tests.pulumi_cli import Stack, e2e_stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with e2e_stack(tmp_path_factory.mktemp("crash"), "crash") as stack:
        stack.up(preview=True)
        yield stack


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

    stack.up(preview=True)  # what `make up` runs

    restarted = process.pid()
    assert restarted is not None and restarted != pid, f"{victim} was not restarted"
    assert stack.count("crash") == before + 1  # Redis kept the count through the crash
    # Converged: nothing left for another up to do.
    stack.run("preview", "--expect-no-changes", "--diff")
