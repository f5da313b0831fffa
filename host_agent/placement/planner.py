"""The placement planner: where every component and provider instance of a manifest goes.

``plan_placement`` is pure and deterministic. The Pulumi provider calls it to show the
placement in ``pulumi preview``; the controller calls it to decide what to scale, so the
preview is a promise the controller keeps.

Semantics are wadm 0.20's spreadscaler and daemonscaler (docs/placement.md). Where wadm's
choice is arbitrary (Rust hash-map order) ours is fixed, in this order of preference:

1. keep what already runs (a host already running the exact count, then any count);
2. otherwise the least-loaded eligible host: fewest workloads, then fewest instances;
3. ties broken by host id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from host_agent.model.manifest import DAEMONSCALER, Component, Manifest, Spread
from host_agent.placement.inventory import HostInventory
from host_agent.placement.spread import DEFAULT_SPREAD, SpreadTarget, apportion

WorkloadKind = Literal["component", "capability"]


@dataclass(frozen=True)
class SpreadAssignment:
    """``count`` instances of one spread on one host (what a scale/start command carries)."""

    spread: str
    host_id: str
    count: int


@dataclass(frozen=True)
class WorkloadPlan:
    """Placement of one manifest component (a Wasm component or a capability provider)."""

    name: str
    kind: WorkloadKind
    scaler: str | None
    assignments: tuple[SpreadAssignment, ...]
    unplaced: int = 0
    problems: tuple[str, ...] = ()

    @property
    def hosts(self) -> dict[str, int]:
        """Host id -> instance count, hosts with no instances left out."""
        counts: dict[str, int] = {}
        for assignment in self.assignments:
            counts[assignment.host_id] = counts.get(assignment.host_id, 0) + assignment.count
        return {host: n for host, n in sorted(counts.items()) if n > 0}

    @property
    def placed(self) -> int:
        return sum(self.hosts.values())


@dataclass(frozen=True)
class PlacementPlan:
    workloads: tuple[WorkloadPlan, ...]

    def placements(self) -> dict[str, dict[str, int]]:
        return {w.name: w.hosts for w in self.workloads}

    def unplaced(self) -> dict[str, int]:
        return {w.name: w.unplaced for w in self.workloads if w.unplaced}

    def problems(self) -> list[str]:
        return [f"{w.name}: {problem}" for w in self.workloads for problem in w.problems]

    def workload(self, name: str) -> WorkloadPlan:
        return next(w for w in self.workloads if w.name == name)


@dataclass
class _HostLoad:
    """Running tally used to pick the least-loaded host; updated as workloads are planned."""

    workloads: dict[str, int] = field(default_factory=dict)
    instances: dict[str, int] = field(default_factory=dict)

    def add(self, host_id: str, count: int) -> None:
        if count > 0:
            self.workloads[host_id] = self.workloads.get(host_id, 0) + 1
            self.instances[host_id] = self.instances.get(host_id, 0) + count

    def key(self, host_id: str) -> tuple[int, int, str]:
        return (self.workloads.get(host_id, 0), self.instances.get(host_id, 0), host_id)


def plan_placement(manifest: Manifest, hosts: Sequence[HostInventory]) -> PlacementPlan:
    """Plan every component of ``manifest`` on ``hosts`` (which say what already runs)."""
    ordered_hosts = sorted(hosts, key=lambda h: h.id)
    names = {component.name for component in manifest.spec.components}
    load = _HostLoad()
    # Work of other applications counts towards load; this manifest's own running instances
    # do not, so choices do not depend on where they happen to be now (keeps re-plans stable).
    for host in ordered_hosts:
        for name, count in host.running.items():
            if name not in names:
                load.add(host.id, count)
    plans = []
    for component in manifest.spec.components:
        plan = _plan_workload(component, ordered_hosts, load)
        for assignment in plan.assignments:
            load.add(assignment.host_id, assignment.count)
        plans.append(plan)
    return PlacementPlan(tuple(plans))


def _plan_workload(
    component: Component, hosts: Sequence[HostInventory], load: _HostLoad
) -> WorkloadPlan:
    kind: WorkloadKind = "capability" if component.is_capability else "component"
    running = {h.id: h.running[component.name] for h in hosts if h.running.get(component.name)}
    scaler = component.effective_scaler()
    if scaler is None:
        # wadm runs no scaler for it, so whatever runs stays as it is.
        kept = tuple(SpreadAssignment("", host, n) for host, n in running.items())
        return WorkloadPlan(component.name, kind, None, kept)
    spreads = scaler.properties.spread
    if scaler.type == DAEMONSCALER:
        assignments, unplaced, problems = _plan_daemon(
            spreads, scaler.properties.instances, kind, hosts
        )
    else:
        targets = apportion(scaler.properties.instances, spreads)
        plan_spread = _plan_provider_spread if kind == "capability" else _plan_component_spread
        assignments, unplaced, problems = plan_spread(targets, hosts, running, load)
    return WorkloadPlan(
        component.name, kind, scaler.type, tuple(assignments), unplaced, tuple(problems)
    )


_Outcome = tuple[list[SpreadAssignment], int, list[str]]


def _eligible(hosts: Iterable[HostInventory], spread: Spread) -> list[str]:
    return [host.id for host in hosts if host.matches(spread.requirements)]


def _no_host_message(spread: Spread) -> str:
    if spread.requirements:
        wanted = ", ".join(f"{k}={v}" for k, v in sorted(spread.requirements.items()))
    else:
        wanted = "none; the lattice has no hosts"
    return f"no hosts match spread {spread.name!r} (requirements: {wanted})"


def _plan_component_spread(
    targets: Sequence[SpreadTarget],
    hosts: Sequence[HostInventory],
    running: Mapping[str, int],
    load: _HostLoad,
) -> _Outcome:
    """A component runs once per host with ``count`` as its concurrency limit, so each
    spread's whole count goes to ONE eligible host, and one host serves one spread."""
    eligible = [_eligible(hosts, t.spread) for t in targets]
    wanted = [i for i, t in enumerate(targets) if t.count > 0]
    # Keep hosts already running a spread's exact count. A matching (not a greedy pass)
    # so overlapping spreads cannot steal each other's host and force a move.
    exact_edges = {
        host: [i for i in wanted if host in eligible[i] and running[host] == targets[i].count]
        for host in sorted(running, key=load.key)
    }
    chosen = {i: hosts_[0] for i, hosts_ in _match(exact_edges, {i: 1 for i in wanted}).items()}
    used = set(chosen.values())
    assignments: list[SpreadAssignment] = []
    unplaced = 0
    problems: list[str] = []
    for i in wanted:
        target = targets[i]
        host = chosen.get(i)
        if host is None:
            free = [h for h in eligible[i] if h not in used]
            if not eligible[i]:
                problems.append(_no_host_message(target.spread))
            elif not free:
                problems.append(
                    f"spread {target.spread.name!r} has no host left: every matching host "
                    "already runs another spread of this component (one per host in wasmCloud 1.x)"
                )
            if not free:
                unplaced += target.count
                continue
            host = min(free, key=lambda h: (0 if h in running else 1, *load.key(h)))
            used.add(host)
        assignments.append(SpreadAssignment(target.spread.name, host, target.count))
    return assignments, unplaced, problems


def _plan_provider_spread(
    targets: Sequence[SpreadTarget],
    hosts: Sequence[HostInventory],
    running: Mapping[str, int],
    load: _HostLoad,
) -> _Outcome:
    """A provider instance is one process on a distinct host."""
    eligible = [_eligible(hosts, t.spread) for t in targets]
    edges = {
        host: [i for i, hosts_ in enumerate(eligible) if host in hosts_]
        for host in sorted(running, key=load.key)
    }
    kept = _match(edges, {i: t.count for i, t in enumerate(targets)})
    used = {host for hosts_ in kept.values() for host in hosts_}
    assignments: list[SpreadAssignment] = []
    unplaced = 0
    problems: list[str] = []
    for i, target in enumerate(targets):
        chosen = list(kept.get(i, []))
        missing = target.count - len(chosen)
        if missing > 0:
            free = sorted((h for h in eligible[i] if h not in used), key=load.key)[:missing]
            chosen.extend(free)
            used.update(free)
        if len(chosen) < target.count:
            unplaced += target.count - len(chosen)
            if eligible[i]:
                problems.append(
                    f"spread {target.spread.name!r} needs {target.count} hosts but only "
                    f"{len(chosen)} matching host(s) are free (one provider per host)"
                )
            else:
                problems.append(_no_host_message(target.spread))
        assignments.extend(SpreadAssignment(target.spread.name, h, 1) for h in sorted(chosen))
    return assignments, unplaced, problems


def _plan_daemon(
    spreads: Sequence[Spread], instances: int, kind: WorkloadKind, hosts: Sequence[HostInventory]
) -> _Outcome:
    """Every host matching any spread runs it: a component with ``count = instances``, a
    provider once (wadm ignores the number for providers unless it is 0)."""
    if instances == 0:
        return [], 0, []
    count = instances if kind == "component" else 1
    assignments: list[SpreadAssignment] = []
    unplaced = 0
    problems: list[str] = []
    placed: set[str] = set()
    for spread in spreads or [DEFAULT_SPREAD]:
        eligible = _eligible(hosts, spread)
        if not eligible:
            unplaced += count
            problems.append(_no_host_message(spread))
        for host in eligible:
            if host not in placed:
                placed.add(host)
                assignments.append(SpreadAssignment(spread.name, host, count))
    return assignments, unplaced, problems


def _match(edges: Mapping[str, Sequence[int]], capacity: Mapping[int, int]) -> dict[int, list[str]]:
    """Assign hosts to spreads, at most ``capacity[i]`` hosts per spread, as many as possible.

    Augmenting paths (Kuhn's algorithm with capacities): a host may displace another into
    a different spread it also fits. Hosts are tried in the mapping's order, spreads in
    each host's list order, so the result is deterministic. Hand-written because it is
    small and the planner must stay free of heavy dependencies.
    """
    slots: dict[int, list[str]] = {i: [] for i, cap in capacity.items() if cap > 0}

    def place(host: str, visited: set[int]) -> bool:
        for i in edges.get(host, ()):
            if i not in slots or i in visited:
                continue
            visited.add(i)
            if len(slots[i]) < capacity[i]:
                slots[i].append(host)
                return True
            for position, other in enumerate(slots[i]):
                if place(other, visited):
                    slots[i][position] = host
                    return True
        return False

    for host in edges:
        place(host, set())
    return {i: hosts for i, hosts in slots.items() if hosts}
