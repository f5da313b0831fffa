"""EC2 for tests: moto's server as the EC2, SSM and IAM API on loopback, and a
"hypervisor" that makes its instances real machines.

- ``moto_server``: moto 5 in its own process (``ThreadedMotoServer`` on 127.0.0.1, a free
  port), so its state and settings are this test's alone and die with it. ``MotoServer``
  gives ``endpoint_url``, boto3 clients, and ``environment()``: what a Pulumi CLI run needs
  to talk to it (``AWS_ENDPOINT_URL``, keys, region). With ``enforce_iam`` moto checks
  every call against IAM, and ``restricted_credentials`` makes a user whose policy lacks
  some actions.
- ``REGION_NETWORKS`` / ``create_networks``: a VPC and one subnet per region, disjoint,
  all inside 198.19.0.0/16 (docs/ec2.md and the issue: every address in the benchmark range).
- ``Hypervisor``: watches moto and, for each running instance, boots a namespace machine
  (tests/machines.py: real sshd, private files) at the instance's private IP on one bridge
  holding 198.19.0.1/16, with the instance key pair's public key authorized for root, as
  cloud-init would; powers it off and removes it when the instance stops or terminates.
  Instances tagged ``NEVER_BOOT_TAG`` (or whose ``wasmcloud:machine`` tag was named with
  ``never_boot``) run in moto but never answer: an unreachable instance.
- ``throttling_proxy``: a real HTTP proxy on loopback in front of moto answering the first
  N requests of an action with AWS's throttling error (or another, e.g. the instance
  quota's ``INSTANCE_LIMIT_EXCEEDED``), then forwarding.
- ``ec2_world``: all of it at once; ``ec2_world_fixture`` for a pytest fixture that skips
  when machines cannot be booted here and checks that nothing was left behind.

Only one harness at a time can hold 198.19.0.1/16 on this computer (two bridges with the
same network would split its routes), so ``ec2_world`` takes a file lock for its lifetime:
other test processes (pytest-xdist workers, other checkouts) wait for it.
What the hypervisor does not model: security groups (every port of a machine answers
everyone on the bridge), public IPs, stop/start keeping a disk (a started instance boots a
fresh machine), and instance metadata.
"""

from __future__ import annotations

import contextlib
import fcntl
import html
import http.client
import http.server
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from tests.machines import Machine, boot_machine, machines_left
from tests.machines import unavailable as machines_unavailable
from tests.netns import Bridge, _ip

NETWORK = ipaddress.ip_network("198.19.0.0/16")
DEFAULT_REGION = "us-east-1"
# A public SSM parameter moto resolves to one of its AMIs (the default of Ec2Machine,
# Debian's parameter, is not one moto knows).
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
# An instance with this tag (any value) runs in moto but its machine never boots.
NEVER_BOOT_TAG = "wasmcloud-test:never-boot"
MACHINE_TAG = "wasmcloud:machine"
LOCK_PATH = Path(tempfile.gettempdir()) / "pulumi-wasmcloud-ec2-198.19.lock"
# Seconds to wait for another run's world (tests using the harness allow for it in their
# timeouts): past it the test fails naming the holder, not with pytest-timeout's trace.
LOCK_TIMEOUT = 600.0
POLL_INTERVAL = 0.2  # seconds between two looks of the hypervisor at moto
BOOT_WAIT = 30.0  # seconds a test waits for a running instance's machine


@dataclass(frozen=True)
class RegionNetwork:
    """Where a region's instances live: its VPC's CIDR and its one subnet's."""

    region: str
    vpc_cidr: str
    subnet_cidr: str


REGION_NETWORKS = (
    RegionNetwork("us-east-1", "198.19.16.0/20", "198.19.16.0/24"),
    RegionNetwork("eu-west-1", "198.19.32.0/20", "198.19.32.0/24"),
    RegionNetwork("ap-southeast-1", "198.19.48.0/20", "198.19.48.0/24"),
)


@dataclass(frozen=True)
class Subnet:
    """A subnet made in moto: what an Ec2Machine's ``subnet_id`` is given."""

    region: str
    vpc_id: str
    subnet_id: str
    cidr: str


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str


# Without IAM enforcement moto takes any non-empty keys.
TEST_CREDENTIALS = Credentials("testing", "testing")


def unavailable() -> str | None:
    """Why the EC2 harness cannot run here (None when it can), for ``pytest.skip``."""
    return machines_unavailable()


# moto's server in a process of its own: prints its port, then serves until its stdin
# closes (the harness ends it, or dies and takes it along).
_SERVE_MOTO = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


class MotoServer:
    """A running moto server; ``credentials`` are the harness's own (an administrator
    when IAM is enforced)."""

    def __init__(
        self, process: subprocess.Popen[str], endpoint_url: str, log: Path, enforce_iam: bool
    ) -> None:
        self.process = process
        self.endpoint_url = endpoint_url
        self.log = log
        self.enforce_iam = enforce_iam
        self.credentials = TEST_CREDENTIALS
        # boto3's default session is not safe to make clients from in several threads.
        self._session = boto3.session.Session()
        self._session_lock = threading.Lock()

    def client(
        self,
        service: str,
        region: str = DEFAULT_REGION,
        credentials: Credentials | None = None,
        endpoint_url: str | None = None,
    ) -> Any:
        """A boto3 client for ``service`` in ``region`` against this server (or
        ``endpoint_url``, e.g. a proxy in front of it), as ``credentials``."""
        keys = credentials or self.credentials
        with self._session_lock:
            return self._session.client(
                service,
                region_name=region,
                endpoint_url=endpoint_url or self.endpoint_url,
                aws_access_key_id=keys.access_key_id,
                aws_secret_access_key=keys.secret_access_key,
                config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2}),
            )

    def environment(
        self,
        credentials: Credentials | None = None,
        endpoint_url: str | None = None,
        region: str = DEFAULT_REGION,
    ) -> dict[str, str]:
        """What to add to a Pulumi CLI run's environment so the provider's boto3 talks to
        this server (or ``endpoint_url``) as ``credentials``: no config file, profile or
        instance metadata of this computer is read."""
        keys = credentials or self.credentials
        return {
            "AWS_ENDPOINT_URL": endpoint_url or self.endpoint_url,
            "AWS_ACCESS_KEY_ID": keys.access_key_id,
            "AWS_SECRET_ACCESS_KEY": keys.secret_access_key,
            "AWS_DEFAULT_REGION": region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def ami(self, region: str = DEFAULT_REGION) -> str:
        """An AMI id moto knows in ``region`` (``AMI_PARAMETER`` resolved)."""
        parameter = self.client("ssm", region).get_parameter(Name=AMI_PARAMETER)
        return str(parameter["Parameter"]["Value"])

    def create_user(self, name: str, policy: Mapping[str, Any]) -> Credentials:
        """An IAM user with ``policy`` inline, and its access key."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    def restricted_credentials(
        self, lacking: Sequence[str], name: str = "restricted"
    ) -> Credentials:
        """Keys of a user allowed everything except the IAM actions ``lacking`` (e.g.
        ``["ec2:CreateSecurityGroup"]``): moto answers those with AccessDenied."""
        if not self.enforce_iam:
            raise ValueError("restricted credentials need moto_server(enforce_iam=True)")
        statement = {"Effect": "Allow", "NotAction": list(lacking), "Resource": "*"}
        return self.create_user(name, {"Version": "2012-10-17", "Statement": [statement]})

    def _start_enforcing_iam(self) -> None:
        """Make an administrator for the harness, then have moto check every later call.
        moto's INITIAL_NO_AUTH_ACTION_COUNT is the number of calls it lets through
        unchecked; its /moto-api/reset-auth sets it (and restarts the count) in a running
        server, so the calls before enforcement need not be counted ahead."""
        everything = {"Effect": "Allow", "Action": "*", "Resource": "*"}
        admin = self.create_user("harness", {"Version": "2012-10-17", "Statement": [everything]})
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
        self.credentials = admin

    def stop(self) -> None:
        if self.process.poll() is None:
            # Its state is the test's alone: no need for werkzeug's orderly shutdown, which
            # takes ~2 s (closing stdin is for when the harness itself dies).
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@contextmanager
def moto_server(directory: Path, enforce_iam: bool = False) -> Iterator[MotoServer]:
    """moto's server on a free loopback port (its log in ``directory/moto.log``); with
    ``enforce_iam``, every call after the harness's administrator is made is checked."""
    log = directory / "moto.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", _SERVE_MOTO],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    if not port.isdigit():
        process.kill()
        process.wait()
        raise RuntimeError(f"moto's server did not start: {log.read_text()[-2000:]}")
    server = MotoServer(process, f"http://127.0.0.1:{port}", log, enforce_iam)
    try:
        if enforce_iam:
            server._start_enforcing_iam()
        yield server
    finally:
        server.stop()


def create_networks(
    moto: MotoServer, networks: Sequence[RegionNetwork] = REGION_NETWORKS
) -> dict[str, Subnet]:
    """A VPC and its subnet per region in moto: region -> subnet."""
    subnets = {}
    for network in networks:
        for cidr in (network.vpc_cidr, network.subnet_cidr):
            if not ipaddress.ip_network(cidr).subnet_of(NETWORK):  # type: ignore[arg-type]
                raise ValueError(f"{network.region}: {cidr} is outside {NETWORK}")
        ec2 = moto.client("ec2", network.region)
        vpc_id = ec2.create_vpc(CidrBlock=network.vpc_cidr)["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(
            VpcId=vpc_id, CidrBlock=network.subnet_cidr, AvailabilityZone=f"{network.region}a"
        )["Subnet"]
        subnets[network.region] = Subnet(
            network.region, vpc_id, subnet["SubnetId"], network.subnet_cidr
        )
    return subnets


@dataclass(frozen=True)
class Instance:
    """What the hypervisor read of one instance."""

    instance_id: str
    region: str
    state: str
    private_ip: str
    key_name: str
    tags: Mapping[str, str]


@dataclass
class Hypervisor:
    """Boots a namespace machine for every running instance of ``regions`` in moto, and
    removes it when the instance is no longer running. ``machines`` are the current ones
    by instance id; ``refused`` the instances it will not boot, with why."""

    moto: MotoServer
    bridge: Bridge
    directory: Path
    regions: Sequence[str]
    machines: dict[str, Machine] = field(default_factory=dict)
    booted: list[Machine] = field(default_factory=list)  # every machine it ever booted
    refused: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    polls: int = 0
    _never_boot: set[str] = field(default_factory=set)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _clients: dict[str, Any] = field(default_factory=dict)  # region -> boto3 EC2 client

    def start(self) -> None:
        self._clients = {region: self.moto.client("ec2", region) for region in self.regions}
        self._thread = threading.Thread(target=self._run, daemon=True, name="ec2-hypervisor")
        self._thread.start()

    def never_boot(self, machine: str) -> None:
        """Never boot instances whose ``wasmcloud:machine`` tag is ``machine``."""
        with self._changed:
            self._never_boot.add(machine)

    def wait_for(self, done: Callable[[], bool], what: str, timeout: float = BOOT_WAIT) -> None:
        """Until ``done()`` holds (checked after each look at moto), or fail naming ``what``."""
        with self._changed:
            if not self._changed.wait_for(lambda: done() or bool(self.errors), timeout):
                raise AssertionError(f"hypervisor: {what} did not happen within {timeout:.0f}s")
            if self.errors and not done():
                raise AssertionError(f"hypervisor failed: {self.errors}")

    def wait_booted(self, instance_id: str, timeout: float = BOOT_WAIT) -> Machine:
        self.wait_for(lambda: instance_id in self.machines, f"{instance_id} booting", timeout)
        return self.machines[instance_id]

    def wait_gone(self, instance_id: str, timeout: float = BOOT_WAIT) -> None:
        self.wait_for(
            lambda: instance_id not in self.machines and self._ever_booted(instance_id),
            f"{instance_id}'s machine going away",
            timeout,
        )

    def wait_polled(self, timeout: float = BOOT_WAIT) -> None:
        """Until the hypervisor has looked at moto once more after now (so whatever moto
        said before is acted on)."""
        with self._changed:
            target = self.polls + 2  # the look under way may have begun before the call
        self.wait_for(lambda: self.polls >= target, "a look at moto", timeout)

    def _ever_booted(self, instance_id: str) -> bool:
        return any(machine.name == instance_id for machine in self.booted)

    def stop(self) -> None:
        """Stop watching, then power off and remove every machine."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        with self._changed:
            for instance_id in list(self.machines):
                self._power_off(instance_id)

    def leftovers(self) -> list[str]:
        left = machines_left(self.booted)
        if self._thread is not None and self._thread.is_alive():
            left.append("the hypervisor's thread")
        return left

    def _run(self) -> None:
        # moto has no events to subscribe to: looking at it (describe_instances in every
        # region, every POLL_INTERVAL) is the only way to learn that an instance started
        # or ended. The loop lasts as long as the world.
        while not self._stopping.is_set():
            try:
                self._look()
            except Exception as error:
                with self._changed:
                    if str(error) not in self.errors:
                        self.errors.append(str(error))
            with self._changed:
                self.polls += 1
                self._changed.notify_all()
            self._stopping.wait(POLL_INTERVAL)

    def _instances(self) -> dict[str, Instance]:
        found = {}
        for region, ec2 in self._clients.items():
            for page in ec2.get_paginator("describe_instances").paginate():
                for reservation in page["Reservations"]:
                    for item in reservation["Instances"]:
                        instance = Instance(
                            item["InstanceId"],
                            region,
                            item["State"]["Name"],
                            item.get("PrivateIpAddress", ""),
                            item.get("KeyName", ""),
                            {tag["Key"]: tag["Value"] for tag in item.get("Tags", [])},
                        )
                        found[instance.instance_id] = instance
        return found

    def _look(self) -> None:
        instances = self._instances()
        running = {i.instance_id: i for i in instances.values() if i.state == "running"}
        with self._changed:
            # Machines first go away, so a new instance may take a freed address.
            for instance_id in list(self.machines):
                if instance_id not in running:
                    self._power_off(instance_id)
                    self._changed.notify_all()
            never = set(self._never_boot)
        for instance in running.values():
            if instance.instance_id in self.machines or instance.instance_id in self.refused:
                continue
            reason = self._refusal(instance, never)
            machine = None
            if reason is None:
                try:
                    machine = self._boot(instance)
                except Exception as error:
                    # Refused from now on (not booted again at every look); the test sees
                    # it in ``errors``, which ends its waits.
                    shutil.rmtree(self.directory / instance.instance_id, ignore_errors=True)
                    reason = f"its machine did not boot: {error}"
                    with self._changed:
                        self.errors.append(f"{instance.instance_id}: {reason}")
            with self._changed:
                if machine is not None:
                    self.machines[instance.instance_id] = machine
                    self.booted.append(machine)
                else:
                    self.refused[instance.instance_id] = str(reason)
                self._changed.notify_all()

    def _refusal(self, instance: Instance, never: set[str]) -> str | None:
        if NEVER_BOOT_TAG in instance.tags:
            return f"tagged {NEVER_BOOT_TAG}"
        if instance.tags.get(MACHINE_TAG) in never:
            return f"{MACHINE_TAG} {instance.tags[MACHINE_TAG]} is marked never to boot"
        if not instance.private_ip or ipaddress.ip_address(instance.private_ip) not in NETWORK:
            return f"private IP {instance.private_ip or '(none)'} is outside {NETWORK}"
        return None

    def _boot(self, instance: Instance) -> Machine:
        keys = []
        if instance.key_name:
            # cloud-init would put the key pair's public key in authorized_keys.
            with contextlib.suppress(botocore.exceptions.ClientError):
                pairs = self._clients[instance.region].describe_key_pairs(
                    KeyNames=[instance.key_name], IncludePublicKey=True
                )["KeyPairs"]
                keys = [pair["PublicKey"].strip() for pair in pairs if pair.get("PublicKey")]
        address = f"{instance.private_ip}/{self.bridge.network.prefixlen}"
        return boot_machine(instance.instance_id, address, self.bridge, keys, self.directory)

    def _power_off(self, instance_id: str) -> None:
        machine = self.machines.pop(instance_id)
        machine.power_off()
        machine.namespace.cleanup()
        shutil.rmtree(machine.directory, ignore_errors=True)


@dataclass(frozen=True)
class ProxiedRequest:
    action: str
    at: float  # time.monotonic() when it arrived
    throttled: bool


@dataclass(frozen=True)
class AwsError:
    """An error as AWS answers it: EC2's (query protocol) code, message and HTTP status;
    the code JSON services (SSM) use for the same."""

    code: str
    message: str
    status: int
    json_code: str
    json_message: str


REQUEST_LIMIT_EXCEEDED = AwsError(
    "RequestLimitExceeded", "Request limit exceeded.", 503, "ThrottlingException", "Rate exceeded"
)
INSTANCE_LIMIT_EXCEEDED = AwsError(
    "InstanceLimitExceeded",
    "You have requested more instances (1) than your current instance limit of 0 allows "
    "for the specified instance type. Please visit http://aws.amazon.com/contact-us/ec2-request "
    "to request an adjustment to this limit.",
    400,
    "ServiceQuotaExceededException",
    "You have exceeded a service quota.",
)


class ThrottlingProxy(http.server.ThreadingHTTPServer):
    """An HTTP proxy on loopback in front of ``upstream`` (moto) that answers the first
    ``throttle[action]`` requests of each action with AWS's throttling error (None: every
    request of it), or with ``error``, then forwards. ``requests`` lists what arrived, in
    order."""

    daemon_threads = True

    def __init__(
        self,
        upstream: str,
        throttle: Mapping[str, int | None],
        error: AwsError = REQUEST_LIMIT_EXCEEDED,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.throttle = dict(throttle)
        self.error = error
        self.requests: list[ProxiedRequest] = []
        self.lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.thread = threading.Thread(target=self.serve_forever, daemon=True, name="throttle")

    def count(self, action: str, throttled: bool | None = None) -> int:
        """How many requests of ``action`` arrived (only throttled or forwarded ones)."""
        with self.lock:
            return sum(
                1
                for r in self.requests
                if r.action == action and (throttled is None or r.throttled == throttled)
            )

    def arrivals(self, action: str) -> list[float]:
        with self.lock:
            return [r.at for r in self.requests if r.action == action]

    def admit(self, action: str) -> bool:
        """Record a request of ``action``; whether it is to be forwarded."""
        with self.lock:
            limit = self.throttle.get(action, 0)
            seen = sum(1 for r in self.requests if r.action == action)
            throttled = limit is None or seen < limit
            self.requests.append(ProxiedRequest(action, time.monotonic(), throttled))
            return not throttled


_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThrottlingProxy

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the test asserts on ``requests``

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        target = self.headers.get("X-Amz-Target", "")
        if target:  # JSON protocols (SSM): "AmazonSSM.GetParameter"
            action = target.rpartition(".")[2]
        else:  # query protocols (EC2, IAM): Action=RunInstances in the form or the URL
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            form.update(urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query))
            action = form.get("Action", [""])[0]
        if not self.server.admit(action):
            self._throttled(json_protocol=bool(target))
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=60)
        try:
            upstream.request(self.command, self.path, body, headers)
            answer = upstream.getresponse()
            payload = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
        finally:
            upstream.close()
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _throttled(self, json_protocol: bool) -> None:
        # What AWS answers: EC2 (query protocol) its error XML (RequestLimitExceeded: 503);
        # JSON services a 400 with __type (throttling: ThrottlingException).
        error = self.server.error
        request_id = str(uuid.uuid4())
        if json_protocol:
            status, content_type = 400, "application/x-amz-json-1.1"
            payload = json.dumps({"__type": error.json_code, "message": error.json_message})
        else:
            status, content_type = error.status, "text/xml;charset=UTF-8"
            payload = (
                '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
                f"<Code>{error.code}</Code><Message>{html.escape(error.message)}</Message>"
                f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
            )
        data = payload.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def throttling_proxy(
    upstream: str, throttle: Mapping[str, int | None], error: AwsError = REQUEST_LIMIT_EXCEEDED
) -> Iterator[ThrottlingProxy]:
    """A ``ThrottlingProxy`` serving until the block ends."""
    proxy = ThrottlingProxy(upstream, throttle, error)
    proxy.thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        proxy.thread.join(timeout=10)


@dataclass
class Ec2World:
    """moto, its regions' subnets, the bridge and the hypervisor, for one test."""

    moto: MotoServer
    subnets: dict[str, Subnet]
    bridge: Bridge
    hypervisor: Hypervisor
    directory: Path

    def environment(
        self, credentials: Credentials | None = None, endpoint_url: str | None = None
    ) -> dict[str, str]:
        return self.moto.environment(credentials, endpoint_url)

    def ec2(self, region: str = DEFAULT_REGION) -> Any:
        return self.moto.client("ec2", region)

    def leftovers(self) -> list[str]:
        """What of this world is still there after ``ec2_world`` ended (empty: nothing)."""
        left = self.hypervisor.leftovers()
        if self.bridge.exists():
            left.append(f"bridge {self.bridge.name}")
        if self.directory.exists():
            left.append(f"directory {self.directory}")
        if self.moto.process.poll() is None:
            left.append(f"moto's server (pid {self.moto.process.pid})")
        return left


_held_here = threading.Lock()  # an ec2_world open in this process


@contextmanager
def _network_lock() -> Iterator[None]:
    """Hold 198.19.0.0/16 on this computer against other harnesses (other processes)."""
    # flock would make a second world in this process wait for the first: for ever.
    if not _held_here.acquire(blocking=False):
        raise RuntimeError("an ec2_world is open in this process already: use that one")
    try:
        with _file_lock():
            yield
    finally:
        _held_here.release()


@contextmanager
def _file_lock() -> Iterator[None]:
    with LOCK_PATH.open("a+") as lock:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # flock has no timeout: try again until the deadline (another harness
                # holds it for as long as its test runs).
                if time.monotonic() > deadline:
                    lock.seek(0)
                    holder = lock.read().strip() or "another process"
                    raise RuntimeError(
                        f"{NETWORK} (the EC2 harness's network) stayed held by {holder} for "
                        f"{LOCK_TIMEOUT:.0f}s ({LOCK_PATH}): run the EC2 tests after it"
                    ) from None
                time.sleep(0.5)
        lock.seek(0)
        lock.truncate()
        command = " ".join(sys.argv)[:200]
        lock.write(f"pid {os.getpid()} ({command})\n")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _remove_stale_bridges() -> None:
    """With the lock held, an interface holding an address in NETWORK is a harness's
    bridge whose process died without cleaning up (``wcec2-<pid>``): removed. Anything
    else there is refused by name."""
    for line in _ip("-o", "-4", "addr").stdout.splitlines():
        fields = line.split()
        interface, address = fields[1], ipaddress.ip_interface(fields[3])
        if address.ip not in NETWORK:
            continue
        owner = interface.removeprefix("wcec2-")
        if interface.startswith("wcec2-") and owner.isdigit() and not _alive(int(owner)):
            _ip("link", "del", interface)
        else:
            raise RuntimeError(
                f"{interface} holds {address}, in {NETWORK}, which the EC2 harness needs alone"
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def ec2_world(
    networks: Sequence[RegionNetwork] = REGION_NETWORKS, enforce_iam: bool = False
) -> Iterator[Ec2World]:
    """moto with a VPC and subnet per region, the bridge and the hypervisor watching;
    on exit every machine is powered off and nothing remains (``Ec2World.leftovers``)."""
    with _network_lock():
        _remove_stale_bridges()
        directory = Path(tempfile.mkdtemp(prefix="wc-ec2-"))
        directory.chmod(0o755)  # sshd reads authorized_keys as the user logging in
        try:
            with moto_server(directory, enforce_iam) as moto:
                subnets = create_networks(moto, networks)
                bridge = Bridge.create(f"wcec2-{os.getpid()}", str(NETWORK))
                hypervisor = Hypervisor(moto, bridge, directory, [n.region for n in networks])
                try:
                    hypervisor.start()
                    yield Ec2World(moto, subnets, bridge, hypervisor, directory)
                finally:
                    hypervisor.stop()
                    bridge.cleanup()
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def ec2_world_fixture(**options: Any) -> Iterator[Ec2World]:
    """For a fixture: ``yield from ec2_world_fixture()`` skips when machines cannot be
    booted here, and after the test checks that nothing was left behind."""
    import pytest  # only fixtures need it; the module itself is plain

    reason = unavailable()
    if reason is not None:
        pytest.skip(f"no EC2 harness: {reason}")
    with ec2_world(**options) as world:
        yield world
        errors = list(world.hypervisor.errors)
    assert not errors, f"the hypervisor failed: {errors}"
    left = world.leftovers()
    assert not left, f"EC2 harness left behind: {left}"
