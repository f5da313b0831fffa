"""The tutorial's edge + core topology on five machines of yours, over SSH.

- core: three machines, each a node of the lattice's NATS cluster (JetStream on disk,
  replicated on all three) and one host labeled region=core, tier=core. The controller
  runs on every core machine (one leads); the OCI registry runs on the first.
- edge: two machines, each a NATS leaf node of its region and one host labeled
  region=<its region>, tier=edge, connected to that leaf node.
- the counter app (wadm.yaml next to this file), its component pushed from
  examples/counter/build/counter.wasm to the lattice's registry.

Machines come from the stack's config (README.md says how to set it):

    core:  [{name, host, user?, port?, hostKey?}, ...]            # 3 machines
    edge:  [{name, host, user?, port?, hostKey?, region}, ...]    # 2 machines
    sshPrivateKey (secret): the key that logs in to all of them
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import yaml

import pulumi_wasmcloud as wasmcloud

HERE = Path(__file__).resolve().parent
COUNTER_WASM = HERE.parent / "counter" / "build" / "counter.wasm"
ENTRY_KEYS = {"name", "host", "user", "port", "hostKey", "region"}


def machine_entries(key: str, entries: Any, with_region: bool) -> list[dict[str, Any]]:
    """The stack config's list ``key``, each entry checked: a wrong type is refused with
    its place (``edge[1].port``), never read as a default."""
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"config {key}: a non-empty list of machines (README.md shows one)")
    checked = []
    for index, entry in enumerate(entries):
        where = f"config {key}[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: a map with name, host, user, port, hostKey")
        allowed = ENTRY_KEYS if with_region else ENTRY_KEYS - {"region"}
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")
        required = ("name", "host", "region") if with_region else ("name", "host")
        for field in required:
            if not isinstance(entry.get(field), str) or not entry[field]:
                raise ValueError(f"{where}.{field}: required, a non-empty string")
        for field in ("user", "hostKey"):
            if field in entry and not isinstance(entry[field], str):
                raise ValueError(f"{where}.{field}: must be a string")
        port = entry.get("port", 22)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"{where}.port: must be a whole number from 1 to 65535")
        checked.append(entry)
    return checked


def ssh_machine(entry: dict[str, Any], private_key: pulumi.Output[str]) -> wasmcloud.SshMachine:
    return wasmcloud.SshMachine(
        entry["name"],
        host=entry["host"],
        private_key=private_key,
        user=entry.get("user", "root"),
        port=entry.get("port", 22),
        # Without a hostKey the first connection records the key the machine shows and
        # every later one is verified against it (the Lattice's hostKeys output).
        host_key=entry.get("hostKey"),
    )


def counter_manifest(path: Path, component_file: Path) -> dict[str, Any]:
    """wadm.yaml with the counter's image made absolute: the provider reads it from
    wherever `pulumi` runs, and pushes it to the lattice's registry."""
    manifest: dict[str, Any] = yaml.safe_load(path.read_text())
    for component in manifest["spec"]["components"]:
        if component["name"] == "counter":
            component["properties"]["image"] = str(component_file)
    return manifest


config = pulumi.Config()
private_key = config.require_secret("sshPrivateKey")
core_entries = machine_entries("core", config.require_object("core"), with_region=False)
edge_entries = machine_entries("edge", config.require_object("edge"), with_region=True)

core = [ssh_machine(entry, private_key) for entry in core_entries]
edge = [ssh_machine(entry, private_key) for entry in edge_entries]
regions = {entry["name"]: entry["region"] for entry in edge_entries}

lattice = wasmcloud.Lattice(
    "edge-core",
    cluster=core,
    leaf_nodes=[wasmcloud.LeafNode(regions[machine.name], machine) for machine in edge],
    registry_port=5000,
    heartbeat_seconds=config.get_int("heartbeatSeconds") or 10,
)


def nearest_nats(machine: wasmcloud.SshMachine) -> pulumi.Output[str]:
    """The NATS node on the host's own machine: a core node, or the region's leaf node."""
    return lattice.nats_urls.apply(lambda urls: str(urls[machine.name]))


hosts: dict[str, wasmcloud.Host] = {}
for machine in core:
    hosts[f"{machine.name}-host"] = wasmcloud.Host(
        f"{machine.name}-host",
        lattice=lattice,
        machine=machine,
        labels={"region": "core", "tier": "core"},
        nats_url=nearest_nats(machine),
    )
for machine in edge:
    hosts[f"{machine.name}-host"] = wasmcloud.Host(
        f"{machine.name}-host",
        lattice=lattice,
        machine=machine,
        labels={"region": regions[machine.name], "tier": "edge"},
        nats_url=nearest_nats(machine),
    )

# The lattice runs secured: tools connect as its tooling user (secret outputs).
pulumi.export("credentials", lattice.credentials)
pulumi.export("clientTls", lattice.client_tls)
pulumi.export("natsUrl", lattice.nats_url)
pulumi.export("natsUrls", lattice.nats_urls)
pulumi.export("registryUrl", lattice.registry_url)
pulumi.export("hosts", {name: host.host_id for name, host in hosts.items()})
pulumi.export("curl", [f"curl http://{entry['host']}:8080/hello" for entry in edge_entries])

# `pulumi config set deployApp false` leaves the app out: up the machines first, then
# preview the app's placement on the hosts that now exist (README.md).
if config.get_bool("deployApp") is not False:
    counter = wasmcloud.Application(
        "counter",
        lattice=lattice,
        manifest=counter_manifest(
            Path(config.get("manifest") or HERE / "wadm.yaml"),
            Path(config.get("counterWasm") or COUNTER_WASM),
        ),
        opts=pulumi.ResourceOptions(depends_on=list(hosts.values())),
    )
    pulumi.export("placement", counter.placement)
