"""What an Ec2Machine asks of EC2, decided without EC2: names, tags, the ingress rules of
each role, the region check, the stack of a URN; the resource's strict input check and
diff; and the sentences AWS's errors become (the code, the operation, the fix)."""

from __future__ import annotations

import asyncio
from typing import Any

import botocore.exceptions  # type: ignore[import-untyped]
import pytest

from pulumi_wasmcloud.provider.ec2_machine import (
    DEFAULT_AMI_PARAMETER,
    Ec2MachineResource,
    Ec2Spec,
    parse_ec2_machine,
)
from pulumi_wasmcloud.provider.engine_log import EngineLog
from pulumi_wasmcloud.provider.values import UNKNOWN
from pulumi_wasmcloud.provision.ec2 import Ec2, key_pair_material, known_regions
from pulumi_wasmcloud.provision.ec2_plan import (
    ExtraPort,
    IngressRule,
    cidr_problem,
    describe_rules,
    ingress_rules,
    machine_tags,
    object_name,
    region_problem,
    stack_of_urn,
    tag_problem,
)
from tests.machines import KeyPair

OPERATOR = "203.0.113.0/24"
LATTICE = "198.19.0.0/16"
PEERS = "198.19.16.0/20"


def ports(rules: list[IngressRule]) -> dict[int, list[str]]:
    opened: dict[int, list[str]] = {}
    for rule in rules:
        opened.setdefault(rule.port, []).append(rule.cidr)
    return opened


def test_a_core_machine_opens_ssh_clients_routes_and_leaf_connections() -> None:
    rules = ingress_rules("core", [OPERATOR], [LATTICE], [PEERS])
    assert ports(rules) == {22: [OPERATOR], 4222: [LATTICE], 6222: [PEERS], 7422: [PEERS]}


def test_an_edge_machine_opens_ssh_and_clients_only() -> None:
    rules = ingress_rules("edge", [OPERATOR], [LATTICE], [PEERS])
    assert ports(rules) == {22: [OPERATOR], 4222: [LATTICE]}


def test_a_host_machine_opens_ssh_only_plus_its_extra_ports() -> None:
    extra = [ExtraPort(8080, ("0.0.0.0/0", "::/0"))]
    rules = ingress_rules("host", [OPERATOR], [LATTICE], [PEERS], extra)
    assert ports(rules) == {22: [OPERATOR], 8080: ["0.0.0.0/0", "::/0"]}
    assert [r.ipv6 for r in rules if r.port == 8080] == [False, True]
    assert describe_rules(rules) == f"22 from {OPERATOR}; 8080 from 0.0.0.0/0, ::/0"


def test_rules_repeat_nothing_and_come_sorted() -> None:
    rules = ingress_rules("core", [LATTICE, OPERATOR, LATTICE], [LATTICE], [LATTICE])
    assert rules == sorted(set(rules))
    assert len([r for r in rules if r.port == 22]) == 2


def test_no_cidr_opens_nothing() -> None:
    assert ingress_rules("core", [], [], []) == []
    assert describe_rules([]) == "no inbound port open"


def test_a_cidr_with_host_bits_or_without_prefix_is_refused_with_the_fix() -> None:
    assert cidr_problem("10.0.0.0/8") is None
    assert "did you mean 10.0.0.0/24" in str(cidr_problem("10.0.0.1/24"))
    assert "write 10.0.0.7/32" in str(cidr_problem("10.0.0.7"))
    assert "not a CIDR block" in str(cidr_problem("ten"))
    with pytest.raises(ValueError, match="port 22"):
        ingress_rules("host", ["10.0.0.1/24"], [], [])


def test_names_and_tags_say_whose_objects_they_are() -> None:
    assert object_name("default", "prod", "core-1") == "wasmcloud-default-prod-core-1"
    tags = machine_tags("prod", "default", "core-1", "core", {"team": "edge", "Name": "x"})
    assert tags == {
        "team": "edge",
        "wasmcloud:stack": "prod",
        "wasmcloud:lattice": "default",
        "wasmcloud:machine": "core-1",
        "wasmcloud:role": "core",
        "Name": "wasmcloud-default-prod-core-1",
    }
    assert tag_problem("team") is None
    assert "provider's own" in str(tag_problem("wasmcloud:role"))
    assert "reserved by AWS" in str(tag_problem("aws:cloudformation"))
    assert "Name" in str(tag_problem("Name"))


def test_an_unknown_region_names_the_nearest_known_ones() -> None:
    known = known_regions()
    assert {"us-east-1", "eu-west-1", "ap-southeast-1", "cn-north-1"} <= set(known)
    assert region_problem("eu-west-1", known) is None
    problem = str(region_problem("eu-wset-1", known))
    assert "eu-wset-1" in problem and "did you mean eu-west-1" in problem
    assert "did you mean" not in str(region_problem("mars", known))


def test_the_stack_comes_from_the_urn() -> None:
    assert stack_of_urn("urn:pulumi:prod::multi::wasmcloud:index:Ec2Machine::core-1") == "prod"
    with pytest.raises(ValueError, match="not a Pulumi resource URN"):
        stack_of_urn("core-1")


# --- the resource's check and diff -------------------------------------------------------

KEY = KeyPair.generate("ec2-unit")


def given(**changes: Any) -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "region": "us-east-1",
        "lattice": "default",
        "role": "core",
        "subnetId": "subnet-0123abcd",
        "privateKey": KEY.private_openssh,
        "sshFrom": [OPERATOR],
    }
    return {**inputs, **changes}


def check(inputs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    checked = asyncio.run(Ec2MachineResource(EngineLog(None)).check({}, inputs))
    return checked.inputs, {f.property: f.reason for f in checked.failures}


def test_check_fills_the_defaults_and_gives_a_spec() -> None:
    inputs, failures = check(given())
    assert failures == {}
    assert inputs["amiParameter"] == DEFAULT_AMI_PARAMETER
    assert (inputs["instanceType"], inputs["user"], inputs["address"]) == (
        "t3.small",
        "admin",
        "private",
    )
    spec = parse_ec2_machine(inputs)
    assert isinstance(spec, Ec2Spec) and spec.ssh_timeout_seconds == 300


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("region", "us-east-9", "not an EC2 region"),
        ("region", 1, "expected a string"),
        ("role", "leaf", "expected one of core, edge, host"),
        ("subnetId", "vpc-1234", "is not like"),
        ("sshTimeoutSeconds", "300", 'a string ("300")'),
        ("sshTimeoutSeconds", True, "got true"),
        ("address", "elastic", 'expected "private" or "public"'),
        ("sshFrom", "10.0.0.0/8", "expected a list"),
        ("endpointUrl", "localhost:5000", "is not like"),
        ("privateKey", "not a key", "not an unencrypted"),
        ("tags", {"team": 1}, "expected a string"),
    ],
)
def test_a_wrong_input_is_refused_by_its_name(field: str, value: Any, said: str) -> None:
    _, failures = check(given(**{field: value}))
    key = "tags.team" if field == "tags" else field
    assert key in failures, failures
    assert said in failures[key]


def test_nested_inputs_are_refused_by_their_path() -> None:
    _, failures = check(
        given(
            sshFrom=["10.0.0.1/8"],
            extraPorts=[{"port": "8080", "cidrs": ["0.0.0.0/0"]}, {"port": 80, "cidr": []}],
            tags={"wasmcloud:stack": "x"},
        )
    )
    assert "did you mean 10.0.0.0/8" in failures["sshFrom[0]"]
    assert 'a string ("8080")' in failures["extraPorts[0].port"]
    assert "unknown field" in failures["extraPorts[1].cidr"]
    assert "expected a list" in failures["extraPorts[1].cidrs"]
    assert "provider's own" in failures["tags.wasmcloud:stack"]


def test_ami_and_parameter_exclude_each_other() -> None:
    _, failures = check(given(ami="ami-0abc", amiParameter="/x"))
    assert failures == {"ami": "give ami or amiParameter, not both"}
    inputs, failures = check(given(ami="ami-0abc"))
    assert failures == {} and inputs.get("amiParameter") is None


def test_an_ecdsa_key_is_refused_since_ec2_key_pairs_are_ed25519_or_rsa() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ecdsa = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )
    _, failures = check(given(privateKey=ecdsa))
    assert "ed25519 or RSA" in failures["privateKey"]
    assert key_pair_material(KEY.private_openssh).startswith("ssh-ed25519 ")


def test_values_not_known_yet_pass_check_but_make_no_spec() -> None:
    inputs, failures = check(given(subnetId=UNKNOWN, sshFrom=[UNKNOWN, "10.0.0.0/8"]))
    assert failures == {}
    assert parse_ec2_machine(inputs) == []


def diff(olds: dict[str, Any], news: dict[str, Any]) -> tuple[set[str], list[str]]:
    found = asyncio.run(Ec2MachineResource(EngineLog(None)).diff("i-1", olds, news))
    return set(found.changed), found.replaces


def test_another_place_or_image_replaces_the_instance_rules_and_tags_do_not() -> None:
    olds, _ = check(given())
    replacing: list[tuple[str, Any]] = [
        ("region", "eu-west-1"),
        ("subnetId", "subnet-99"),
        ("instanceType", "t3.large"),
        ("role", "edge"),
        ("lattice", "other"),
        ("address", "public"),
        ("amiParameter", "/other"),
    ]
    for field, value in replacing:
        news, _ = check({**olds, field: value})
        assert diff(olds, news) == ({field}, [field]), field
    in_place: list[tuple[str, Any]] = [
        ("sshFrom", ["10.0.0.0/8"]),
        ("peerCidrs", ["10.0.0.0/8"]),
        ("tags", {"team": "a"}),
        ("extraPorts", [{"port": 80, "cidrs": ["0.0.0.0/0"]}]),
    ]
    for field, value in in_place:
        news, _ = check({**olds, field: value})
        assert diff(olds, news) == ({field}, []), field
    assert diff(olds, olds) == (set(), [])


def test_rules_edited_by_hand_or_a_stopped_instance_are_drift_to_repair() -> None:
    inputs, _ = check(given())
    planned = [str(r) for r in parse_ec2_machine(inputs).rules()]  # type: ignore[union-attr]
    olds = {**inputs, "ingress": planned, "state": "running"}
    assert diff(olds, inputs) == (set(), [])
    assert diff({**olds, "ingress": planned[1:]}, inputs) == ({"ingress"}, [])
    assert diff({**olds, "state": "stopped"}, inputs) == ({"state"}, [])


# --- AWS's errors as sentences -------------------------------------------------------------


def aws_error(code: str, message: str = "", retries: int = 0) -> botocore.exceptions.ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"RetryAttempts": retries},
    }
    return botocore.exceptions.ClientError(response, "RunInstances")


@pytest.fixture(scope="module")
def ec2() -> Ec2:
    return Ec2("eu-west-1", "http://127.0.0.1:9")  # never called: only its error sentences


def test_a_missing_permission_names_the_iam_action_to_grant(ec2: Ec2) -> None:
    said = str(ec2.error("ec2", "RunInstances", "", aws_error("UnauthorizedOperation", "no.")))
    assert "ec2:RunInstances in eu-west-1" in said
    assert "UnauthorizedOperation" in said
    assert "grant the IAM action ec2:RunInstances" in said


def test_throttling_says_how_often_it_was_tried(ec2: Ec2) -> None:
    said = str(ec2.error("ec2", "DescribeInstances", "", aws_error("RequestLimitExceeded", "", 4)))
    assert "RequestLimitExceeded" in said and "after 5 attempts" in said


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        ("InvalidAMIID.NotFound", "AMI ids differ per region"),
        ("InstanceLimitExceeded", "Service Quotas"),
        ("VcpuLimitExceeded", "Service Quotas"),
        ("InsufficientInstanceCapacity", "another instanceType"),
        ("InvalidSubnetID.NotFound", "subnet id of this region"),
        ("AuthFailure", "refused the credentials"),
        ("ParameterNotFound", "another amiParameter"),
    ],
)
def test_each_aws_error_says_its_fix(ec2: Ec2, code: str, fix: str) -> None:
    said = str(ec2.error("ec2", "RunInstances", "t3.small", aws_error(code, "AWS said so.")))
    assert code in said and fix in said and "AWS said so" in said
    assert "ClientError" not in said
