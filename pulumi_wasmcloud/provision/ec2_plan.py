"""What an ``Ec2Machine`` asks of EC2, decided without talking to it: the names of its
cloud objects, their tags, the ingress rules its role needs, whether a region exists,
and the stack a resource belongs to (from its URN).

Every object of one machine is called ``wasmcloud-<lattice>-<stack>-<machine>`` and
carries the ``wasmcloud:*`` tags, so a run that was cut short finds what it made again
(``adoption_tags``) instead of making it twice.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

ROLES = ("core", "edge", "host")
STACK_TAG = "wasmcloud:stack"
LATTICE_TAG = "wasmcloud:lattice"
MACHINE_TAG = "wasmcloud:machine"
ROLE_TAG = "wasmcloud:role"
NAME_TAG = "Name"
# Tag keys the provider sets itself; AWS reserves the aws: prefix.
OWN_TAG_PREFIX = "wasmcloud:"
RESERVED_TAG_PREFIXES = (OWN_TAG_PREFIX, "aws:")

SSH_PORT = 22
CLIENT_PORT = 4222  # NATS clients: hosts, the controller, the provider
ROUTE_PORT = 6222  # NATS cluster routes between core nodes
LEAF_PORT = 7422  # NATS leaf node connections from edge machines to the core

# Security group and key pair names: at most 255 characters (EC2's limit for both).
MAX_NAME_LENGTH = 255


@dataclass(frozen=True, order=True)
class IngressRule:
    """TCP ``port`` open to ``cidr`` (IPv4 or IPv6, in canonical form)."""

    port: int
    cidr: str

    @property
    def ipv6(self) -> bool:
        return ":" in self.cidr

    def __str__(self) -> str:
        return f"{self.port} from {self.cidr}"


@dataclass(frozen=True)
class ExtraPort:
    """A port the program opens besides the role's (an http-server, say)."""

    port: int
    cidrs: tuple[str, ...]


def object_name(lattice: str, stack: str, machine: str) -> str:
    """The name of the security group and the key pair of one machine."""
    return f"wasmcloud-{lattice}-{stack}-{machine}"


def adoption_tags(stack: str, lattice: str, machine: str) -> dict[str, str]:
    """The tags that say an object belongs to this machine of this stack and lattice."""
    return {STACK_TAG: stack, LATTICE_TAG: lattice, MACHINE_TAG: machine}


def machine_tags(
    stack: str, lattice: str, machine: str, role: str, extra: Mapping[str, str]
) -> dict[str, str]:
    """Every tag of the machine's objects: the program's own, then ours (which win; check
    refuses program tags that would collide with them)."""
    return {
        **extra,
        **adoption_tags(stack, lattice, machine),
        ROLE_TAG: role,
        NAME_TAG: object_name(lattice, stack, machine),
    }


def tag_problem(key: str) -> str | None:
    """Why the program may not set tag ``key`` itself, or None."""
    if key == NAME_TAG:
        return f"the provider sets {NAME_TAG} (wasmcloud-<lattice>-<stack>-<machine>); remove it"
    for prefix in RESERVED_TAG_PREFIXES:
        if key.startswith(prefix):
            owner = "the provider's own tags" if prefix == OWN_TAG_PREFIX else "reserved by AWS"
            return f"keys starting with {prefix} are {owner}; use another key"
    if not key or len(key) > 128:
        return "a tag key has 1 to 128 characters"
    return None


def parse_cidr(text: str) -> str | None:
    """``text`` as a canonical CIDR, or None when it is not one (host bits set included:
    ``10.0.0.1/24`` is refused, not read as ``10.0.0.0/24``)."""
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        return None
    return str(network) if "/" in text else None


def cidr_problem(text: str) -> str | None:
    """Why ``text`` is not a CIDR a rule can use, with the fix, or None."""
    if parse_cidr(text) is not None:
        return None
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return f'"{text}" is not a CIDR block (like 203.0.113.0/24 or 2001:db8::/32)'
    if "/" not in text:
        return f'"{text}" has no prefix length: write {loose} for this one address'
    return f'"{text}" has host bits set: did you mean {loose}?'


def ingress_rules(
    role: str,
    ssh_from: Iterable[str],
    lattice_cidrs: Iterable[str],
    peer_cidrs: Iterable[str],
    extra_ports: Iterable[ExtraPort] = (),
) -> list[IngressRule]:
    """Exactly the inbound TCP a machine of ``role`` needs, sorted, without repeats.

    - every role: 22 (SSH) from ``ssh_from``, the operator running ``pulumi up``;
    - core and edge: 4222 (NATS clients) from ``lattice_cidrs``, the hosts and tools;
    - core: 6222 (cluster routes) and 7422 (leaf nodes) from ``peer_cidrs``, the other
      core nodes and the edge machines;
    - then each extra port from its own CIDRs.
    """
    if role not in ROLES:
        raise ValueError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
    wanted: list[tuple[int, Iterable[str]]] = [(SSH_PORT, ssh_from)]
    if role in ("core", "edge"):
        wanted.append((CLIENT_PORT, lattice_cidrs))
    if role == "core":
        peers = list(peer_cidrs)
        wanted += [(ROUTE_PORT, peers), (LEAF_PORT, peers)]
    wanted += [(extra.port, extra.cidrs) for extra in extra_ports]
    rules = set()
    for port, cidrs in wanted:
        for cidr in cidrs:
            canonical = parse_cidr(cidr)
            if canonical is None:
                raise ValueError(f"port {port}: {cidr_problem(cidr)}")
            rules.add(IngressRule(port, canonical))
    return sorted(rules)


def describe_rules(rules: Sequence[IngressRule]) -> str:
    """``22 from 198.19.0.0/16; 4222 from 198.19.0.0/16, 10.0.0.0/8`` (or nothing open)."""
    if not rules:
        return "no inbound port open"
    by_port: dict[int, list[str]] = {}
    for rule in rules:
        by_port.setdefault(rule.port, []).append(rule.cidr)
    return "; ".join(f"{port} from {', '.join(cidrs)}" for port, cidrs in sorted(by_port.items()))


def region_problem(region: str, known: Sequence[str]) -> str | None:
    """Why ``region`` is not one of the ``known`` regions (botocore's list), naming the
    nearest ones; None when it is known."""
    if region in known:
        return None
    nearest = difflib.get_close_matches(region, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(nearest)}?" if nearest else ""
    return (
        f'"{region}" is not an EC2 region this provider knows (botocore\'s list of '
        f"{len(known)} regions){hint}"
    )


def stack_of_urn(urn: str) -> str:
    """The stack of ``urn:pulumi:<stack>::<project>::<type>::<name>``."""
    prefix = "urn:pulumi:"
    if not urn.startswith(prefix) or "::" not in urn:
        raise ValueError(f"not a Pulumi resource URN: {urn!r}")
    stack = urn[len(prefix) :].split("::", 1)[0]
    if not stack:
        raise ValueError(f"no stack in the URN {urn!r}")
    return stack
