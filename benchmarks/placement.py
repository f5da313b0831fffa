"""Placement planner scale benchmark.

Plans 200 components on 1,000 hosts and compares with the same workload at one tenth
the size (100 hosts, one tenth the instances), measured in the same run. The target is
near-linear growth: time(1000 hosts) / time(100 hosts) <= 12.

    python benchmarks/placement.py [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from host_agent.model import Manifest, parse_manifest
from host_agent.placement import HostInventory, plan_placement

COMPONENTS = 200
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-south-1")
TARGET_RATIO = 12.0


def build_hosts(count: int) -> list[HostInventory]:
    return [
        HostInventory(
            id=f"host-{index:05d}",
            labels={
                "region": REGIONS[index % len(REGIONS)],
                "tier": "core" if index % 5 == 0 else "edge",
            },
        )
        for index in range(count)
    ]


def build_manifest(scale: int) -> Manifest:
    """200 components: spread components, spread providers, daemon providers.

    ``scale`` multiplies every instance count (1 for the small run, 10 for the big one).
    """
    components: list[dict[str, Any]] = []
    for index in range(COMPONENTS):
        region_a, region_b = REGIONS[index % 4], REGIONS[(index + 1) % 4]
        spreads = [
            {"name": "primary", "requirements": {"region": region_a}, "weight": 70},
            {"name": "secondary", "requirements": {"region": region_b}, "weight": 30},
        ]
        if index % 10 == 0:
            kind, trait = (
                "capability",
                {
                    "type": "daemonscaler",
                    "properties": {
                        "instances": 1,
                        "spread": [{"name": "core", "requirements": {"tier": "core"}}],
                    },
                },
            )
        elif index % 10 == 1:
            kind, trait = (
                "capability",
                {"type": "spreadscaler", "properties": {"instances": 2 * scale, "spread": spreads}},
            )
        else:
            kind, trait = (
                "component",
                {
                    "type": "spreadscaler",
                    "properties": {"instances": 10 * scale, "spread": spreads},
                },
            )
        components.append(
            {
                "name": f"c{index:03d}",
                "type": kind,
                "properties": {"image": f"example/c{index}:1"},
                "traits": [trait],
            }
        )
    data = {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "bench", "annotations": {"version": "v1"}},
        "spec": {"components": components},
    }
    return parse_manifest(data).manifest


def best_time(manifest: Manifest, hosts: list[HostInventory], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        plan = plan_placement(manifest, hosts)
        best = min(best, time.perf_counter() - start)
    assert not plan.unplaced(), plan.problems()[:3]
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; best is kept")
    args = parser.parse_args(argv)
    small = best_time(build_manifest(1), build_hosts(100), args.repeat)
    big = best_time(build_manifest(10), build_hosts(1000), args.repeat)
    ratio = big / small
    verdict = "ok" if ratio <= TARGET_RATIO else "OVER TARGET"
    print(f"plan   100 hosts x {COMPONENTS} components: {small * 1000:8.1f} ms")
    print(f"plan 1,000 hosts x {COMPONENTS} components: {big * 1000:8.1f} ms")
    print(
        f"growth for 10x hosts and instances: {ratio:.2f}x (target <= {TARGET_RATIO:g}x: {verdict})"
    )
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
