"""The controller's pure core: stored versions, the lattice view, and reconcile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from host_agent.controller.api import parse_api_subject
from host_agent.controller.reconcile import (
    APPSPEC,
    DeleteConfig,
    DeleteLink,
    PutConfig,
    PutLink,
    Reconciliation,
    ScaleComponent,
    StartProvider,
    StopProvider,
    owned_by,
    reconcile,
)
from host_agent.controller.view import ComponentSeen, HostRecord, LatticeView, ProviderSeen
from host_agent.lattice.stored_manifest import StoreConflict, StoredManifest, new_ulid
from host_agent.lattice.wadm_types import StatusType, aggregate_status
from host_agent.model import Manifest, load_manifest, parse_manifest
from host_agent.placement import plan_placement

ROOT = Path(__file__).resolve().parents[2]
COUNTER = load_manifest(ROOT / "examples" / "counter" / "wadm.yaml").manifest
EDGE_CORE = load_manifest(ROOT / "examples" / "placement" / "edge-core.yaml").manifest


# stored versions -------------------------------------------------------------------
def test_versions_put_deploy_delete_follow_wadm() -> None:
    stored = StoredManifest().put("v1", {"a": 1}).put("v2", {"a": 2})
    assert stored.versions == ["v1", "v2"]
    with pytest.raises(StoreConflict, match="v1 already exists"):
        stored.put("v1", {})
    with pytest.raises(StoreConflict, match="'latest' is not allowed"):
        stored.put("latest", {})
    assert stored.deploy(None).deployed_version == "v2"
    assert stored.deploy("latest").deployed_version == "v2"
    with pytest.raises(StoreConflict, match="Version v9 not found; stored versions: v1, v2"):
        stored.deploy("v9")
    deployed = stored.deploy("v1")
    left, undeployed = deployed.delete("v1")
    assert left is not None and left.versions == ["v2"] and undeployed
    assert left.deployed_version is None
    left, undeployed = deployed.delete("v2")
    assert left is not None and left.deployed_version == "v1" and not undeployed
    assert deployed.delete(None) == (None, True)


def test_generated_versions_are_sortable_ulids() -> None:
    first, second = new_ulid(), new_ulid()
    assert len(first) == 26 and first[:9] <= second[:9]


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("wadm.api.default.model.put", ("put", None)),
        ("wadm.api.default.model.status.counter", ("status", "counter")),
    ],
)
def test_api_subjects_parse(subject: str, expected: tuple[str, str | None]) -> None:
    assert parse_api_subject(subject, "default") == expected


def test_api_subject_with_two_names_is_refused() -> None:
    with pytest.raises(ValueError, match="at most one name"):
        parse_api_subject("wadm.api.default.model.get.a.b", "default")


def test_status_aggregation_is_wadms() -> None:
    s = StatusType
    assert aggregate_status([]) is s.UNDEPLOYED
    assert aggregate_status([s.DEPLOYED, s.RECONCILING]) is s.RECONCILING
    assert aggregate_status([s.RECONCILING, s.FAILED, s.UNDEPLOYED]) is s.FAILED
    assert aggregate_status([s.DEPLOYED, s.UNHEALTHY]) is s.UNHEALTHY
    assert aggregate_status([s.DEPLOYED, s.DEPLOYED]) is s.DEPLOYED


# the lattice view ------------------------------------------------------------------
def heartbeat(host_id: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"host_id": host_id, "labels": labels or {}, "components": [], "providers": []}


def test_host_timeout_is_three_of_its_own_heartbeat_intervals() -> None:
    view = LatticeView(default_interval=30.0)
    view.apply_event("host_heartbeat", "H1", heartbeat("H1"), now=0.0)
    view.apply_inventory(heartbeat("H1"), now=0.5)  # a host.get reply is not a heartbeat
    view.apply_event("host_heartbeat", "H1", heartbeat("H1"), now=2.0)
    assert view.hosts["H1"].interval == 2.0
    assert view.expire(now=7.9) == []
    assert view.expire(now=8.1) == ["H1"]
    assert view.hosts == {}


def test_heartbeats_held_back_by_an_outage_do_not_shorten_a_hosts_timeout() -> None:
    view = LatticeView(default_interval=30.0)
    for at in (0.0, 2.0, 4.0, 6.0):
        view.apply_event("host_heartbeat", "H1", heartbeat("H1"), now=at)
    # NATS away from 7 s to 20 s: the beats the host held back arrive at once, then the
    # one it sends on reconnecting, then its own rhythm again (0.49 s later).
    for at in (20.000, 20.001, 20.002, 20.010, 20.5):
        view.apply_event("host_heartbeat", "H1", heartbeat("H1"), now=at)
    assert view.hosts["H1"].interval == 2.0
    assert view.expire(now=26.4) == []  # three intervals of 2 s after its last beat
    assert view.expire(now=26.6) == ["H1"]


def test_a_host_restarted_with_a_longer_interval_is_not_dropped_before_it_beats() -> None:
    view = LatticeView(default_interval=30.0)
    for at in (0.0, 2.0, 4.0, 6.0):  # every 2 s
        view.apply_event("host_heartbeat", "H1", heartbeat("H1"), now=at)
    # Restarted with heartbeatSeconds 30: it beats at once, then 30 s later.
    view.apply_event("host_started", "H1", {}, now=10.0)
    view.apply_event("host_heartbeat", "H1", heartbeat("H1"), now=10.1)
    assert view.expire(now=39.0) == []  # three of its old intervals are long gone
    view.apply_event("host_heartbeat", "H1", heartbeat("H1"), now=40.1)
    assert view.hosts["H1"].interval == 30.0
    assert view.expire(now=130.0) == []
    assert view.expire(now=130.2) == ["H1"]


def test_unmeasured_host_uses_the_default_interval_and_stopped_hosts_go_at_once() -> None:
    view = LatticeView(default_interval=10.0)
    view.apply_event("host_started", "H1", {"labels": {"zone": "a"}}, now=0.0)
    view.apply_event("host_started", "H2", {}, now=0.0)
    assert view.expire(now=29.0) == []
    view.apply_event("host_stopped", "H2", {}, now=1.0)
    assert list(view.hosts) == ["H1"]
    assert view.hosts["H1"].labels == {"zone": "a"}


def test_events_patch_the_view() -> None:
    view = LatticeView()
    view.apply_inventory(heartbeat("H1"), now=0.0)
    scaled = {"component_id": "c", "image_ref": "file:///c.wasm", "max_instances": 3}
    view.apply_event("component_scaled", "H1", scaled, now=1.0)
    assert view.hosts["H1"].runs("c") == 3
    view.apply_event("component_scaled", "H1", {**scaled, "max_instances": 0}, now=1.0)
    assert view.hosts["H1"].runs("c") == 0
    view.apply_event("provider_started", "H1", {"provider_id": "p", "image_ref": "x"}, now=1.0)
    assert view.hosts["H1"].runs("p") == 1
    view.apply_event(
        "provider_stopped", "H1", {"provider_id": "p", "reason": "exited with code 1"}, 2.0
    )
    assert view.hosts["H1"].runs("p") == 0
    assert view.start_failures[("H1", "p")].error == "exited with code 1"
    view.apply_event("labels_changed", "H1", {"labels": {"tier": "edge"}}, now=3.0)
    assert view.hosts["H1"].labels == {"tier": "edge"}


# reconcile -------------------------------------------------------------------------
def lattice(*hosts: tuple[str, dict[str, str]]) -> LatticeView:
    view = LatticeView()
    for host_id, labels in hosts:
        view.hosts[host_id] = HostRecord(host_id, labels)
    return view


class Lattice:
    """Hosts that do what they are told: applies commands to a view, links and configs,
    the way the real hosts' events would."""

    def __init__(self, view: LatticeView) -> None:
        self.view = view
        self.links: list[dict[str, Any]] = []
        self.configs: dict[str, dict[str, str]] = {}

    def round(self, app: str, manifest: Manifest | None, *known: Manifest) -> Reconciliation:
        owned = owned_by([*known, *([manifest] if manifest else [])])
        result = reconcile(app, manifest, owned, self.view, self.links, self.configs, now=0.0)
        for command in result.commands:
            self.apply(command)
        return result

    def apply(self, command: object) -> None:
        match command:
            case PutConfig(name, values):
                self.configs[name] = values
            case DeleteConfig(name):
                self.configs.pop(name, None)
            case StartProvider(host_id, provider_id, image, annotations, _):
                self.view.hosts[host_id].providers[provider_id] = ProviderSeen(image, annotations)
            case StopProvider(host_id, provider_id):
                self.view.hosts[host_id].providers.pop(provider_id)
            case ScaleComponent(host_id, component_id, image, count, annotations, _):
                components = self.view.hosts[host_id].components
                if count:
                    components[component_id] = ComponentSeen(image, count, annotations)
                else:
                    components.pop(component_id)
            case PutLink(link):
                self.links = [x for x in self.links if not _same_key(x, link)] + [link]
            case DeleteLink(source_id, namespace, package, name):
                self.links = [
                    x
                    for x in self.links
                    if (x["source_id"], x["wit_namespace"], x["wit_package"], x["name"])
                    != (source_id, namespace, package, name)
                ]

    def placements(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for host in self.view.hosts.values():
            for wid in [*host.components, *host.providers]:
                out.setdefault(wid, {})[host.id] = host.runs(wid)
        return out


def _same_key(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("source_id", "wit_namespace", "wit_package", "name")
    return all(a[k] == b[k] for k in keys)


def test_tutorial_counter_converges_in_one_round_and_then_is_quiet() -> None:
    world = Lattice(lattice(("H1", {})))
    first = world.round("counter", COUNTER)
    kinds = [type(c).__name__ for c in first.commands]
    # config before providers before components before links
    assert kinds == [
        "PutConfig", "PutConfig", "StartProvider", "StartProvider", "ScaleComponent",
        "PutLink", "PutLink",
    ]  # fmt: skip
    scale = next(c for c in first.commands if isinstance(c, ScaleComponent))
    assert (scale.component_id, scale.count, scale.annotations[APPSPEC]) == (
        "counter-counter",
        3,
        "counter",
    )
    assert {s.status.type for s in first.scalers} == {StatusType.RECONCILING}
    assert world.configs["counter-redis_url"] == {"url": "redis://127.0.0.1:6379"}
    link = next(x for x in world.links if x["wit_package"] == "keyvalue")
    assert link["target"] == "counter-kvredis"
    assert link["target_config"] == ["counter-redis_url"]

    second = world.round("counter", COUNTER)
    assert second.commands == ()
    assert aggregate_status([s.status.type for s in second.scalers]) is StatusType.DEPLOYED


def test_placement_applied_is_the_planners_prediction() -> None:
    hosts = [
        ("edge-use1-a", {"region": "us-east-1", "tier": "edge"}),
        ("edge-use1-b", {"region": "us-east-1", "tier": "edge"}),
        ("edge-usw2-a", {"region": "us-west-2", "tier": "edge"}),
        ("core-use1-a", {"region": "us-east-1", "tier": "core"}),
        ("core-use1-b", {"region": "us-east-1", "tier": "core"}),
    ]
    world = Lattice(lattice(*hosts))
    ids = {c.name: c.component_id("shop") for c in EDGE_CORE.spec.components}
    predicted = plan_placement(EDGE_CORE, world.view.inventory(ids)).placements()
    world.round("shop", EDGE_CORE)
    assert world.placements() == {ids[name]: hosts_ for name, hosts_ in predicted.items()}
    assert world.round("shop", EDGE_CORE).commands == ()


def test_lost_host_work_is_replaced_on_a_matching_host() -> None:
    world = Lattice(
        lattice(("A", {"tier": "core"}), ("B", {"tier": "core"}), ("C", {"tier": "edge"}))
    )
    world.round("counter", COUNTER)
    before = world.placements()["counter-counter"]
    lost = next(iter(before))
    world.view.drop(lost)
    result = world.round("counter", COUNTER)
    assert any(isinstance(c, ScaleComponent) and c.count == 3 for c in result.commands)
    after = world.placements()["counter-counter"]
    assert sum(after.values()) == 3 and lost not in after


def test_unsatisfiable_spread_fails_with_the_reason_and_recovers() -> None:
    manifest = _with_spread(COUNTER, {"tier": "gpu"})
    world = Lattice(lattice(("A", {"tier": "core"})))
    result = world.round("counter", manifest)
    failed = [s for s in result.scalers if s.status.type is StatusType.FAILED]
    assert [s.name for s in failed] == ["counter-counter"]
    assert "no hosts match spread 'gpu' (requirements: tier=gpu)" in failed[0].status.message
    world.view.hosts["G"] = HostRecord("G", {"tier": "gpu"})
    world.round("counter", manifest)
    assert world.placements()["counter-counter"] == {"G": 3}
    quiet = world.round("counter", manifest)
    assert quiet.commands == ()
    assert aggregate_status([s.status.type for s in quiet.scalers]) is StatusType.DEPLOYED


def test_hand_scaled_component_is_set_back() -> None:
    world = Lattice(lattice(("A", {})))
    world.round("counter", COUNTER)
    world.view.hosts["A"].components["counter-counter"].count = 7
    result = world.round("counter", COUNTER)
    assert [(type(c).__name__, getattr(c, "count", None)) for c in result.commands] == [
        ("ScaleComponent", 3)
    ]


def test_undeploy_removes_everything_the_app_made_and_nothing_else() -> None:
    world = Lattice(lattice(("A", {})))
    world.round("counter", COUNTER)
    world.view.hosts["A"].components["other-app"] = ComponentSeen("x", 1)
    world.configs["someone-else"] = {"k": "v"}
    world.round("counter", None, COUNTER)
    assert world.placements() == {"other-app": {"A": 1}}
    assert world.links == []
    assert world.configs == {"someone-else": {"k": "v"}}
    assert world.round("counter", None, COUNTER).commands == ()


def test_a_new_version_drops_what_it_no_longer_declares() -> None:
    world = Lattice(lattice(("A", {})))
    world.round("counter", COUNTER)
    data = COUNTER.to_data()
    data["metadata"]["annotations"]["version"] = "v0.2.0"
    data["spec"]["components"] = [c for c in data["spec"]["components"] if c["name"] != "kvredis"]
    data["spec"]["components"][0]["traits"] = data["spec"]["components"][0]["traits"][:1]
    v2 = parse_manifest(data).manifest
    world.round("counter", v2, COUNTER)
    assert "counter-kvredis" not in world.placements()
    assert [x["wit_package"] for x in world.links] == ["http"]
    assert "counter-redis_url" not in world.configs


def test_failed_provider_start_is_reported_and_retried_with_backoff() -> None:
    view = lattice(("A", {}))
    view.record_start_failure("A", "counter-kvredis", {"error": "exited with code 1"}, now=0.0)
    view.record_start_failure("A", "counter-kvredis", {"error": "exited with code 1"}, now=0.0)
    owned = owned_by([COUNTER])
    soon = reconcile("counter", COUNTER, owned, view, [], {}, now=1.0)
    later = reconcile("counter", COUNTER, owned, view, [], {}, now=2.5)
    starts = [c.provider_id for c in soon.commands if isinstance(c, StartProvider)]
    assert starts == ["counter-httpserver"]  # kvredis waits out its 2 s backoff
    assert "counter-kvredis" in [
        c.provider_id for c in later.commands if isinstance(c, StartProvider)
    ]
    failed = next(s for s in soon.scalers if s.name == "counter-kvredis")
    assert failed.status.type is StatusType.FAILED
    assert "exited with code 1" in failed.status.message


def _with_spread(manifest: Manifest, requirements: dict[str, str]) -> Manifest:
    data = manifest.to_data()
    scaler = data["spec"]["components"][0]["traits"][0]
    scaler["properties"]["spread"] = [{"name": "gpu", "requirements": requirements}]
    return parse_manifest(data).manifest


def test_provider_counts_as_deployed_only_after_its_health_check() -> None:
    world = Lattice(lattice(("A", {})))
    world.round("counter", COUNTER)
    world.view.apply_event("provider_started", "A", {"provider_id": "counter-kvredis"}, 1.0)
    waiting = world.round("counter", COUNTER)
    kv = next(s for s in waiting.scalers if s.name == "counter-kvredis")
    assert kv.status.type is StatusType.RECONCILING
    assert "health check" in kv.status.message
    world.view.apply_event("health_check_passed", "A", {"provider_id": "counter-kvredis"}, 2.0)
    ready = world.round("counter", COUNTER)
    assert aggregate_status([s.status.type for s in ready.scalers]) is StatusType.DEPLOYED
