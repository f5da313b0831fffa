"""A local component file in an Application is pinned to the lattice's registry by the
digest of a reproducible artifact: the same bytes give the same reference, a rebuild a new
one, and only component images change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pulumi_wasmcloud.provider.application_resource import (
    LocalArtifact,
    local_component_path,
    pin_local_components,
)

COMPONENT = b"\x00asm\x0d\x00\x01\x00" + b"\x00\x05\x04name"  # header + a custom section


def manifest(image: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "Counter App"},
        "spec": {
            "components": [
                {"name": "counter", "type": "component", "properties": {"image": image}},
                {
                    "name": "kv",
                    "type": "capability",
                    "properties": {"image": "builtin:keyvalue-inmemory"},
                },
            ]
        },
    }


def test_same_bytes_same_digest_and_a_rebuild_changes_only_the_image(tmp_path: Path) -> None:
    wasm = tmp_path / "counter.wasm"
    wasm.write_bytes(COMPONENT)
    first, pushes, failures = pin_local_components(manifest(f"file://{wasm}"), "127.0.0.1:5000")
    again, _, _ = pin_local_components(manifest(str(wasm)), "127.0.0.1:5000")
    assert failures == [] and first == again  # file:// or plain path, any time: one digest
    image = first["spec"]["components"][0]["properties"]["image"]
    assert image == f"127.0.0.1:5000/counter-app/counter@{LocalArtifact.of(COMPONENT).digest}"
    assert pushes == {image: str(wasm)}
    assert first["spec"]["components"][1] == manifest("")["spec"]["components"][1]

    wasm.write_bytes(COMPONENT + b"\x00\x03\x02id")
    rebuilt, _, _ = pin_local_components(manifest(str(wasm)), "127.0.0.1:5000")
    rebuilt_image = rebuilt["spec"]["components"][0]["properties"]["image"]
    assert rebuilt_image != image
    rebuilt["spec"]["components"][0]["properties"]["image"] = image
    assert rebuilt == first


def test_artifact_is_wasmclouds_layout() -> None:
    artifact = LocalArtifact.of(COMPONENT)
    parsed = json.loads(artifact.manifest)
    assert parsed["config"]["mediaType"] == "application/vnd.wasm.config.v0+json"
    assert [layer["mediaType"] for layer in parsed["layers"]] == ["application/wasm"]


def test_registry_references_are_left_alone_and_bad_files_are_refused(tmp_path: Path) -> None:
    assert local_component_path("127.0.0.1:5000/counter:0.1.0") is None
    assert local_component_path("ghcr.io/wasmcloud/components/http-hello:0.1.0") is None
    not_wasm = tmp_path / "notes.txt"
    not_wasm.write_text("hello")
    _, pushes, failures = pin_local_components(manifest(str(not_wasm)), "127.0.0.1:5000")
    _, _, missing = pin_local_components(manifest(str(tmp_path / "gone.wasm")), "r:1")
    assert pushes == {}
    assert [f.property for f in failures + missing] == [
        "manifest.spec.components[0].properties.image"
    ] * 2
    assert "not a WebAssembly file" in failures[0].reason
    assert "cannot read component file" in missing[0].reason
