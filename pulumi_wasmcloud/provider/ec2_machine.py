"""``wasmcloud:index:Ec2Machine``: an EC2 instance for a lattice, with its own security
group (exactly the ports its role needs) and key pair, ready for SSH provisioning.

``check`` parses every input strictly, each refusal naming the field (values not known
yet in a preview are let through). ``diff``: region, subnet, AMI, instance type, role,
lattice, address and the private key make another machine (replace); tags, CIDRs and
extra ports, the login user, the SSH timeout and the endpoint change in place; a
security group whose rules were edited by hand, or a stopped instance, is drift that the
update repairs. ``create`` first looks for an instance a cut-short run left (same
stack, lattice and machine tags) and adopts it; else it makes the group, the key pair
and the instance; then it waits until the instance runs and SSH answers, recording the
host key it shows. Whatever fails after the instance exists terminates it and removes
the group and key pair, so no state-less object stays behind. ``read`` describes the
instance (terminated or unknown: gone; the API unreachable: an error, never "gone").
``delete`` terminates the instance and any duplicate with its tags, waits for
``terminated``, then deletes the group and the key pair.

All EC2 calls are synchronous boto3 (``provision.ec2``), run in a thread.
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pulumi_wasmcloud.provider.engine_log import EngineLog, current_urn
from pulumi_wasmcloud.provider.handlers import Checked, Created, Diff, InputError, changed_keys
from pulumi_wasmcloud.provider.machine_inputs import describe
from pulumi_wasmcloud.provider.values import UNKNOWN, has_unknowns
from pulumi_wasmcloud.provision.ec2 import (
    Ec2,
    Ec2Error,
    Instance,
    key_pair_material,
    known_regions,
    wait_for_ssh,
)
from pulumi_wasmcloud.provision.ec2_plan import (
    ROLES,
    ExtraPort,
    IngressRule,
    adoption_tags,
    cidr_problem,
    describe_rules,
    ingress_rules,
    machine_tags,
    object_name,
    region_problem,
    stack_of_urn,
    tag_problem,
)

# Debian 12 for amd64, the image family the provisioning targets (Debian's own
# public SSM parameter on AWS); its login user is "admin".
DEFAULT_AMI_PARAMETER = "/aws/service/debian/release/12/latest/amd64"
SSH_PORT = 22
# Another machine: the instance is replaced (the key pair's key is set at launch).
REPLACE_ON = (
    "region",
    "subnetId",
    "ami",
    "amiParameter",
    "instanceType",
    "role",
    "lattice",
    "address",
    "privateKey",
)
UPDATE_ON = (
    "sshFrom",
    "latticeCidrs",
    "peerCidrs",
    "extraPorts",
    "tags",
    "user",
    "sshTimeoutSeconds",
    "endpointUrl",
)
OUTPUTS = (
    "instanceId",
    "privateIp",
    "publicIp",
    "ip",
    "securityGroupId",
    "keyPairName",
    "hostKey",
    "imageId",
    "ingress",
    "state",
)
INPUT_DEFAULTS: dict[str, Any] = {
    "instanceType": "t3.small",
    "user": "admin",
    "sshFrom": [],
    "latticeCidrs": [],
    "peerCidrs": [],
    "extraPorts": [],
    "address": "private",
    "sshTimeoutSeconds": 300,
    "tags": {},
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # lattice and machine names in EC2 names
_SUBNET = re.compile(r"subnet-[0-9a-f]+")
_AMI = re.compile(r"ami-[0-9a-f]+")
_INSTANCE_TYPE = re.compile(r"[a-z0-9-]+\.[a-z0-9-]+")


@functools.cache
def _regions() -> tuple[str, ...]:
    return tuple(known_regions())


@dataclass(frozen=True)
class Ec2Spec:
    """One machine as the program describes it, every value known and valid."""

    region: str
    lattice: str
    role: str
    subnet_id: str
    private_key: str
    instance_type: str
    ami: str | None
    ami_parameter: str | None
    user: str
    ssh_from: tuple[str, ...]
    lattice_cidrs: tuple[str, ...]
    peer_cidrs: tuple[str, ...]
    extra_ports: tuple[ExtraPort, ...]
    address: str
    ssh_timeout_seconds: int
    endpoint_url: str | None
    tags: dict[str, str]

    def rules(self) -> list[IngressRule]:
        return ingress_rules(
            self.role, self.ssh_from, self.lattice_cidrs, self.peer_cidrs, self.extra_ports
        )


def parse_ec2_machine(inputs: dict[str, Any]) -> Ec2Spec | list[InputError]:
    """The machine ``inputs`` describe (defaults applied by ``check``), or why not, each
    failure naming its field. Values not known yet give no failure, and no spec."""
    failures: list[InputError] = []
    pending = False

    def known(key: str) -> Any:
        nonlocal pending
        value = inputs.get(key)
        if has_unknowns(value):
            pending = True
            return None
        return value

    def text(key: str, pattern: re.Pattern[str] | None, example: str) -> str | None:
        value = known(key)
        if value is None:
            if inputs.get(key) is None:
                failures.append(InputError(key, f"required: a string like {example}"))
            return None
        if not isinstance(value, str) or not value:
            failures.append(
                InputError(key, f"expected a string like {example}, got {describe(value)}")
            )
            return None
        if pattern is not None and not pattern.fullmatch(value):
            failures.append(InputError(key, f'"{value}" is not like {example}'))
            return None
        return value

    def optional_text(key: str, pattern: re.Pattern[str] | None, example: str) -> str | None:
        return None if inputs.get(key) is None else text(key, pattern, example)

    def cidrs(key: str) -> tuple[str, ...]:
        value = known(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            failures.append(
                InputError(key, f"expected a list of CIDR blocks, got {describe(value)}")
            )
            return ()
        for i, cidr in enumerate(value):
            if not isinstance(cidr, str):
                failures.append(
                    InputError(f"{key}[{i}]", f"expected a CIDR block, got {describe(cidr)}")
                )
            elif (problem := cidr_problem(cidr)) is not None:
                failures.append(InputError(f"{key}[{i}]", problem))
        return tuple(c for c in value if isinstance(c, str))

    region = text("region", None, '"us-east-1"')
    if region is not None and (problem := region_problem(region, _regions())) is not None:
        failures.append(InputError("region", problem))
    lattice = text("lattice", _NAME, '"default" (letters, digits, ".", "_", "-")')
    role = known("role")
    if role is None and inputs.get("role") is None:
        failures.append(InputError("role", f"required: one of {', '.join(ROLES)}"))
    elif role is not None and role not in ROLES:
        failures.append(
            InputError("role", f"expected one of {', '.join(ROLES)}, got {describe(role)}")
        )
    subnet = text("subnetId", _SUBNET, '"subnet-0abc..."')
    private_key = text("privateKey", None, "an OpenSSH private key")
    if private_key is not None:
        try:
            key_pair_material(private_key)
        except ValueError as exc:
            failures.append(InputError("privateKey", str(exc).removeprefix("privateKey: ")))
    instance_type = text("instanceType", _INSTANCE_TYPE, '"t3.small"')
    ami = optional_text("ami", _AMI, '"ami-0abc..."')
    parameter = optional_text("amiParameter", None, f'"{DEFAULT_AMI_PARAMETER}"')
    if parameter is not None and not parameter.startswith("/"):
        failures.append(
            InputError("amiParameter", f'an SSM parameter name starts with "/", got "{parameter}"')
        )
    if inputs.get("ami") is not None and inputs.get("amiParameter") is not None:
        failures.append(InputError("ami", "give ami or amiParameter, not both"))
    user = text("user", None, '"admin"')
    ssh_from = cidrs("sshFrom")
    lattice_cidrs = cidrs("latticeCidrs")
    peer_cidrs = cidrs("peerCidrs")
    extra_ports = _extra_ports(known("extraPorts"), failures)
    address = known("address")
    if address is not None and address not in ("private", "public"):
        failures.append(
            InputError("address", f'expected "private" or "public", got {describe(address)}')
        )
    timeout = known("sshTimeoutSeconds")
    if timeout is not None and (
        not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1
    ):
        failures.append(
            InputError(
                "sshTimeoutSeconds",
                f"expected a whole number of seconds, at least 1, got {describe(timeout)}",
            )
        )
    endpoint = optional_text("endpointUrl", re.compile(r"https?://\S+"), '"http://127.0.0.1:5000"')
    tags = known("tags")
    if tags is not None:
        if not isinstance(tags, dict):
            failures.append(
                InputError("tags", f"expected a map of string to string, got {describe(tags)}")
            )
        else:
            for key, value in sorted(tags.items()):
                if not isinstance(value, str):
                    failures.append(
                        InputError(f"tags.{key}", f"expected a string, got {describe(value)}")
                    )
                elif (problem := tag_problem(key)) is not None:
                    failures.append(InputError(f"tags.{key}", problem))
    if failures or pending:
        return failures
    assert region and lattice and subnet and private_key and instance_type and user
    return Ec2Spec(
        region=region,
        lattice=lattice,
        role=str(role),
        subnet_id=subnet,
        private_key=private_key,
        instance_type=instance_type,
        ami=ami,
        ami_parameter=parameter,
        user=user,
        ssh_from=ssh_from,
        lattice_cidrs=lattice_cidrs,
        peer_cidrs=peer_cidrs,
        extra_ports=extra_ports,
        address=str(address),
        ssh_timeout_seconds=int(timeout),
        endpoint_url=endpoint,
        tags=dict(tags or {}),
    )


def _extra_ports(value: Any, failures: list[InputError]) -> tuple[ExtraPort, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        failures.append(
            InputError(
                "extraPorts",
                f'expected a list of {{"port": 8080, "cidrs": [...]}}, got {describe(value)}',
            )
        )
        return ()
    ports = []
    for i, item in enumerate(value):
        field = f"extraPorts[{i}]"
        if not isinstance(item, dict):
            failures.append(
                InputError(
                    field, f'expected {{"port": 8080, "cidrs": [...]}}, got {describe(item)}'
                )
            )
            continue
        for key in sorted(set(item) - {"port", "cidrs"}):
            failures.append(
                InputError(f"{field}.{key}", "unknown field; an extra port has port and cidrs")
            )
        port, cidrs = item.get("port"), item.get("cidrs")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            failures.append(
                InputError(
                    f"{field}.port", f"expected a TCP port (1 to 65535), got {describe(port)}"
                )
            )
            port = None
        if not isinstance(cidrs, list):
            failures.append(
                InputError(
                    f"{field}.cidrs", f"expected a list of CIDR blocks, got {describe(cidrs)}"
                )
            )
            continue
        for j, cidr in enumerate(cidrs):
            problem = (
                cidr_problem(cidr)
                if isinstance(cidr, str)
                else f"expected a CIDR block, got {describe(cidr)}"
            )
            if problem is not None:
                failures.append(InputError(f"{field}.cidrs[{j}]", problem))
        if port is not None:
            ports.append(ExtraPort(port, tuple(c for c in cidrs if isinstance(c, str))))
    return tuple(ports)


@dataclass(frozen=True)
class Names:
    """Who the machine is in EC2: its stack, resource name, objects' name and tags."""

    stack: str
    machine: str
    object_name: str
    adoption: dict[str, str]
    tags: dict[str, str]

    @classmethod
    def of(cls, spec: Ec2Spec, urn: str) -> Names:
        stack, machine = stack_of_urn(urn), urn.rsplit("::", 1)[-1]
        return cls(
            stack=stack,
            machine=machine,
            object_name=object_name(spec.lattice, stack, machine),
            adoption=adoption_tags(stack, spec.lattice, machine),
            tags=machine_tags(stack, spec.lattice, machine, spec.role, spec.tags),
        )


class Ec2MachineResource:
    secrets: frozenset[str] = frozenset({"privateKey"})

    def __init__(self, log: EngineLog) -> None:
        self.log = log
        # One Ec2 (its boto3 clients, thread-safe) per region and endpoint for all the
        # machines of this run: making the clients costs ~0.1 s each time.
        self._apis: dict[tuple[str, str | None], Ec2] = {}
        # A preview's AMI lookups (two API calls each), per region, endpoint, AMI and
        # parameter: the machines of a region mostly launch the same image.
        self._images: dict[tuple[str, str | None, str | None, str | None], str] = {}
        self._locks: dict[object, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    # --- check / diff ------------------------------------------------------------------

    async def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Checked:
        inputs = {key: value for key, value in news.items() if key not in OUTPUTS}
        for key, default in INPUT_DEFAULTS.items():
            if inputs.get(key) is None:
                inputs[key] = default
        if inputs.get("ami") is None and inputs.get("amiParameter") is None:
            inputs["amiParameter"] = DEFAULT_AMI_PARAMETER
        parsed = parse_ec2_machine(inputs)
        return Checked(inputs, parsed if isinstance(parsed, list) else [])

    async def diff(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> Diff:
        changed = changed_keys(olds, news, (*REPLACE_ON, *UPDATE_ON))
        replaces = [key for key in REPLACE_ON if key in changed]
        spec = parse_ec2_machine(news)
        if not replaces and isinstance(spec, Ec2Spec):
            # Drift the last read saw: rules edited by hand, the instance stopped.
            planned = [str(rule) for rule in spec.rules()]
            if olds.get("ingress") is not None and olds["ingress"] != planned:
                changed["ingress"] = (olds["ingress"], planned)
            if olds.get("state") not in (None, "running"):
                changed["state"] = (olds["state"], "running")
        return Diff(changed, replaces)

    # --- create / update -----------------------------------------------------------------

    async def create(self, inputs: dict[str, Any], preview: bool) -> Created:
        parsed = parse_ec2_machine(inputs)
        unknown = dict.fromkeys(OUTPUTS, UNKNOWN)
        if not isinstance(parsed, Ec2Spec):
            return Created("", {**inputs, **unknown})
        spec, names = parsed, Names.of(parsed, current_urn.get())
        if preview:
            # Fail now on what would fail the launch: an AMI this region has not.
            image = await asyncio.to_thread(self._image, spec)
            await self.log.note(
                f"{names.machine}: will launch a {spec.instance_type} from {image} in "
                f"{spec.region} ({spec.subnet_id}) with security group and key pair "
                f"{names.object_name}; inbound: {describe_rules(spec.rules())}"
            )
            return Created(
                "",
                {**inputs, **unknown, "keyPairName": names.object_name, "imageId": image},
            )
        say = self._progress()
        outputs = await asyncio.to_thread(self._create, spec, names, say)
        return Created(outputs["instanceId"], {**inputs, **outputs})

    def _lock(self, key: object) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(key, threading.Lock())

    def _ec2(self, spec: Ec2Spec) -> Ec2:
        """Called in threads: the first machine of a region makes its Ec2, the others
        wait for it and share it."""
        key = (spec.region, spec.endpoint_url)
        with self._lock(key):
            if key not in self._apis:
                self._apis[key] = Ec2(spec.region, spec.endpoint_url)
            return self._apis[key]

    def _image(self, spec: Ec2Spec) -> str:
        key = (spec.region, spec.endpoint_url, spec.ami, spec.ami_parameter)
        with self._lock(key):  # a failed lookup is not kept: the next machine asks again
            if key not in self._images:
                self._images[key] = self._ec2(spec).resolve_image(spec.ami, spec.ami_parameter)
            return self._images[key]

    def _create(self, spec: Ec2Spec, names: Names, say: Callable[[str], None]) -> dict[str, Any]:
        ec2 = self._ec2(spec)
        machine = names.machine
        group_id: str | None = None
        key_made = False
        instance: Instance | None = None
        try:
            found = ec2.find_instances(names.adoption)
            vpc = ec2.vpc_of_subnet(spec.subnet_id)
            fits = [i for i in found if _fits(i, spec, names)]
            adopted = fits[0] if fits else None
            strays = [i.id for i in found if i is not adopted]
            if strays:
                say(
                    f"{machine}: terminating {', '.join(strays)}: tagged for this machine by "
                    "an earlier run, but not as the program says now"
                )
                ec2.terminate(strays)
            rules = spec.rules()
            group_id = ec2.ensure_security_group(
                names.object_name,
                vpc,
                f"wasmcloud {spec.role} machine {machine} of lattice {spec.lattice}",
                names.tags,
                rules,
            ).id
            key_made = ec2.ensure_key_pair(
                names.object_name, key_pair_material(spec.private_key), names.tags
            ).created
            if adopted is not None:
                instance = adopted
                say(
                    f"{machine}: adopting instance {adopted.id} ({adopted.state}), left by an "
                    "earlier run that did not finish"
                )
                ec2.set_tags([adopted.id], names.tags, adopted.tags)
                if adopted.state == "stopped":
                    ec2.start_instance(adopted.id)
            else:
                image = ec2.resolve_image(spec.ami, spec.ami_parameter)
                instance = ec2.run_instance(
                    image,
                    spec.instance_type,
                    spec.subnet_id,
                    group_id,
                    names.object_name,
                    names.tags,
                    public_ip=spec.address == "public",
                )
                say(f"{machine}: instance {instance.id} launched ({instance.state})")
            instance = ec2.wait_running(instance.id)
            ip = _ip(instance, spec)
            say(f"{machine}: instance {instance.id} running at {ip}")
            try:
                host_key = wait_for_ssh(ip, SSH_PORT, spec.ssh_timeout_seconds)
            except TimeoutError as last:
                raise Ec2Error(
                    f"instance {instance.id} at {ip} did not answer SSH on port {SSH_PORT} "
                    f"within {spec.ssh_timeout_seconds}s (last attempt: {last}). Check that "
                    "the subnet routes from here to it, that sshFrom holds this machine's "
                    "address, and that the AMI starts sshd; or give a larger "
                    "sshTimeoutSeconds",
                    "SshTimeout",
                ) from None
            say(f"{machine}: SSH answers")
        except Exception as failed:
            undone = self._undo(ec2, names, instance, group_id, key_made or group_id is not None)
            raise Ec2Error(
                f"Ec2Machine {machine}: {failed} {undone}".rstrip(), getattr(failed, "code", "")
            ) from None
        assert instance is not None
        return {
            **_instance_outputs(instance, spec),
            "securityGroupId": group_id,
            "keyPairName": names.object_name,
            "hostKey": host_key,
            "ingress": [str(rule) for rule in rules],
        }

    def _undo(
        self,
        ec2: Ec2,
        names: Names,
        instance: Instance | None,
        group_id: str | None,
        key_pair: bool,
    ) -> str:
        """Remove what this create made or adopted (no state holds it); says what it did."""
        done: list[str] = []
        try:
            if instance is not None:
                ec2.terminate([instance.id])
                done.append(f"instance {instance.id} was terminated")
            if group_id is not None:
                ec2.delete_security_group(group_id)
                done.append(f"security group {group_id} deleted")
            if key_pair:
                ec2.delete_key_pair(names.object_name)
                done.append(f"key pair {names.object_name} deleted")
        except Exception as failed:
            left = "; ".join(done)
            return (
                f"({left + '; ' if left else ''}cleaning up failed: {failed}; the next `up` "
                "adopts what is left, found by its tags)"
            )
        return f"({'; '.join(done)})" if done else ""

    async def update(
        self, id: str, olds: dict[str, Any], news: dict[str, Any], preview: bool
    ) -> dict[str, Any]:
        spec = parse_ec2_machine(news)
        kept = {key: olds.get(key) for key in OUTPUTS}
        if not isinstance(spec, Ec2Spec):
            return {**news, **kept}
        planned = [str(rule) for rule in spec.rules()]
        if preview:
            return {**news, **kept, "ingress": planned, "state": "running"}
        names = Names.of(spec, current_urn.get())
        say = self._progress()
        found = await asyncio.to_thread(self._update, id, olds, spec, names, say)
        return {**news, **kept, **found, "ingress": planned}

    def _update(
        self,
        id: str,
        olds: dict[str, Any],
        spec: Ec2Spec,
        names: Names,
        say: Callable[[str], None],
    ) -> dict[str, Any]:
        ec2 = self._ec2(spec)
        instance = ec2.describe_instance(id)
        if instance is None or instance.state in ("shutting-down", "terminated"):
            raise Ec2Error(
                f"Ec2Machine {names.machine}: instance {id} is gone; run `pulumi refresh` "
                "and then `up` to launch a new one",
                "InvalidInstanceID.NotFound",
            )
        group_id = str(olds["securityGroupId"])
        ec2.set_rules(group_id, spec.rules())
        ec2.set_tags([id, *ec2.volumes_of(id)], names.tags, instance.tags)
        ec2.set_tags([group_id], names.tags, ec2.tags_of_group(group_id))
        if instance.state in ("stopped", "stopping"):
            if instance.state == "stopping":
                raise Ec2Error(
                    f"Ec2Machine {names.machine}: instance {id} is stopping; run `up` again "
                    "once it is stopped, to start it",
                    "IncorrectInstanceState",
                )
            say(f"{names.machine}: starting instance {id} (it was stopped)")
            ec2.start_instance(id)
        instance = ec2.wait_running(id)
        return _instance_outputs(instance, spec)

    # --- read / delete -------------------------------------------------------------------

    async def read(self, id: str, state: dict[str, Any]) -> dict[str, Any] | None:
        spec = parse_ec2_machine({k: v for k, v in state.items() if k not in OUTPUTS})
        if not isinstance(spec, Ec2Spec):
            raise RuntimeError(
                "; ".join(str(f) for f in spec) or "Ec2Machine: the state is incomplete"
            )
        return await asyncio.to_thread(self._read, id, state, spec)

    def _read(self, id: str, state: dict[str, Any], spec: Ec2Spec) -> dict[str, Any] | None:
        ec2 = self._ec2(spec)
        instance = ec2.describe_instance(id)  # an unreachable API raises: not "gone"
        if instance is None or instance.state in ("shutting-down", "terminated"):
            return None
        outputs = _instance_outputs(instance, spec, require_ip=False)
        group_id = state.get("securityGroupId")
        if isinstance(group_id, str) and group_id:
            try:
                outputs["ingress"] = [str(rule) for rule in ec2.rules_of(group_id)]
            except Ec2Error as error:
                if error.code != "InvalidGroup.NotFound":
                    raise
                outputs["ingress"] = []
        return {**state, **outputs}

    async def delete(self, id: str, state: dict[str, Any]) -> None:
        spec = parse_ec2_machine({k: v for k, v in state.items() if k not in OUTPUTS})
        if not isinstance(spec, Ec2Spec):
            raise RuntimeError(
                "; ".join(str(f) for f in spec) or "Ec2Machine: the state is incomplete"
            )
        names = Names.of(spec, current_urn.get())
        await asyncio.to_thread(self._delete, id, state, spec, names, self._progress())

    def _delete(
        self,
        id: str,
        state: dict[str, Any],
        spec: Ec2Spec,
        names: Names,
        say: Callable[[str], None],
    ) -> None:
        ec2 = self._ec2(spec)
        # Its duplicates too (a run cut short between launch and state): nothing orphaned.
        ids = {id, *(i.id for i in ec2.find_instances(names.adoption))}
        say(f"{names.machine}: terminating {', '.join(sorted(ids))}")
        ec2.terminate(ids)
        groups = {state.get("securityGroupId"), ec2.find_security_group(names.object_name)}
        for group_id in sorted(g for g in groups if isinstance(g, str) and g):
            ec2.delete_security_group(group_id)
        ec2.delete_key_pair(names.object_name)

    def _progress(self) -> Callable[[str], None]:
        """A callback for threads: each message a note in the engine's output, under this
        resource."""
        loop = asyncio.get_running_loop()
        urn = current_urn.get()

        def say(message: str) -> None:
            asyncio.run_coroutine_threadsafe(self.log.note(message, urn), loop)

        return say


def _fits(instance: Instance, spec: Ec2Spec, names: Names) -> bool:
    """Whether an instance a cut-short run left is the one the program asks for now."""
    return (
        instance.state in ("pending", "running", "stopped")
        and instance.subnet_id == spec.subnet_id
        and instance.instance_type == spec.instance_type
        and instance.key_name == names.object_name
        and (spec.ami is None or instance.image_id == spec.ami)
    )


def _ip(instance: Instance, spec: Ec2Spec) -> str:
    ip = instance.public_ip if spec.address == "public" else instance.private_ip
    if not ip:
        raise Ec2Error(
            f"instance {instance.id} has no {spec.address} IP address"
            + (
                ": give a subnet that assigns public IPs (and routes through an internet "
                'gateway), or address "private"'
                if spec.address == "public"
                else ""
            ),
            "NoAddress",
        )
    return ip


def _instance_outputs(instance: Instance, spec: Ec2Spec, require_ip: bool = True) -> dict[str, Any]:
    ip = (
        _ip(instance, spec)
        if require_ip
        else (instance.public_ip if spec.address == "public" else instance.private_ip)
    )
    return {
        "instanceId": instance.id,
        "privateIp": instance.private_ip,
        "publicIp": instance.public_ip,
        "ip": ip,
        "imageId": instance.image_id,
        "state": instance.state,
    }
