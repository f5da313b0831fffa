"""Before an Application's health check, the provider waits until the lattice holds the
new version's links and configs (a version that changes only those keeps its placement and
images, and would otherwise be checked while the previous version still answers). What it
waits for must be exactly what the controller puts: checked here against the controller's
own desired links and configs, for the examples' manifests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from host_agent.controller.reconcile import desired_configs, desired_links
from host_agent.model.loader import load_manifest, parse_manifest
from host_agent.model.manifest import Manifest
from pulumi_wasmcloud.provider.application_resource import wiring_differences

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ["examples/counter/wadm.yaml", "examples/edge-core-app/wadm.yaml"]


def as_controller_puts(manifest: Manifest) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The links and configs a lattice holds once the controller deployed ``manifest``
    (interface lists in another order than the manifest's, as a host may answer them)."""
    links = [
        {**link, "interfaces": sorted(link["interfaces"], reverse=True)}
        for link in desired_links(manifest)
    ]
    return links, desired_configs(manifest)


@pytest.mark.parametrize("path", EXAMPLES)
def test_a_deployed_manifest_is_wired(path: str) -> None:
    manifest = load_manifest(str(ROOT / path)).manifest
    links, configs = as_controller_puts(manifest)
    assert links, "the example has links"
    other_app = {**links[0], "source_id": "someone-else", "target": "elsewhere"}
    assert wiring_differences(manifest, [*links, other_app], configs) == []


def test_a_dropped_link_is_pending_until_the_lattice_deletes_it() -> None:
    data = load_manifest(str(ROOT / "examples/counter/wadm.yaml")).manifest.to_data()
    before = parse_manifest(data).manifest
    without = copy.deepcopy(data)
    counter = without["spec"]["components"][0]
    counter["traits"] = [t for t in counter["traits"] if t["type"] != "link"]
    after = parse_manifest(without).manifest

    links, configs = as_controller_puts(before)
    assert wiring_differences(after, links, configs) == [
        "link counter-counter -(wasi:keyvalue/default)-> counter-kvredis still in place"
    ]
    # Back to the old version: the link is missing until the controller puts it again.
    remaining = [link for link in links if link["wit_package"] != "keyvalue"]
    assert wiring_differences(before, remaining, configs) == [
        "link counter-counter -(wasi:keyvalue/default)-> counter-kvredis not in place"
    ]


def test_changed_config_values_are_pending_until_put() -> None:
    data = load_manifest(str(ROOT / "examples/counter/wadm.yaml")).manifest.to_data()
    manifest = parse_manifest(data).manifest
    links, configs = as_controller_puts(manifest)
    (name,) = [n for n in configs if "redis" in n]
    stale = {**configs, name: {"url": "redis://127.0.0.1:6380"}}
    assert wiring_differences(manifest, links, stale) == [f"config {name} not in place"]
    assert wiring_differences(manifest, links, {**configs, name: {}}) == [
        f"config {name} not in place"
    ]


def test_interface_order_is_not_a_difference() -> None:
    data = load_manifest(str(ROOT / "examples/counter/wadm.yaml")).manifest.to_data()
    link = data["spec"]["components"][0]["traits"][1]["properties"]
    link["interfaces"] = ["store", "atomics"]  # the host answers them in another order
    manifest = parse_manifest(data).manifest
    links = [{**link, "interfaces": sorted(link["interfaces"])} for link in desired_links(manifest)]
    assert wiring_differences(manifest, links, desired_configs(manifest)) == []
