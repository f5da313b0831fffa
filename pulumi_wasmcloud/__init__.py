"""pulumi-wasmcloud: typed Pulumi resources for wasmCloud 1.x lattices.

import pulumi_wasmcloud as wasmcloud
lattice = wasmcloud.Lattice("local", redis_port=6379)
host = wasmcloud.Host("core", lattice=lattice, labels={"tier": "core"})
app = wasmcloud.Application("counter", lattice=lattice,
                            manifest_path="examples/counter/wadm.yaml",
                            opts=pulumi.ResourceOptions(depends_on=[host]))
"""

__version__ = "0.1.0"

__all__ = [
    "Application",
    "CapabilityProvider",
    "Component",
    "Ec2Machine",
    "Host",
    "Lattice",
    "LeafNode",
    "Link",
    "Provider",
    "Secret",
    "Spread",
    "SshMachine",
    "__version__",
    "get_lattice",
    "get_lattice_output",
    "plan_placement",
    "plan_placement_output",
]


def __getattr__(name: str) -> object:
    # The resources import the Pulumi SDK; the provider plugin and language host do not
    # need them, so they load only when a program asks for them.
    if name in ("Application", "Host", "Lattice", "Provider"):
        from pulumi_wasmcloud import resources

        return getattr(resources, name)
    if name in ("CapabilityProvider", "Component", "Link", "Spread"):
        from pulumi_wasmcloud import app

        return getattr(app, name)
    if name == "Secret":
        from pulumi_wasmcloud.secrets import Secret

        return Secret
    if name == "Ec2Machine":
        from pulumi_wasmcloud.ec2 import Ec2Machine

        return Ec2Machine
    if name in ("LeafNode", "SshMachine"):
        from pulumi_wasmcloud import machines

        return getattr(machines, name)
    if name in ("get_lattice", "get_lattice_output", "plan_placement", "plan_placement_output"):
        from pulumi_wasmcloud import functions

        return getattr(functions, name)
    raise AttributeError(name)
