"""The local default stack: NATS (JetStream on disk) + controller + redis-server + an OCI
registry (docker-registry on 127.0.0.1:5000), two hosts labeled differently, and the
tutorial's counter app with HTTP on 127.0.0.1:8080. NATS is secured (operator mode, the
lattice's own authority): tools connect as the user in <stateDir>/nats.creds
(`eval "$(wasmcloud env)"` points wash and the nats CLI at it).

    make up        # pulumi up on the `local` stack (file backend under .state/)
    curl http://127.0.0.1:8080/hello
    make destroy   # pulumi destroy: every process and port goes away
"""

import pulumi

import pulumi_wasmcloud as wasmcloud

config = pulumi.Config()
state_dir = config.get("stateDir") or ".state/local"

lattice = wasmcloud.Lattice(
    "local",
    nats_port=config.get_int("natsPort") or 4222,
    redis_port=config.get_int("redisPort") or 6379,
    registry_port=config.get_int("registryPort") or 5000,
    state_dir=state_dir,
    heartbeat_seconds=config.get_int("heartbeatSeconds") or 5,
)
core = wasmcloud.Host("local-core", lattice=lattice, labels={"region": "local", "tier": "core"})
edge = wasmcloud.Host("local-edge", lattice=lattice, labels={"region": "local", "tier": "edge"})

counter = wasmcloud.Application(
    "counter",
    lattice=lattice,
    manifest_path=config.get("manifest") or "examples/counter/wadm.yaml",
    opts=pulumi.ResourceOptions(depends_on=[core, edge]),
)

pulumi.export("natsUrl", lattice.nats_url)
pulumi.export("registryUrl", lattice.registry_url)
pulumi.export("hosts", {"local-core": core.host_id, "local-edge": edge.host_id})
pulumi.export("placement", counter.placement)
pulumi.export("natsCreds", f"{state_dir}/nats.creds")  # the tooling user's creds file (0600)
pulumi.export("try", "curl http://127.0.0.1:8080/hello")
