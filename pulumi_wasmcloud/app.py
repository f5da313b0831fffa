"""Typed parts of a wadm application: ``Component``, ``CapabilityProvider`` and ``Link``.

They build the manifest an ``Application`` puts and deploys. They are parts, not
separate engine resources, on purpose: wadm deploys a whole manifest version at once,
so an application is one atomic put + deploy (never half its links or components live).
Pure data: building a manifest does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Spread:
    """Place ``weight`` parts of the instances on hosts whose labels match ``requirements``."""

    name: str
    requirements: dict[str, str]
    weight: int | None = None

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "requirements": dict(self.requirements)}
        if self.weight is not None:
            data["weight"] = self.weight
        return data


@dataclass(frozen=True)
class _Workload:
    name: str
    image: str
    instances: int = 1
    spread: list[Spread] = field(default_factory=list)
    daemon: bool = False  # a daemonscaler: every matching host runs it
    config: dict[str, dict[str, str]] = field(default_factory=dict)
    id: str | None = None

    kind = "component"

    def to_data(self) -> dict[str, Any]:
        properties: dict[str, Any] = {"image": self.image}
        if self.id:
            properties["id"] = self.id
        if self.config:
            properties["config"] = [{"name": n, "properties": p} for n, p in self.config.items()]
        scaler = {
            "type": "daemonscaler" if self.daemon else "spreadscaler",
            "properties": {
                "instances": self.instances,
                **({"spread": [s.to_data() for s in self.spread]} if self.spread else {}),
            },
        }
        return {"name": self.name, "type": self.kind, "properties": properties, "traits": [scaler]}


@dataclass(frozen=True)
class Component(_Workload):
    """A WebAssembly component: ``instances`` is its concurrency limit per host."""

    kind = "component"


@dataclass(frozen=True)
class CapabilityProvider(_Workload):
    """A capability provider: each instance is one process on a distinct host."""

    kind = "capability"


@dataclass(frozen=True)
class Link:
    """``source`` calls ``target`` over ``namespace:package/{interfaces}``."""

    source: str
    target: str
    namespace: str
    package: str
    interfaces: list[str]
    name: str | None = None
    source_config: dict[str, dict[str, str]] = field(default_factory=dict)
    target_config: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_trait(self) -> dict[str, Any]:
        def configs(values: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
            return [{"name": n, "properties": p} for n, p in values.items()]

        properties: dict[str, Any] = {
            "namespace": self.namespace,
            "package": self.package,
            "interfaces": list(self.interfaces),
            "target": {"name": self.target, "config": configs(self.target_config)},
        }
        if self.source_config:
            properties["source"] = {"config": configs(self.source_config)}
        if self.name:
            properties["name"] = self.name
        return {"type": "link", "properties": properties}


def build_manifest(
    name: str,
    parts: list[Component | CapabilityProvider],
    links: list[Link],
    version: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The wadm manifest for these parts (validated by the provider's check)."""
    components = [part.to_data() for part in parts]
    by_name = {c["name"]: c for c in components}
    for link in links:
        source = by_name.get(link.source)
        if source is None:
            known = ", ".join(sorted(by_name)) or "none"
            raise ValueError(
                f"Link {link.source} -> {link.target}: no component named {link.source!r} "
                f"in application {name!r} (components: {known})"
            )
        source["traits"].append(link.to_trait())
    annotations = {k: v for k, v in (("version", version), ("description", description)) if v}
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"components": components},
    }
