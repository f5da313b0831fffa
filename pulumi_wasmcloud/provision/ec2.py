"""EC2 for an ``Ec2Machine``: a thin, synchronous boto3 adapter (callers run it in a
thread: ``asyncio.to_thread``). Every AWS failure becomes an ``Ec2Error`` sentence that
names the operation, AWS's error code and the fix.

What real EC2 does that a test double may not (docs/ec2.md):

- throttling (``RequestLimitExceeded``): botocore's ``standard`` retry mode retries it
  with exponential backoff, ``API_ATTEMPTS`` times in all; then the error says so;
- eventual consistency: an instance, group or key just made may be "not found" for a
  few seconds; those answers are retried, bounded by ``CONSISTENCY_SECONDS``;
- state transitions: an instance is ``pending`` before ``running`` and ``shutting-down``
  before ``terminated``; the waits poll ``DescribeInstances`` with backoff, bounded;
- a security group stays in use (``DependencyViolation``) until its instances are gone,
  a little after ``terminated``: its delete is retried, bounded;
- ``RunInstances`` carries a client token, so botocore's retry of a call whose answer was
  lost does not start a second instance.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import boto3  # type: ignore[import-untyped]
import botocore.config  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]
import paramiko

from pulumi_wasmcloud.provision.connector import parse_private_key, public_key_line
from pulumi_wasmcloud.provision.ec2_plan import IngressRule

T = TypeVar("T")

# Attempts of one API call, the first included, before a throttled call is reported.
API_ATTEMPTS = 5
# How long "not found" right after a create is taken for EC2 catching up.
CONSISTENCY_SECONDS = 60.0
RUNNING_TIMEOUT = 600.0  # pending -> running
TERMINATED_TIMEOUT = 600.0  # shutting-down -> terminated
SECURITY_GROUP_DELETE_TIMEOUT = 300.0  # DependencyViolation while instances go away
POLL_FIRST = 0.5  # seconds between polls of EC2 (doubling up to POLL_MOST)
POLL_MOST = 5.0
SSH_PROBE_TIMEOUT = 5.0  # one TCP connect + SSH banner + key exchange attempt

# Instance states a machine can be adopted in (stopped ones are started again).
LIVE_STATES = ("pending", "running", "stopping", "stopped")
GONE_STATES = ("shutting-down", "terminated")
THROTTLED = (
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestThrottledException",
    "EC2ThrottledException",
)
DENIED = (
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedAccess",
    "OptInRequired",
)
BAD_CREDENTIALS = (
    "AuthFailure",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "ExpiredToken",
    "RequestExpired",
)
QUOTAS = ("InstanceLimitExceeded", "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded")
NO_CAPACITY = ("InsufficientInstanceCapacity", "InsufficientCapacity", "Unsupported")


class Ec2Error(RuntimeError):
    """An EC2 call failed; the message says which, AWS's code, and what to do."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Instance:
    id: str
    state: str
    private_ip: str
    public_ip: str  # "" when it has none
    subnet_id: str
    image_id: str
    instance_type: str
    key_name: str
    tags: dict[str, str] = field(default_factory=dict)
    state_reason: str = ""  # why EC2 put it in this state (a failed launch says why)

    @classmethod
    def of(cls, described: Mapping[str, Any]) -> Instance:
        return cls(
            id=described["InstanceId"],
            state=described.get("State", {}).get("Name", ""),
            private_ip=described.get("PrivateIpAddress") or "",
            public_ip=described.get("PublicIpAddress") or "",
            subnet_id=described.get("SubnetId") or "",
            image_id=described.get("ImageId") or "",
            instance_type=described.get("InstanceType") or "",
            key_name=described.get("KeyName") or "",
            tags=_tag_dict(described.get("Tags")),
            state_reason=(described.get("StateReason") or {}).get("Message", ""),
        )


@dataclass(frozen=True)
class Made:
    """An object this call found or created (``created``: it did not exist before)."""

    id: str
    created: bool


def known_regions() -> list[str]:
    """Every region botocore knows EC2 in, all partitions (aws, aws-cn, aws-us-gov...)."""
    session = _session(None)  # the shared models: listing regions loads EC2's
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return sorted(regions)


def key_pair_material(private_key: str, field_name: str = "privateKey") -> str:
    """The OpenSSH public line of ``private_key``: what ImportKeyPair takes. EC2 key pairs
    are ed25519 or RSA (it refuses ECDSA)."""
    key = parse_private_key(private_key, field_name)
    if key.get_name() not in ("ssh-ed25519", "ssh-rsa"):
        raise ValueError(
            f"{field_name}: EC2 key pairs are ed25519 or RSA, this key is {key.get_name()}; "
            "make one with `ssh-keygen -t ed25519`"
        )
    return public_key_line(key)


@functools.cache
def _service_models() -> Any:
    """botocore's loader of service models, shared by every session of this process:
    each new session would load EC2's (megabytes of JSON) again, ~0.4 s per machine,
    paid one machine after another in a preview of many (the GIL). Credentials and
    settings stay per session, read from the environment each time."""
    return botocore.session.get_session().get_component("data_loader")


# One machine's clients at a time: the first loads the models and the others then find
# them loaded, instead of every machine's thread loading them at once (a preview of five
# machines: ~0.9 s instead of ~1.9 s).
_MAKING_CLIENTS = threading.Lock()


def _session(region: str | None) -> Any:
    core = botocore.session.get_session()
    core.register_component("data_loader", _service_models())
    return boto3.session.Session(botocore_session=core, region_name=region)


class Ec2:
    """EC2 (and SSM, for AMI parameters) in one region, as one machine needs it."""

    def __init__(
        self,
        region: str,
        endpoint_url: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        api_attempts: int = API_ATTEMPTS,
    ) -> None:
        self.region = region
        self.endpoint_url = endpoint_url or None
        self._sleep = sleep
        self.api_attempts = api_attempts
        config = botocore.config.Config(
            region_name=region,
            retries={"mode": "standard", "total_max_attempts": api_attempts},
            connect_timeout=10,
            read_timeout=60,
        )
        session = _session(region)
        with _MAKING_CLIENTS:
            self._ec2 = session.client("ec2", endpoint_url=self.endpoint_url, config=config)
            self._ssm = session.client("ssm", endpoint_url=self.endpoint_url, config=config)

    # --- calls and their errors -----------------------------------------------------------

    def _call(self, operation: str, subject: str = "", **params: Any) -> Any:
        """EC2's ``operation`` (its API name, e.g. ``RunInstances``) with ``params``;
        ``subject`` is what the call is about, for the error."""
        return self._invoke(self._ec2, "ec2", operation, subject, params)

    def _invoke(self, client: Any, service: str, operation: str, subject: str, params: Any) -> Any:
        method = getattr(client, _snake(operation))
        try:
            return method(**params)
        except botocore.exceptions.ClientError as error:
            raise self.error(service, operation, subject, error) from None
        except (
            botocore.exceptions.NoCredentialsError,
            botocore.exceptions.PartialCredentialsError,
            botocore.exceptions.CredentialRetrievalError,
        ) as error:
            raise Ec2Error(
                f"{service}:{operation} in {self.region}: no usable AWS credentials ({error}). "
                "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the "
                "environment `pulumi` runs in, or run `aws sso login` for your profile.",
                "NoCredentials",
            ) from None
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError,
        ) as error:
            where = self.endpoint_url or f"{service}.{self.region}.amazonaws.com"
            raise Ec2Error(
                f"{service}:{operation} in {self.region}: cannot reach the API at {where} "
                f"({error}). Check the network (and endpointUrl / AWS_ENDPOINT_URL if set), "
                "then run the command again.",
                "Unreachable",
            ) from None

    def error(
        self, service: str, operation: str, subject: str, error: botocore.exceptions.ClientError
    ) -> Ec2Error:
        """AWS's answer as a sentence: the operation, the code, and what to do."""
        details = error.response.get("Error", {})
        code = str(details.get("Code", "Unknown"))
        said = str(details.get("Message", "")).strip()
        action = f"{service}:{operation}"
        about = f" ({subject})" if subject else ""
        head = f"{action} in {self.region}{about} failed with {code}"
        if code in DENIED:
            fix = (
                f"the credentials in use may not call it: grant the IAM action {action} "
                "to that user or role (on real AWS, `aws sts decode-authorization-message` "
                "shows the full reason)"
            )
        elif code in BAD_CREDENTIALS:
            fix = (
                "AWS refused the credentials themselves: check AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY or the profile (and the clock), or log in again"
            )
        elif code in THROTTLED:
            attempts = error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            fix = (
                f"AWS throttled the call and still did after {attempts} attempts with "
                "backoff; run the command again later, or ask AWS for a higher API rate "
                "limit if other tools share this account's budget"
            )
        elif code.startswith("InvalidAMIID"):
            fix = (
                "no such image here: AMI ids differ per region; give an AMI of this region "
                "or use amiParameter (an SSM public parameter) to look it up"
            )
        elif code in QUOTAS:
            fix = (
                "the account's instance quota in this region is used up: terminate unused "
                "instances, use a smaller instanceType, or ask for more in Service Quotas"
            )
        elif code in NO_CAPACITY:
            fix = (
                "AWS has no capacity for this instance type in the subnet's availability "
                "zone now: try another instanceType, a subnet in another zone, or later"
            )
        elif code.startswith("InvalidSubnet"):
            fix = "no such subnet in this region: give a subnet id of this region's VPC"
        elif code == "ParameterNotFound":
            fix = "no such SSM parameter in this region: give another amiParameter, or ami"
        else:
            fix = "see AWS's message above"
        message = f"{head}: {said.rstrip('.')}. Fix: {fix}." if said else f"{head}. Fix: {fix}."
        return Ec2Error(message, code)

    def _until_consistent(self, what: str, codes: Sequence[str], call: Callable[[], T]) -> T:
        """``call`` again while EC2 answers one of ``codes`` (an object just made is not
        known everywhere yet), bounded by CONSISTENCY_SECONDS."""
        deadline = time.monotonic() + CONSISTENCY_SECONDS
        delay = POLL_FIRST
        while True:
            try:
                return call()
            except Ec2Error as error:
                if error.code not in codes or time.monotonic() + delay > deadline:
                    raise
            self._sleep(delay)  # back-off before asking EC2 again
            delay = min(delay * 2, POLL_MOST)

    # --- lookups ------------------------------------------------------------------------

    def find_instances(self, tags: Mapping[str, str]) -> list[Instance]:
        """Instances not terminated (nor terminating) that carry all of ``tags``."""
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in sorted(tags.items())]
        filters.append({"Name": "instance-state-name", "Values": list(LIVE_STATES)})
        found: list[Instance] = []
        token: dict[str, str] = {}
        while True:
            page = self._call("DescribeInstances", "by tags", Filters=filters, **token)
            for reservation in page.get("Reservations", []):
                found += [Instance.of(i) for i in reservation.get("Instances", [])]
            if not page.get("NextToken"):
                break
            token = {"NextToken": page["NextToken"]}
        return sorted(found, key=lambda i: i.id)

    def describe_instance(self, instance_id: str) -> Instance | None:
        """The instance, or None when EC2 does not know it (any more)."""
        try:
            answer = self._call("DescribeInstances", instance_id, InstanceIds=[instance_id])
        except Ec2Error as error:
            if error.code == "InvalidInstanceID.NotFound":
                return None
            raise
        for reservation in answer.get("Reservations", []):
            for described in reservation.get("Instances", []):
                return Instance.of(described)
        return None

    def vpc_of_subnet(self, subnet_id: str) -> str:
        answer = self._call("DescribeSubnets", subnet_id, SubnetIds=[subnet_id])
        subnets = answer.get("Subnets", [])
        if not subnets:
            raise Ec2Error(
                f"ec2:DescribeSubnets in {self.region}: no subnet {subnet_id}. Fix: give a "
                "subnet id of this region's VPC.",
                "InvalidSubnetID.NotFound",
            )
        return str(subnets[0]["VpcId"])

    def resolve_image(self, ami: str | None, parameter: str | None) -> str:
        """The AMI to launch: ``ami`` verified to exist (RunInstances alone may not say),
        else the image the SSM public ``parameter`` names today."""
        if not ami:
            assert parameter, "an AMI or an SSM parameter"
            answer = self._invoke(self._ssm, "ssm", "GetParameter", parameter, {"Name": parameter})
            ami = str(answer["Parameter"]["Value"])
        answer = self._call("DescribeImages", ami, ImageIds=[ami])
        images = answer.get("Images", [])
        if not images:
            raise Ec2Error(
                f"ec2:DescribeImages in {self.region} ({ami}): no such image. Fix: AMI ids "
                "differ per region; give an AMI of this region or use amiParameter.",
                "InvalidAMIID.NotFound",
            )
        state = images[0].get("State", "available")
        if state != "available":
            raise Ec2Error(
                f"the image {ami} in {self.region} is {state}, not available: give another "
                "ami (or amiParameter)",
                "InvalidAMIID.Unavailable",
            )
        return ami

    # --- security group -------------------------------------------------------------------

    def find_security_group(self, name: str, vpc_id: str | None = None) -> str | None:
        filters = [{"Name": "group-name", "Values": [name]}]
        if vpc_id:
            filters.append({"Name": "vpc-id", "Values": [vpc_id]})
        groups = self._call("DescribeSecurityGroups", name, Filters=filters)["SecurityGroups"]
        return str(groups[0]["GroupId"]) if groups else None

    def ensure_security_group(
        self,
        name: str,
        vpc_id: str,
        description: str,
        tags: Mapping[str, str],
        rules: Sequence[IngressRule],
    ) -> Made:
        """The group ``name`` in ``vpc_id`` (made if missing), allowing exactly ``rules``
        inbound (outbound stays EC2's default: everything)."""
        existing = self.find_security_group(name, vpc_id)
        created = existing is None
        if existing is None:
            try:
                existing = self._call(
                    "CreateSecurityGroup",
                    name,
                    GroupName=name,
                    Description=description,
                    VpcId=vpc_id,
                    TagSpecifications=[_tag_spec("security-group", tags)],
                )["GroupId"]
            except Ec2Error as error:
                if error.code != "InvalidGroup.Duplicate":
                    raise
                # Made meanwhile (a concurrent run): take it.
                existing = self.find_security_group(name, vpc_id)
                created = False
                if existing is None:
                    raise
        group_id = str(existing)
        self.set_rules(group_id, rules)
        if not created:
            self.set_tags([group_id], tags, self.tags_of_group(group_id))
        return Made(group_id, created)

    def rules_of(self, group_id: str) -> list[IngressRule]:
        """The group's inbound TCP rules to CIDRs (rules of another kind are not ours)."""
        groups = self._until_consistent(
            group_id,
            ("InvalidGroup.NotFound",),
            lambda: self._call("DescribeSecurityGroups", group_id, GroupIds=[group_id]),
        )["SecurityGroups"]
        rules = set()
        for permission in groups[0].get("IpPermissions", []) if groups else []:
            if permission.get("IpProtocol") != "tcp":
                continue
            low, high = permission.get("FromPort"), permission.get("ToPort")
            if low != high:
                continue
            for cidr in permission.get("IpRanges", []):
                rules.add(IngressRule(int(low), str(cidr["CidrIp"])))
            for cidr in permission.get("Ipv6Ranges", []):
                rules.add(IngressRule(int(low), str(cidr["CidrIpv6"])))
        return sorted(rules)

    def tags_of_group(self, group_id: str) -> dict[str, str]:
        groups = self._call("DescribeSecurityGroups", group_id, GroupIds=[group_id])
        return _tag_dict(groups["SecurityGroups"][0].get("Tags")) if groups else {}

    def set_rules(self, group_id: str, rules: Sequence[IngressRule]) -> None:
        """Authorize what is missing, revoke what is not in ``rules``."""
        current = set(self.rules_of(group_id))
        wanted = set(rules)
        missing, extra = sorted(wanted - current), sorted(current - wanted)
        if missing:
            self._until_consistent(
                group_id,
                ("InvalidGroup.NotFound",),
                lambda: self._call(
                    "AuthorizeSecurityGroupIngress",
                    group_id,
                    GroupId=group_id,
                    IpPermissions=_permissions(missing),
                ),
            )
        if extra:
            self._call(
                "RevokeSecurityGroupIngress",
                group_id,
                GroupId=group_id,
                IpPermissions=_permissions(extra),
            )

    def delete_security_group(self, group_id: str) -> None:
        """Delete the group; gone already is fine. While EC2 still counts an instance as
        using it (shortly after ``terminated``), the delete is retried, bounded."""
        deadline = time.monotonic() + SECURITY_GROUP_DELETE_TIMEOUT
        delay = POLL_FIRST
        while True:
            try:
                self._call("DeleteSecurityGroup", group_id, GroupId=group_id)
                return
            except Ec2Error as error:
                if error.code == "InvalidGroup.NotFound":
                    return
                if error.code != "DependencyViolation":
                    raise
                if time.monotonic() + delay > deadline:
                    raise Ec2Error(
                        f"ec2:DeleteSecurityGroup in {self.region} ({group_id}): still in "
                        f"use after {SECURITY_GROUP_DELETE_TIMEOUT:.0f}s "
                        "(DependencyViolation). Fix: find what uses it (`aws ec2 "
                        f"describe-network-interfaces --filters Name=group-id,Values={group_id}`"
                        "), remove that, then run destroy again.",
                        "DependencyViolation",
                    ) from None
            self._sleep(delay)  # back-off: the instance's interface is being released
            delay = min(delay * 2, POLL_MOST)

    # --- key pair -------------------------------------------------------------------------

    def public_key_of(self, name: str) -> str | None:
        """The public key line of key pair ``name``, or None when there is none."""
        try:
            answer = self._call("DescribeKeyPairs", name, KeyNames=[name], IncludePublicKey=True)
        except Ec2Error as error:
            if error.code == "InvalidKeyPair.NotFound":
                return None
            raise
        pairs = answer.get("KeyPairs", [])
        return str(pairs[0].get("PublicKey") or "") if pairs else None

    def ensure_key_pair(self, name: str, public_key: str, tags: Mapping[str, str]) -> Made:
        """Key pair ``name`` holding ``public_key``: imported if missing; one of that name
        with another key is replaced (it is ours: the name says so)."""
        existing = self.public_key_of(name)
        if existing is not None and existing.split()[:2] == public_key.split()[:2]:
            self._call("CreateTags", name, Resources=[self._key_pair_id(name)], Tags=_tags(tags))
            return Made(name, created=False)
        if existing is not None:
            self.delete_key_pair(name)
        self._call(
            "ImportKeyPair",
            name,
            KeyName=name,
            PublicKeyMaterial=public_key.encode(),
            TagSpecifications=[_tag_spec("key-pair", tags)],
        )
        return Made(name, created=True)

    def _key_pair_id(self, name: str) -> str:
        pairs = self._call("DescribeKeyPairs", name, KeyNames=[name])["KeyPairs"]
        return str(pairs[0]["KeyPairId"])

    def delete_key_pair(self, name: str) -> None:
        self._call("DeleteKeyPair", name, KeyName=name)  # gone already: EC2 says fine

    # --- instances ----------------------------------------------------------------------

    def run_instance(
        self,
        image_id: str,
        instance_type: str,
        subnet_id: str,
        group_id: str,
        key_name: str,
        tags: Mapping[str, str],
        public_ip: bool,
    ) -> Instance:
        params: dict[str, Any] = {
            "ImageId": image_id,
            "InstanceType": instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "KeyName": key_name,
            # Makes botocore's retries of this call one launch, not several.
            "ClientToken": uuid.uuid4().hex,
            "TagSpecifications": [_tag_spec("instance", tags), _tag_spec("volume", tags)],
        }
        if public_ip:
            params["NetworkInterfaces"] = [
                {
                    "DeviceIndex": 0,
                    "SubnetId": subnet_id,
                    "Groups": [group_id],
                    "AssociatePublicIpAddress": True,
                }
            ]
        else:
            params |= {"SubnetId": subnet_id, "SecurityGroupIds": [group_id]}
        answer = self._call("RunInstances", f"{instance_type} from {image_id}", **params)
        return Instance.of(answer["Instances"][0])

    def start_instance(self, instance_id: str) -> None:
        self._call("StartInstances", instance_id, InstanceIds=[instance_id])

    def wait_running(self, instance_id: str, timeout: float = RUNNING_TIMEOUT) -> Instance:
        """The instance once ``running`` (just made, EC2 may not know it yet for a moment);
        an instance that ends instead is reported with EC2's reason."""
        deadline = time.monotonic() + timeout
        delay = POLL_FIRST
        while True:
            instance = self._until_consistent(
                instance_id,
                ("InvalidInstanceID.NotFound",),
                lambda: self._described(instance_id),
            )
            if instance.state == "running":
                return instance
            if instance.state in GONE_STATES:
                reason = f" ({instance.state_reason})" if instance.state_reason else ""
                raise Ec2Error(
                    f"instance {instance_id} in {self.region} went to {instance.state} "
                    f"instead of running{reason}",
                    "InstanceTerminated",
                )
            if time.monotonic() + delay > deadline:
                raise Ec2Error(
                    f"instance {instance_id} in {self.region} was still {instance.state} "
                    f"after {timeout:.0f}s, not running",
                    "InstanceNotRunning",
                )
            self._sleep(delay)  # EC2 has no push: poll with back-off, as boto3's waiters do
            delay = min(delay * 2, POLL_MOST)

    def _described(self, instance_id: str) -> Instance:
        instance = self.describe_instance(instance_id)
        if instance is None:
            raise Ec2Error(f"no instance {instance_id}", "InvalidInstanceID.NotFound")
        return instance

    def terminate(self, instance_ids: Iterable[str], timeout: float = TERMINATED_TIMEOUT) -> None:
        """Terminate the instances and wait until each is ``terminated`` (or unknown)."""
        ids = sorted(set(instance_ids))
        if not ids:
            return
        try:
            self._call("TerminateInstances", ", ".join(ids), InstanceIds=ids)
        except Ec2Error as error:
            if error.code != "InvalidInstanceID.NotFound":
                raise
            # One of them is gone already: terminate the others one by one.
            for instance_id in ids:
                if self.describe_instance(instance_id) is not None:
                    self._call("TerminateInstances", instance_id, InstanceIds=[instance_id])
        deadline = time.monotonic() + timeout
        delay = POLL_FIRST
        pending = ids
        while True:
            states = {i: self.describe_instance(i) for i in pending}
            pending = [i for i, found in states.items() if found and found.state != "terminated"]
            if not pending:
                return
            if time.monotonic() + delay > deadline:
                raise Ec2Error(
                    f"instances {', '.join(pending)} in {self.region} were not terminated "
                    f"after {timeout:.0f}s; run destroy again",
                    "InstanceNotTerminated",
                )
            self._sleep(delay)  # poll with back-off: shutting-down -> terminated
            delay = min(delay * 2, POLL_MOST)

    def set_tags(
        self, resource_ids: Sequence[str], tags: Mapping[str, str], before: Mapping[str, str]
    ) -> None:
        """Make the resources' tags ``tags``: set what changed, remove what went."""
        gone = sorted(set(before) - set(tags))
        changed = {k: v for k, v in tags.items() if before.get(k) != v}
        if changed:
            self._call(
                "CreateTags",
                ", ".join(resource_ids),
                Resources=list(resource_ids),
                Tags=_tags(changed),
            )
        if gone:
            self._call(
                "DeleteTags",
                ", ".join(resource_ids),
                Resources=list(resource_ids),
                Tags=[{"Key": k} for k in gone],
            )

    def volumes_of(self, instance_id: str) -> list[str]:
        answer = self._call(
            "DescribeVolumes",
            instance_id,
            Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}],
        )
        return sorted(str(v["VolumeId"]) for v in answer.get("Volumes", []))


def wait_for_ssh(
    host: str,
    port: int,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Once the machine's sshd answers (TCP, banner, key exchange), the host key it shows
    (``ssh-ed25519 AAAA...``, ed25519 preferred). Raises TimeoutError with the last failure
    when it does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = POLL_FIRST
    last = "no attempt"
    while True:
        remaining = deadline - time.monotonic()
        try:
            return _host_key(host, port, max(0.5, min(SSH_PROBE_TIMEOUT, remaining)))
        except (OSError, EOFError, paramiko.SSHException) as failed:
            last = str(failed) or type(failed).__name__
        if time.monotonic() + delay > deadline:
            raise TimeoutError(last)
        sleep(delay)  # sshd is not up yet (the machine boots): try again after a pause
        delay = min(delay * 2, POLL_MOST)


def _host_key(host: str, port: int, timeout: float) -> str:
    sock = socket.create_connection((host, port), timeout=timeout)
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.handshake_timeout = timeout
        options = transport.get_security_options()
        others = tuple(k for k in options.key_types if k != "ssh-ed25519")
        options.key_types = ("ssh-ed25519", *others)
        transport.start_client(timeout=timeout)
        return public_key_line(transport.get_remote_server_key())
    finally:
        transport.close()


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def _tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _tag_spec(resource_type: str, tags: Mapping[str, str]) -> dict[str, Any]:
    return {"ResourceType": resource_type, "Tags": _tags(tags)}


def _tag_dict(tags: Any) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in tags or []}


def _permissions(rules: Sequence[IngressRule]) -> list[dict[str, Any]]:
    permissions = []
    for port in sorted({r.port for r in rules}):
        at_port = [r for r in rules if r.port == port]
        permissions.append(
            {
                "IpProtocol": "tcp",
                "FromPort": port,
                "ToPort": port,
                "IpRanges": [{"CidrIp": r.cidr} for r in at_port if not r.ipv6],
                "Ipv6Ranges": [{"CidrIpv6": r.cidr} for r in at_port if r.ipv6],
            }
        )
    return permissions
