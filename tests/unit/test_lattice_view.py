"""The lattice as the planner sees it, from the controller's events and from the
provider's one-shot read: the same rule on both sides, and a restarted host runs nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from host_agent.controller.view import LatticeView
from host_agent.lattice.strict import BadRequest
from host_agent.model import load_manifest
from host_agent.placement import plan_placement
from host_agent.placement.lattice_view import HostSnapshot, LatticeSnapshot

ROOT = Path(__file__).resolve().parents[2]
COUNTER = load_manifest(ROOT / "examples" / "counter" / "wadm.yaml").manifest


def inventory(
    host_id: str, tier: str, components: dict[str, int], providers: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A ``host.get`` reply / heartbeat body as hosts send it."""
    return {
        "host_id": host_id,
        "labels": {"tier": tier},
        "components": [
            {"id": wid, "image_ref": "file://x.wasm", "max_instances": n}
            for wid, n in components.items()
        ],
        "providers": [{"id": wid, "image_ref": "builtin:x"} for wid in providers],
    }


def test_a_restarted_host_runs_nothing_until_it_says_otherwise() -> None:
    view = LatticeView()
    view.apply_inventory(inventory("H1", "core", {"counter-counter": 3}, ("http",)), 0.0)
    assert view.hosts["H1"].runs("counter-counter") == 3
    # kill -9 and started again with its seed: the same id, nothing running.
    view.apply_event("host_started", "H1", {"labels": {"tier": "core"}}, now=1.0)
    assert list(view.hosts["H1"].workload_ids()) == []
    assert view.hosts["H1"].labels == {"tier": "core"}


def test_the_provider_and_the_controller_plan_on_the_same_inventory() -> None:
    ids = {c.name: c.component_id(COUNTER.name) for c in COUNTER.spec.components}
    wires = [
        inventory("H1", "core", {"other-app": 2}, (ids["httpserver"], "other-provider")),
        inventory("H2", "edge", {ids["counter"]: 2}),
    ]
    view = LatticeView()
    for wire in wires:
        view.apply_inventory(wire, 0.0)
    snapshot = LatticeSnapshot({w["host_id"]: HostSnapshot.from_inventory(w) for w in wires})
    assert len(view.inventory_for(COUNTER)[0].running) == 3  # its provider + other load
    assert snapshot.inventory_for(COUNTER) == view.inventory_for(COUNTER)
    assert plan_placement(COUNTER, snapshot.inventory_for(COUNTER)).placements() == (
        plan_placement(COUNTER, view.inventory_for(COUNTER)).placements()
    )


def test_display_names_fall_back_to_ids_where_names_repeat() -> None:
    hosts = [
        HostSnapshot("H1", "edge"),
        HostSnapshot("H2", "edge"),
        HostSnapshot("H3", "core"),
    ]
    snapshot = LatticeSnapshot({h.id: h for h in hosts})
    assert snapshot.names() == {"H1": "H1", "H2": "H2", "H3": "core"}


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"components": [{"id": "c", "max_instances": "5"}]}, "components[0].max_instances"),
        ({"components": [{"image_ref": "x"}]}, "components[0].id: required but missing"),
        ({"providers": [{"id": 7}]}, "providers[0].id: expected a string"),
        ({"labels": {"tier": 1}}, "labels.tier: expected a string"),
        ({"labels": ["tier"]}, "labels: expected an object"),
    ],
)
def test_a_malformed_inventory_is_refused_by_both_readers_naming_the_field(
    change: dict[str, Any], said: str
) -> None:
    """A count of "5" is not read as 0 (or 5), a component without an id is not a
    KeyError escaping the controller's event handler; the view keeps what it had."""
    view = LatticeView()
    view.apply_inventory(inventory("H1", "core", {"c": 2}), 0.0)
    bad = {**inventory("H1", "core", {"c": 2}), **change}
    with pytest.raises(BadRequest, match=re.escape(said)):
        view.apply_inventory(bad, 1.0, heartbeat=True)
    assert view.hosts["H1"].runs("c") == 2 and view.hosts["H1"].labels == {"tier": "core"}
    with pytest.raises(BadRequest, match=re.escape(said)):
        HostSnapshot.from_inventory(bad)


def test_null_image_refs_and_annotations_read_as_none() -> None:
    """control-interface 2.2 serializes absent Options as null."""
    wire = inventory("H1", "core", {"c": 1}, ("p",))
    wire["providers"][0].update(image_ref=None, annotations=None)
    view = LatticeView()
    view.apply_inventory(wire, 0.0)
    assert view.hosts["H1"].providers["p"].image_ref == ""
    assert HostSnapshot.from_inventory(wire).providers == frozenset({"p"})


def test_no_host_times_out_while_the_controller_is_cut_off_from_nats() -> None:
    view = LatticeView(default_interval=1.0)  # a host times out after 3 s unheard
    view.apply_inventory(inventory("H1", "core", {"counter-counter": 3}), 0.0)
    view.lost_the_lattice()
    # NATS away for 10 s: the rounds the controller runs meanwhile (or right after NATS
    # is back, before nats-py says so) drop nobody and wait for no deadline.
    assert view.expire(10.0) == []
    assert view.next_expiry() is None
    view.rejoined(10.0)
    assert view.expire(12.0) == [] and "H1" in view.hosts  # a whole timeout from the return
    assert view.expire(13.5) == ["H1"]  # still unheard 3 s after the controller came back
