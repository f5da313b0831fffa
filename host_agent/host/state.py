"""What a host runs and how it describes itself (inventory, ping, heartbeat). Pure data."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from host_agent.host.identity import HostIdentity
from host_agent.lattice.protocol import RegistryCredential
from host_agent.redaction import redact_url


@dataclass
class ComponentRecord:
    id: str
    image_ref: str
    max_instances: int
    annotations: dict[str, str] = field(default_factory=dict)
    config: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "image_ref": self.image_ref,
            "annotations": self.annotations,
            "revision": 0,
            "max_instances": self.max_instances,
        }


@dataclass
class ProviderRecord:
    id: str
    image_ref: str
    annotations: dict[str, str] = field(default_factory=dict)
    config: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "image_ref": self.image_ref,
            "annotations": self.annotations,
            "revision": 0,
        }


def humanize_seconds(seconds: int) -> str:
    """``93784`` -> ``1d 2h 3m 4s`` (the real host's uptime_human style)."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    parts.append(f"{seconds}s")
    return " ".join(parts)


@dataclass
class HostState:
    identity: HostIdentity
    lattice: str
    version: str
    labels: dict[str, str]
    started: float = field(default_factory=time.monotonic)
    components: dict[str, ComponentRecord] = field(default_factory=dict)
    providers: dict[str, ProviderRecord] = field(default_factory=dict)
    # registry host name -> credentials from `registry.put`, for fetching OCI artifacts.
    registries: dict[str, RegistryCredential] = field(default_factory=dict, repr=False)

    @property
    def host_id(self) -> str:
        return self.identity.public_key

    def satisfies(self, constraints: dict[str, str]) -> bool:
        """Whether every constraint names a label this host has, with that value."""
        return all(self.labels.get(key) == value for key, value in constraints.items())

    def put_registry_credentials(self, credentials: dict[str, RegistryCredential]) -> None:
        """Add or replace credentials per registry; other registries keep theirs."""
        self.registries.update(credentials)

    def registry_credential(self, registry: str) -> RegistryCredential | None:
        """The credentials `registry.put` gave for `registry` (e.g. "ghcr.io"), if any."""
        return self.registries.get(registry)

    def uptime_seconds(self) -> int:
        return int(time.monotonic() - self.started)

    def host_info(self, nats_url: str) -> dict[str, Any]:
        """The ``Host`` payload of a ping reply."""
        uptime = self.uptime_seconds()
        return {
            "id": self.host_id,
            "friendly_name": self.identity.friendly_name,
            "labels": dict(self.labels),
            "lattice": self.lattice,
            "uptime_seconds": uptime,
            "uptime_human": humanize_seconds(uptime),
            "version": self.version,
            # Every lattice member can ping: a NATS password in the URL stays here.
            "ctl_host": redact_url(nats_url),
            "rpc_host": redact_url(nats_url),
        }

    def inventory(self) -> dict[str, Any]:
        """``HostInventory``: the reply to host.get and the data of every heartbeat."""
        uptime = self.uptime_seconds()
        return {
            "components": [
                c.describe() for c in sorted(self.components.values(), key=lambda c: c.id)
            ],
            "providers": [
                p.describe() for p in sorted(self.providers.values(), key=lambda p: p.id)
            ],
            "host_id": self.host_id,
            "friendly_name": self.identity.friendly_name,
            "labels": dict(self.labels),
            "version": self.version,
            "uptime_human": humanize_seconds(uptime),
            "uptime_seconds": uptime,
        }
