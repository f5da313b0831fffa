"""The local default stack: today it publishes the counter app's planned placement as
stack outputs; the Lattice/Host/Application resources replace this as they land."""

from __future__ import annotations

import pulumi

from host_agent.model import load_manifest
from host_agent.placement import load_hosts, plan_placement

manifest = load_manifest("examples/counter/wadm.yaml").manifest
plan = plan_placement(manifest, load_hosts("examples/local/hosts.yaml"))
pulumi.export("application", {"name": manifest.name, "version": manifest.version})
pulumi.export("placements", plan.placements())
pulumi.export("unplaced", plan.unplaced())
