"""Pure placement planning with wadm 0.20 semantics (see docs/placement.md)."""

from host_agent.placement.diff import diff_placement, running_placements
from host_agent.placement.inventory import HostInventory, HostsFileError, load_hosts, parse_hosts
from host_agent.placement.planner import (
    PlacementPlan,
    SpreadAssignment,
    WorkloadPlan,
    plan_placement,
)
from host_agent.placement.render import render_plan_table
from host_agent.placement.spread import SpreadTarget, apportion

__all__ = [
    "HostInventory",
    "HostsFileError",
    "PlacementPlan",
    "SpreadAssignment",
    "SpreadTarget",
    "WorkloadPlan",
    "apportion",
    "diff_placement",
    "load_hosts",
    "parse_hosts",
    "plan_placement",
    "render_plan_table",
    "running_placements",
]
