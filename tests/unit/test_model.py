"""The wadm manifest model: the tutorial manifest round-trips; bad input gets one clear line."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from host_agent.model import (
    ManifestError,
    Severity,
    dump_json,
    dump_yaml,
    load_manifest,
    parse_manifest,
    parse_manifest_text,
)
from host_agent.model.manifest import LinkTrait

ROOT = Path(__file__).resolve().parents[2]
COUNTER = ROOT / "examples" / "counter" / "wadm.yaml"


def counter_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COUNTER.read_text())
    return data


def test_counter_manifest_loads_with_tutorial_content() -> None:
    manifest = load_manifest(COUNTER).manifest
    assert manifest.name == "counter"
    assert manifest.version == "v0.1.0"
    counter = manifest.component("counter")
    assert counter is not None
    scaler = counter.effective_scaler()
    assert scaler is not None and scaler.properties.instances == 3
    kv_link = counter.link_traits[0].properties
    assert (kv_link.namespace, kv_link.package, kv_link.interfaces) == (
        "wasi",
        "keyvalue",
        ["atomics", "store"],
    )
    assert kv_link.target.name == "kvredis"
    assert kv_link.effective_target_config[0].properties == {"url": "redis://127.0.0.1:6379"}
    http = manifest.component("httpserver")
    assert http is not None and http.is_capability
    http_link = http.link_traits[0].properties
    assert http_link.target.name == "counter"
    assert http_link.interfaces == ["incoming-handler"]
    assert http_link.effective_source_config[0].properties == {"address": "127.0.0.1:8080"}


@pytest.mark.parametrize("dump", [dump_yaml, dump_json])
def test_counter_manifest_round_trips_without_loss(dump: Any) -> None:
    original = counter_data()
    parsed = parse_manifest(copy.deepcopy(original)).manifest
    text = dump(parsed)
    reloaded = yaml.safe_load(text) if dump is dump_yaml else json.loads(text)
    assert reloaded == original
    assert parse_manifest(reloaded).manifest == parsed


def test_deprecated_link_shape_warns_and_means_the_same_as_the_current_shape() -> None:
    old = parse_manifest(counter_data())
    assert {w.path for w in old.warnings} == {
        "spec.components[0].traits[1].properties.target_config",
        "spec.components[2].traits[0].properties.source_config",
    }
    assert all(w.severity is Severity.WARNING and "deprecated" in w.message for w in old.warnings)

    current = counter_data()
    kv = current["spec"]["components"][0]["traits"][1]["properties"]
    kv["target"] = {"name": "kvredis", "config": kv.pop("target_config")}
    http = current["spec"]["components"][2]["traits"][0]["properties"]
    http["target"] = {"name": "counter"}
    http["source"] = {"config": http.pop("source_config")}
    new = parse_manifest(current)
    assert new.warnings == ()
    for name in ("counter", "httpserver"):
        old_c, new_c = old.manifest.component(name), new.manifest.component(name)
        assert old_c is not None and new_c is not None
        old_link, new_link = old_c.link_traits[0].properties, new_c.link_traits[0].properties
        assert old_link.target.name == new_link.target.name
        assert old_link.effective_target_config == new_link.effective_target_config
        assert old_link.effective_source_config == new_link.effective_source_config
    # The current shape dumps as given too.
    assert yaml.safe_load(dump_yaml(new.manifest)) == current


def test_replicas_is_accepted_as_wadm_alias_for_instances() -> None:
    data = counter_data()
    props = data["spec"]["components"][0]["traits"][0]["properties"]
    props["replicas"] = props.pop("instances")
    counter = parse_manifest(data).manifest.component("counter")
    assert counter is not None
    assert counter.scaler_traits[0].properties.instances == 3


def _mutate(path: list[Any], value: Any) -> dict[str, Any]:
    data = counter_data()
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


_DELETE = object()
C = ["spec", "components"]


def _with_ids(kv_id: str, http_id: str) -> dict[str, Any]:
    data = counter_data()
    data["spec"]["components"][1]["properties"]["id"] = kv_id
    data["spec"]["components"][2]["properties"]["id"] = http_id
    return data


def _with_extra_counter_trait(trait: dict[str, Any]) -> dict[str, Any]:
    data = counter_data()
    data["spec"]["components"][0]["traits"].append(trait)
    return data


BAD_INPUTS = [
    pytest.param(
        _mutate([*C, 0, "traits", 0, "properties", "instances"], -1),
        "spec.components[0].traits[0].properties.instances: must be >= 0",
        id="negative-instances",
    ),
    pytest.param(
        _mutate([*C, 0, "traits", 0, "properties", "instances"], "3"),
        "spec.components[0].traits[0].properties.instances: must be a whole number",
        id="quoted-instances",
    ),
    pytest.param(
        _mutate([*C, 0, "traits", 0, "properties", "instance"], 2),
        "spec.components[0].traits[0].properties.instance: unknown field",
        id="scaler-typo",
    ),
    pytest.param(
        _mutate([*C, 0, "traits", 1, "properties", "namespace"], _DELETE),
        "spec.components[0].traits[1].properties.namespace: required field is missing",
        id="link-missing-namespace",
    ),
    pytest.param(
        _mutate([*C, 0, "traits", 1, "properties", "target"], "kvredsi"),
        "spec.components[0].traits[1].properties.target: link target 'kvredsi' names no component",
        id="dangling-link-target",
    ),
    pytest.param(
        _mutate([*C, 2, "name"], "kvredis"),
        "spec.components[2].name: duplicate component name 'kvredis'",
        id="duplicate-name",
    ),
    pytest.param(
        _with_ids("x", "x"),
        "spec.components[2].properties.id: duplicate component id 'x'",
        id="duplicate-id",
    ),
    pytest.param(
        _with_extra_counter_trait(
            {
                "type": "link",
                "properties": {
                    "namespace": "wasi",
                    "package": "keyvalue",
                    "interfaces": ["atomics"],
                    "target": "kvredis",
                },
            }
        ),
        "spec.components[0].traits[2].properties.interfaces[0]: duplicate link default "
        "(wasi:keyvalue/atomics)",
        id="duplicate-link",
    ),
    pytest.param(
        _mutate(
            [*C, 0, "traits", 0, "properties", "spread"],
            [{"name": "a", "requirements": {}, "weight": -5}],
        ),
        "spec.components[0].traits[0].properties.spread[0].weight: must be >= 0",
        id="negative-weight",
    ),
    pytest.param(
        _mutate(
            [*C, 0, "traits", 0, "properties", "spread"],
            [
                {"name": "a", "requirements": {}, "weight": 0},
                {"name": "b", "requirements": {}, "weight": 0},
            ],
        ),
        "spec.components[0].traits[0].properties.spread: every spread has weight 0",
        id="all-zero-weights",
    ),
    pytest.param(
        _mutate([*C, 0, "traits", 0, "properties", "spread"], [{"name": "a"}]),
        "spec.components[0].traits[0].properties.spread[0].requirements: required field is missing",
        id="spread-without-requirements",
    ),
    pytest.param(
        _mutate(["metadata", "name"], "my counter!"),
        "metadata.name: application name 'my counter!' is not allowed",
        id="bad-app-name",
    ),
    pytest.param(
        _mutate(["metadata", "annotations", "version"], "latest"),
        "metadata.annotations.version: version 'latest' is reserved",
        id="latest",
    ),
    pytest.param(
        _mutate(["metadata", "annotations"], _DELETE),
        "metadata.annotations: required field is missing",
        id="missing-annotations",
    ),
    pytest.param(
        _mutate(["spec", "components", 1, "properties", "image"], _DELETE),
        "spec.components[1].properties.image: required field is missing",
        id="missing-image",
    ),
    pytest.param(_mutate(["kind"], _DELETE), "kind: required field is missing", id="missing-kind"),
    pytest.param(
        _mutate([*C, 1, "type"], "actorr"),
        "spec.components[1].type: must be 'component', 'actor' or 'capability'",
        id="bad-component-type",
    ),
    pytest.param(
        _mutate(
            [*C, 2, "traits", 0, "properties", "source_config", 0, "properties", "address"], 8080
        ),
        "spec.components[2].traits[0].properties.source_config[0].properties.address: "
        "must be a string",
        id="unquoted-config-value",
    ),
    pytest.param(
        _mutate(["metadata", "labels"], {"-bad": "x"}),
        "metadata.labels.-bad: invalid label key '-bad'",
        id="bad-label-key",
    ),
]


@pytest.mark.parametrize(("data", "expected"), BAD_INPUTS)
def test_each_bad_input_gives_one_error_line_with_path_and_fix(
    data: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data)
    issues = caught.value.issues
    assert len(issues) == 1, [str(i) for i in issues]
    line = str(issues[0])
    assert line.startswith(expected), line
    assert "(fix: " in line
    assert "\n" not in line


def test_other_trait_types_pass_with_a_warning() -> None:
    data = counter_data()
    data["spec"]["components"][0]["traits"].append({"type": "tracing", "properties": {"a": 1}})
    parsed = parse_manifest(data)
    assert any(
        w.path == "spec.components[0].traits[2].type" and "tracing" in w.message
        for w in parsed.warnings
    )
    assert yaml.safe_load(dump_yaml(parsed.manifest)) == data


def test_unknown_interface_in_known_package_warns() -> None:
    data = _mutate([*C, 0, "traits", 1, "properties", "interfaces"], ["atomics", "stor"])
    parsed = parse_manifest(data)
    assert any("unrecognized interface wasi:keyvalue/stor" in w.message for w in parsed.warnings)


def test_yaml_syntax_error_names_line() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest_text("apiVersion: x\nkind: [unclosed\n", "bad.yaml")
    assert "line 3" in str(caught.value.issues[0]) or "line 2" in str(caught.value.issues[0])


def test_json_manifest_loads() -> None:
    parsed = parse_manifest_text(json.dumps(counter_data()))
    assert parsed.manifest.name == "counter"


def test_component_ids_follow_wadm_naming() -> None:
    manifest = load_manifest(COUNTER).manifest
    counter = manifest.component("counter")
    assert counter is not None
    assert counter.component_id("My ThInG") == "my_thing-counter"
    assert counter.component_id(manifest.name) == "counter-counter"


def test_link_trait_is_typed() -> None:
    counter = load_manifest(COUNTER).manifest.component("counter")
    assert counter is not None
    assert isinstance(counter.traits and counter.traits[1], LinkTrait)
