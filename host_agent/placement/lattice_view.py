"""The lattice as the planner sees it: hosts, their labels and what they run (pure).

Two readers build it: the controller from heartbeats and events
(``host_agent.controller.view.LatticeView``), and the Pulumi provider from one ping +
``host.get`` round (``CtlClient.read_hosts``) into the small read-only ``LatticeSnapshot``
below. Both plan on ``inventory_for``, so the placement `pulumi preview` shows is the
one the controller makes on the same lattice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from host_agent.lattice.protocol import InventoryReport
from host_agent.model.manifest import Manifest
from host_agent.placement.inventory import HostInventory


class RunningHost(Protocol):
    """What the planner needs of a host, however it was learned."""

    @property
    def id(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...

    def runs(self, workload_id: str) -> int: ...

    def workload_ids(self) -> Iterable[str]: ...


@dataclass(frozen=True)
class HostSnapshot:
    """One host from its ``host.get`` inventory (read-only)."""

    id: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    components: Mapping[str, int] = field(default_factory=dict)  # lattice id -> instances
    providers: frozenset[str] = frozenset()

    @classmethod
    def from_inventory(cls, inventory: Mapping[str, Any], name: str = "") -> HostSnapshot:
        """From a ``host.get`` reply; ``BadRequest`` names a wrongly typed field."""
        report = InventoryReport.parse(inventory)
        return cls(
            id=report.host_id,
            name=name or report.host_id,
            labels=report.labels,
            components={c.id: c.max_instances for c in report.components},
            providers=frozenset(p.id for p in report.providers),
        )

    def runs(self, workload_id: str) -> int:
        """Instances of a component (its count) or provider (1) with this id."""
        if workload_id in self.components:
            return self.components[workload_id]
        return 1 if workload_id in self.providers else 0

    def workload_ids(self) -> Iterable[str]:
        return [*self.components, *self.providers]


@dataclass(frozen=True)
class LatticeSnapshot:
    """The hosts one read found, by id (read-only)."""

    hosts: Mapping[str, HostSnapshot] = field(default_factory=dict)

    def names(self) -> dict[str, str]:
        """Host id -> display name: the friendly name, or the id where names repeat."""
        names = [h.name for h in self.hosts.values()]
        return {i: (h.name if names.count(h.name) == 1 else i) for i, h in self.hosts.items()}

    def inventory_for(self, manifest: Manifest) -> list[HostInventory]:
        return inventory_for(manifest, self.hosts.values())


def inventory_for(manifest: Manifest, hosts: Iterable[RunningHost]) -> list[HostInventory]:
    """Hosts as the planner sees them for ``manifest``: the components it runs itself
    by name (a shared component, with no image, is another application's), everything
    else as load."""
    ids = {
        c.name: c.component_id(manifest.name)
        for c in manifest.spec.components
        if c.properties.image is not None
    }
    return inventory(ids, hosts)


def inventory(ids: Mapping[str, str], hosts: Iterable[RunningHost]) -> list[HostInventory]:
    """Hosts as the planner sees them; ``ids`` maps manifest component name -> lattice id."""
    mine = set(ids.values())
    planned = []
    for host in sorted(hosts, key=lambda h: h.id):
        running = {name: n for name, wid in ids.items() if (n := host.runs(wid))}
        # Other applications' work counts as load on the host, keyed by lattice id.
        for wid in host.workload_ids():
            if wid not in mine and wid not in ids:
                running[wid] = host.runs(wid)
        planned.append(HostInventory(id=host.id, labels=host.labels, running=running))
    return planned
