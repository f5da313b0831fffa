"""Malformed requests against a real lattice (nats-server, a host, the controller, a deployed
application): each is refused with a reply naming the bad field, and nothing changes:
stored manifests and versions, the deployed version and status, links, config, labels and
running instances are exactly what they were.

Each request here is a valid, state-changing request with one field made wrong, so a
field read as a default (the old bug: ``{"version": ["x"]}`` deleted every version) shows
up as a changed lattice, not only as a different reply.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.errors
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NatsClient

from host_agent.lattice.client import CtlClient
from host_agent.lattice.subjects import CtlSubjects, wadm_api_subject, wadm_status_subject
from host_agent.lattice.wadm import WadmClient
from host_agent.model.naming import config_name
from host_agent.providers.contract import CONFIG_UPDATE, HEALTH, LINK_PUT, SHUTDOWN
from host_agent.providers.contract import provider_subject as provider_rpc_subject
from tests.lattice import (
    COUNTER_WASM,
    ControllerProcess,
    HostProcess,
    NatsServer,
    counter_on_inmemory_kv,
    first_host_id,
    inmemory_kv,
)
from tests.malformed import CTL_FIELDS, WADM_FIELDS, body, names_field, wrong_value

pytestmark = pytest.mark.timeout(180)

APP = "probe"
COUNTER_ID = f"{APP}-counter"
KV_ID = f"{APP}-kv"
GREETING = config_name(APP, "greeting")  # the component's config, created by the controller
EXTRA_CONFIG = "probe-extra"  # put by hand, owned by no application
T = TypeVar("T")


def manifest(version: str, instances: int) -> dict[str, Any]:
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": APP, "annotations": {"version": version}},
        "spec": {
            "components": [
                counter_on_inmemory_kv(
                    instances,
                    config=[{"name": "greeting", "properties": {"greeting": "hi"}}],
                ),
                inmemory_kv(),
            ]
        },
    }


class Lattice:
    """One lattice for the module: v1 and v2 of the app stored, v1 deployed and running."""

    def __init__(self, tmp: Path) -> None:
        self.server = NatsServer(tmp / "js").start()
        self.host = HostProcess(self.server, {"zone": "probe"}, "--allow-file-load", log=tmp / "h")
        self.controller = ControllerProcess(self.server, log=tmp / "controller.log")
        self.loop = asyncio.new_event_loop()
        self.nc: NatsClient = self.run(nats.connect(self.server.url))
        self.ctl = CtlClient(self.nc, timeout=5)
        self.wadm = WadmClient(self.nc)
        self.subjects = CtlSubjects()
        self.host_id = self.run(first_host_id(self.nc))
        self.run(self._deploy())
        self.baseline = self.run(self.snapshot())

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    async def _deploy(self) -> None:
        for _ in range(100):  # the controller process is still starting: no responders yet
            try:
                await self.wadm.list()
                break
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.1)
        await self.ctl.put_label(self.host_id, "probe", "yes")
        await self.ctl.put_config(EXTRA_CONFIG, {"greeting": "hello", "colour": "blue"})
        await self.wadm.put(manifest("v1", 1))
        await self.wadm.put(manifest("v2", 2))
        statuses = await self.nc.subscribe(wadm_status_subject("default", APP))
        await self.wadm.deploy(APP, "v1")
        while True:  # the controller publishes a status after each round; wait for deployed
            msg = await statuses.next_msg(timeout=90)
            if json.loads(msg.data)["status"]["type"] == "deployed":
                break
        await statuses.unsubscribe()

    async def snapshot(self) -> dict[str, Any]:
        """Everything a malformed request could have changed."""
        inventory = await self.ctl.get_inventory(self.host_id)
        status = await self.wadm.status(APP)
        assert status.status is not None
        return {
            "apps": [(m.name, m.deployed_version) for m in (await self.wadm.list()).models],
            "versions": [(v.version, v.deployed) for v in (await self.wadm.versions(APP)).versions],
            "manifests": {v: (await self.wadm.get(APP, v)).manifest for v in ("v1", "v2")},
            "status": status.status.status.type.value,
            "links": sorted(
                json.dumps(link, sort_keys=True) for link in await self.ctl.get_links()
            ),
            "config": {n: await self.ctl.get_config(n) for n in (GREETING, EXTRA_CONFIG)},
            "labels": inventory["labels"],
            "components": sorted(
                (c["id"], c["image_ref"], c["max_instances"]) for c in inventory["components"]
            ),
            "providers": sorted((p["id"], p["image_ref"]) for p in inventory["providers"]),
        }

    def request(self, subject: str, payload: bytes) -> dict[str, Any]:
        msg = self.run(self.nc.request(subject, payload, timeout=5))
        reply: dict[str, Any] = json.loads(msg.data)
        return reply

    def unchanged(self) -> None:
        assert self.run(self.snapshot()) == self.baseline

    def close(self) -> None:
        self.run(self.nc.close())
        self.loop.close()
        self.controller.stop()
        self.host.stop()
        self.server.stop()


@pytest.fixture(scope="module")
def lattice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lattice]:
    lat = Lattice(tmp_path_factory.mktemp("malformed"))
    yield lat
    lat.close()


def test_the_baseline_is_what_the_tests_below_rely_on(lattice: Lattice) -> None:
    base = lattice.baseline
    assert base["versions"] == [("v1", True), ("v2", False)]
    assert base["status"] == "deployed"
    assert (COUNTER_ID, f"file://{COUNTER_WASM}", 1) in base["components"]
    assert [p[0] for p in base["providers"]] == [KV_ID]
    assert base["config"][GREETING] == {"greeting": "hi"}
    assert base["labels"]["probe"] == "yes"
    assert len(base["links"]) == 1


# --- the wadm API: the data-loss bug and its relatives --------------------------------------
@pytest.mark.parametrize(
    ("operation", "payload", "problem"),
    [
        ("del", {"version": ["x"]}, "version: expected a string, got a list"),
        ("del", {"version": 5}, "version: expected a string, got a number (5)"),
        ("del", {"version": {"name": "v1"}}, "version: expected a string, got an object"),
        ("deploy", {"version": ["v2"]}, "version: expected a string, got a list"),
        ("deploy", {"version": 2}, "version: expected a string, got a number (2)"),
        ("get", {"version": ["v1"]}, "version: expected a string, got a list"),
        ("get", {"version": True}, "version: expected a string, got true"),
        ("undeploy", ["now"], "expected a JSON object, got a list"),
    ],
)
def test_wadm_request_with_a_wrong_typed_field_is_refused_and_changes_nothing(
    lattice: Lattice, operation: str, payload: object, problem: str
) -> None:
    reply = lattice.request(
        wadm_api_subject("default", operation, APP), json.dumps(payload).encode()
    )
    assert reply["result"] == "error"
    assert reply["message"] == f"invalid model.{operation} request: {problem}"
    lattice.unchanged()


def test_an_empty_version_is_no_version_to_delete_or_deploy(lattice: Lattice) -> None:
    reply = lattice.request(wadm_api_subject("default", "del", APP), body({"version": ""}))
    assert reply["result"] == "noop"
    reply = lattice.request(wadm_api_subject("default", "deploy", APP), body({"version": ""}))
    assert (reply["result"], reply["message"]) == (
        "error",
        'Version "" of probe not found; stored versions: v1, v2',
    )
    lattice.unchanged()


# --- the control interface ----------------------------------------------------------------
def ctl_cases(lattice: Lattice) -> dict[str, tuple[str, dict[str, Any]]]:
    """operation -> (subject, a valid request that would change the lattice)."""
    s, host = lattice.subjects, lattice.host_id
    [link] = [json.loads(text) for text in lattice.baseline["links"]]
    return {
        "component.scale": (
            s.component_scale(host),
            {
                "component_id": COUNTER_ID,
                "component_ref": f"file://{COUNTER_WASM}",
                "count": 0,
                "host_id": host,
                "annotations": {},
                "config": [],
                "allow_update": False,
            },
        ),
        "component.update": (
            s.component_update(host),
            {"component_id": COUNTER_ID, "new_component_ref": "file:///nowhere.wasm"},
        ),
        "provider.start": (
            s.provider_start(host),
            {"provider_id": "probe-extra", "provider_ref": "builtin:keyvalue-inmemory"},
        ),
        "provider.stop": (s.provider_stop(host), {"provider_id": KV_ID, "host_id": host}),
        "host.stop": (s.host_stop(host), {"host_id": host, "timeout": 1}),
        "label.put": (s.label_put(host), {"key": "probe", "value": "changed"}),
        "label.del": (s.label_del(host), {"key": "probe", "value": ""}),
        "link.put": (s.link_put(), {**link, "name": "extra"}),
        "link.del": (
            s.link_del(),
            {k: link[k] for k in ("source_id", "name", "wit_namespace", "wit_package")},
        ),
    }


@pytest.mark.parametrize(
    ("operation", "field", "value", "problem"),
    [
        ("component.scale", "count", "0", 'count: expected a whole number, got a string ("0")'),
        ("component.scale", "count", -1, "count: expected a number at least 0, got a number (-1)"),
        ("component.scale", "count", 1.5, "count: expected a whole number, got a number (1.5)"),
        ("component.scale", "annotations", {"k": 1},
         "annotations.k: expected a string, got a number (1)"),
        ("component.update", "new_component_ref", 5,
         "new_component_ref: expected a string, got a number (5)"),
        ("provider.start", "provider_ref", ["x"], "provider_ref: expected a string, got a list"),
        ("provider.stop", "provider_id", 7, "provider_id: expected a string, got a number (7)"),
        ("host.stop", "timeout", "10", 'timeout: expected a whole number, got a string ("10")'),
        ("label.put", "value", 5, "value: expected a string, got a number (5)"),
        ("label.del", "key", ["probe"], "key: expected a string, got a list"),
        ("link.put", "interfaces", "store", 'interfaces: expected a list, got a string ("store")'),
        ("link.del", "wit_package", 3, "wit_package: expected a string, got a number (3)"),
    ],
)  # fmt: skip
def test_control_request_with_a_wrong_field_is_refused_and_changes_nothing(
    lattice: Lattice, operation: str, field: str, value: object, problem: str
) -> None:
    subject, valid = ctl_cases(lattice)[operation]
    reply = lattice.request(subject, body({**valid, field: value}))
    assert reply["success"] is False
    what = "label" if operation.startswith("label.") else operation
    assert reply["message"] == f"invalid {what} request: {problem}"
    lattice.unchanged()


def test_config_put_with_a_non_string_value_is_refused_and_changes_nothing(
    lattice: Lattice,
) -> None:
    for name in (GREETING, EXTRA_CONFIG):
        reply = lattice.request(
            lattice.subjects.config_put(name), body({"greeting": "changed", "port": 8080})
        )
        assert reply["success"] is False
        assert "port: expected a string, got a number (8080)" in reply["message"]
        assert "config data should be a map of string -> string" in reply["message"]
    lattice.unchanged()


# --- what providers receive -----------------------------------------------------------------
def test_a_provider_refuses_malformed_pushes_naming_the_field_and_keeps_serving(
    lattice: Lattice,
) -> None:
    [link] = [json.loads(text) for text in lattice.baseline["links"]]

    def to_provider(operation: str, payload: bytes) -> str:
        msg = lattice.run(
            lattice.nc.request(provider_rpc_subject("default", KV_ID, operation), payload, 5)
        )
        return msg.data.decode()

    pushed = {**link, "source_config": {}, "target_config": {}, "interfaces": "store"}
    # Link pushes carry config (secrets among it), so their refusals never quote strings.
    assert to_provider(LINK_PUT, body(pushed)) == (
        "invalid link definition: interfaces: expected a list, got a string"
    )
    assert to_provider(CONFIG_UPDATE, body({"greeting": 1})) == (
        "invalid config update: greeting: expected a string, got a number (1)"
    )
    assert to_provider(SHUTDOWN, body({"host_id": [lattice.host_id]})) == (
        "invalid shutdown request: host_id: expected a string, got a list"
    )
    assert json.loads(to_provider(HEALTH, b""))["healthy"] is True
    lattice.unchanged()


# --- any wrong-typed field ------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_request_with_a_wrong_typed_field_is_refused_and_changes_nothing(
    lattice: Lattice, data: st.DataObject
) -> None:
    """A valid request that would change the lattice, with one known field replaced by a
    value of another JSON kind: the reply names the field and the lattice is unchanged."""
    cases = {("ctl", op): case for op, case in ctl_cases(lattice).items()}
    cases |= {
        ("wadm", op): (wadm_api_subject("default", op, APP), {"version": version})
        for op, version in (("del", "v1"), ("deploy", "v2"), ("get", "v1"))
    }
    cases[("config", "put")] = (
        lattice.subjects.config_put(data.draw(st.sampled_from([GREETING, EXTRA_CONFIG]))),
        {"greeting": "changed", "colour": "red"},
    )
    surface, operation = data.draw(st.sampled_from(sorted(cases)))
    subject, valid = cases[surface, operation]
    kinds = (
        WADM_FIELDS[operation]
        if surface == "wadm"
        else CTL_FIELDS[operation]
        if surface == "ctl"
        else {key: {"string"} for key in valid}
    )
    field = data.draw(st.sampled_from(sorted(kinds)))
    reply = lattice.request(subject, body({**valid, field: data.draw(wrong_value(kinds[field]))}))
    if surface == "wadm":
        assert reply["result"] == "error", reply
    else:
        assert reply["success"] is False, reply
    assert names_field(reply["message"], field), reply["message"]
    lattice.unchanged()
