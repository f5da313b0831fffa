"""The EC2 test harness itself (tests/ec2.py): an instance moto runs becomes a machine
that answers SSH at its private IP with the key pair's key; a terminated instance's
machine goes away; marked instances never answer; the throttling proxy and IAM-restricted
keys behave as AWS would; nothing is left behind. Every address is in 198.19.0.0/16 on a
bridge of this computer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest
from botocore.config import Config

from pulumi_wasmcloud.provision.connector import (
    AuthenticationFailed,
    SshConnection,
    SshTarget,
    Unreachable,
)
from tests.ec2 import NEVER_BOOT_TAG, Ec2World, ec2_world, ec2_world_fixture, throttling_proxy
from tests.machines import KeyPair

# The timeout allows for waiting on another run's EC2 world (tests/ec2.py: LOCK_TIMEOUT).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def world() -> Iterator[Ec2World]:
    yield from ec2_world_fixture()


def run_instance(world: Ec2World, region: str, key_name: str = "", **extra: Any) -> dict[str, Any]:
    ec2 = world.ec2(region)
    arguments: dict[str, Any] = {
        "ImageId": world.moto.ami(region),
        "InstanceType": "t3.small",
        "MinCount": 1,
        "MaxCount": 1,
        "SubnetId": world.subnets[region].subnet_id,
        **extra,
    }
    if key_name:
        arguments["KeyName"] = key_name
    return dict(ec2.run_instances(**arguments)["Instances"][0])


def ssh(address: str, key: KeyPair, host_key: str, timeout: float = 5.0) -> SshConnection:
    return SshConnection.connect(
        SshTarget(
            name=address,
            host=address,
            private_key=key.private_openssh,
            known_host_key=host_key,
            connect_timeout=timeout,
            attempts=1,
        )
    )


def test_instance_is_a_machine_at_its_private_ip_with_its_key_pair(world: Ec2World) -> None:
    key = KeyPair.generate("operator")
    world.ec2("us-east-1").import_key_pair(KeyName="operator", PublicKeyMaterial=key.public_line)
    world.ec2("eu-west-1").import_key_pair(KeyName="operator", PublicKeyMaterial=key.public_line)
    east = run_instance(world, "us-east-1", "operator")
    west = run_instance(world, "eu-west-1", "operator")
    assert east["PrivateIpAddress"].startswith("198.19.16.")
    assert west["PrivateIpAddress"].startswith("198.19.32.")

    east_machine = world.hypervisor.wait_booted(east["InstanceId"])
    west_machine = world.hypervisor.wait_booted(west["InstanceId"])
    assert east_machine.address == east["PrivateIpAddress"]
    with ssh(east["PrivateIpAddress"], key, east_machine.host_key) as connection:
        said = connection.check("hostname; whoami; ip -o -4 addr show scope global").stdout
    assert said.split()[:2] == [east["InstanceId"], "root"]
    assert f"inet {east['PrivateIpAddress']}/16" in said
    # Regions reach each other (as over VPC peering): east's machine opens west's sshd.
    reached = east_machine.inside(
        [
            "python3",
            "-c",
            f"import socket; socket.create_connection(('{west_machine.address}', 22), 5)",
        ]
    )
    assert reached.returncode == 0, reached.stderr

    # Only the key pair's key logs in.
    with pytest.raises(AuthenticationFailed):
        ssh(east["PrivateIpAddress"], KeyPair.generate("stranger"), east_machine.host_key)

    world.ec2("us-east-1").terminate_instances(InstanceIds=[east["InstanceId"]])
    world.hypervisor.wait_gone(east["InstanceId"])
    assert not east_machine.namespace.exists()
    with pytest.raises(Unreachable):
        ssh(east["PrivateIpAddress"], key, east_machine.host_key, timeout=1.0)
    assert west["InstanceId"] in world.hypervisor.machines


def test_marked_and_outside_instances_never_boot(world: Ec2World) -> None:
    tags = [{"ResourceType": "instance", "Tags": [{"Key": NEVER_BOOT_TAG, "Value": "yes"}]}]
    marked = run_instance(world, "us-east-1", TagSpecifications=tags)
    world.hypervisor.never_boot("core-9")
    named = [
        {"ResourceType": "instance", "Tags": [{"Key": "wasmcloud:machine", "Value": "core-9"}]}
    ]
    by_name = run_instance(world, "us-east-1", TagSpecifications=named)
    # moto's default VPC (172.31.0.0/16) is no test address: never given to a machine.
    default_vpc = dict(
        world.ec2("us-east-1").run_instances(
            ImageId=world.moto.ami(), MinCount=1, MaxCount=1, InstanceType="t3.small"
        )["Instances"][0]
    )
    ids = [marked["InstanceId"], by_name["InstanceId"], default_vpc["InstanceId"]]
    world.hypervisor.wait_for(
        lambda: all(i in world.hypervisor.refused for i in ids), "three refusals"
    )
    assert world.hypervisor.machines == {}
    assert NEVER_BOOT_TAG in world.hypervisor.refused[marked["InstanceId"]]
    assert "core-9" in world.hypervisor.refused[by_name["InstanceId"]]
    assert default_vpc["PrivateIpAddress"] in world.hypervisor.refused[default_vpc["InstanceId"]]


def test_throttling_proxy_answers_request_limit_exceeded_then_forwards(world: Ec2World) -> None:
    with throttling_proxy(world.moto.endpoint_url, {"DescribeInstances": 2}) as proxy:
        ec2 = world.moto.client("ec2", endpoint_url=proxy.url)
        no_retries = Config(retries={"total_max_attempts": 1, "mode": "standard"})
        ec2_once = world.moto._session.client(
            "ec2",
            region_name="us-east-1",
            endpoint_url=proxy.url,
            aws_access_key_id=world.moto.credentials.access_key_id,
            aws_secret_access_key=world.moto.credentials.secret_access_key,
            config=no_retries,
        )
        for _ in range(2):
            with pytest.raises(botocore.exceptions.ClientError) as refused:
                ec2_once.describe_instances()
            assert refused.value.response["Error"]["Code"] == "RequestLimitExceeded"
            assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert ec2_once.describe_instances()["Reservations"] == []
        assert ec2.describe_vpcs()["Vpcs"]  # other actions pass straight through
        assert proxy.count("DescribeInstances", throttled=True) == 2
        assert proxy.count("DescribeInstances", throttled=False) == 1
        assert proxy.count("DescribeVpcs") == 1

    with throttling_proxy(world.moto.endpoint_url, {"GetParameter": None}) as always:
        ssm = world.moto.client("ssm", endpoint_url=always.url)
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            ssm.get_parameter(
                Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
            )
        assert refused.value.response["Error"]["Code"] == "ThrottlingException"
        assert always.count("GetParameter", throttled=False) == 0


def test_restricted_credentials_are_refused_what_their_policy_lacks() -> None:
    with ec2_world(enforce_iam=True) as world:
        restricted = world.moto.restricted_credentials(["ec2:CreateSecurityGroup"])
        ec2 = world.moto.client("ec2", credentials=restricted)
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            ec2.create_security_group(GroupName="web", Description="web")
        assert "ec2:CreateSecurityGroup" in refused.value.response["Error"]["Message"]
        stranger = world.moto.client("ec2", credentials=type(restricted)("AKIAUNKNOWN", "secret"))
        with pytest.raises(botocore.exceptions.ClientError):
            stranger.describe_instances()
        # What the policy allows works, and the hypervisor (the harness's administrator)
        # still sees and boots the instance.
        instance = ec2.run_instances(
            ImageId=world.moto.ami(),
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.small",
            SubnetId=world.subnets["us-east-1"].subnet_id,
        )["Instances"][0]
        world.hypervisor.wait_booted(instance["InstanceId"])
    assert world.hypervisor.errors == []
    assert world.leftovers() == []
