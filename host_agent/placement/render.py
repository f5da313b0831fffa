"""A plain-text placement table a person can read at a glance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from host_agent.placement.inventory import HostInventory
from host_agent.placement.planner import PlacementPlan

HEADERS = ("COMPONENT", "KIND", "SCALER", "HOST", "LABELS", "INSTANCES", "CHANGE")


def render_plan_table(
    plan: PlacementPlan,
    hosts: Sequence[HostInventory],
    moves: Mapping[str, Mapping[str, int]] | None = None,
) -> str:
    """One row per (component, host), including hosts that lose instances, then totals and
    any placement problems."""
    labels = {h.id: ",".join(f"{k}={v}" for k, v in sorted(h.labels.items())) for h in hosts}
    moves = moves or {}
    rows: list[tuple[str, ...]] = []
    for workload in plan.workloads:
        placed = workload.hosts
        changes = moves.get(workload.name, {})
        host_ids = sorted({*placed, *changes})
        scaler = workload.scaler or "(none)"
        if not host_ids:
            rows.append((workload.name, workload.kind, scaler, "-", "", "0", ""))
        for host in host_ids:
            delta = changes.get(host, 0)
            change = f"{delta:+d}" if delta else ""
            rows.append(
                (
                    workload.name,
                    workload.kind,
                    scaler,
                    host,
                    labels.get(host, ""),
                    str(placed.get(host, 0)),
                    change,
                )
            )
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(HEADERS, *rows, strict=False)
    ]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (HEADERS, *rows)
    ]
    placed_total = sum(w.placed for w in plan.workloads)
    unplaced_total = sum(plan.unplaced().values())
    used_hosts = len({h for w in plan.workloads for h in w.hosts})
    lines.append("")
    lines.append(
        f"{placed_total} instance(s) on {used_hosts} of {len(hosts)} host(s); "
        f"{unplaced_total} unplaced"
    )
    lines.extend(f"! {problem}" for problem in plan.problems())
    return "\n".join(lines)
