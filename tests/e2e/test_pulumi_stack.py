"""End to end with the real Pulumi CLI and engine: a stack with a Lattice, two Hosts and
the counter Application, driven the way a user drives it (config set, preview, up,
refresh, destroy). The tests share one stack (a Pulumi up costs seconds), but none relies
on another having run: each starts from a fixture that puts the stack where it needs it
(``deployed``: the program's defaults, up and converged; ``empty``: nothing deployed).
Counters are read on paths unique to each test, so no test depends on another's requests.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from host_agent.lattice.client import CtlClient
from host_agent.local.supervisor import listening
from tests.lattice import ROOT, HostProcess, NatsServer
from tests.pulumi_cli import Stack, e2e_stack

pytestmark = pytest.mark.slow


def running_placement(nats_url: str, host_names: dict[str, str]) -> dict[str, dict[str, int]]:
    """Component name -> {host name: instances}, asked from the hosts themselves."""

    async def ask() -> dict[str, dict[str, int]]:
        nc = await nats.connect(nats_url)
        try:
            ctl = CtlClient(nc, "default")
            placement: dict[str, dict[str, int]] = {}
            for host in await ctl.ping_hosts(wait=1.0):
                name = host_names.get(str(host["id"]), str(host["id"]))
                inventory = await ctl.get_inventory(str(host["id"]))
                for component in inventory["components"]:
                    short = component["id"].removeprefix("counter-")
                    placement.setdefault(short, {})[name] = component["max_instances"]
                for provider in inventory["providers"]:
                    placement.setdefault(provider["id"].removeprefix("counter-"), {})[name] = 1
            return placement
        finally:
            await nc.close()

    return asyncio.run(ask())


def wait_for_hosts(nats_url: str, count: int) -> None:
    async def wait() -> None:
        nc = await nats.connect(nats_url)
        try:
            for _ in range(100):
                if len(await CtlClient(nc, "default").ping_hosts(wait=0.3)) >= count:
                    return
                await asyncio.sleep(0.2)
            raise AssertionError(f"fewer than {count} hosts answer pings")
        finally:
            await nc.close()

    asyncio.run(wait())


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its parent counts as exited)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs {timeout}s after SIGTERM"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with e2e_stack(tmp_path_factory.mktemp("pulumi-e2e"), "e2e") as stack:
        yield stack


@pytest.fixture
def empty(stack: Stack) -> Stack:
    """The stack with the program's defaults and nothing deployed."""
    stack.reset_config()
    stack.run("destroy", "--yes")
    return stack


@pytest.fixture
def deployed(stack: Stack) -> Stack:
    """The program's defaults, deployed, with nothing drifted: whatever ran before
    (a destroy, a hand-scaled component, a killed controller, other config)."""
    stack.reset_config()
    if stack.run("preview", "--refresh", "--expect-no-changes", ok=False).returncode != 0:
        stack.up()
        stack.run("preview", "--refresh", "--expect-no-changes")
    return stack


def test_up_serves_the_counter_and_matches_the_preview(empty: Stack) -> None:
    stack = empty
    preview = stack.run("preview", "--diff").stdout
    assert "wasmcloud:index:Application" in preview and "+ 5 to create" in preview
    stack.up()
    assert [stack.get("up-a"), stack.get("up-a"), stack.get("up-b")] == [
        "up-a -> 1",
        "up-a -> 2",
        "up-b -> 1",
    ]
    outputs = stack.outputs()
    names = {host_id: name for name, host_id in outputs["hosts"].items()}
    assert running_placement(stack.nats_url, names) == outputs["placement"]


def test_host_seeds_stay_secret_in_state(deployed: Stack) -> None:
    stack = deployed
    state = json.loads(stack.run("stack", "export").stdout)
    hosts = [
        r["outputs"]
        for r in state["deployment"]["resources"]
        if r["type"] == "wasmcloud:index:Host"
    ]
    assert len(hosts) == 2
    for outputs in hosts:
        assert "ciphertext" in outputs["seed"]  # encrypted with the stack's passphrase
        assert outputs["hostId"].startswith("N")
    assert not re.search(r'"S[A-Z2-7]{57}"', json.dumps(state))  # no nkey seed in clear


def test_a_second_up_changes_nothing(deployed: Stack) -> None:
    stack = deployed
    stack.run("preview", "--expect-no-changes")
    assert "5 unchanged" in stack.up().stdout


def test_preview_shows_the_per_host_placement_change(deployed: Stack) -> None:
    stack = deployed
    assert stack.get("placement") == "placement -> 1"
    stack.config("instances", "5")
    stack.config("spread", json.dumps([{"name": "core", "requirements": {"tier": "core"}}]))
    preview = stack.run("preview", "--diff").stdout
    assert re.search(r"counter\s*:\s*\{[^}]*e2e-core\s*:\s*(\d+ => )?5", preview), preview
    stack.up()
    outputs = stack.outputs()
    assert outputs["placement"]["counter"] == {"e2e-core": 5}
    names = {host_id: name for name, host_id in outputs["hosts"].items()}
    assert running_placement(stack.nats_url, names) == outputs["placement"]
    assert stack.get("placement") == "placement -> 2"  # the same store, still counting


def test_drift_is_reported_by_refresh_and_repaired_by_up(deployed: Stack) -> None:
    stack = deployed
    assert stack.get("drift") == "drift -> 1"
    outputs = stack.outputs()
    host, planned = sorted(outputs["placement"]["counter"].items())[0]
    controller = stack.pid("controller")
    os.kill(controller, 15)  # a dead controller is drift too
    wait_gone(controller)

    async def scale_by_hand() -> None:
        nc = await nats.connect(stack.nats_url)
        image = f"file://{ROOT}/examples/counter/build/counter.wasm"
        host_id = outputs["hosts"][host]
        await CtlClient(nc, "default").scale_component(
            host_id, "counter-counter", image, planned + 2
        )
        await nc.close()

    asyncio.run(scale_by_hand())
    drift = stack.run("preview", "--refresh", "--expect-no-changes", "--diff", ok=False)
    assert drift.returncode != 0
    assert "running: false => true" in drift.stdout
    assert re.search(rf"{host}\s*:\s*{planned + 2} => {planned}", drift.stdout), drift.stdout
    stack.up()
    stack.run("preview", "--refresh", "--expect-no-changes")
    assert stack.get("drift") == "drift -> 2"


def test_a_saved_plan_is_refused_when_the_lattice_changed(deployed: Stack) -> None:
    stack = deployed
    outputs = stack.outputs()
    names = {host_id: name for name, host_id in outputs["hosts"].items()}
    before = running_placement(stack.nats_url, names)
    stack.config("spread", json.dumps([{"name": "blue", "requirements": {"zone": "blue"}}]))
    stack.config("allowUnplaced", "true")
    plan = stack.dir / "plan.json"
    done = stack.run("preview", "--save-plan", str(plan), "--diff")
    assert re.search(r"warning: counter: cannot place counter x\d", done.stderr), done.stderr
    # A host that matches joins after the preview: the placement would differ from the plan.
    nats_server = NatsServer(stack.dir, stack.ports["natsPort"])
    joined = HostProcess(
        nats_server, {"zone": "blue"}, "--allow-file-load", log=stack.dir / "blue.log"
    )
    try:
        wait_for_hosts(stack.nats_url, 3)
        refused = stack.up("--plan", str(plan), ok=False)
        said = refused.stdout + refused.stderr
        assert refused.returncode != 0, said
        # Pulumi's own check: the resource and the property that no longer match the plan.
        assert re.search(
            r"Application::counter violates plan: properties changed: .*placement", said
        ), said
        # Nothing was applied: the stack and the lattice are as they were before the plan.
        # (The joined host is not in ``names``: anything placed on it would show by its id.)
        assert stack.outputs() == outputs
        assert running_placement(stack.nats_url, names) == before
    finally:
        joined.stop()


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("instances", "-1", "instances"),
        ("linkTarget", "no-such-component", "no-such-component"),
    ],
)
def test_bad_input_fails_preview_and_names_the_field(
    deployed: Stack, key: str, value: str, named: str
) -> None:
    stack = deployed
    stack.config(key, value)
    failed = stack.run("preview", ok=False)
    assert failed.returncode != 0
    assert named in failed.stdout, failed.stdout
    stack.config(key, None)
    stack.run("preview", "--expect-no-changes")


def test_host_labels_change_in_place(deployed: Stack) -> None:
    stack = deployed
    edge = stack.outputs()["hosts"]["e2e-edge"]
    stack.config("edgeZone", "b")
    preview = stack.run("preview", "--diff").stdout
    assert re.search(r'\+ zone\s*:\s*"b"', preview), preview
    assert "replace" not in preview
    stack.up()
    assert stack.outputs()["hosts"]["e2e-edge"] == edge  # the same host, relabeled

    async def labels() -> dict[str, str]:
        nc = await nats.connect(stack.nats_url)
        try:
            return dict((await CtlClient(nc, "default").get_inventory(edge))["labels"])
        finally:
            await nc.close()

    assert asyncio.run(labels())["zone"] == "b"
    stack.run("preview", "--expect-no-changes")


def test_a_host_that_apps_still_need_is_not_removed(deployed: Stack) -> None:
    stack = deployed
    stack.config("spread", json.dumps([{"name": "edge", "requirements": {"tier": "edge"}}]))
    stack.config("instances", "5")
    stack.up()
    assert stack.outputs()["placement"]["counter"] == {"e2e-edge": 5}
    stack.config("dropEdge", "true")
    refused = stack.up(ok=False)
    assert refused.returncode != 0
    assert "host e2e-edge cannot go: no other host could run counter: counter x5" in (
        refused.stdout
    ), refused.stdout
    assert stack.get("still") == "still -> 1"  # still served from the edge host
    stack.config("dropEdge", None)
    stack.config("spread", None)
    stack.up()
    stack.run("preview", "--refresh", "--expect-no-changes")


def test_destroy_leaves_no_process_or_port(deployed: Stack) -> None:
    stack = deployed
    pids = [stack.pid(name) for name in ("nats-server", "controller", "redis-server")]
    pids += [stack.pid(f"host-{name}") for name in ("e2e-core", "e2e-edge")]
    stack.run("destroy", "--yes")
    assert [pid for pid in pids if not gone(pid)] == []
    assert not any(listening(port) for port in stack.ports.values())
