"""Real `wash` (wash-cli 0.39.0, the last wasmCloud 1.x-era release) against our lattice:
nats-server, two hosts, the controller and redis-server, all real processes.

wash is built once per machine by `make test-tools` (scripts/build-wash.sh) into the tool
cache and linked as .tools/wash; these tests skip, saying so, when it is absent. Every
command runs with `-o json` and its reply is parsed strictly (pydantic, strict types), so
a field of the wrong type or shape fails the test instead of being read as a default.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from tests.lattice import (
    COUNTER_WASM,
    NatsServer,
    Processes,
    RedisServer,
    counter_manifest,
    free_port,
    http_get,
)

ROOT = Path(__file__).resolve().parents[2]
WASH = Path(os.environ.get("TOOLS", ROOT / ".tools")) / "wash" / "bin" / "wash"

pytestmark = [
    pytest.mark.skipif(
        not WASH.exists(),
        reason=f"real wash is not built ({WASH} is missing): run `make test-tools` "
        "(scripts/build-wash.sh builds wash-cli 0.39.0 into the per-machine tool cache, "
        "about 7 minutes once per machine)",
    ),
    pytest.mark.slow,
    pytest.mark.timeout(240),
]


class Strict(BaseModel):
    """wash's JSON, read with serde's rules: no coercion ("3" is not 3); fields we do not
    read may be there."""

    model_config = ConfigDict(strict=True, extra="ignore")


class Host(Strict):
    id: str
    labels: dict[str, str]
    lattice: str


class HostsReply(Strict):
    success: bool
    hosts: list[Host]


class Component(Strict):
    id: str
    image_ref: str
    max_instances: int


class Provider(Strict):
    id: str


class Inventory(Strict):
    host_id: str
    labels: dict[str, str]
    components: list[Component]
    providers: list[Provider]


class InventoriesReply(Strict):
    success: bool
    inventories: list[Inventory]


class DeployReply(Strict):
    success: bool
    deployed: bool
    model_name: str
    model_version: str


class StatusInfo(Strict):
    type: str
    message: str = ""


class AppStatus(Strict):
    status: StatusInfo


class StatusReply(Strict):
    success: bool
    status: AppStatus


class AppSummary(Strict):
    name: str
    version: str
    deployed_version: str | None
    detailed_status: AppStatus


class ListReply(Strict):
    success: bool
    applications: list[AppSummary]


class UndeployReply(Strict):
    success: bool
    undeployed_application_names: list[str]


class DeleteReply(Strict):
    success: bool
    deleted: bool


class StartReply(Strict):
    success: bool
    host_id: str
    component_id: str
    component_ref: str


class LabelReply(Strict):
    success: bool
    deleted: bool
    processed: list[tuple[str, str]]


class PutReply(Strict):
    success: bool
    message: str


class Failure(Strict):
    success: bool
    error: str


Reply = TypeVar("Reply", bound=BaseModel)


class Wash:
    """`wash ... -o json` against one test lattice, with its own HOME (wash writes
    contexts and first-run files there)."""

    def __init__(self, server: NatsServer, home: Path) -> None:
        self.port = server.port
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "HOME": str(home),
            "WASH_DISABLE_TELEMETRY": "1",
            "RUST_BACKTRACE": "0",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(WASH),
                *args,
                "--ctl-host",
                "127.0.0.1",
                "--ctl-port",
                str(self.port),
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=self.env,
        )

    def json(self, reply: type[Reply], *args: str) -> Reply:
        done = self.run(*args)
        assert done.returncode == 0, f"wash {' '.join(args)}: {done.stdout}{done.stderr}"
        parsed = reply.model_validate_json(done.stdout)
        assert getattr(parsed, "success", True) is True, done.stdout
        return parsed

    def fails(self, *args: str) -> str:
        """The error of a command that must fail (wash prints it as JSON with -o json)."""
        done = self.run(*args)
        assert done.returncode != 0, f"wash {' '.join(args)} succeeded: {done.stdout}"
        text = done.stdout.strip() or done.stderr.strip()
        failure = Failure.model_validate_json(text[text.index("{") :])
        assert failure.success is False
        return failure.error

    def config(self, name: str) -> dict[str, str]:
        done = self.run("config", "get", name)
        assert done.returncode == 0, done.stdout + done.stderr
        values = json.loads(done.stdout)
        assert isinstance(values, dict) and all(isinstance(v, str) for v in values.values())
        return values

    def inventories(self) -> dict[str, Inventory]:
        reply = self.json(InventoriesReply, "get", "inventory")
        return {inventory.host_id: inventory for inventory in reply.inventories}


def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (bounded); return it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout}s; last: {last!r}")


@pytest.fixture
def wash(nats_server: NatsServer, processes: Processes, tmp_path: Path) -> Wash:
    """Two hosts (zone east and west, file loads allowed) and the controller."""
    processes.host(zone="east")
    processes.host(zone="west")
    processes.controller()
    client = Wash(nats_server, tmp_path / "home")
    until(lambda: len(client.json(HostsReply, "get", "hosts").hosts) == 2, "two hosts answer")
    return client


def answer(url: str) -> tuple[int, bytes] | None:
    try:
        return http_get(url)
    except OSError:  # the http-server provider is not listening yet
        return None


def host_in(wash: Wash, zone: str) -> str:
    [host] = [h.id for h in wash.json(HostsReply, "get", "hosts").hosts if h.labels["zone"] == zone]
    return host


def test_get_hosts_and_inventory_show_our_hosts_and_labels(wash: Wash) -> None:
    hosts = wash.json(HostsReply, "get", "hosts").hosts
    assert sorted(h.labels["zone"] for h in hosts) == ["east", "west"]
    assert all(h.lattice == "default" and h.id.startswith("N") and len(h.id) == 56 for h in hosts)
    inventories = wash.inventories()
    assert set(inventories) == {h.id for h in hosts}
    for host in hosts:
        [one] = wash.json(InventoriesReply, "get", "inventory", host.id).inventories
        assert one.host_id == host.id
        assert one.labels["zone"] == host.labels["zone"]
        assert (one.components, one.providers) == ([], [])


def test_app_deploy_list_status_undeploy_delete_the_counter(
    wash: Wash, redis_server: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    manifest = tmp_path / "wadm.yaml"
    manifest.write_text(yaml.safe_dump(counter_manifest(redis_server.url, port)))

    deployed = wash.json(DeployReply, "app", "deploy", str(manifest))
    assert (deployed.deployed, deployed.model_name, deployed.model_version) == (
        True,
        "counter",
        "v0.1.0",
    )
    until(
        lambda: wash.json(StatusReply, "app", "status", "counter").status.status.type == "deployed",
        "counter deployed",
        timeout=60,
    )
    [app] = wash.json(ListReply, "app", "list").applications
    assert (app.name, app.version, app.deployed_version) == ("counter", "v0.1.0", "v0.1.0")
    assert app.detailed_status.status.type == "deployed"

    url = f"http://127.0.0.1:{port}/wash"
    assert until(lambda: answer(url) == (200, b"wash -> 1"), "the counter answers")
    running = {
        component.id: component.max_instances
        for inventory in wash.inventories().values()
        for component in inventory.components
    }
    assert running == {"counter-counter": 3}

    undeployed = wash.json(UndeployReply, "app", "undeploy", "counter")
    assert undeployed.undeployed_application_names == ["counter"]
    until(
        lambda: all(not i.components and not i.providers for i in wash.inventories().values()),
        "every instance stopped after undeploy",
    )
    assert wash.json(StatusReply, "app", "status", "counter").status.status.type == "undeployed"

    assert wash.json(DeleteReply, "app", "delete", "counter").deleted is True
    # wash reports "deleted" even when the controller refused: the list is the proof.
    assert wash.json(ListReply, "app", "list").applications == []


def test_config_put_and_get(wash: Wash) -> None:
    put = wash.json(PutReply, "config", "put", "greeting", "message=hello", "lang=en")
    assert put.message == "Configuration 'greeting' put successfully."
    assert wash.config("greeting") == {"message": "hello", "lang": "en"}
    wash.json(PutReply, "config", "put", "greeting", "message=bye")  # put replaces
    assert wash.config("greeting") == {"message": "bye"}
    assert "No configuration found for name: nope" in wash.fails("config", "get", "nope")


def test_label_puts_and_deletes_a_host_label(wash: Wash) -> None:
    east = host_in(wash, "east")
    labeled = wash.json(LabelReply, "label", east, "gpu=true")
    assert (labeled.deleted, labeled.processed) == (False, [("gpu", "true")])
    # wash prints success: true even when the host refused: read the label back.
    assert wash.inventories()[east].labels["gpu"] == "true"
    wash.json(LabelReply, "label", east, "gpu", "--delete")
    assert "gpu" not in wash.inventories()[east].labels


def test_start_component_without_host_id_is_placed_by_auction(wash: Wash) -> None:
    """No --host-id: wash auctions the component (component.auction) and starts it on a
    host that bid; with a constraint, only a host with that label may bid."""
    anywhere = wash.json(
        StartReply, "start", "component", str(COUNTER_WASM), "anywhere", "--max-instances", "2"
    )
    assert anywhere.component_ref == f"file://{COUNTER_WASM}"
    hosts = {h.id for h in wash.json(HostsReply, "get", "hosts").hosts}
    assert anywhere.host_id in hosts
    placed = {c.id: c.max_instances for c in wash.inventories()[anywhere.host_id].components}
    assert placed == {"anywhere": 2}

    west = host_in(wash, "west")
    pinned = wash.json(
        StartReply, "start", "component", str(COUNTER_WASM), "inwest", "-c", "zone=west"
    )
    assert pinned.host_id == west
    assert "inwest" in {c.id for c in wash.inventories()[west].components}

    refused = wash.fails("start", "component", str(COUNTER_WASM), "nowhere", "-c", "zone=moon")
    assert "No suitable hosts found" in refused, refused
    assert all("nowhere" not in {c.id for c in i.components} for i in wash.inventories().values())
