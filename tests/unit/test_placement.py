"""The placement planner: wadm's apportioning, deterministic choices, stable re-plans."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host_agent.model import Manifest, load_manifest, parse_manifest
from host_agent.model.manifest import Spread
from host_agent.placement import (
    HostInventory,
    apportion,
    diff_placement,
    plan_placement,
    running_placements,
)

ROOT = Path(__file__).resolve().parents[2]
EDGE_CORE = ROOT / "examples" / "placement" / "edge-core.yaml"


def spreads(*weights: int | None) -> list[Spread]:
    return [Spread(name=f"s{i}", requirements={}, weight=w) for i, w in enumerate(weights)]


@pytest.mark.parametrize(
    ("instances", "weights", "expected"),
    [
        (10, (100, 100), {"s0": 5, "s1": 5}),
        (7, (30, 40), {"s1": 4, "s0": 3}),
        (7, (None, None), {"s0": 4, "s1": 3}),
        (103, (42, 3, 37, 100), {"s3": 57, "s0": 24, "s2": 21, "s1": 1}),
    ],
)
def test_apportioning_matches_wadm_examples(
    instances: int, weights: tuple[int | None, ...], expected: dict[str, int]
) -> None:
    result = apportion(instances, spreads(*weights))
    assert {t.spread.name: t.count for t in result} == expected
    # Heaviest spread first: that is also wadm's command order.
    assert [t.spread.name for t in result] == list(expected)


def test_no_spreads_is_one_default_spread_with_everything() -> None:
    [target] = apportion(5, [])
    assert (target.spread.name, target.spread.requirements, target.count) == ("default", {}, 5)


def image(kind: str, name: str) -> str:
    return "builtin:keyvalue-inmemory" if kind == "capability" else f"example/{name}:1"


def manifest_with(traits_by_component: dict[str, tuple[str, list[dict[str, Any]]]]) -> Manifest:
    # A capability must name a provider our hosts run (check_provider_references).
    components = [
        {"name": name, "type": kind, "properties": {"image": image(kind, name)}, "traits": traits}
        for name, (kind, traits) in traits_by_component.items()
    ]
    data = {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "app", "annotations": {"version": "v1"}},
        "spec": {"components": components},
    }
    return parse_manifest(data).manifest


def spread_trait(
    instances: int, *spreads_: dict[str, Any], kind: str = "spreadscaler"
) -> list[dict[str, Any]]:
    props: dict[str, Any] = {"instances": instances}
    if spreads_:
        props["spread"] = list(spreads_)
    return [{"type": kind, "properties": props}]


def host(host_id: str, running: dict[str, int] | None = None, **labels: str) -> HostInventory:
    return HostInventory(id=host_id, labels=labels, running=running or {})


def test_fifty_instances_land_on_one_matching_edge_host() -> None:
    manifest = manifest_with(
        {
            "api": (
                "component",
                spread_trait(
                    50,
                    {"name": "east-edge", "requirements": {"region": "us-east-1", "tier": "edge"}},
                ),
            )
        }
    )
    hosts = [
        host("core-1", region="us-east-1", tier="core"),
        host("edge-2", region="us-east-1", tier="edge"),
        host("edge-1", region="us-east-1", tier="edge"),
        host("edge-west", region="us-west-2", tier="edge"),
    ]
    plan = plan_placement(manifest, hosts)
    # In wasmCloud 1.x the count is a concurrency limit on ONE host, not 50 hosts.
    assert plan.placements() == {"api": {"edge-1": 50}}
    assert plan.unplaced() == {}


def test_edge_core_example_places_what_docs_promise() -> None:
    from host_agent.placement import load_hosts

    plan = plan_placement(
        load_manifest(EDGE_CORE).manifest,
        load_hosts(ROOT / "examples" / "placement" / "hosts.yaml"),
    )
    assert plan.placements() == {
        "api": {"edge-use1-a": 50},
        "cache": {"edge-use1-b": 200, "core-use1-a": 30},
        "httpserver": {"edge-use1-a": 1, "edge-use1-b": 1, "edge-usw2-a": 1},
        "kv": {"core-use1-a": 1, "core-use1-b": 1},
    }


def test_existing_host_is_kept_over_a_less_loaded_one() -> None:
    manifest = manifest_with({"api": ("component", spread_trait(4))})
    plan = plan_placement(manifest, [host("a"), host("b", running={"api": 2})])
    assert plan.placements() == {"api": {"b": 4}}


def test_least_loaded_host_counts_other_apps_work() -> None:
    manifest = manifest_with({"api": ("component", spread_trait(1))})
    plan = plan_placement(manifest, [host("a", running={"other-app": 3}), host("b")])
    assert plan.placements() == {"api": {"b": 1}}


def test_instances_on_hosts_matching_no_spread_are_removed() -> None:
    manifest = manifest_with(
        {"api": ("component", spread_trait(2, {"name": "edge", "requirements": {"tier": "edge"}}))}
    )
    hosts = [host("core", running={"api": 2}, tier="core"), host("edge", tier="edge")]
    plan = plan_placement(manifest, hosts)
    assert plan.placements() == {"api": {"edge": 2}}
    before = running_placements({h.id: h.running for h in hosts})
    assert diff_placement(before, plan.placements()) == {"api": {"core": -2, "edge": 2}}


def test_unsatisfiable_spread_is_reported_not_placed() -> None:
    manifest = manifest_with(
        {"api": ("component", spread_trait(3, {"name": "gpu", "requirements": {"gpu": "true"}}))}
    )
    plan = plan_placement(manifest, [host("a", tier="edge")])
    assert plan.placements() == {"api": {}}
    assert plan.unplaced() == {"api": 3}
    assert plan.problems() == ["api: no hosts match spread 'gpu' (requirements: gpu=true)"]


def test_provider_runs_once_per_host() -> None:
    manifest = manifest_with({"kv": ("capability", spread_trait(3))})
    plan = plan_placement(manifest, [host("a"), host("b")])
    assert plan.placements() == {"kv": {"a": 1, "b": 1}}
    assert plan.unplaced() == {"kv": 1}
    assert "needs 3 hosts but only 2" in plan.problems()[0]


def test_capability_without_scaler_gets_one_instance() -> None:
    manifest = manifest_with({"kv": ("capability", [])})
    assert plan_placement(manifest, [host("b"), host("a")]).placements() == {"kv": {"a": 1}}


def test_daemonscaler_runs_on_every_matching_host() -> None:
    manifest = manifest_with(
        {
            "api": (
                "component",
                spread_trait(
                    2, {"name": "e", "requirements": {"tier": "edge"}}, kind="daemonscaler"
                ),
            ),
            "http": ("capability", spread_trait(5, kind="daemonscaler")),
        }
    )
    hosts = [host("e1", tier="edge"), host("e2", tier="edge"), host("c1", tier="core")]
    assert plan_placement(manifest, hosts).placements() == {
        "api": {"e1": 2, "e2": 2},
        "http": {"c1": 1, "e1": 1, "e2": 1},
    }


def test_overlapping_spreads_use_distinct_hosts() -> None:
    manifest = manifest_with(
        {
            "api": (
                "component",
                spread_trait(
                    6, {"name": "x", "requirements": {}}, {"name": "y", "requirements": {}}
                ),
            )
        }
    )
    plan = plan_placement(manifest, [host("a"), host("b")])
    assert plan.placements() == {"api": {"a": 3, "b": 3}}
    lonely = plan_placement(manifest, [host("a")])
    assert lonely.unplaced() == {"api": 3}
    assert "already runs another spread" in lonely.problems()[0]


def test_a_host_leaving_moves_only_its_instances() -> None:
    manifest = load_manifest(EDGE_CORE).manifest
    from host_agent.placement import load_hosts

    hosts = load_hosts(ROOT / "examples" / "placement" / "hosts.yaml")
    first = plan_placement(manifest, hosts)
    running = with_running(hosts, first.placements())
    gone = "edge-use1-b"
    second = plan_placement(manifest, [h for h in running if h.id != gone])
    moves = diff_placement(first.placements(), second.placements())
    # Everything not on the lost host stays put; what it ran is re-placed elsewhere.
    for name, deltas in moves.items():
        for host_id, delta in deltas.items():
            assert host_id == gone or delta > 0, (name, host_id, delta)
    assert moves["cache"] == {gone: -200, "edge-usw2-a": 200}
    assert moves["httpserver"] == {gone: -1}


def with_running(
    hosts: Sequence[HostInventory], placements: dict[str, dict[str, int]]
) -> list[HostInventory]:
    return [
        HostInventory(
            id=h.id,
            labels=h.labels,
            running={n: c[h.id] for n, c in placements.items() if h.id in c},
        )
        for h in hosts
    ]


# --- properties ------------------------------------------------------------------------

LABEL_VALUES = {"tier": ["edge", "core"], "region": ["east", "west"]}


@st.composite
def lattices(draw: st.DrawFn) -> tuple[Manifest, list[HostInventory]]:
    host_count = draw(st.integers(0, 8))
    hosts = []
    for index in range(host_count):
        labels = {
            key: draw(st.sampled_from(values))
            for key, values in LABEL_VALUES.items()
            if draw(st.booleans())
        }
        hosts.append(HostInventory(id=f"h{index}", labels=labels))
    components: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for index in range(draw(st.integers(1, 4))):
        spread_list = []
        for s in range(draw(st.integers(0, 3))):
            requirements = {
                key: draw(st.sampled_from(values))
                for key, values in LABEL_VALUES.items()
                if draw(st.booleans())
            }
            spread_list.append(
                {"name": f"s{s}", "requirements": requirements, "weight": draw(st.integers(1, 100))}
            )
        kind = draw(st.sampled_from(["component", "capability"]))
        scaler = draw(st.sampled_from(["spreadscaler", "daemonscaler"]))
        components[f"c{index}"] = (
            kind,
            spread_trait(draw(st.integers(0, 12)), *spread_list, kind=scaler),
        )
    return manifest_with(components), hosts


@settings(max_examples=300, deadline=None)
@given(lattices())
def test_requirements_always_hold(lattice: tuple[Manifest, list[HostInventory]]) -> None:
    manifest, hosts = lattice
    plan = plan_placement(manifest, hosts)
    by_id = {h.id: h for h in hosts}
    for component in manifest.spec.components:
        scaler = component.effective_scaler()
        assert scaler is not None
        allowed = scaler.properties.spread or [Spread(name="default", requirements={})]
        for host_id in plan.workload(component.name).hosts:
            assert any(by_id[host_id].matches(s.requirements) for s in allowed)


@settings(max_examples=300, deadline=None)
@given(lattices())
def test_spreadscaler_totals_add_up(lattice: tuple[Manifest, list[HostInventory]]) -> None:
    manifest, hosts = lattice
    plan = plan_placement(manifest, hosts)
    for component in manifest.spec.components:
        scaler = component.effective_scaler()
        assert scaler is not None
        if scaler.type != "spreadscaler":
            continue
        workload = plan.workload(component.name)
        requested = scaler.properties.instances
        assert workload.placed + workload.unplaced == requested
        if workload.unplaced == 0:
            assert workload.problems == ()
        else:
            assert workload.problems


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 500), st.integers(1, 6))
def test_totals_equal_requested_when_any_host_matches(instances: int, host_count: int) -> None:
    manifest = manifest_with(
        {
            "api": (
                "component",
                spread_trait(
                    instances, {"name": "e", "requirements": {"tier": "edge"}, "weight": 3}
                ),
            ),
            "kv": ("capability", spread_trait(min(instances, host_count))),
        }
    )
    hosts = [host(f"h{i}", tier="edge") for i in range(host_count)]
    plan = plan_placement(manifest, hosts)
    assert sum(plan.workload("api").hosts.values()) == instances
    assert sum(plan.workload("kv").hosts.values()) == min(instances, host_count)
    assert plan.unplaced() == {}


@settings(max_examples=300, deadline=None)
@given(lattices(), st.data())
def test_replanning_a_satisfied_placement_moves_nothing(
    lattice: tuple[Manifest, list[HostInventory]], data: st.DataObject
) -> None:
    manifest, hosts = lattice
    # Start from some arbitrary running state, plan, then pretend the plan was applied.
    names = [c.name for c in manifest.spec.components]
    start = [
        HostInventory(
            id=h.id,
            labels=h.labels,
            running={n: data.draw(st.integers(0, 3)) for n in names if data.draw(st.booleans())},
        )
        for h in hosts
    ]
    first = plan_placement(manifest, start)
    applied = with_running(hosts, first.placements())
    second = plan_placement(manifest, applied)
    assert diff_placement(first.placements(), second.placements()) == {}


@settings(max_examples=200, deadline=None)
@given(lattices())
def test_plan_is_independent_of_host_order(lattice: tuple[Manifest, list[HostInventory]]) -> None:
    manifest, hosts = lattice
    assert plan_placement(manifest, hosts) == plan_placement(manifest, list(reversed(hosts)))
