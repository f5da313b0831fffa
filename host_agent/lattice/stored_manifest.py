"""An application's stored versions and which one is deployed (pure; no I/O).

The JSON shape is wadm's ``StoredManifest``: ``{"manifests": {version: manifest},
"deployed_version": version | null}``, versions in the order they were put.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

from host_agent.lattice.wadm_types import LATEST_VERSION

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid() -> str:
    """A ULID (48-bit ms time + 80 random bits, Crockford base32): the version wadm gives
    a manifest without one. Eight lines do not justify a dependency."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


class StoreConflict(ValueError):
    """A request the stored state refuses; the message is what the API replies."""


@dataclass(frozen=True)
class StoredManifest:
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployed_version: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredManifest:
        return cls(dict(data.get("manifests") or {}), data.get("deployed_version"))

    def to_json(self) -> dict[str, Any]:
        return {"manifests": self.manifests, "deployed_version": self.deployed_version}

    @property
    def versions(self) -> list[str]:
        return list(self.manifests)

    @property
    def latest_version(self) -> str | None:
        return self.versions[-1] if self.manifests else None

    def resolve(self, version: str | None) -> str | None:
        """``None`` or ``latest`` mean the newest stored version; ``""`` names no version
        (as in wadm, which looks it up and finds nothing)."""
        if version in (None, LATEST_VERSION):
            return self.latest_version
        return version if version in self.manifests else None

    def deployed_manifest(self) -> dict[str, Any] | None:
        return self.manifests.get(self.deployed_version) if self.deployed_version else None

    def put(self, version: str, manifest: dict[str, Any]) -> StoredManifest:
        if version == LATEST_VERSION:
            raise StoreConflict(
                "A manifest with a version 'latest' is not allowed in wadm; "
                "give metadata.annotations.version another value"
            )
        if version in self.manifests:
            raise StoreConflict(
                f"Manifest version {version} already exists; "
                "bump metadata.annotations.version (or delete that version first)"
            )
        return replace(self, manifests={**self.manifests, version: manifest})

    def deploy(self, version: str | None) -> StoredManifest:
        chosen = self.resolve(version)
        if chosen is None:
            raise StoreConflict(
                f"Version {version} not found; stored versions: {', '.join(self.versions)}"
            )
        return replace(self, deployed_version=chosen)

    def undeploy(self) -> StoredManifest:
        return replace(self, deployed_version=None)

    def delete(self, version: str | None) -> tuple[StoredManifest | None, bool]:
        """Remove one version (or all with ``None`` only): (what is left or None, undeployed?).

        The version must be a stored name, as in wadm: ``""`` or ``latest`` delete nothing.
        """
        if version is None:
            return None, self.deployed_version is not None
        chosen = version if version in self.manifests else None
        if chosen is None:
            return self, False
        left = {v: m for v, m in self.manifests.items() if v != chosen}
        undeployed = chosen == self.deployed_version
        if not left:
            return None, undeployed
        deployed = None if undeployed else self.deployed_version
        return StoredManifest(left, deployed), undeployed
