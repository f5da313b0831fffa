"""One wasmCloud lattice across regions, one program for every environment.

- core region: its machines form the lattice's NATS cluster (JetStream on disk,
  replicated on up to three nodes); the controller runs on each, the OCI registry on the
  first.
- edge regions: each machine is a NATS leaf node of its region.
- one host per machine, labeled region=<its region>, role=core|edge, connected to the NATS
  node on its own machine.
- the counter app once per region (`counter-<region>`, from wadm.yaml): everything on that
  region's hosts, an http-server on each of its machines (:8080), the counts in the core's
  JetStream. Each region's app depends on the previous one in `rolloutOrder`, and each
  deploy waits until the region answers its health URL: a new `appVersion` rolls out
  region by region and a broken one stops (rolled back) in the first region.

Where the machines come from is the stack's `machines`: `ssh` (machines you have, listed
per region) or `ec2` (instances made per region, `size` of them). README.md shows both
stacks' config (Pulumi.dev.yaml, Pulumi.prod.yaml) and the commands.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml

import pulumi_wasmcloud as wasmcloud

HERE = Path(__file__).resolve().parent
COUNTER_WASM = HERE.parent / "counter" / "build" / "counter.wasm"
TEMPLATE = HERE / "wadm.yaml"
LATTICE = "default"
HTTP_PORT = 8080  # the http-server's listen address in wadm.yaml (0.0.0.0:8080)
REGISTRY_PORT = 5000  # the lattice's registry, on the first core machine
ROLES = ("core", "edge")
SSH_MACHINE_KEYS = {"name", "host", "user", "port", "hostKey"}
REGION_KEYS = {
    "ssh": {"name", "role", "machines"},
    "ec2": {"name", "role", "size", "subnetId", "cidr", "instanceType", "ami"},
}
EC2_KEYS = {"instanceType", "ami", "amiParameter", "user", "operatorCidrs", "httpFrom", "address"}


# -- the stack's config, checked: a wrong type is refused with its place, never defaulted.
# pulumi.RunError: the CLI shows the sentence alone, without a traceback.


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise pulumi.RunError(f"config {where}: required, a non-empty string")
    return value


def _whole(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise pulumi.RunError(f"config {where}: must be a whole number from {low} to {high}")
    return value


def _cidrs(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise pulumi.RunError(f"config {where}: a non-empty list of CIDR blocks (203.0.113.0/24)")
    for index, cidr in enumerate(value):
        _cidr(cidr, f"{where}[{index}]")
    return list(value)


def _cidr(value: Any, where: str) -> str:
    text = _string(value, where)
    try:
        ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise pulumi.RunError(
            f"config {where}: {text!r} is not a CIDR block (10.10.0.0/16)"
        ) from None
    if "/" not in text:
        raise pulumi.RunError(f"config {where}: {text!r} has no prefix length (10.10.0.0/16)")
    return text


def _map(value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise pulumi.RunError(f"config {where}: a map with {', '.join(sorted(allowed))}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise pulumi.RunError(f"config {where}: unknown keys {unknown}; allowed: {sorted(allowed)}")
    return value


@dataclass(frozen=True)
class SshEntry:
    name: str
    host: str
    user: str
    port: int
    host_key: str | None


@dataclass(frozen=True)
class Region:
    name: str
    role: str  # core | edge
    machines: tuple[SshEntry, ...]  # machines: ssh
    size: int  # machines: ec2 (for ssh, len(machines))
    subnet_id: str | None
    cidr: str | None
    instance_type: str | None
    ami: str | None


def parse_regions(value: Any, mode: str) -> list[Region]:
    if not isinstance(value, list) or not value:
        raise pulumi.RunError("config regions: a non-empty list of regions (README.md shows one)")
    regions = []
    for index, entry in enumerate(value):
        where = f"regions[{index}]"
        _map(entry, where, REGION_KEYS[mode])
        name = _string(entry.get("name"), f"{where}.name")
        role = entry.get("role")
        if role not in ROLES:
            raise pulumi.RunError(f"config {where}.role: core or edge, got {role!r}")
        machines: tuple[SshEntry, ...] = ()
        if mode == "ssh":
            machines = tuple(parse_ssh_machines(entry.get("machines"), f"{where}.machines"))
            size = len(machines)
        else:
            size = _whole(entry.get("size", 1), f"{where}.size", 1, 9)
            if "subnetId" not in entry:
                raise pulumi.RunError(
                    f"config {where}.subnetId: required with machines: ec2, your subnet in "
                    f"{name} (pulumi config set --path '{where}.subnetId' subnet-...)"
                )
        optional = {}
        for key in ("subnetId", "instanceType", "ami"):
            optional[key] = _string(entry[key], f"{where}.{key}") if key in entry else None
        regions.append(
            Region(
                name=name,
                role=role,
                machines=machines,
                size=size,
                subnet_id=optional["subnetId"],
                cidr=_cidr(entry["cidr"], f"{where}.cidr") if mode == "ec2" else None,
                instance_type=optional["instanceType"],
                ami=optional["ami"],
            )
        )
    names = [region.name for region in regions]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise pulumi.RunError(f"config regions: {repeated} named more than once")
    cores = [region.name for region in regions if region.role == "core"]
    if len(cores) != 1:
        raise pulumi.RunError(f"config regions: exactly one region with role core, got {cores}")
    return regions


def parse_ssh_machines(value: Any, where: str) -> list[SshEntry]:
    if not isinstance(value, list) or not value:
        raise pulumi.RunError(f"config {where}: a non-empty list of machines (name, host)")
    machines = []
    for index, entry in enumerate(value):
        at = f"{where}[{index}]"
        _map(entry, at, SSH_MACHINE_KEYS)
        host_key = entry.get("hostKey")
        if host_key is not None and not isinstance(host_key, str):
            raise pulumi.RunError(f"config {at}.hostKey: must be a string")
        user = entry.get("user", "root")
        machines.append(
            SshEntry(
                name=_string(entry.get("name"), f"{at}.name"),
                host=_string(entry.get("host"), f"{at}.host"),
                user=_string(user, f"{at}.user"),
                port=_whole(entry.get("port", 22), f"{at}.port", 1, 65535),
                host_key=host_key,
            )
        )
    return machines


def parse_rollout_order(value: Any, regions: Sequence[Region]) -> list[str]:
    names = [region.name for region in regions]
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise pulumi.RunError(f"config rolloutOrder: a list of the regions, e.g. {names}")
    if sorted(value) != sorted(names):
        raise pulumi.RunError(
            f"config rolloutOrder: every region exactly once; got {value}, regions are {names}"
        )
    return list(value)


# -- the app of one region ----------------------------------------------------------------


def region_manifest(
    template: Mapping[str, Any], region: str, version: str, component: Path, js_domain: str
) -> dict[str, Any]:
    """wadm.yaml for ``region``: its name, version, component file (absolute: the provider
    reads it from wherever `pulumi` runs and pushes it to the lattice's registry), every
    spread requirement on the region, and the keyvalue link's JetStream domain."""
    manifest = copy.deepcopy(dict(template))
    manifest["metadata"]["name"] = f"counter-{region}"
    manifest["metadata"]["annotations"]["version"] = version
    for component_spec in manifest["spec"]["components"]:
        if component_spec["name"] == "counter":
            component_spec["properties"]["image"] = str(component)
        for trait in component_spec.get("traits", []):
            properties = trait["properties"]
            for spread in properties.get("spread", []):
                spread["requirements"] = {"region": region}
            for config in properties.get("target", {}).get("config", []):
                if "js_domain" in config.get("properties", {}):
                    config["properties"]["js_domain"] = js_domain
    return manifest


# -- machines --------------------------------------------------------------------------


@dataclass
class RegionMachines:
    region: Region
    ssh: list[wasmcloud.SshMachine]
    addresses: list[pulumi.Output[str]]  # where SSH, NATS and the http-server answer


def ssh_machines(region: Region, private_key: pulumi.Output[str]) -> RegionMachines:
    machines = [
        wasmcloud.SshMachine(
            entry.name,
            host=entry.host,
            private_key=private_key,
            user=entry.user,
            port=entry.port,
            # Without a hostKey the first connection records the key the machine shows
            # and every later one is verified against it (the Lattice's hostKeys output).
            host_key=entry.host_key,
        )
        for entry in region.machines
    ]
    return RegionMachines(
        region, machines, [pulumi.Output.from_input(entry.host) for entry in region.machines]
    )


def ec2_machines(
    region: Region, regions: Sequence[Region], ec2: dict[str, Any], private_key: pulumi.Output[str]
) -> RegionMachines:
    """``region.size`` instances in the region's subnet. Their security groups open what
    each role needs from the regions' CIDRs (4222 clients, 6222 routes, 7422 leaf nodes,
    5000 the registry) and from the operator's (SSH, NATS and the registry for the
    provider, 8080 for the health checks); 8080 also from ``httpFrom``."""
    all_cidrs = [r.cidr for r in regions if r.cidr is not None]
    operator = ec2["operatorCidrs"]
    extra_ports: list[dict[str, Any]] = [
        {"port": HTTP_PORT, "cidrs": [*ec2["httpFrom"], *operator]}
    ]
    if region.role == "core":
        extra_ports.append({"port": REGISTRY_PORT, "cidrs": [*all_cidrs, *operator]})
    ami = region.ami or ec2.get("ami")
    made = [
        wasmcloud.Ec2Machine(
            f"{region.role}-{region.name}-{index}",
            region=region.name,
            lattice=LATTICE,
            role=region.role,
            subnet_id=region.subnet_id,
            private_key=private_key,
            instance_type=region.instance_type or ec2.get("instanceType", "t3.small"),
            ami=ami,
            ami_parameter=None if ami else ec2.get("amiParameter"),
            user=ec2.get("user", "admin"),
            ssh_from=operator,
            lattice_cidrs=[*all_cidrs, *operator],
            peer_cidrs=all_cidrs,
            extra_ports=extra_ports,
            address=ec2.get("address", "private"),
            tags={"environment": pulumi.get_stack()},
        )
        for index in range(1, region.size + 1)
    ]
    return RegionMachines(region, [m.ssh for m in made], [m.address for m in made])


def parse_ec2(value: Any) -> dict[str, Any]:
    ec2 = _map(value, "ec2", EC2_KEYS)
    for key in ("instanceType", "ami", "amiParameter", "user"):
        if key in ec2:
            _string(ec2[key], f"ec2.{key}")
    if "ami" in ec2 and "amiParameter" in ec2:
        raise pulumi.RunError("config ec2: give ami or amiParameter, not both")
    if ec2.get("address", "private") not in ("private", "public"):
        raise pulumi.RunError(f"config ec2.address: private or public, got {ec2['address']!r}")
    for key in ("operatorCidrs", "httpFrom"):
        if key not in ec2:
            raise pulumi.RunError(f"config ec2.{key}: required, a list of CIDR blocks")
        _cidrs(ec2[key], f"ec2.{key}")
    return ec2


# -- the program ------------------------------------------------------------------------

config = pulumi.Config()
mode = config.require("machines")
if mode not in REGION_KEYS:
    raise pulumi.RunError(f"config machines: ssh or ec2, got {mode!r}")
private_key = config.require_secret("sshPrivateKey")
regions = parse_regions(config.require_object("regions"), mode)
rollout_order = parse_rollout_order(config.require_object("rolloutOrder"), regions)
app_version = _string(config.require("appVersion"), "appVersion")
js_domain = config.get("jetstreamDomain") or "core"
health_path = config.get("healthPath") or "/healthz"
if not health_path.startswith("/"):
    raise pulumi.RunError(f"config healthPath: a path starting with /, got {health_path!r}")

if mode == "ssh":
    placed = [ssh_machines(region, private_key) for region in regions]
else:
    ec2 = parse_ec2(config.require_object("ec2"))
    placed = [ec2_machines(region, regions, ec2, private_key) for region in regions]
by_region = {machines.region.name: machines for machines in placed}
[core] = [machines for machines in placed if machines.region.role == "core"]

lattice = wasmcloud.Lattice(
    "multi-region",
    lattice=LATTICE,
    cluster=core.ssh,
    leaf_nodes=[
        wasmcloud.LeafNode(machines.region.name, machine)
        for machines in placed
        if machines.region.role == "edge"
        for machine in machines.ssh
    ],
    registry_port=REGISTRY_PORT,
    jetstream_domain=js_domain,
    heartbeat_seconds=config.get_int("heartbeatSeconds") or 10,
)

hosts: dict[str, dict[str, wasmcloud.Host]] = {}  # region -> host name -> host
for machines in placed:
    region = machines.region
    hosts[region.name] = {
        f"{machine.name}-host": wasmcloud.Host(
            f"{machine.name}-host",
            lattice=lattice,
            machine=machine,
            labels={"region": region.name, "role": region.role},
            # The NATS node on the host's own machine: a core node or the region's leaf.
            nats_url=lattice.nats_urls.apply(lambda urls, name=machine.name: str(urls[name])),
        )
        for machine in machines.ssh
    }


def endpoint(address: pulumi.Input[str], path: str = "/") -> pulumi.Output[str]:
    return pulumi.Output.concat("http://", address, f":{HTTP_PORT}{path}")


# The lattice runs secured: tools connect as its tooling user (secret outputs).
pulumi.export("credentials", lattice.credentials)
pulumi.export("clientTls", lattice.client_tls)
pulumi.export("natsUrl", lattice.nats_url)
pulumi.export("registryUrl", lattice.registry_url)
pulumi.export(
    "hosts",
    {name: host.host_id for in_region in hosts.values() for name, host in in_region.items()},
)
pulumi.export(
    "endpoints", {name: [endpoint(a) for a in m.addresses] for name, m in by_region.items()}
)

# `pulumi config set deployApp false` leaves the apps out: up the machines first, then
# preview the apps' placement on the hosts that now exist (README.md).
if config.get_bool("deployApp") is not False:
    template = yaml.safe_load(TEMPLATE.read_text())
    component = Path(config.get("counterWasm") or COUNTER_WASM).resolve()
    health_timeout = config.get_int("healthTimeoutSeconds") or 60
    apps: dict[str, wasmcloud.Application] = {}
    previous: wasmcloud.Application | None = None
    for name in rollout_order:
        app = wasmcloud.Application(
            f"counter-{name}",
            lattice=lattice,
            manifest=region_manifest(template, name, app_version, component, js_domain),
            # The region's first machine answers for it: the region is healthy when its
            # http-server reaches its counter and the counter its store.
            health_url=endpoint(by_region[name].addresses[0], health_path),
            health_timeout_seconds=health_timeout,
            opts=pulumi.ResourceOptions(
                # The region's hosts to place on; the previous region's app so a new
                # version reaches this region only once it is healthy there.
                depends_on=[*hosts[name].values(), *([previous] if previous is not None else [])]
            ),
        )
        apps[name] = app
        previous = app
    pulumi.export("placement", {name: app.placement for name, app in apps.items()})
    pulumi.export("versions", {name: app.deployed_version for name, app in apps.items()})
