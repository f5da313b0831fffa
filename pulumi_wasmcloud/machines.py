"""Machines a lattice runs on, as inputs of ``Lattice`` and ``Host``: plain classes the
resources turn into wire maps (camelCase, like every Pulumi input).

Point them at your own machines::

    key = pathlib.Path("~/.ssh/id_ed25519").expanduser().read_text()
    edge1 = SshMachine(
        "edge-1",
        host="203.0.113.7",
        private_key=key,  # or config.require_secret("sshKey")
        # The line `ssh-keyscan -t ed25519 203.0.113.7` prints, without the address;
        # check its fingerprint (ssh-keygen -lf) against the machine's console first.
        host_key="ssh-ed25519 AAAAC3Nza...",
    )
    host = Host("edge-1", lattice=lattice, machine=edge1, labels={"region": "edge"})

The provider logs in over SSH with ``private_key`` (kept secret in the state) as ``user``
(root, or a user with a NOPASSWD sudo rule: commands then run through ``sudo -n``).
Host keys: a given ``host_key`` is verified on every connection. Without one, the first
connection records the key the machine shows (the resource's ``hostKeys`` output,
machine name -> key line) and every later one verifies against it, refusing a machine
whose key changed. ``verify_host_key=False`` accepts whatever key a machine shows (only
for throwaway machines on a network you trust).
"""

from __future__ import annotations

from typing import Any

import pulumi


class SshMachine:
    """One machine reached over SSH.

    ``name`` is how previews, progress and errors call the machine (and the key of the
    ``hostKeys`` output); ``host`` its address or DNS name as seen from where ``pulumi up``
    runs (through ``bastion`` when given: then as seen from the bastion). ``private_key``
    is the text of an unencrypted OpenSSH or PEM key (ed25519, ECDSA or RSA); it is sent
    and stored as a secret. ``sudo``: run commands through ``sudo -n`` (default: when
    ``user`` is not root).
    """

    def __init__(
        self,
        name: str,
        host: pulumi.Input[str],
        private_key: pulumi.Input[str],
        user: pulumi.Input[str] = "root",
        port: pulumi.Input[int] = 22,
        host_key: pulumi.Input[str] | None = None,
        verify_host_key: bool = True,
        bastion: SshMachine | None = None,
        sudo: bool | None = None,
    ) -> None:
        """Args:
        name: How previews, progress and errors call the machine (``hostKeys``' key).
        host: Its address or DNS name (as the bastion sees it, with one).
        private_key: An unencrypted OpenSSH or PEM private key's text (secret).
        user: The user to log in as: root, or one with a NOPASSWD sudo rule.
        port: The SSH port.
        host_key: The machine's host key line, verified on every connection.
        verify_host_key: ``False`` accepts whatever key the machine shows.
        bastion: A machine to reach this one through.
        sudo: Run commands through ``sudo -n`` (default: when ``user`` is not root).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"SshMachine: name must be a non-empty string, got {name!r}")
        if bastion is not None and not isinstance(bastion, SshMachine):
            raise TypeError(f"SshMachine {name}: bastion must be an SshMachine")
        self.name = name
        self.host = host
        self.private_key = private_key
        self.user = user
        self.port = port
        self.host_key = host_key
        self.verify_host_key = verify_host_key
        self.bastion = bastion
        self.sudo = sudo

    def to_input(self) -> dict[str, Any]:
        """The wire map the provider reads (``machine_inputs.parse_machine``)."""
        return {
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "privateKey": pulumi.Output.secret(self.private_key),
            "hostKey": self.host_key,
            "verifyHostKey": self.verify_host_key,
            "bastion": self.bastion.to_input() if self.bastion is not None else None,
            "sudo": self.sudo,
        }

    def __repr__(self) -> str:  # never the key
        return f"SshMachine({self.name!r}, host={self.host!r}, user={self.user!r})"


class LeafNode:
    """A NATS leaf node of the lattice in ``region``, on ``machine``: the edge hosts of that
    region connect to it (``lattice.nats_urls[machine.name]``), so regional traffic stays
    regional while the lattice's JetStream stays in the core cluster."""

    def __init__(self, region: str, machine: SshMachine) -> None:
        """Args:
        region: The region whose hosts connect to this leaf node.
        machine: The machine it runs on.
        """
        if not isinstance(region, str) or not region:
            raise ValueError(f"LeafNode: region must be a non-empty string, got {region!r}")
        if not isinstance(machine, SshMachine):
            raise TypeError(f"LeafNode {region}: machine must be an SshMachine")
        self.region = region
        self.machine = machine

    def to_input(self) -> dict[str, Any]:
        return {"region": self.region, "machine": self.machine.to_input()}

    def __repr__(self) -> str:
        return f"LeafNode({self.region!r}, {self.machine!r})"
