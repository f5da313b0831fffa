"""The provider's functions (``wasmcloud:index:getLattice``, ``planPlacement``) on a real
lattice: the provider in-process (served as the plugin serves it) against real hosts and
the controller, then a Pulumi program on the real CLI that declares a secured local
lattice, calls both with the Lattice's outputs and exports the results.

What a user would notice: getLattice lists every host with its labels and what runs on it
(by application); planPlacement gives the placement an Application's preview shows for
the same manifest, with what cannot be placed and why; a wrong lattice name, a malformed
manifest or a wrongly typed argument fails naming the argument.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

import pulumi_wasmcloud
from pulumi_wasmcloud import functions as sdk
from pulumi_wasmcloud.schema.functions import FUNCTIONS, OBJECT_TYPES
from pulumi_wasmcloud.schema.types import Property, Type
from tests.integration.test_provider_grpc import APP, check, hosts_by_tier
from tests.lattice import (
    COUNTER_WASM,
    NatsServer,
    Processes,
    counter_on_inmemory_kv,
    free_port,
    inmemory_kv,
    run_async,
    spreadscaler,
)
from tests.provider_grpc import plain, provider, struct
from tests.pulumi_cli import Stack, e2e_stack

pytestmark = [pytest.mark.timeout(600)]

GET_LATTICE = "wasmcloud:index:getLattice"
PLAN_PLACEMENT = "wasmcloud:index:planPlacement"
CORE = [{"name": "core", "requirements": {"tier": "core"}}]
EDGE = [{"name": "edge", "requirements": {"tier": "edge"}}]


def application(name: str, *components: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": name, "annotations": {"version": "v1"}},
        "spec": {"components": list(components)},
    }


# What runs before the functions read: the counter (2) on the core host, its keyvalue
# provider on the edge host.
RUNNING = application("running", counter_on_inmemory_kv(2, CORE), inmemory_kv(EDGE))
# What the functions plan: the counter split over both tiers, its provider on the core
# host, and a component that needs a tier no host has.
PLANNED = application(
    "planned",
    counter_on_inmemory_kv(
        4,
        [
            {"name": "core", "requirements": {"tier": "core"}, "weight": 50},
            {"name": "edge", "requirements": {"tier": "edge"}, "weight": 50},
        ],
    ),
    inmemory_kv(CORE),
    {
        "name": "gpu",
        "type": "component",
        "properties": {"image": f"file://{COUNTER_WASM}"},
        "traits": [spreadscaler(1, [{"name": "gpu", "requirements": {"tier": "gpu"}}])],
    },
)


async def invoke(
    stub: provider_pb2_grpc.ResourceProviderStub, token: str, args: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The function's result and its failures (argument -> reason)."""
    response = await stub.Invoke(provider_pb2.InvokeRequest(tok=token, args=struct(args)))
    failures = {f.property: f.reason for f in response.failures}
    return plain(getattr(response, "return")), failures


@run_async
async def test_get_lattice_lists_hosts_and_plan_placement_is_what_preview_shows(
    nats_server: NatsServer, processes: Processes
) -> None:
    if not COUNTER_WASM.exists():
        pytest.fail("the counter is not built: run scripts/bootstrap.sh")
    processes.host(tier="core"), processes.host(tier="edge")
    processes.controller()
    ids = await hosts_by_tier(nats_server.url, 2)
    async with provider(nats_server.url) as (stub, _):
        checked = await check(stub, {"manifest": RUNNING})
        assert list(checked.failures) == []
        await stub.Create(
            provider_pb2.CreateRequest(urn=APP, properties=checked.inputs, timeout=120)
        )

        # The provider's config gives natsUrl, as it does for resources.
        found, failures = await invoke(stub, GET_LATTICE, {})
        assert failures == {}
        assert (found["natsUrl"], found["lattice"]) == (nats_server.url, "default")
        hosts = {h["labels"]["tier"]: h for h in found["hosts"]}
        assert {tier: h["id"] for tier, h in hosts.items()} == ids
        core, edge = hosts["core"], hosts["edge"]
        assert [(c["id"], c["maxInstances"], c["application"]) for c in core["components"]] == [
            ("running-counter", 2, "running")
        ]
        assert core["components"][0]["imageRef"] == f"file://{COUNTER_WASM}"
        assert (core["providers"], edge["components"]) == ([], [])
        assert [(p["id"], p["application"]) for p in edge["providers"]] == [
            ("running-kv", "running")
        ]
        assert core["error"] is None and core["uptimeSeconds"] >= 0 and core["version"]

        # The plan is the placement an Application's preview shows for the same manifest.
        planned, failures = await invoke(stub, PLAN_PLACEMENT, {"manifest": PLANNED})
        assert failures == {}
        preview = plain((await check(stub, {"manifest": PLANNED})).inputs)
        assert planned["placement"] == preview["placement"]
        assert planned["unplaced"] == preview["unplaced"] == {"gpu": 1}
        names = {h["labels"]["tier"]: h["name"] for h in planned["hosts"]}
        assert planned["placement"] == {
            "counter": {names["core"]: 2, names["edge"]: 2},
            "kv": {names["core"]: 1},
            "gpu": {},
        }
        assert planned["problems"] == ["gpu: no hosts match spread 'gpu' (requirements: tier=gpu)"]
        # Nothing of "planned" runs yet: every placed instance is a move.
        assert planned["moves"] == {k: v for k, v in planned["placement"].items() if v}
        assert planned["application"] == "planned"
        assert planned["table"].splitlines()[0].split() == [
            "COMPONENT",
            "KIND",
            "SCALER",
            "HOST",
            "LABELS",
            "INSTANCES",
            "CHANGE",
        ]
        assert "5 instance(s) on 2 of 2 host(s); 1 unplaced" in planned["table"]
        assert "! gpu: no hosts match spread 'gpu'" in planned["table"]

        # A lattice of that name has neither a host nor a controller: named, not empty.
        for token, args in ((GET_LATTICE, {}), (PLAN_PLACEMENT, {"manifest": PLANNED})):
            _, failures = await invoke(stub, token, {**args, "lattice": "nosuch"})
            assert list(failures) == ["lattice"], failures
            assert "no host and no controller of lattice 'nosuch'" in failures["lattice"]


@run_async
async def test_bad_arguments_fail_naming_the_argument(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    broken = json.loads(json.dumps(PLANNED))
    broken["spec"]["components"][0]["traits"][0]["properties"]["instances"] = "two"
    unreadable = tmp_path / "wadm.yaml"
    unreadable.write_text("apiVersion: core.oam.dev/v1beta1\nkind: [unclosed\n")
    refused = f"nats://127.0.0.1:{free_port()}"
    async with provider(nats_server.url) as (stub, _):
        cases: list[tuple[str, dict[str, Any], str, str]] = [
            (
                PLAN_PLACEMENT,
                {"manifest": broken},
                "manifest.spec.components[0].traits[0].properties.instances",
                "",
            ),
            (PLAN_PLACEMENT, {"manifestPath": str(unreadable)}, "manifestPath", "not valid YAML"),
            (PLAN_PLACEMENT, {}, "manifest", "required"),
            (PLAN_PLACEMENT, {"manifest": PLANNED, "manifestPath": "x"}, "manifest", "not both"),
            (
                PLAN_PLACEMENT,
                {"manifestPath": 5},
                "manifestPath",
                "expected a string, got a number (5)",
            ),
            (GET_LATTICE, {"natsUrl": 4222}, "natsUrl", "expected a string, got a number (4222)"),
            (GET_LATTICE, {"lattice": 5}, "lattice", "expected a string, got a number (5)"),
            (GET_LATTICE, {"clientTls": "pem"}, "clientTls", "expected a map of string"),
            (GET_LATTICE, {"clientTls": {"certPem": "x"}}, "clientTls.caPem", "required"),
            (GET_LATTICE, {"clientTls": {"caPem": 1}}, "clientTls.caPem", "expected a string"),
            (GET_LATTICE, {"natsUrls": "nats://x"}, "natsUrls", 'did you mean "natsUrl"?'),
            (GET_LATTICE, {"credentials": "not a creds file"}, "credentials", ""),
            (
                GET_LATTICE,
                {"manifest": PLANNED},
                "manifest",
                "getLattice has no property 'manifest'",
            ),
            (GET_LATTICE, {"natsUrl": refused}, "natsUrl", f"cannot reach NATS at {refused}"),
        ]
        for token, args, argument, words in cases:
            result, failures = await invoke(stub, token, args)
            assert argument in failures, (args, failures)
            assert failures[argument].startswith(f"{argument}: ") and words in failures[argument]
            assert result == {}

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await invoke(stub, "wasmcloud:index:getLatice", {})
        assert raised.value.details() == (
            "unknown function wasmcloud:index:getLatice; this provider has: "
            f"{GET_LATTICE}, {PLAN_PLACEMENT}"
        )


def python_type(type_: Type) -> str:
    """The annotation the SDK gives a schema type (``from __future__ import annotations``
    keeps annotations as text)."""
    if type_.kind == "array":
        assert type_.items is not None
        return f"Sequence[{python_type(type_.items)}]"
    if type_.kind == "map":
        assert type_.items is not None
        return f"Mapping[str, {python_type(type_.items)}]"
    if type_.kind == "object":
        assert type_.ref is not None
        return type_.ref.rsplit(":", 1)[-1]
    return {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}[type_.kind]


def getters(cls: type) -> dict[str, tuple[str, str]]:
    """Wire name -> (Python name, annotation) of an output type's properties."""
    found = {}
    for name, member in vars(cls).items():
        if isinstance(member, property) and member.fget is not None:
            wire = getattr(member.fget, "_pulumi_name", None)
            assert wire is not None, f"{cls.__name__}.{name} is not a pulumi.getter"
            found[wire] = (name, member.fget.__annotations__["return"])
    return found


def expected(props: tuple[Property, ...]) -> dict[str, tuple[str, str]]:
    return {
        p.name: (p.python, python_type(p.type) + ("" if p.required else " | None")) for p in props
    }


def test_the_python_functions_and_result_types_match_the_schema() -> None:
    """A function, argument, result property or type added to one side only fails."""
    results = {"getLattice": sdk.GetLatticeResult, "planPlacement": sdk.PlanPlacementResult}
    assert sorted(results) == sorted(f.name for f in FUNCTIONS)
    for function in FUNCTIONS:
        python = function.name[0].lower() + "".join(
            f"_{c.lower()}" if c.isupper() else c for c in function.name[1:]
        )
        for form in (python, f"{python}_output"):
            parameters = list(inspect.signature(getattr(pulumi_wasmcloud, form)).parameters)
            assert sorted(parameters) == sorted([p.python for p in function.inputs] + ["opts"])
        assert getattr(sdk, python.upper()) == function.token
        assert getters(results[function.name]) == expected(function.outputs)
    for object_type in OBJECT_TYPES:
        assert getters(getattr(sdk, object_type.name)) == expected(object_type.properties)


# A program that declares a secured local lattice with two hosts and an application, then
# reads the lattice and plans another manifest with the Lattice's outputs.
PROGRAM = """
import json

import pulumi

import pulumi_wasmcloud as wasmcloud

config = pulumi.Config()
local = wasmcloud.Lattice(
    "local",
    nats_port=config.require_int("natsPort"),
    state_dir=config.require("stateDir"),
    heartbeat_seconds=2,
)
core = wasmcloud.Host("core", lattice=local, labels={"tier": "core"})
edge = wasmcloud.Host("edge", lattice=local, labels={"tier": "edge"})
running = wasmcloud.Application(
    "running",
    lattice=local,
    manifest=json.loads(config.require("running")),
    opts=pulumi.ResourceOptions(depends_on=[core, edge]),
)
connection = dict(
    nats_url=local.nats_url,
    lattice=config.get("lattice"),
    credentials=local.credentials,
    ca_cert=local.ca_cert,
)
after = pulumi.InvokeOutputOptions(depends_on=[running])
live = wasmcloud.get_lattice_output(**connection, opts=after)
plan = wasmcloud.plan_placement_output(
    manifest=json.loads(config.require("planned")), **connection, opts=after
)
pulumi.export(
    "hosts",
    live.hosts.apply(
        lambda hosts: {
            h.name: {
                "labels": dict(h.labels),
                "components": {c.id: [c.max_instances, c.application] for c in h.components},
                "providers": {p.id: p.application for p in h.providers},
            }
            for h in hosts
        }
    ),
)
pulumi.export("placement", plan.placement)
pulumi.export("unplaced", plan.unplaced)
pulumi.export("table", plan.table)
"""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    if not COUNTER_WASM.exists():
        pytest.fail("the counter is not built: run scripts/bootstrap.sh")
    settings = {"running": json.dumps(RUNNING), "planned": json.dumps(PLANNED)}
    make = lambda: Stack(tmp_path, "functions", PROGRAM, settings=settings)  # noqa: E731
    with e2e_stack(tmp_path, "functions", make) as made:
        yield made


@pytest.mark.slow
def test_a_program_reads_the_lattice_and_plans_with_its_outputs(stack: Stack) -> None:
    stack.up()
    outputs = json.loads(stack.run("stack", "output", "--json", "--show-secrets").stdout)
    hosts = outputs["hosts"]
    assert {name: host["labels"]["tier"] for name, host in hosts.items()} == {
        "core": "core",
        "edge": "edge",
    }
    assert hosts["core"]["labels"]["hostcore.os"] == "linux"  # the host's own labels too
    assert (hosts["core"]["components"], hosts["core"]["providers"]) == (
        {"running-counter": [2, "running"]},
        {},
    )
    assert (hosts["edge"]["components"], hosts["edge"]["providers"]) == (
        {},
        {"running-kv": "running"},
    )
    assert outputs["placement"] == {
        "counter": {"core": 2, "edge": 2},
        "kv": {"core": 1},
        "gpu": {},
    }
    assert outputs["unplaced"] == {"gpu": 1}
    assert "! gpu: no hosts match spread 'gpu' (requirements: tier=gpu)" in outputs["table"]

    # A lattice name nothing answers on: preview fails naming the argument.
    stack.config("lattice", "nosuch")
    failed = stack.run("preview", ok=False)
    assert failed.returncode != 0
    shown = failed.stdout + failed.stderr
    assert "no host and no controller of lattice 'nosuch' answers" in shown
    assert "(lattice)" in shown
    stack.config("lattice", None)

    # A malformed manifest: preview fails naming the path in the argument.
    broken = json.loads(json.dumps(PLANNED))
    broken["spec"]["components"][0]["traits"][0]["properties"]["instances"] = "two"
    stack.config("planned", json.dumps(broken))
    failed = stack.run("preview", ok=False)
    assert failed.returncode != 0
    shown = failed.stdout + failed.stderr
    assert f"invoke of {PLAN_PLACEMENT} failed" in shown
    assert "(manifest.spec.components[0].traits[0].properties.instances)" in shown
