"""Moving a component to a new image, the way wadm 0.20 does it against 1.4.2 hosts (which
keep a running component's image when a scale names another): the old image is scaled to
0 first, and only once the host reports it stopped is the new image started. A scale
naming the new image for a running component would be answered with "the image reference
will not be updated" and change nothing."""

from __future__ import annotations

from pathlib import Path

from host_agent.controller.reconcile import ScaleComponent, owned_by, reconcile
from host_agent.controller.view import ComponentSeen, HostRecord, LatticeView
from host_agent.model import Manifest, load_manifest, parse_manifest

ROOT = Path(__file__).resolve().parents[2]
COUNTER = load_manifest(ROOT / "examples" / "counter" / "wadm.yaml").manifest
NEW_IMAGE = "127.0.0.1:5000/counter:2.0@sha256:" + "2" * 64


def with_image(manifest: Manifest, image: str) -> Manifest:
    data = manifest.to_data()
    data["spec"]["components"][0]["properties"]["image"] = image
    return parse_manifest(data).manifest


def component_scales(
    manifest: Manifest, view: LatticeView, now: float = 0.0
) -> list[ScaleComponent]:
    result = reconcile("counter", manifest, owned_by([manifest]), view, [], {}, now=now)
    return [c for c in result.commands if isinstance(c, ScaleComponent)]


def test_a_new_image_stops_the_old_one_first_then_starts_the_new_one() -> None:
    old_image = str(COUNTER.spec.components[0].properties.image)
    view = LatticeView()
    view.hosts["H1"] = HostRecord("H1", {})
    [start] = component_scales(COUNTER, view)
    view.hosts["H1"].components[start.component_id] = ComponentSeen(
        old_image, start.count, start.annotations
    )
    assert component_scales(COUNTER, view) == []  # converged

    moved = with_image(COUNTER, NEW_IMAGE)
    [stop] = component_scales(moved, view)
    assert (stop.image, stop.count) == (old_image, 0)

    # Sent and still awaited: not sent again.
    view.expect_scale("H1", stop.component_id, stop.image, 0, now=0.0)
    assert component_scales(moved, view, now=1.0) == []

    # The host reports it stopped: now the new image starts.
    view.apply_event(
        "component_scaled",
        "H1",
        {"component_id": stop.component_id, "image_ref": old_image, "max_instances": 0},
        now=2.0,
    )
    [start_new] = component_scales(moved, view, now=2.0)
    assert (start_new.image, start_new.count) == (NEW_IMAGE, start.count)
