"""The Pulumi program the end-to-end tests drive (copied into a temporary project).

Everything a test varies comes from stack config, so each step is `pulumi config set`
plus `pulumi up` or `preview`, the way a user works.
"""

import json
from pathlib import Path

import pulumi
import yaml

import pulumi_wasmcloud as wasmcloud

config = pulumi.Config()
root = Path(config.require("root"))
http_port = config.require_int("httpPort")
redis_port = config.require_int("redisPort")

lattice = wasmcloud.Lattice(
    "lattice",
    nats_port=config.require_int("natsPort"),
    redis_port=redis_port,
    state_dir=config.require("stateDir"),
    heartbeat_seconds=2,
    secure=False,  # the tests talk to NATS as anyone; test_local_security.py covers secured
)
core = wasmcloud.Host("e2e-core", lattice=lattice, labels={"tier": "core"})
edge_labels = {"tier": "edge"}
if config.get("edgeZone"):
    edge_labels["zone"] = config.require("edgeZone")
hosts = {"e2e-core": core}
if not config.get_bool("dropEdge"):
    hosts["e2e-edge"] = wasmcloud.Host("e2e-edge", lattice=lattice, labels=edge_labels)

manifest = yaml.safe_load((root / "examples" / "counter" / "wadm.yaml").read_text())
counter, _, http = manifest["spec"]["components"]
counter["properties"]["image"] = f"file://{root}/examples/counter/build/counter.wasm"
scaler = counter["traits"][0]["properties"]
scaler["instances"] = config.get_int("instances") or 3
if config.get("spread"):
    scaler["spread"] = json.loads(config.require("spread"))
link = counter["traits"][1]["properties"]
link["target_config"][0]["properties"]["url"] = f"redis://127.0.0.1:{redis_port}"
link["target"] = config.get("linkTarget") or link["target"]
address = http["traits"][0]["properties"]["source_config"][0]["properties"]
address["address"] = f"127.0.0.1:{http_port}"

app = wasmcloud.Application(
    "counter",
    lattice=lattice,
    manifest=manifest,
    allow_unplaced=config.get_bool("allowUnplaced") or False,
    opts=pulumi.ResourceOptions(depends_on=list(hosts.values())),
)

pulumi.export("placement", app.placement)
pulumi.export("hosts", {name: host.host_id for name, host in hosts.items()})
