"""EC2 instances for a lattice: ``Ec2Machine`` launches one and hands it to ``Lattice``
and ``Host`` as an ``SshMachine`` (its ``ssh`` property).

A core node and a host on a second instance, in one region::

    import pulumi
    import pulumi_wasmcloud as wasmcloud

    config = pulumi.Config()
    key = config.require_secret("sshKey")  # an ed25519 private key (ssh-keygen -t ed25519)
    common = dict(
        region="us-east-1",
        lattice="default",
        subnet_id=config.require("subnetId"),
        private_key=key,
        ssh_from=[config.require("operatorCidr")],  # where `pulumi up` runs
        lattice_cidrs=["10.0.0.0/16"],
    )
    core = wasmcloud.Ec2Machine("core-1", role="core", **common)
    worker = wasmcloud.Ec2Machine("host-1", role="host", **common)
    lattice = wasmcloud.Lattice("prod", cluster=[core.ssh])
    wasmcloud.Host("host-1", lattice=lattice, machine=worker.ssh)

Each machine gets its own security group (exactly the ports its role needs: 22 from
``ssh_from``; core and edge: 4222 from ``lattice_cidrs``; core: 6222 and 7422 from
``peer_cidrs``; plus ``extra_ports``) and key pair (the public half of ``private_key``),
both named ``wasmcloud-<lattice>-<stack>-<machine>``, and every object is tagged with
the stack, lattice, machine and role, so a cut-short ``up`` finds what it made. The
credentials are boto3's (environment, profile, instance role); docs/ec2.md lists the
IAM actions they need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from pulumi_wasmcloud.machines import SshMachine
from pulumi_wasmcloud.resources import OutputProperty, registered, secret_outputs
from pulumi_wasmcloud.schema.resources import EC2_MACHINE


class Ec2Machine(pulumi.CustomResource):
    """An EC2 instance in ``region`` and ``subnet_id``, running and answering SSH once
    created, for a lattice ``role``: ``core`` (a NATS cluster node), ``edge`` (a leaf
    node) or ``host`` (wasmCloud hosts only).

    The AMI is ``ami``, or the image the SSM public parameter ``ami_parameter`` names
    (default: Debian 12's, whose login ``user`` is admin). ``address`` says which of the
    instance's addresses SSH and NATS use: ``private`` (default; run ``pulumi`` inside
    the VPC, or over a VPN) or ``public``. Create waits up to ``ssh_timeout_seconds`` for
    SSH; an instance that never answers is terminated and the failure reported.
    ``endpoint_url`` points boto3 at another EC2 endpoint (else ``AWS_ENDPOINT_URL`` or
    AWS's own).

    Example (a program; ``sshKey`` and ``subnetId`` in the stack's config)::

        config = pulumi.Config()
        core = Ec2Machine(
            "core-1",
            region="us-east-1",
            lattice="default",
            role="core",
            subnet_id=config.require("subnetId"),
            private_key=config.require_secret("sshKey"),
            ssh_from=["203.0.113.0/24"],
            lattice_cidrs=["10.0.0.0/16"],
        )
        lattice = Lattice("prod", cluster=[core.ssh])
        Host("core-1", lattice=lattice, machine=core.ssh)
        pulumi.export("core", core.address)
    """

    def __init__(
        self,
        resource_name: str,
        *,
        region: pulumi.Input[str],
        lattice: pulumi.Input[str],
        role: pulumi.Input[str],
        subnet_id: pulumi.Input[str],
        private_key: pulumi.Input[str],
        instance_type: pulumi.Input[str] = "t3.small",
        ami: pulumi.Input[str] | None = None,
        ami_parameter: pulumi.Input[str] | None = None,
        user: pulumi.Input[str] = "admin",
        ssh_from: pulumi.Input[Sequence[str]] = (),
        lattice_cidrs: pulumi.Input[Sequence[str]] = (),
        peer_cidrs: pulumi.Input[Sequence[str]] = (),
        extra_ports: pulumi.Input[Sequence[Mapping[str, Any]]] = (),
        address: pulumi.Input[str] = "private",
        ssh_timeout_seconds: pulumi.Input[int] = 300,
        endpoint_url: pulumi.Input[str] | None = None,
        tags: pulumi.Input[Mapping[str, str]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """Args:
        region: The AWS region.
        lattice: The lattice the machine is for (in its names and tags).
        role: ``core``, ``edge`` or ``host``: which ports its security group opens.
        subnet_id: The subnet to launch in.
        private_key: An OpenSSH private key; its public half is the key pair's (secret).
        instance_type: The instance type.
        ami: The AMI id; give it or ``ami_parameter``.
        ami_parameter: An SSM public parameter naming the AMI (default: Debian 12's).
        user: The login user of the AMI.
        ssh_from: CIDR blocks SSH (22) is open to.
        lattice_cidrs: CIDR blocks NATS clients (4222) come from (core and edge).
        peer_cidrs: CIDR blocks of the cluster's routes and leaf nodes (core).
        extra_ports: More ports to open, each ``{"port": 8080, "cidrs": [...]}``.
        address: Which address SSH and NATS use: ``private`` or ``public``.
        ssh_timeout_seconds: How long create waits for SSH to answer.
        endpoint_url: Another EC2 endpoint for boto3.
        tags: More tags on everything it makes.
        """
        if ami is not None and ami_parameter is not None:
            raise ValueError(f"Ec2Machine {resource_name}: give ami or ami_parameter, not both")
        self._private_key = private_key
        self._user = user
        props: dict[str, Any] = {
            "region": region,
            "lattice": lattice,
            "role": role,
            "subnetId": subnet_id,
            "privateKey": pulumi.Output.secret(private_key),
            "instanceType": instance_type,
            "ami": ami,
            "amiParameter": ami_parameter,
            "user": user,
            "sshFrom": _listed(ssh_from),
            "latticeCidrs": _listed(lattice_cidrs),
            "peerCidrs": _listed(peer_cidrs),
            "extraPorts": _listed(extra_ports),
            "address": address,
            "sshTimeoutSeconds": ssh_timeout_seconds,
            "endpointUrl": endpoint_url,
            "tags": tags,
        }
        super().__init__(
            EC2_MACHINE.token,
            resource_name,
            registered(EC2_MACHINE, props),
            pulumi.ResourceOptions.merge(opts, secret_outputs(EC2_MACHINE)),
        )
        self._machine_name = resource_name

    @property
    def ssh(self) -> SshMachine:
        """This instance as an ``SshMachine`` (for ``Lattice(cluster=...)``, ``LeafNode``
        and ``Host(machine=...)``): at ``address``, with the host key recorded when SSH
        first answered, so every later connection verifies it."""
        return SshMachine(
            self._machine_name,
            host=self.address,
            private_key=self._private_key,
            user=self._user,
            host_key=self.host_key,
        )

    address = OutputProperty(EC2_MACHINE, "ip", str)  # what `address` chose
    ip = OutputProperty(EC2_MACHINE, "ip", str)
    instance_id = OutputProperty(EC2_MACHINE, "instanceId", str)
    private_ip = OutputProperty(EC2_MACHINE, "privateIp", str)
    public_ip = OutputProperty(EC2_MACHINE, "publicIp", str)
    security_group_id = OutputProperty(EC2_MACHINE, "securityGroupId", str)
    key_pair_name = OutputProperty(EC2_MACHINE, "keyPairName", str)
    host_key = OutputProperty(EC2_MACHINE, "hostKey", str)
    image_id = OutputProperty(EC2_MACHINE, "imageId", str)
    ingress = OutputProperty(EC2_MACHINE, "ingress", list[str])
    state = OutputProperty(EC2_MACHINE, "state", str)


def _listed(value: Any) -> Any:
    """Tuples (the defaults) as lists; Outputs and lists as given."""
    return list(value) if isinstance(value, tuple) else value
