"""scripts/drift-check.sh with the real Pulumi CLI on a real local lattice (the e2e
program: a Lattice, two Hosts, the counter Application), driven the way CI drives it:
the backend and passphrase in the environment, exit 0 in sync, 1 drifted (naming what),
2 could not check (saying why).

The module's tests share one stack; each starts from ``in_sync``, which repairs whatever
an earlier test broke with one `pulumi up`. The last test drives the Host and Lattice
handlers in process: reading machines that SSH cannot reach fails, naming them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from host_agent.lattice.client import CtlClient
from pulumi_wasmcloud.provider.host_resource import HostResource
from pulumi_wasmcloud.provider.lattice_resource import LatticeResource
from pulumi_wasmcloud.provider.values import plain, to_props
from tests.lattice import ROOT, free_port, run_async
from tests.machines import KeyPair
from tests.pulumi_cli import Stack, e2e_stack

pytestmark = pytest.mark.slow  # a Pulumi up per test, like the e2e stacks

SCRIPT = ROOT / "scripts" / "drift-check.sh"
STACK = "drift"


def drift_check(stack: Stack, **env: str) -> subprocess.CompletedProcess[str]:
    """The script as a CI job runs it: everything it needs in the environment."""
    return subprocess.run(
        [str(SCRIPT), "--stack", STACK, "--cwd", str(stack.dir)],
        env={**stack.env, **env},
        capture_output=True,
        text=True,
        timeout=stack.command_timeout,
        check=False,
    )


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its parent counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def kill_and_wait(pid: int, sig: signal.Signals, timeout: float = 30.0) -> None:
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while not gone(pid):  # no event tells of another process's exit
        assert time.monotonic() < deadline, f"process {pid} still runs {timeout}s after {sig}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with e2e_stack(tmp_path_factory.mktemp("drift-check"), STACK) as stack:
        yield stack


@pytest.fixture
def in_sync(stack: Stack) -> Stack:
    """The stack deployed with the program's defaults and nothing drifted."""
    if drift_check(stack).returncode != 0:
        repaired = stack.up(ok=False)
        if repaired.returncode != 0 and "run `pulumi up` again" in repaired.stdout:
            # After nats-server restarts, the hosts rejoining while the Application plans
            # can fail one up ("the lattice changed during the update"); it says what to do.
            stack.up()
        else:
            assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    return stack


def test_a_clean_stack_exits_0_and_says_in_sync(in_sync: Stack) -> None:
    done = drift_check(in_sync)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == f"drift-check: stack {STACK}: in sync (exit 0): 4 resource(s) read\n"


def test_a_hand_scaled_component_exits_1_and_names_the_app_and_component(in_sync: Stack) -> None:
    stack = in_sync
    outputs = stack.outputs()
    host, planned = sorted(outputs["placement"]["counter"].items())[0]
    # The controller would scale it back within a heartbeat (as wadm does): it is down,
    # which is drift of the Lattice too.
    kill_and_wait(stack.pid("controller"), signal.SIGTERM)

    async def scale_by_hand() -> None:
        nc = await nats.connect(stack.nats_url)
        try:
            scaled = await nc.subscribe("wasmbus.evt.default.component_scaled")
            image = f"file://{ROOT}/examples/counter/build/counter.wasm"
            await CtlClient(nc, "default").scale_component(
                outputs["hosts"][host], "counter-counter", image, planned + 2
            )
            while True:  # the host says it runs the new count
                event = json.loads((await scaled.next_msg(timeout=30)).data)["data"]
                if event["component_id"] == "counter-counter":
                    assert event["max_instances"] == planned + 2, event
                    return
        finally:
            await nc.close()

    asyncio.run(scale_by_hand())
    done = drift_check(stack)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"drift-check: stack {STACK}: drifted (exit 1): 2 of 4 "), lines
    assert "  wasmcloud:index:Application counter: differs: would be updated" in lines
    assert f'    placement.counter["{host}"]: {planned + 2} => {planned}' in lines
    assert "  wasmcloud:index:Lattice lattice: differs: would be updated" in lines
    assert "    running: false => true" in lines


def test_a_stopped_host_exits_1_and_names_the_host(in_sync: Stack) -> None:
    stack = in_sync
    kill_and_wait(stack.pid("host-e2e-edge"), signal.SIGKILL)
    done = drift_check(stack)
    assert done.returncode == 1, done.stdout + done.stderr
    section = done.stdout.split("  wasmcloud:index:Host e2e-edge: differs: would be updated\n")
    assert len(section) == 2, done.stdout
    assert section[1].startswith("    running: false => true\n"), done.stdout
    assert "wasmcloud:index:Host e2e-core" not in done.stdout  # the other host runs


def test_an_unreachable_lattice_exits_2_with_the_reason(in_sync: Stack) -> None:
    stack = in_sync
    kill_and_wait(stack.pid("nats-server"), signal.SIGKILL)
    done = drift_check(stack)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"drift-check: stack {STACK}: could not check (exit 2)"
    reason = f"cannot reach NATS at {stack.nats_url}"
    # Every resource that reads the lattice says so; none is reported drifted.
    for resource in ("Host e2e-core", "Host e2e-edge", "Application counter"):
        assert any(
            line.startswith(f"  wasmcloud:index:{resource}: ") and reason in line for line in lines
        ), done.stdout
    assert "would be" not in done.stdout


def test_refused_credentials_exit_2_with_the_reason(in_sync: Stack) -> None:
    done = drift_check(in_sync, PULUMI_CONFIG_PASSPHRASE="not-the-passphrase")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f"drift-check: stack {STACK}: could not check (exit 2)",
        "  getting stack configuration: get stack secrets manager: incorrect passphrase",
    ]


def closed_machine(name: str) -> dict[str, object]:
    """An SshMachine's wire map for a loopback port nothing listens on: SSH is refused,
    as for a machine that is down or a network that does not reach it."""
    return {
        "name": name,
        "host": "127.0.0.1",
        "port": free_port(),
        "user": "root",
        "privateKey": KeyPair.generate().private_openssh,
        "hostKey": None,
        "verifyHostKey": True,
        "bastion": None,
        "sudo": None,
    }


@run_async
async def test_reads_of_machines_that_cannot_be_reached_fail_instead_of_reporting_drift() -> None:
    """A refresh that cannot reach a machine says so (the drift check's exit 2), rather
    than report its host stopped or its lattice drifted (exit 1)."""
    hosts = HostResource()
    news = {"name": "edge", "natsUrl": "nats://127.0.0.1:4222", "machine": closed_machine("edge-1")}
    checked = await hosts.check({}, news)
    assert checked.failures == []
    # As the engine hands state back: secrets unwrapped.
    host = plain(to_props({**checked.inputs, "hostId": "NHOST", "seed": "SHOST", "hostKeys": {}}))
    with pytest.raises(RuntimeError) as raised:
        await hosts.read("NHOST", host)
    said = str(raised.value)
    assert said.startswith("cannot tell whether host edge runs on edge-1: cannot reach edge-1 at ")
    assert "nothing was changed" in said

    lattices = LatticeResource()
    checked = await lattices.check(
        {}, {"lattice": "default", "cluster": [closed_machine("core-1")]}
    )
    assert checked.failures == []
    with pytest.raises(RuntimeError) as raised:
        await lattices.read(
            "default@nats://127.0.0.1:4222", plain(to_props({**checked.inputs, "hostKeys": {}}))
        )
    said = str(raised.value)
    assert said.startswith("cannot read lattice default on core-1: core-1: cannot reach core-1 at ")
    assert "nothing was changed" in said
