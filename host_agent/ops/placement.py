"""``wasmcloud placement MANIFEST``: the planner on the live lattice (pure part).

The same calls as ``pulumi preview`` and ``wasmcloud plan``: the hosts' live inventory
(``LatticeSnapshot``, read as the Pulumi provider reads it) -> ``inventory_for`` ->
``plan_placement``, CHANGE against what runs now, rendered by ``render_plan_table``. Hosts
are shown by friendly name (the id where names repeat), as preview shows them; planning
itself uses the ids, so the tie-breaks are the controller's.

``--json`` (stable)::

    {"lattice": "default", "application": "counter",
     "hosts": {"N...": {"name": "local-core", "labels": {...}}},
     "placements": {"counter": {"N...": 3}}, "unplaced": {}, "moves": {"counter": {"N...": 3}}}

with host ids as keys (``hosts`` names them): ``placements`` is where every instance
would be, ``unplaced`` what no host can take, ``moves`` the change per host from now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from host_agent.model.manifest import Manifest
from host_agent.placement import (
    HostInventory,
    PlacementPlan,
    diff_placement,
    plan_placement,
    render_plan_table,
    running_placements,
)
from host_agent.placement.lattice_view import LatticeSnapshot


@dataclass(frozen=True)
class LivePlan:
    manifest: Manifest
    hosts: list[HostInventory]
    plan: PlacementPlan
    moves: dict[str, dict[str, int]]
    names: dict[str, str]  # host id -> display name


def plan_live(manifest: Manifest, snapshot: LatticeSnapshot) -> LivePlan:
    hosts = snapshot.inventory_for(manifest)
    plan = plan_placement(manifest, hosts)
    now = running_placements({h.id: h.running for h in hosts})
    moves = diff_placement(
        {name: now.get(name, {}) for name in plan.placements()}, plan.placements()
    )
    return LivePlan(manifest, hosts, plan, moves, snapshot.names())


def render_live_plan(live: LivePlan) -> str:
    """``render_plan_table`` with hosts named as preview names them."""
    names = live.names

    def renamed(counts: Mapping[str, int]) -> dict[str, int]:
        return {names.get(h, h): n for h, n in counts.items()}

    plan = PlacementPlan(
        tuple(
            replace(
                w,
                assignments=tuple(
                    replace(a, host_id=names.get(a.host_id, a.host_id)) for a in w.assignments
                ),
            )
            for w in live.plan.workloads
        )
    )
    hosts = [HostInventory(id=names.get(h.id, h.id), labels=h.labels) for h in live.hosts]
    moves = {name: renamed(counts) for name, counts in live.moves.items()}
    return render_plan_table(plan, hosts, moves)


def placement_document(lattice: str, live: LivePlan) -> dict[str, Any]:
    return {
        "lattice": lattice,
        "application": live.manifest.name,
        "hosts": {
            h.id: {"name": live.names.get(h.id, h.id), "labels": dict(sorted(h.labels.items()))}
            for h in live.hosts
        },
        "placements": live.plan.placements(),
        "unplaced": live.plan.unplaced(),
        "moves": live.moves,
    }
