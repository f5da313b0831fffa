"""Each resource's example, in Python and in Pulumi YAML, for the reference docs
(tests/unit/test_schema_docs.py compiles the Python and checks the YAML's properties
against the schema)."""

from __future__ import annotations

# What the Python SDK's ``lattice=`` argument passes: a Lattice's outputs, by name.
_CONNECTION_YAML = """\
      natsUrl: ${local.natsUrl}
      lattice: ${local.lattice}
      credentials: ${local.credentials}
      caCert: ${local.caCert}
      clientTls: ${local.clientTls}"""

LATTICE = {
    "python": """\
import pulumi
import pulumi_wasmcloud as wasmcloud

# NATS (secured: operator mode and TLS), the controller and a redis-server on this machine.
local = wasmcloud.Lattice("local", redis_port=6379)
pulumi.export("natsUrl", local.nats_url)
""",
    "yaml": """\
resources:
  local:
    type: wasmcloud:index:Lattice
    properties:
      redisPort: 6379
outputs:
  natsUrl: ${local.natsUrl}
""",
}

HOST = {
    "python": """\
import pulumi
import pulumi_wasmcloud as wasmcloud

local = wasmcloud.Lattice("local")
core = wasmcloud.Host("core", lattice=local, labels={"tier": "core"})
pulumi.export("hostId", core.host_id)
""",
    "yaml": f"""\
resources:
  local:
    type: wasmcloud:index:Lattice
  core:
    type: wasmcloud:index:Host
    properties:
      name: core
      labels:
        tier: core
{_CONNECTION_YAML}
      stateDir: ${{local.stateDir}}
      heartbeatSeconds: ${{local.heartbeatSeconds}}
      registryUrl: ${{local.registryUrl}}
      userIssuer: ${{local.userIssuer}}
      otlpEndpoint: ${{local.otlpEndpoint}}
outputs:
  hostId: ${{core.hostId}}
""",
}

APPLICATION = {
    "python": """\
import pulumi
import pulumi_wasmcloud as wasmcloud

local = wasmcloud.Lattice("local", redis_port=6379)
core = wasmcloud.Host("core", lattice=local, labels={"tier": "core"})
counter = wasmcloud.Application(
    "counter",
    lattice=local,
    manifest_path="examples/counter/wadm.yaml",
    health_url="http://127.0.0.1:8080/",
    opts=pulumi.ResourceOptions(depends_on=[core]),
)
pulumi.export("placement", counter.placement)
""",
    "yaml": f"""\
resources:
  local:
    type: wasmcloud:index:Lattice
    properties:
      redisPort: 6379
  counter:
    type: wasmcloud:index:Application
    properties:
      manifestPath: examples/counter/wadm.yaml
      healthUrl: http://127.0.0.1:8080/
{_CONNECTION_YAML}
      registryUrl: ${{local.registryUrl}}
outputs:
  placement: ${{counter.placement}}
""",
}

EC2_MACHINE = {
    "python": """\
import pulumi
import pulumi_wasmcloud as wasmcloud

config = pulumi.Config()
core = wasmcloud.Ec2Machine(
    "core-1",
    region="us-east-1",
    lattice="default",
    role="core",
    subnet_id=config.require("subnetId"),
    private_key=config.require_secret("sshKey"),
    ssh_from=["203.0.113.0/24"],
    lattice_cidrs=["10.0.0.0/16"],
)
lattice = wasmcloud.Lattice("prod", cluster=[core.ssh])
pulumi.export("core", core.address)
""",
    "yaml": """\
config:
  subnetId:
    type: string
  sshKey:
    type: string
    secret: true
resources:
  core-1:
    type: wasmcloud:index:Ec2Machine
    properties:
      region: us-east-1
      lattice: default
      role: core
      subnetId: ${subnetId}
      privateKey: ${sshKey}
      sshFrom: [203.0.113.0/24]
      latticeCidrs: [10.0.0.0/16]
outputs:
  core: ${core-1.ip}
""",
}

SECRET = {
    "python": """\
import pulumi
import pulumi_wasmcloud as wasmcloud

config = pulumi.Config()
local = wasmcloud.Lattice("local")
password = wasmcloud.Secret(
    "redis-password", lattice=local, value=config.require_secret("redisPassword")
)
# A manifest names it through a secret policy (properties.backend: nats-kv) and the key.
pulumi.export("key", password.key)
""",
    "yaml": f"""\
config:
  redisPassword:
    type: string
    secret: true
resources:
  local:
    type: wasmcloud:index:Lattice
  redis-password:
    type: wasmcloud:index:Secret
    properties:
      key: redis-password
      value: ${{redisPassword}}
{_CONNECTION_YAML}
outputs:
  key: ${{redis-password.key}}
""",
}
