"""The Pulumi provider's pure parts: versions, per-host placement diffs, the engine's
diff shape, property values (numbers, unknowns, secrets), typed application parts and
the language host's runner command line."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pulumi.provider.experimental.property_value import PropertyValue
from pulumi.provider.experimental.provider import PropertyDiffKind
from pulumi.runtime.proto import language_pb2
from pulumi.runtime.rpc import UNKNOWN as UNKNOWN_SENTINEL

from host_agent.lattice.stored_manifest import StoredManifest
from host_agent.model.loader import parse_manifest
from pulumi_wasmcloud.app import CapabilityProvider, Component, Link, Spread, build_manifest
from pulumi_wasmcloud.language_host import exec_arguments, exec_environment
from pulumi_wasmcloud.provider.application_resource import (
    ApplicationResource,
    FailureGrace,
    choose_version,
    placement_changes,
)
from pulumi_wasmcloud.provider.engine_log import EngineLog
from pulumi_wasmcloud.provider.handlers import Diff, InputError, ProviderSettings
from pulumi_wasmcloud.provider.provider import diff_response
from pulumi_wasmcloud.provider.values import UNKNOWN, has_unknowns, plain, to_props


def manifest(instances: int = 3, version: str | None = "v1") -> dict[str, Any]:
    annotations = {"version": version} if version else {}
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "app", "annotations": annotations},
        "spec": {
            "components": [
                {
                    "name": "hello",
                    "type": "component",
                    "properties": {"image": "file:///hello.wasm"},
                    "traits": [{"type": "spreadscaler", "properties": {"instances": instances}}],
                }
            ]
        },
    }


class TestChooseVersion:
    def test_a_new_app_uses_its_version(self) -> None:
        assert choose_version(manifest(), None) == ("v1", True)

    def test_the_same_content_is_not_put_again(self) -> None:
        assert choose_version(manifest(), StoredManifest({"v1": manifest()}, "v1")) == (
            "v1",
            False,
        )

    def test_changed_content_under_the_same_version_gets_a_content_suffix(self) -> None:
        version, put = choose_version(manifest(5), StoredManifest({"v1": manifest()}, "v1"))
        assert put and version.startswith("v1+") and len(version) == len("v1+") + 8
        # and deploying that content again finds it instead of putting a third version
        stored = StoredManifest({"v1": manifest(), version: manifest(5)}, version)
        assert choose_version(manifest(5), stored) == (version, False)

    def test_no_version_annotation_gets_a_content_version(self) -> None:
        version, put = choose_version(manifest(version=None), None)
        assert put and version.startswith("pulumi-")

    def test_both_candidates_taken_by_other_content_is_an_input_error(self) -> None:
        suffixed, _ = choose_version(manifest(5), StoredManifest({"v1": manifest()}, "v1"))
        stored = StoredManifest({"v1": manifest(), suffixed: manifest(7)}, "v1")
        with pytest.raises(InputError) as raised:
            choose_version(manifest(5), stored)
        assert raised.value.property == "manifest"


def test_placement_changes_are_per_host_paths() -> None:
    old = {"hello": {"core": 1}, "http": {"edge": 1}}
    new = {"hello": {"core": 3, "edge": 2}, "http": {"edge": 1}}
    assert placement_changes(old, new) == {
        'placement.hello["core"]': (1, 3),
        'placement.hello["edge"]': (0, 2),
    }
    assert placement_changes(new, new) == {}


def test_diff_response_kinds_and_replacements() -> None:
    diff = Diff(
        {
            'placement.hello["edge"]': (0, 2),
            'placement.hello["core"]': (1, 0),
            "manifest": ({}, {"x": 1}),
            "lattice": ("a", "b"),
        },
        ["lattice"],
    )
    response = diff_response(diff)
    assert response.changes and response.replaces == ["lattice"]
    detailed = response.detailed_diff or {}
    assert detailed['placement.hello["edge"]'].kind == PropertyDiffKind.ADD
    assert detailed['placement.hello["core"]'].kind == PropertyDiffKind.DELETE
    assert detailed["manifest"].kind == PropertyDiffKind.UPDATE
    assert detailed["lattice"].kind == PropertyDiffKind.UPDATE_REPLACE
    # placement is live state, compared with what the last read saw
    assert not detailed['placement.hello["edge"]'].input_diff
    assert detailed["manifest"].input_diff


def test_no_changes_means_no_diff() -> None:
    response = diff_response(Diff())
    assert not response.changes and not response.replaces


class TestValues:
    def test_whole_numbers_come_back_as_int(self) -> None:
        values = plain({"instances": PropertyValue(3.0), "weight": PropertyValue(0.5)})
        assert values == {"instances": 3, "weight": 0.5}
        assert isinstance(values["instances"], int)

    def test_unknowns_round_trip_as_the_engine_sentinel(self) -> None:
        props = to_props({"hostId": UNKNOWN, "nested": {"a": [1, UNKNOWN]}})
        assert props["hostId"].value == UNKNOWN_SENTINEL
        back = plain(props)
        assert back["hostId"] is UNKNOWN and has_unknowns(back["nested"])
        assert not has_unknowns({"a": [1, "x"]})

    def test_secret_fields_are_marked_secret(self) -> None:
        props = to_props({"seed": "SN...", "hostId": "N..."}, frozenset({"seed"}))
        assert props["seed"].is_secret and not props["hostId"].is_secret

    def test_unsupported_types_are_refused(self) -> None:
        with pytest.raises(TypeError, match="cannot send object"):
            to_props({"x": object()})


class TestTypedParts:
    def test_parts_build_a_manifest_the_model_accepts(self) -> None:
        data = build_manifest(
            "counter",
            [
                Component(
                    "counter",
                    "file:///counter.wasm",
                    instances=3,
                    spread=[Spread("edge", {"tier": "edge"}, weight=80)],
                ),
                CapabilityProvider("kv", "ghcr.io/wasmcloud/keyvalue-redis:0.28.1"),
            ],
            [
                Link(
                    "counter",
                    "kv",
                    "wasi",
                    "keyvalue",
                    ["atomics", "store"],
                    target_config={"redis": {"url": "redis://127.0.0.1:6379"}},
                )
            ],
            version="v1",
        )
        parsed = parse_manifest(data).manifest
        counter = parsed.spec.components[0]
        assert counter.name == "counter" and len(counter.traits or []) == 2
        assert parsed.metadata.annotations["version"] == "v1"

    def test_a_link_from_an_unknown_component_names_it(self) -> None:
        with pytest.raises(ValueError, match="no component named 'ghost'"):
            build_manifest("app", [Component("a", "file:///a.wasm")], [
                Link("ghost", "a", "wasi", "http", ["incoming-handler"])
            ])  # fmt: skip


def test_language_host_runner_arguments() -> None:
    request = language_pb2.RunRequest(
        project="proj",
        stack="dev",
        pwd="/work/proj",
        dryRun=True,
        parallel=4,
        monitor_address="127.0.0.1:1",
        organization="org",
        config={"proj:x": "1"},
        configSecretKeys=["proj:x"],
        info=language_pb2.ProgramInfo(
            program_directory="/work/proj", entry_point=".", root_directory="/work/proj"
        ),
    )
    args = exec_arguments(request, "127.0.0.1:2")
    assert args[-1] == "/work/proj"
    pairs = dict(zip(args[:-1:2], args[1:-1:2], strict=True))
    assert pairs["--engine"] == "127.0.0.1:2" and pairs["--dry_run"] == "true"
    assert pairs["--stack"] == "dev" and pairs["--organization"] == "org"
    env = exec_environment(request)
    assert env["PULUMI_CONFIG"] == '{"proj:x": "1"}'
    assert env["PULUMI_CONFIG_SECRET_KEYS"] == '["proj:x"]'


def test_newly_unplaced_names_what_only_the_leaving_host_can_run() -> None:
    from host_agent.placement import HostInventory
    from pulumi_wasmcloud.provider.live import newly_unplaced

    data = manifest(3)
    spread = [{"name": "edge", "requirements": {"tier": "edge"}}]
    data["spec"]["components"][0]["traits"][0]["properties"]["spread"] = spread
    parsed = parse_manifest(data).manifest
    hosts = [
        HostInventory(id="edge-1", labels={"tier": "edge"}, running={"hello": 3}),
        HostInventory(id="core-1", labels={"tier": "core"}),
    ]
    assert newly_unplaced(parsed, hosts, "edge-1") == {"hello": 3}
    assert newly_unplaced(parsed, hosts, "core-1") == {}
    twin = HostInventory(id="edge-2", labels={"tier": "edge"})
    assert newly_unplaced(parsed, [*hosts, twin], "edge-1") == {}


@pytest.mark.parametrize("unknown", ["natsUrl", "lattice"])
def test_check_does_not_plan_on_a_lattice_that_is_not_known_yet(unknown: str) -> None:
    """In preview a lattice's address or name can be another resource's output: planning
    then would ask a lattice literally named "<unknown>" and warn "cannot place"."""
    asked: list[tuple[object, object]] = []

    class Recording(ApplicationResource):
        def _connect(self, url: object, lattice: object) -> Any:
            asked.append((url, lattice))
            raise AssertionError("check connected to a lattice it cannot know yet")

    news: dict[str, Any] = {"manifest": manifest(), "natsUrl": "nats://127.0.0.1:1"}
    news["lattice"] = "default"
    news[unknown] = UNKNOWN
    checked = asyncio.run(Recording(EngineLog(None), ProviderSettings()).check({}, news))
    assert checked.failures == [] and asked == []
    assert "placement" not in checked.inputs


def test_a_failure_is_believed_once_read_again_after_the_grace() -> None:
    grace = FailureGrace(5.0)
    assert not grace.believed(True, 100.0)  # the first read: maybe the previous version's
    assert not grace.believed(False, 102.0)  # reconciling
    assert not grace.believed(True, 104.9)
    assert grace.believed(True, 105.0)  # failed again, 5 s after the first: believed
    assert not FailureGrace(5.0).believed(False, 200.0)  # nothing failed, nothing believed
