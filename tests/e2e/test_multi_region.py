"""examples/multi-region end to end, driven by the real Pulumi CLI the way its README
says, one stack per environment:

- dev (Pulumi.dev.yaml as shipped, its machines booted as namespace machines with the
  names it lists; only their addresses and host keys set): up, the counter answers in
  each region from that region's hosts, a new version rolls out region by region, a
  broken version stops in the first region (rolled back, `up` says so, the other regions
  keep the old version), destroy leaves the machines as booted.
- prod (Pulumi.prod.yaml as shipped, against moto's EC2 API and the hypervisor of
  tests/ec2.py, which boots a namespace machine at each instance's private address):
  the machines first, then the apps' placement as preview showed it, destroy leaves no
  instance, security group or key pair.

Each environment shares one deployed stack across its tests, which run in file order;
every `pulumi` command prints how many seconds it took. Both lattices run secured: the
tests reach NATS as the stack's tooling user (its `credentials` and `clientTls` outputs),
and the dev stack checks that no seed or private key shows in its state export or on its
machines.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from host_agent.lattice.client import CtlClient
from host_agent.lattice.wadm import WadmClient
from host_agent.model.naming import normalize_name
from tests.ec2 import AMI_PARAMETER, NETWORK, REGION_NETWORKS, Ec2World, ec2_world_fixture
from tests.example_projects import LoggedProject, example_project, keyscan_line, with_nats
from tests.lattice import ROOT, http_get
from tests.machines import KeyPair, Machines, booted
from tests.pulumi_cli import PULUMI_BIN, cli_environment
from tests.secured_nats import client_options, leaks, machine_leaks, refusals

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

EXAMPLE = ROOT / "examples" / "multi-region"
PROJECT = "wasmcloud-multi-region"
# A build of another component promoted by mistake: tests/components/types-caller answers
# its own routes only (404 on the health path), so the health check fails.
BROKEN_WASM = ROOT / "tests" / "components" / "types-caller" / "build" / "types-caller.wasm"
HEALTH_TIMEOUT = 20  # seconds a failing version is given before it is rolled back
# How the tests connect to the lattice: its tooling user over mutual TLS (from the
# stack's outputs, set by each stack's fixture).
SECURED: dict[str, Any] = {}


def shipped_config(stack: str) -> dict[str, Any]:
    """The example's Pulumi.<stack>.yaml, keys without the project prefix."""
    data = yaml.safe_load((EXAMPLE / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {key.removeprefix(f"{PROJECT}:"): value for key, value in data.items()}


DEV = shipped_config("dev")
DEV_REGIONS = {
    machine["name"]: region["name"] for region in DEV["regions"] for machine in region["machines"]
}  # machine -> region
ROLLOUT = list(DEV["rolloutOrder"])
FIRST = ROLLOUT[0]
APPS = [f"counter-{region}" for region in ROLLOUT]  # in rollout order


@dataclass
class Events:
    """What `pulumi up --json` streamed: the engine's events in order."""

    events: list[dict[str, Any]]

    def steps(self, kind: str) -> list[tuple[int, str, str]]:
        """(sequence, op, resource name) of each ``kind`` event (resourcePreEvent,
        resOutputsEvent, resOpFailedEvent) for a real resource step."""
        found = []
        for event in self.events:
            if kind in event:
                metadata = event[kind]["metadata"]
                name = metadata["urn"].rsplit("::", 1)[1]
                found.append((int(event["sequence"]), str(metadata["op"]), name))
        return found

    def said(self) -> str:
        """Every diagnostic message (the provider's logs and errors, the engine's)."""
        return "".join(
            event["diagnosticEvent"]["message"]
            for event in self.events
            if "diagnosticEvent" in event and event["diagnosticEvent"]["severity"] != "debug"
        )


class ExampleStack(LoggedProject):
    """The example as stack ``stack`` (from its shipped Pulumi.<stack>.yaml) on a file
    backend under ``workdir``; every command's output kept under ``logs``."""

    def __init__(self, workdir: Path, stack: str, env: dict[str, str] | None = None) -> None:
        if not (PULUMI_BIN / "pulumi").exists():
            pytest.fail("the Pulumi CLI is missing: run scripts/bootstrap.sh (it builds it)")
        super().__init__(
            example_project(EXAMPLE, workdir / "project", stack),
            {**cli_environment(workdir, "multi-region"), **(env or {})},
            workdir / "logs",
        )
        self.run("stack", "init", stack)

    def config(self, path: str, value: str, secret: bool = False) -> None:
        if secret:
            self.run("config", "set", "--secret", path, stdin=value)
        else:
            self.run("config", "set", "--path", path, "--", value)

    def up(self, ok: bool = True) -> tuple[subprocess.CompletedProcess[str], Events]:
        done = self.run("up", "--yes", "--skip-preview", "--json", ok=False)
        events = Events(
            [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        )
        if ok and done.returncode != 0:
            # What the user would read (the raw events are in the command's log).
            raise AssertionError(f"pulumi up failed:\n{events.said()}\n{done.stderr}")
        return done, events

    def outputs(self) -> dict[str, Any]:
        return dict(json.loads(self.run("stack", "output", "--json", "--show-secrets").stdout))


# -- what the lattice says ---------------------------------------------------------------


def running_placement(
    nats_url: str, names: dict[str, str], apps: list[str]
) -> dict[str, dict[str, dict[str, int]]]:
    """App -> component -> {host name: instances}, from each host's inventory (ids are
    ``<app>-<component>``, the app's name normalized as wadm does)."""
    app_of = {normalize_name(app): app for app in apps}

    async def ask(nc: Any) -> dict[str, dict[str, dict[str, int]]]:
        ctl = CtlClient(nc, "default")
        placement: dict[str, dict[str, dict[str, int]]] = {}
        for host in await ctl.ping_hosts(wait=2.0):
            name = names.get(str(host["id"]), str(host["id"]))
            inventory = await ctl.get_inventory(str(host["id"]))
            running = [(c["id"], c["max_instances"]) for c in inventory["components"]]
            running += [(p["id"], 1) for p in inventory["providers"]]
            for full_id, instances in running:
                app, _, component = full_id.rpartition("-")
                placement.setdefault(app_of.get(app, app), {}).setdefault(component, {})[name] = (
                    instances
                )
        return placement

    result: dict[str, dict[str, dict[str, int]]] = with_nats(nats_url, ask, **SECURED)
    return result


def app_versions(nats_url: str) -> dict[str, tuple[str | None, list[str]]]:
    """App -> (deployed version, every version stored), from the wadm API."""

    async def ask(nc: Any) -> dict[str, tuple[str | None, list[str]]]:
        wadm = WadmClient(nc, "default")
        answer = {}
        for model in (await wadm.list()).models:
            stored = await wadm.versions(model.name)
            answer[model.name] = (model.deployed_version, [v.version for v in stored.versions])
        return answer

    result: dict[str, tuple[str | None, list[str]]] = with_nats(nats_url, ask, **SECURED)
    return result


def count(url: str) -> int:
    """One request to a region's http-server: the count the counter answers."""
    status, body = http_get(url)
    key = url.rstrip("/").rsplit("/", 1)[1]
    assert status == 200, (url, status, body)
    match = re.fullmatch(rf"{re.escape(key)} -> (\d+)", body.decode())
    assert match, (url, body)
    return int(match.group(1))


# -- dev: the stack on namespace machines ------------------------------------------------


@dataclass
class DevStack:
    stack: ExampleStack
    machines: Machines
    booted_files: dict[str, list[str]]
    names: dict[str, str] = field(default_factory=dict)  # host id -> host name
    nats_url: str = ""
    endpoints: dict[str, list[str]] = field(default_factory=dict)  # region -> base URLs


@pytest.fixture(scope="class")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    for machines in booted(*DEV_REGIONS):
        stack = ExampleStack(tmp_path_factory.mktemp("multi-region-dev"), "dev")
        deployed = DevStack(stack, machines, {m.name: m.own_files() for m in machines})
        try:
            # The README's commands: each machine's address and host key, the SSH key.
            for r, region in enumerate(DEV["regions"]):
                for m, entry in enumerate(region["machines"]):
                    machine = machines[entry["name"]]
                    at = f"regions[{r}].machines[{m}]"
                    stack.config(f"{at}.host", machine.address)
                    stack.config(f"{at}.hostKey", keyscan_line(machine.host_key))
            stack.config("sshPrivateKey", machines.client_key.private_openssh, secret=True)
            stack.config("healthTimeoutSeconds", str(HEALTH_TIMEOUT))
            stack.up()
            outputs = stack.outputs()
            SECURED.clear()
            SECURED.update(client_options(outputs))
            deployed.names = {host_id: name for name, host_id in outputs["hosts"].items()}
            deployed.nats_url = str(outputs["natsUrl"])
            deployed.endpoints = outputs["endpoints"]
            yield deployed
        finally:
            stack.run("destroy", "--yes", ok=False)


class TestDevStack:
    """The dev stack on three namespace machines, in order (one deployed stack)."""

    def test_dev_the_counter_answers_in_each_region_from_its_hosts(self, dev: DevStack) -> None:
        assert set(dev.endpoints) == set(ROLLOUT)
        # One store behind every region: the counts of one key go on across regions.
        answers = {region: count(f"{dev.endpoints[region][0]}dev-hello") for region in ROLLOUT}
        print(f"dev-hello per region: {answers}")
        assert sorted(answers.values()) == [1, 2, 3], answers
        # Each region's app runs on that region's hosts only (the host names are the
        # machines' names, whose regions Pulumi.dev.yaml gives).
        placement = running_placement(dev.nats_url, dev.names, APPS)
        print(f"running placement: {placement}")
        for region in ROLLOUT:
            hosts = {f"{m}-host" for m, r in DEV_REGIONS.items() if r == region}
            assert placement[f"counter-{region}"] == {
                "counter": dict.fromkeys(hosts, 1),
                "kv": dict.fromkeys(hosts, 1),
                "httpserver": dict.fromkeys(hosts, 1),
            }, (region, placement)
        versions = app_versions(dev.nats_url)
        assert {app: deployed for app, (deployed, _) in versions.items()} == {
            f"counter-{region}": "v1" for region in ROLLOUT
        }, versions

    def test_dev_the_lattice_is_secured_and_nothing_secret_shows(self, dev: DevStack) -> None:
        outputs = dev.stack.outputs()
        for machine in dev.machines:
            refused = asyncio.run(refusals(f"nats://{machine.address}:4222", outputs))
            assert all(refused.values()), (machine.name, refused)
            assert machine_leaks(machine) == {}, machine.name
        exported = dev.stack.run("stack", "export").stdout
        assert leaks(exported) == []

    def test_dev_a_new_version_rolls_out_region_by_region(self, dev: DevStack) -> None:
        dev.stack.config("appVersion", "v2")
        _, events = dev.stack.up()
        started = {
            name: seq for seq, op, name in events.steps("resourcePreEvent") if op == "update"
        }
        finished = {
            name: seq for seq, op, name in events.steps("resOutputsEvent") if op == "update"
        }
        apps = APPS
        assert {name for name in started if name.startswith("counter-")} == set(apps), started
        # Each region's update starts once the previous region's has finished (deployed and
        # healthy), in rolloutOrder.
        for before, after in itertools.pairwise(apps):
            assert finished[before] < started[after], (before, after, started, finished)
        print(f"rollout order (engine event sequence): started {started}, finished {finished}")
        versions = app_versions(dev.nats_url)
        assert {app: versions[app][0] for app in apps} == dict.fromkeys(apps, "v2"), versions
        for region in ROLLOUT:
            assert count(f"{dev.endpoints[region][0]}after-v2-{region}") == 1

    def test_dev_a_version_failing_its_health_check_stops_in_the_first_region(
        self, dev: DevStack
    ) -> None:
        stack = dev.stack
        stack.config("appVersion", "v3")
        stack.config("counterWasm", str(BROKEN_WASM))
        try:
            done, events = stack.up(ok=False)
            said = events.said() + done.stderr
            assert done.returncode != 0, said
            # `up` names the app, the version, the health URL and the rollback.
            first = f"counter-{FIRST}"
            print(f"up of a broken v3 says: {said.strip()[-1500:]}")
            assert first in said and "v3" in said and "rolled back" in said, said
            assert f"{dev.endpoints[FIRST][0].rstrip('/')}/healthz" in said, said
            # The engine changed nothing after the first region.
            updated = {name for _, op, name in events.steps("resourcePreEvent") if op == "update"}
            assert {name for name in updated if name.startswith("counter-")} == {first}, updated
            failed = {name for _, _, name in events.steps("resOpFailedEvent")}
            assert failed == {first}, failed
            # What runs, from the wadm API: the first region back on v2, the others never
            # given v3.
            versions = app_versions(dev.nats_url)
            print(f"versions after the failed rollout: {versions}")
            assert versions[first][0] == "v2", versions
            for region in ROLLOUT[1:]:
                deployed, stored = versions[f"counter-{region}"]
                assert deployed == "v2" and "v3" not in stored, (region, versions)
            # And the first region counts again (the rolled-back version answers).
            assert count(f"{dev.endpoints[FIRST][0]}after-rollback") == 1
        finally:
            stack.config("appVersion", "v2")
            stack.run("config", "rm", "counterWasm")
        # Back on the code that runs: nothing to change.
        stack.run("preview", "--expect-no-changes")

    def test_dev_destroy_leaves_the_machines_as_booted(self, dev: DevStack) -> None:
        dev.stack.run("destroy", "--yes")
        for machine in dev.machines:
            deadline = time.monotonic() + 20
            while machine.processes():  # the provider's SSH sessions end as it exits
                assert time.monotonic() < deadline, (
                    f"{machine.name} still runs {machine.processes()}"
                )
                time.sleep(0.2)
            assert machine.own_files() == dev.booted_files[machine.name], machine.name


# -- prod: the stack on moto's EC2 and the hypervisor's machines --------------------------

PROD = shipped_config("prod")
PROD_SIZES = {region["name"]: int(region.get("size", 1)) for region in PROD["regions"]}
PROD_ROLES = {region["name"]: region["role"] for region in PROD["regions"]}


def prod_hosts(region: str) -> set[str]:
    """The Host names of a region's instances (machine ``<role>-<region>-<n>``)."""
    role = PROD_ROLES[region]
    return {f"{role}-{region}-{n}-host" for n in range(1, PROD_SIZES[region] + 1)}


@dataclass
class ProdStack:
    stack: ExampleStack
    world: Ec2World
    previewed: dict[str, dict[str, dict[str, int]]]  # app -> component -> host -> n
    names: dict[str, str]
    nats_url: str
    endpoints: dict[str, list[str]]


@pytest.fixture(scope="class")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProdStack]:
    for world in ec2_world_fixture():
        stack = ExampleStack(
            tmp_path_factory.mktemp("multi-region-prod"), "prod", env=world.environment()
        )
        try:
            # The README's commands, with moto's subnets and networks: each region's
            # subnet and VPC CIDR, this computer as the operator (the bridge's address),
            # an AMI moto knows and its login user.
            for r, region in enumerate(PROD["regions"]):
                subnet = world.subnets[region["name"]]
                network = next(n for n in REGION_NETWORKS if n.region == region["name"])
                stack.config(f"regions[{r}].subnetId", subnet.subnet_id)
                stack.config(f"regions[{r}].cidr", network.vpc_cidr)
            stack.config("ec2.amiParameter", AMI_PARAMETER)
            stack.config("ec2.user", "root")
            stack.config("ec2.operatorCidrs[0]", f"{world.bridge.gateway}/32")
            stack.config("ec2.httpFrom[0]", str(NETWORK))
            stack.config("sshPrivateKey", KeyPair.generate("operator").private_openssh, True)
            # Machines first; then the apps' placement previewed on the hosts that exist.
            stack.config("deployApp", "false")
            stack.up()
            stack.run("config", "rm", "deployApp")
            preview = json.loads(stack.run("preview", "--json").stdout)
            previewed = {}
            for step in preview["steps"]:
                name = step["urn"].rsplit("::", 1)[1]
                if name.startswith("counter-"):
                    previewed[name] = step["newState"]["inputs"].get("placement")
            stack.up()
            outputs = stack.outputs()
            SECURED.clear()
            SECURED.update(client_options(outputs))
            yield ProdStack(
                stack,
                world,
                previewed,
                {host_id: name for name, host_id in outputs["hosts"].items()},
                str(outputs["natsUrl"]),
                outputs["endpoints"],
            )
        finally:
            stack.run("destroy", "--yes", ok=False)


class TestProdStack:
    """The prod stack on moto + the hypervisor, in order (one deployed stack)."""

    def test_prod_three_regions_run_where_preview_placed_them(self, prod: ProdStack) -> None:
        print(f"preview's placement: {prod.previewed}")
        assert set(prod.previewed) == {f"counter-{region}" for region in PROD_SIZES}
        for app, placement in prod.previewed.items():
            region = app.removeprefix("counter-")
            hosts = prod_hosts(region)
            # Every component of a region's app on that region's hosts: the http-server and
            # keyvalue-nats on each, one counter instance.
            assert placement, f"preview shows no placement for {app}"
            assert placement["httpserver"] == dict.fromkeys(hosts, 1), (app, placement)
            assert placement["kv"] == dict.fromkeys(hosts, 1), (app, placement)
            assert set(placement["counter"]) <= hosts, (app, placement)
            assert sum(placement["counter"].values()) == 1, (app, placement)
        running = running_placement(prod.nats_url, prod.names, list(prod.previewed))
        assert running == prod.previewed
        # Each region answers on each of its machines, counting in the one store.
        answered = []
        for region, urls in sorted(prod.endpoints.items()):
            assert len(urls) == PROD_SIZES[region], (region, urls)
            answered += [count(f"{url}prod-hello") for url in urls]
        assert sorted(answered) == list(range(1, len(answered) + 1)), answered

    def test_prod_destroy_leaves_nothing_in_ec2(self, prod: ProdStack) -> None:
        world = prod.world
        # While it runs: one instance, security group and key pair per machine, in its
        # region (so the check below would see them).
        made = ec2_objects(world)
        print(f"EC2 objects of the running stack: {made}")
        assert {region: len(objects) for region, objects in made.items()} == {
            region: 3 * size for region, size in PROD_SIZES.items()
        }, made
        destroyed = prod.stack.run("destroy", "--yes", ok=False)
        assert destroyed.returncode == 0, (
            f"{destroyed.stdout}\n{destroyed.stderr}\n{machine_logs(world)}"
        )
        left = ec2_objects(world)
        assert not any(left.values()), left
        world.hypervisor.wait_polled()
        assert not world.hypervisor.machines, world.hypervisor.machines


def machine_logs(world: Ec2World, lines: int = 40) -> str:
    """The end of every service log on every instance still running, for a failure."""
    said = []
    for instance_id, machine in list(world.hypervisor.machines.items()):
        tail = machine.inside(["sh", "-c", f"tail -n {lines} /var/log/wasmcloud/*.log"])
        said.append(f"--- {instance_id} ({machine.address})\n{tail.stdout}{tail.stderr}")
    return "\n".join(said)


def ec2_objects(world: Ec2World) -> dict[str, list[str]]:
    """Region -> the instances (not terminated), security groups (but the VPC's default)
    and key pairs moto holds there."""
    found: dict[str, list[str]] = {}
    for region in PROD_SIZES:
        ec2 = world.ec2(region)
        objects = found.setdefault(region, [])
        for reservation in ec2.describe_instances()["Reservations"]:
            for instance in reservation["Instances"]:
                if instance["State"]["Name"] != "terminated":
                    objects.append(f"instance {instance['InstanceId']}")
        for group in ec2.describe_security_groups()["SecurityGroups"]:
            if group["GroupName"] != "default":
                objects.append(f"security group {group['GroupName']}")
        objects += [f"key pair {pair['KeyName']}" for pair in ec2.describe_key_pairs()["KeyPairs"]]
    return found


def test_a_wrong_stack_config_is_refused_by_its_place(tmp_path: Path) -> None:
    """Before any machine is touched, the program names the setting and what it wants
    (a sentence, no traceback)."""
    stack = ExampleStack(tmp_path, "dev")
    stack.config("sshPrivateKey", KeyPair.generate().private_openssh, secret=True)
    # A region missing from the rollout (a typo), and a port that is no number.
    wrong = [
        ("rolloutOrder[2]", "us-east-2", "config rolloutOrder: every region exactly once"),
        ("regions[1].machines[0].port", "22x", "config regions[1].machines[0].port: must be"),
    ]
    for path, value, said in wrong:
        shipped = stack.run("config", "get", "--path", path, ok=False).stdout.strip()
        stack.config(path, value)
        preview = stack.run("preview", ok=False)
        output = preview.stdout + preview.stderr
        assert preview.returncode != 0 and said in output, output
        assert "Traceback" not in output, output
        if shipped:
            stack.config(path, shipped)
        else:
            stack.run("config", "rm", "--path", path)
