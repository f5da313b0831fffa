"""Ec2Machine with the real Pulumi CLI, against moto's EC2 made real by the hypervisor of
tests/ec2.py (each running instance a namespace machine with real sshd at its private IP).

One instance, core-1, carries the whole lattice, as the cheapest real check: a Lattice
whose cluster is ``core.ssh`` (nats-server and the controller installed over SSH, the
host key verified against the one Ec2Machine recorded) and a Host on the same machine
that joins it. Preview says what will be launched and launches nothing; up launches,
installs and joins; a second up changes nothing; destroy leaves no instance, security
group or key pair in moto. Then an instance made by hand with the machine's tags (what a
cut-short `up` leaves) is adopted by the next up, not duplicated; a new extra port is
opened in place; a rule revoked by hand is drift that `preview --refresh` shows and
`up --refresh` repairs; destroy removes the adopted machine too.

The tests share one stack and run in file order.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import nats
import pytest

from host_agent.lattice.client import CtlClient
from tests.ec2 import AMI_PARAMETER, DEFAULT_REGION, Ec2World, ec2_world_fixture
from tests.machines import KeyPair
from tests.pulumi_cli import Stack
from tests.secured_nats import client_options

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

NETWORK = "198.19.0.0/16"  # the harness's bridge: the operator and every instance
MACHINE = "core-1"
OBJECT_NAME = f"wasmcloud-default-ec2-{MACHINE}"  # wasmcloud-<lattice>-<stack>-<machine>
TAGS = {"wasmcloud:stack": "ec2", "wasmcloud:lattice": "default", "wasmcloud:machine": MACHINE}

PROGRAM = f'''
import pulumi
import pulumi_wasmcloud as wasmcloud

config = pulumi.Config()
extra = config.get_object("extraPorts") or []
core = wasmcloud.Ec2Machine(
    "{MACHINE}",
    region="{DEFAULT_REGION}",
    lattice="default",
    role="core",
    subnet_id=config.require("subnetId"),
    private_key=config.require_secret("sshKey"),
    ami_parameter="{AMI_PARAMETER}",
    user="root",  # the test machines' login
    ssh_from=["{NETWORK}"],
    lattice_cidrs=["{NETWORK}"],
    peer_cidrs=["{NETWORK}"],
    ssh_timeout_seconds=60,
    tags={{"team": "wasmcloud-tests"}},
    extra_ports=[{{"port": port, "cidrs": ["{NETWORK}"]}} for port in extra],
)
pulumi.export("instanceId", core.instance_id)
pulumi.export("address", core.address)
if config.get_bool("withLattice"):
    lattice = wasmcloud.Lattice("ec2", cluster=[core.ssh])
    host = wasmcloud.Host("core-1-host", lattice=lattice, machine=core.ssh)
    pulumi.export("natsUrl", lattice.nats_url)
    pulumi.export("hostId", host.host_id)
    pulumi.export("credentials", lattice.credentials)
    pulumi.export("clientTls", lattice.client_tls)
'''


@pytest.fixture(scope="module")
def world() -> Iterator[Ec2World]:
    yield from ec2_world_fixture()


@pytest.fixture(scope="module")
def stack(world: Ec2World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    made = Stack(
        tmp_path_factory.mktemp("ec2-machine"),
        "ec2",
        program=PROGRAM,
        settings={"subnetId": world.subnets[DEFAULT_REGION].subnet_id, "withLattice": "true"},
        env=world.environment(),
    )
    made.run("config", "set", "--secret", "--", "sshKey", KeyPair.generate().private_openssh)
    try:
        yield made
    finally:
        made.run("destroy", "--yes", ok=False)


def live_instances(world: Ec2World) -> list[dict[str, Any]]:
    """The instances in moto not terminated (nor terminating)."""
    answer = world.ec2().describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]}]
    )
    return [i for r in answer["Reservations"] for i in r["Instances"]]


def our_groups(world: Ec2World) -> list[dict[str, Any]]:
    groups = world.ec2().describe_security_groups()["SecurityGroups"]
    return [g for g in groups if g["GroupName"].startswith("wasmcloud-")]


def key_pairs(world: Ec2World) -> list[str]:
    return [k["KeyName"] for k in world.ec2().describe_key_pairs()["KeyPairs"]]


def tags_of(described: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in described.get("Tags", [])}


def hosts_in_lattice(url: str, secured: dict[str, Any]) -> list[str]:
    """The lattice's hosts, asked as its tooling user over mutual TLS (machines' lattices
    are secured); one connect attempt, so a refusal fails the test instead of retrying."""

    async def ping() -> list[str]:
        nc = await nats.connect(
            url, allow_reconnect=False, connect_timeout=10, **client_options(secured)
        )
        try:
            return [h["id"] for h in await CtlClient(nc, "default").ping_hosts(wait=1.0)]
        finally:
            await nc.close()

    return asyncio.run(ping())


def assert_nothing_left(world: Ec2World) -> None:
    assert live_instances(world) == []
    assert our_groups(world) == []
    assert key_pairs(world) == []
    world.hypervisor.wait_for(lambda: not world.hypervisor.machines, "every machine off")


def test_preview_says_what_will_be_launched_and_launches_nothing(
    world: Ec2World, stack: Stack
) -> None:
    shown = stack.run("preview").stdout
    assert re.search(rf"\+\s+wasmcloud:index:Ec2Machine {MACHINE} create", shown), shown
    assert f"{MACHINE}: will launch a t3.small from ami-" in shown, shown
    assert f"key pair {OBJECT_NAME}" in shown
    assert f"inbound: 22 from {NETWORK}; 4222 from {NETWORK}; 6222 from {NETWORK}" in shown
    assert live_instances(world) == [] and our_groups(world) == [] and key_pairs(world) == []


def test_up_launches_the_machine_and_the_host_on_it_joins(world: Ec2World, stack: Stack) -> None:
    done = stack.up()
    assert f"{MACHINE}: SSH answers" in done.stdout, done.stdout
    outputs = stack.outputs()
    [instance] = live_instances(world)
    assert instance["InstanceId"] == outputs["instanceId"]
    assert instance["PrivateIpAddress"] == outputs["address"]
    wanted_tags = {**TAGS, "wasmcloud:role": "core", "team": "wasmcloud-tests"}
    assert tags_of(instance).items() >= wanted_tags.items()
    [group] = our_groups(world)
    assert group["GroupName"] == OBJECT_NAME and tags_of(group).items() >= TAGS.items()
    opened = sorted(
        (p["FromPort"], r["CidrIp"]) for p in group["IpPermissions"] for r in p["IpRanges"]
    )
    assert opened == [(22, NETWORK), (4222, NETWORK), (6222, NETWORK), (7422, NETWORK)]
    assert key_pairs(world) == [OBJECT_NAME]
    assert outputs["natsUrl"] == f"nats://{outputs['address']}:4222"
    secured = json.loads(stack.run("stack", "output", "--json", "--show-secrets").stdout)
    assert outputs["hostId"] in hosts_in_lattice(outputs["natsUrl"], secured)


def test_a_second_up_changes_nothing(world: Ec2World, stack: Stack) -> None:
    before = stack.outputs()["instanceId"]
    stack.up("--expect-no-changes")
    assert [i["InstanceId"] for i in live_instances(world)] == [before]


def test_destroy_leaves_no_instance_group_or_key_pair(world: Ec2World, stack: Stack) -> None:
    stack.run("destroy", "--yes")
    assert_nothing_left(world)


def test_an_instance_a_cut_short_up_left_is_adopted_not_duplicated(
    world: Ec2World, stack: Stack
) -> None:
    # What an `up` cut short after RunInstances leaves: the key pair and a tagged instance
    # (made here by hand), and nothing in the stack's state.
    ec2 = world.ec2()
    key = KeyPair.generate()
    stack.run("config", "set", "--secret", "--", "sshKey", key.private_openssh)
    stack.config("withLattice", "false")
    ec2.import_key_pair(KeyName=OBJECT_NAME, PublicKeyMaterial=key.public_line.encode())
    left = ec2.run_instances(
        ImageId=world.moto.ami(),
        InstanceType="t3.small",
        MinCount=1,
        MaxCount=1,
        SubnetId=world.subnets[DEFAULT_REGION].subnet_id,
        KeyName=OBJECT_NAME,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in TAGS.items()]}
        ],
    )["Instances"][0]["InstanceId"]

    done = stack.up()
    assert f"{MACHINE}: adopting instance {left}" in done.stdout, done.stdout
    assert stack.outputs()["instanceId"] == left
    assert [i["InstanceId"] for i in live_instances(world)] == [left]
    assert len(our_groups(world)) == 1


def opened_ports(world: Ec2World) -> list[int]:
    [group] = our_groups(world)
    return sorted(p["FromPort"] for p in group["IpPermissions"])


def test_ports_change_in_place_and_rules_edited_by_hand_are_drift(
    world: Ec2World, stack: Stack
) -> None:
    before = stack.outputs()["instanceId"]
    stack.config("extraPorts", "[8080]")
    stack.up()
    assert stack.outputs()["instanceId"] == before
    assert opened_ports(world) == [22, 4222, 6222, 7422, 8080]

    [group] = our_groups(world)
    world.ec2().revoke_security_group_ingress(
        GroupId=group["GroupId"],
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 8080,
                "ToPort": 8080,
                "IpRanges": [{"CidrIp": NETWORK}],
            }
        ],
    )
    drift = stack.run("preview", "--refresh", "--expect-no-changes", "--diff", ok=False)
    assert drift.returncode != 0 and "ingress" in drift.stdout, drift.stdout
    stack.up("--refresh")
    assert opened_ports(world) == [22, 4222, 6222, 7422, 8080]
    assert [i["InstanceId"] for i in live_instances(world)] == [before]


def test_destroy_removes_the_adopted_machine_too(world: Ec2World, stack: Stack) -> None:
    stack.run("destroy", "--yes")
    assert_nothing_left(world)
