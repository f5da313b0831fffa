"""Bad input and faults of an ``Ec2Machine``, through the real Pulumi CLI against moto's
server (tests/ec2.py): an unknown region or AMI is refused by name; a permission the
credentials lack is named with the IAM action to grant (moto enforcing IAM); throttling is
retried with backoff, then named when it persists (a real HTTP proxy answering AWS's
RequestLimitExceeded), and a used-up instance quota named with where to ask for more; an
instance that never answers SSH is terminated and reported.
After every failed ``up`` nothing is left in moto: no instance, security group or key pair.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ec2 import (
    INSTANCE_LIMIT_EXCEEDED,
    NEVER_BOOT_TAG,
    REGION_NETWORKS,
    Ec2World,
    ec2_world,
    ec2_world_fixture,
    throttling_proxy,
)
from tests.machines import KeyPair
from tests.machines import unavailable as machines_unavailable
from tests.pulumi_cli import PULUMI_BIN, cli_environment, write_project

# The timeout allows for waiting on another run's EC2 world (tests/ec2.py: LOCK_TIMEOUT).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

REGION = "us-east-1"
MACHINE = "core-1"
PROGRAM = """
import pulumi
import pulumi_wasmcloud as wasmcloud

config = pulumi.Config()
machine = wasmcloud.Ec2Machine(
    "core-1",
    region=config.require("region"),
    lattice="faults",
    role="core",
    subnet_id=config.require("subnetId"),
    private_key=config.require_secret("sshKey"),
    ami=config.require("ami"),
    user="root",
    ssh_from=["198.19.0.0/16"],
    lattice_cidrs=["198.19.0.0/16"],
    ssh_timeout_seconds=config.get_int("sshTimeoutSeconds") or 60,
    # The harness's hypervisor never boots an instance with this tag: it never answers.
    tags={"NEVER_BOOT_TAG": "yes"} if config.get_bool("neverBoot") else None,
)
pulumi.export("instanceId", machine.instance_id)
pulumi.export("ip", machine.private_ip)
""".replace("NEVER_BOOT_TAG", NEVER_BOOT_TAG)


@pytest.fixture
def world() -> Iterator[Ec2World]:
    yield from ec2_world_fixture()


class FaultStack:
    """The program above as a stack (file backend under ``tmp_path``), configured in one
    CLI call; ``env`` is the CLI's environment (a test points it at a proxy, or other keys)."""

    def __init__(self, tmp_path: Path, world: Ec2World, **settings: object) -> None:
        if not (PULUMI_BIN / "pulumi").exists():
            pytest.fail("the Pulumi CLI is missing: run scripts/bootstrap.sh (it builds it)")
        self.dir = write_project(tmp_path / "project", "ec2-faults", PROGRAM)
        self.env = {**cli_environment(tmp_path, "faults"), **world.environment()}
        values: dict[str, object] = {
            "region": REGION,
            "subnetId": world.subnets[REGION].subnet_id,
            "ami": world.moto.ami(REGION),
            **settings,
        }
        self.run("stack", "init", "faults")
        plain = [arg for key, value in values.items() for arg in ("--plaintext", f"{key}={value}")]
        key = KeyPair.generate().private_openssh
        self.run("config", "set-all", *plain, "--secret", f"sshKey={key}")

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["pulumi", "--non-interactive", *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if ok and done.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def up(self, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("up", "--yes", "--skip-preview", ok=ok)

    def outputs(self) -> dict[str, Any]:
        return dict(json.loads(self.run("stack", "output", "--json").stdout))


def failed(done: Any) -> str:
    """The output of a pulumi command that must have failed."""
    text = f"{done.stdout}\n{done.stderr}"
    assert done.returncode != 0, text
    return text


def left_in_moto(world: Ec2World) -> list[str]:
    """Every instance not terminated, security group (besides each VPC's default) and key
    pair in every region, as the harness's administrator sees them."""
    left = []
    for network in REGION_NETWORKS:
        ec2 = world.ec2(network.region)
        for reservation in ec2.describe_instances()["Reservations"]:
            for instance in reservation["Instances"]:
                if instance["State"]["Name"] != "terminated":
                    left.append(f"instance {instance['InstanceId']} ({instance['State']['Name']})")
        for group in ec2.describe_security_groups()["SecurityGroups"]:
            if group["GroupName"] != "default":
                left.append(f"security group {group['GroupName']}")
        left += [f"key pair {pair['KeyName']}" for pair in ec2.describe_key_pairs()["KeyPairs"]]
    return left


def resources_in_state(stack: FaultStack) -> list[str]:
    exported = json.loads(stack.run("stack", "export").stdout)
    return [r["type"] for r in exported["deployment"].get("resources") or []]


def test_unknown_region_is_refused_naming_it(tmp_path: Path, world: Ec2World) -> None:
    stack = FaultStack(tmp_path, world, region="us-middle-7")
    for command in (("preview",), ("up", "--yes", "--skip-preview")):
        said = failed(stack.run(*command, ok=False))
        assert '"us-middle-7" is not an EC2 region' in said, said
        assert "region" in said
    assert left_in_moto(world) == []
    assert "wasmcloud:index:Ec2Machine" not in resources_in_state(stack)


def test_unknown_ami_is_named(tmp_path: Path, world: Ec2World) -> None:
    stack = FaultStack(tmp_path, world, ami="ami-0123456789abcdef0")
    said = failed(stack.run("preview", ok=False))  # the preview already looks it up
    assert "ami-0123456789abcdef0" in said and "InvalidAMIID" in said, said
    said = failed(stack.up(ok=False))  # up without a preview: made, then undone
    assert "ami-0123456789abcdef0" in said and "InvalidAMIID" in said, said
    assert left_in_moto(world) == []
    assert "wasmcloud:index:Ec2Machine" not in resources_in_state(stack)


@pytest.mark.parametrize("lacking", ["ec2:RunInstances", "ec2:CreateSecurityGroup"])
def test_missing_permission_is_named_with_the_action_to_grant(tmp_path: Path, lacking: str) -> None:
    reason = machines_unavailable()
    if reason is not None:
        pytest.skip(f"no EC2 harness: {reason}")
    with ec2_world(enforce_iam=True) as world:
        restricted = world.moto.restricted_credentials([lacking], name="deployer")
        stack = FaultStack(tmp_path, world)
        stack.env.update(world.environment(credentials=restricted))
        said = failed(stack.up(ok=False))
        assert f"grant the IAM action {lacking}" in said, said
        assert re.search(r"AccessDenied|UnauthorizedOperation", said), said
        assert left_in_moto(world) == []
        # The same stack with the permission: up works (the refusal was the permission).
        stack.env.update(world.environment())
        stack.up()
        stack.run("destroy", "--yes")
        assert left_in_moto(world) == []
    assert world.leftovers() == []


def test_throttling_is_retried_with_backoff(tmp_path: Path, world: Ec2World) -> None:
    stack = FaultStack(tmp_path, world)
    with throttling_proxy(world.moto.endpoint_url, {"RunInstances": 2}) as proxy:
        stack.env.update(world.environment(endpoint_url=proxy.url))
        stack.up()
        assert proxy.count("RunInstances", throttled=True) == 2
        assert proxy.count("RunInstances", throttled=False) == 1
        first, second, third = proxy.arrivals("RunInstances")
        assert first < second < third
        instance_id = stack.outputs()["instanceId"]
        # One instance (the retries did not launch more), running as a machine.
        running = [
            i["InstanceId"]
            for r in world.ec2().describe_instances()["Reservations"]
            for i in r["Instances"]
            if i["State"]["Name"] == "running"
        ]
        assert running == [instance_id]
        assert instance_id in world.hypervisor.machines
        stack.run("destroy", "--yes")
    assert left_in_moto(world) == []


def test_persistent_throttling_is_named(tmp_path: Path, world: Ec2World) -> None:
    stack = FaultStack(tmp_path, world)
    with throttling_proxy(world.moto.endpoint_url, {"RunInstances": None}) as proxy:
        stack.env.update(world.environment(endpoint_url=proxy.url))
        said = failed(stack.up(ok=False))
        attempts = proxy.count("RunInstances")
    assert "RequestLimitExceeded" in said, said
    assert "ec2:RunInstances" in said
    assert attempts > 1  # retried before it gave up
    assert f"after {attempts} attempts" in said, said
    assert left_in_moto(world) == []
    assert "wasmcloud:index:Ec2Machine" not in resources_in_state(stack)


def test_instance_quota_is_named_with_what_to_do(tmp_path: Path, world: Ec2World) -> None:
    stack = FaultStack(tmp_path, world)
    quota = INSTANCE_LIMIT_EXCEEDED
    with throttling_proxy(world.moto.endpoint_url, {"RunInstances": None}, quota) as proxy:
        stack.env.update(world.environment(endpoint_url=proxy.url))
        said = failed(stack.up(ok=False))
        attempts = proxy.count("RunInstances")
    assert "ec2:RunInstances" in said and "InstanceLimitExceeded" in said, said
    assert "Service Quotas" in said, said  # where to ask for more
    assert attempts == 1  # waiting does not lift a quota: not retried
    assert left_in_moto(world) == []
    assert "wasmcloud:index:Ec2Machine" not in resources_in_state(stack)


def test_unreachable_instance_is_terminated_and_reported(tmp_path: Path, world: Ec2World) -> None:
    stack = FaultStack(tmp_path, world, sshTimeoutSeconds=5, neverBoot="true")
    said = failed(stack.up(ok=False))
    match = re.search(r"instance (i-[0-9a-f]+) at (198\.19\.16\.\d+) did not answer SSH", said)
    assert match, said
    instance_id = match.group(1)
    assert f"instance {instance_id} was terminated" in said, said
    assert NEVER_BOOT_TAG in world.hypervisor.refused[instance_id]
    assert world.hypervisor.booted == []
    states = {
        i["InstanceId"]: i["State"]["Name"]
        for r in world.ec2().describe_instances()["Reservations"]
        for i in r["Instances"]
    }
    assert states == {instance_id: "terminated"}
    assert left_in_moto(world) == []
    assert "wasmcloud:index:Ec2Machine" not in resources_in_state(stack)
