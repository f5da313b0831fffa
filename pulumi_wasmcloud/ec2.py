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
            # outputs
            "instanceId": None,
            "privateIp": None,
            "publicIp": None,
            "ip": None,
            "securityGroupId": None,
            "keyPairName": None,
            "hostKey": None,
            "imageId": None,
            "ingress": None,
            "state": None,
        }
        super().__init__(
            "wasmcloud:index:Ec2Machine",
            resource_name,
            props,
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["privateKey"])
            ),
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

    @property
    def address(self) -> pulumi.Output[str]:
        """The IP SSH and NATS use: the private one, or the public one with
        ``address="public"``."""
        return _output(self, "ip")

    @property
    def instance_id(self) -> pulumi.Output[str]:
        return _output(self, "instanceId")

    @property
    def private_ip(self) -> pulumi.Output[str]:
        return _output(self, "privateIp")

    @property
    def public_ip(self) -> pulumi.Output[str]:
        """The public IP, or ``""`` when the instance has none."""
        return _output(self, "publicIp")

    @property
    def security_group_id(self) -> pulumi.Output[str]:
        return _output(self, "securityGroupId")

    @property
    def key_pair_name(self) -> pulumi.Output[str]:
        return _output(self, "keyPairName")

    @property
    def host_key(self) -> pulumi.Output[str]:
        """The SSH host key line the instance showed when SSH first answered."""
        return _output(self, "hostKey")


def _listed(value: Any) -> Any:
    """Tuples (the defaults) as lists; Outputs and lists as given."""
    return list(value) if isinstance(value, tuple) else value


def _output(resource: pulumi.Resource, key: str) -> pulumi.Output[Any]:
    value: pulumi.Output[Any] = pulumi.get(resource, key)
    return value
