"""Object types used inside resource properties (the wire maps of machines.py)."""

from __future__ import annotations

from pulumi_wasmcloud.schema.types import (
    BOOLEAN,
    INTEGER,
    STRING,
    ObjectType,
    Property,
    array_of,
    object_type,
)

SSH_MACHINE_TOKEN = "wasmcloud:index:SshMachine"
LEAF_NODE_TOKEN = "wasmcloud:index:LeafNode"
EXTRA_PORT_TOKEN = "wasmcloud:index:ExtraPort"

SSH_MACHINE = ObjectType(
    SSH_MACHINE_TOKEN,
    "One machine reached over SSH: a cluster node, a leaf node or a Host's machine.",
    (
        Property(
            "name",
            STRING,
            "How previews, progress and errors call the machine, and its key in `hostKeys`.",
            required=True,
        ),
        Property(
            "host",
            STRING,
            "Its address or DNS name as seen from where `pulumi up` runs (from the bastion "
            "when one is given).",
            required=True,
        ),
        Property(
            "privateKey",
            STRING,
            "The text of an unencrypted OpenSSH or PEM private key (ed25519, ECDSA or RSA).",
            required=True,
            secret=True,
        ),
        Property(
            "user",
            STRING,
            "The user to log in as: root, or one with a NOPASSWD sudo rule.",
            default="root",
        ),
        Property("port", INTEGER, "The SSH port.", default=22),
        Property(
            "hostKey",
            STRING,
            "The machine's host key line (`ssh-ed25519 AAAA...`), verified on every "
            "connection; without it the first connection records the key it sees.",
        ),
        Property(
            "verifyHostKey",
            BOOLEAN,
            "`false` accepts whatever key the machine shows (throwaway machines only).",
            default=True,
        ),
        Property(
            "bastion",
            object_type(SSH_MACHINE_TOKEN),
            "A machine to reach this one through (an SSH jump host).",
        ),
        Property(
            "sudo",
            BOOLEAN,
            "Run commands through `sudo -n` (default: when `user` is not root).",
        ),
    ),
)

LEAF_NODE = ObjectType(
    LEAF_NODE_TOKEN,
    "A NATS leaf node of the lattice for one region's hosts.",
    (
        Property(
            "region", STRING, "The region whose hosts connect to this leaf node.", required=True
        ),
        Property(
            "machine", object_type(SSH_MACHINE_TOKEN), "The machine it runs on.", required=True
        ),
    ),
)

EXTRA_PORT = ObjectType(
    EXTRA_PORT_TOKEN,
    "A port an Ec2Machine's security group opens besides its role's.",
    (
        Property("port", INTEGER, "The TCP port.", required=True),
        Property("cidrs", array_of(STRING), "The CIDR blocks it is open to.", required=True),
    ),
)

OBJECT_TYPES: tuple[ObjectType, ...] = (SSH_MACHINE, LEAF_NODE, EXTRA_PORT)
