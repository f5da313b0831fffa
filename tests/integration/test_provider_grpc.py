"""The native provider in-process, called over gRPC in the order the Pulumi engine calls
it (CheckConfig, Configure, Check, Diff, Create, Read, Update, Delete), against a real
lattice: nats-server, redis-server, host processes and the controller."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path
from typing import Any

import grpc
import nats
import nats.errors
import pytest
from google.protobuf import struct_pb2
from nats.aio.client import RawCredentials
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from host_agent.lattice.client import CtlClient
from host_agent.lattice.wadm import WadmClient
from host_agent.local.supervisor import listening
from tests.lattice import (
    VENV_BIN,
    ControllerProcess,
    NatsServer,
    Processes,
    RedisServer,
    counter_manifest,
    eventually_get,
    free_port,
    run_async,
)
from tests.nats_auth import operator_auth
from tests.provider_grpc import PROVIDER_URN, plain, provider, struct

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

APP = "urn:pulumi:test::proj::wasmcloud:index:Application::counter"


async def check(
    stub: provider_pb2_grpc.ResourceProviderStub,
    news: dict[str, Any],
    olds: struct_pb2.Struct | None = None,
) -> provider_pb2.CheckResponse:
    return await stub.Check(provider_pb2.CheckRequest(urn=APP, olds=olds, news=struct(news)))


async def hosts_by_tier(nats_url: str, count: int) -> dict[str, str]:
    """Wait until ``count`` hosts answer; tier label -> host id."""
    nc = await nats.connect(nats_url)
    try:
        for _ in range(100):
            hosts = await CtlClient(nc, "default").ping_hosts(wait=0.3)
            if len(hosts) >= count:
                return {str(h["labels"].get("tier")): str(h["id"]) for h in hosts}
            await asyncio.sleep(0.2)  # no responders yet: the reply comes back at once
        raise AssertionError(f"fewer than {count} hosts answered")
    finally:
        await nc.close()


async def placement_of(nats_url: str) -> dict[str, int]:
    """Host id -> counter instances, from the hosts."""
    nc = await nats.connect(nats_url)
    try:
        ctl = CtlClient(nc, "default")
        counts = {}
        for host in await ctl.ping_hosts(wait=0.5):
            for component in (await ctl.get_inventory(str(host["id"])))["components"]:
                counts[str(host["id"])] = int(component["max_instances"])
        return counts
    finally:
        await nc.close()


@run_async
async def test_engine_order_create_read_update_delete(
    nats_server: NatsServer, redis_server: RedisServer, processes: Processes
) -> None:
    _, edge = processes.host(tier="core"), processes.host(tier="edge")
    processes.controller()
    hosts = await hosts_by_tier(nats_server.url, 2)
    port = free_port()
    manifest = counter_manifest(redis_server.url, port)
    async with provider(nats_server.url) as (stub, _):
        checked = await check(stub, {"manifest": manifest})
        assert list(checked.failures) == []
        inputs = plain(checked.inputs)
        assert inputs["name"] == "counter" and inputs["unplaced"] == {}
        planned = inputs["placement"]
        assert sum(planned["counter"].values()) == 3  # host names -> instances

        created = await stub.Create(
            provider_pb2.CreateRequest(urn=APP, properties=checked.inputs, timeout=120)
        )
        state = plain(created.properties)
        assert created.id == "counter"
        assert (state["version"], state["status"]) == ("v0.1.0", "deployed")
        assert state["placement"] == planned
        assert await eventually_get(f"http://127.0.0.1:{port}/hello") == b"hello -> 1"

        read = await stub.Read(
            provider_pb2.ReadRequest(id="counter", urn=APP, properties=created.properties)
        )
        assert plain(read.properties)["placement"] == planned

        # Move the counter to the core host with 5 instances: the diff names the hosts.
        scaler = manifest["spec"]["components"][0]["traits"][0]["properties"]
        scaler["instances"] = 5
        scaler["spread"] = [{"name": "core", "requirements": {"tier": "core"}}]
        rechecked = await check(stub, {"manifest": manifest}, olds=created.properties)
        diff = await stub.Diff(
            provider_pb2.DiffRequest(
                id="counter", urn=APP, olds=created.properties, news=rechecked.inputs
            )
        )
        assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME
        assert list(diff.replaces) == []
        moved = plain(rechecked.inputs)["placement"]["counter"]
        assert list(moved.values()) == [5]
        assert f'placement.counter["{next(iter(moved))}"]' in diff.detailedDiff

        updated = await stub.Update(
            provider_pb2.UpdateRequest(
                id="counter", urn=APP, olds=created.properties, news=rechecked.inputs, timeout=120
            )
        )
        after = plain(updated.properties)
        assert after["placement"]["counter"] == moved
        # wadm keeps versions immutable: new content under v0.1.0 gets a content suffix.
        assert after["version"].startswith("v0.1.0+")
        assert await placement_of(nats_server.url) == {hosts["core"]: 5}

        # Import by name: only the id is known; the stack config says which lattice.
        imported = await stub.Read(provider_pb2.ReadRequest(id="counter", urn=APP))
        assert plain(imported.inputs)["manifest"]["metadata"]["name"] == "counter"
        assert plain(imported.properties)["placement"]["counter"] == moved
        assert plain(imported.properties)["status"] == "deployed"

        await stub.Delete(
            provider_pb2.DeleteRequest(id="counter", urn=APP, properties=updated.properties)
        )
        nc = await nats.connect(nats_server.url)
        assert (await WadmClient(nc, "default").list()).models == []
        await nc.close()
        assert await placement_of(nats_server.url) == {}
        assert edge.proc.poll() is None  # hosts are not the application's to stop


@run_async
async def test_check_names_the_field_and_the_fix(tmp_path: Path) -> None:
    broken = tmp_path / "wadm.yaml"
    broken.write_text("apiVersion: core.oam.dev/v1beta1\nkind: [unclosed\n")
    bad_instances = counter_manifest("redis://127.0.0.1:1", 1)
    bad_instances["spec"]["components"][0]["traits"][0]["properties"]["instances"] = -1
    async with provider("nats://127.0.0.1:1") as (stub, _):
        failures = (await check(stub, {"manifestPath": str(broken)})).failures
        assert [f.property for f in failures] == ["manifestPath"]
        assert "not valid YAML" in failures[0].reason and "line 3" in failures[0].reason

        failures = (await check(stub, {"manifest": bad_instances})).failures
        assert any("instances" in f.property for f in failures), failures

        failures = (await check(stub, {"manifest": bad_instances, "manifestPath": "x"})).failures
        assert "not both" in failures[0].reason

        # Wrongly typed inputs are refused by name, never read as a default or coerced:
        # "false" would otherwise be true, and 5 a lattice named "5".
        good = counter_manifest("redis://127.0.0.1:1", 1)
        wrong = {"allowUnplaced": "false", "lattice": 5, "natsUrl": 4222}
        failures = (await check(stub, {"manifest": good, **wrong})).failures
        assert sorted(f.property for f in failures) == sorted(wrong)
        failures = (await check(stub, {"manifestPath": 5})).failures
        assert [(f.property, f.reason) for f in failures] == [
            ("manifestPath", "expected a string, got a number (5)")  # the schema's
        ]


@run_async
async def test_the_provider_config_is_checked_naming_the_key() -> None:
    """`wasmcloud:natsUrl: 4222`, a misspelt key, or a credentials object is refused at
    CheckConfig, naming the key (the secret's value is not echoed); the engine's own
    `version` is not config."""
    async with provider() as (stub, _):

        async def failures(config: dict[str, Any]) -> list[tuple[str, str]]:
            checked = await stub.CheckConfig(
                provider_pb2.CheckRequest(urn=PROVIDER_URN, news=struct(config))
            )
            return [(f.property, f.reason) for f in checked.failures]

        good = {"natsUrl": "nats://127.0.0.1:4222", "lattice": "default", "version": "1.0.0"}
        assert await failures(good) == []
        assert await failures({"natsUrl": 4222}) == [
            ("natsUrl", "expected a string, got a number (4222)")
        ]
        [(key, reason)] = await failures({"natUrl": "nats://127.0.0.1:4222"})
        assert key == "natUrl" and 'did you mean "natsUrl"?' in reason
        [(key, reason)] = await failures({"credentials": {"jwt": "eyJ-secret"}})
        assert key == "credentials" and "eyJ-secret" not in reason


@run_async
async def test_unreachable_nats_is_named_and_nothing_is_created() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    async with provider(url) as (stub, _):
        checked = await check(stub, {"manifest": counter_manifest("redis://127.0.0.1:1", 1)})
        assert list(checked.failures) == []
        assert "placement" not in plain(checked.inputs)  # nothing to plan against
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Create(provider_pb2.CreateRequest(urn=APP, properties=checked.inputs))
        assert f"cannot reach NATS at {url}" in str(raised.value.details())


@run_async
async def test_credentials_from_the_provider_config(tmp_path: Path) -> None:
    """A lattice whose NATS requires a user JWT: without credentials create fails and says
    which setting to give; with them (wasmcloud:credentials) the application deploys."""
    port = free_port()
    auth = operator_auth(port, str(tmp_path / "jetstream"))
    (tmp_path / "nats.conf").write_text(auth.config)
    creds = tmp_path / "user.creds"
    creds.write_text(auth.creds)
    with (tmp_path / "nats.log").open("w") as log:
        server = subprocess.Popen(
            [str(VENV_BIN / "nats-server"), "-c", str(tmp_path / "nats.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    controller = None
    try:
        for _ in range(100):
            if listening(port):
                break
            await asyncio.sleep(0.1)
        url = f"nats://127.0.0.1:{port}"
        controller = ControllerProcess(
            NatsServer(tmp_path, port), "--nats-creds", str(creds), log=tmp_path / "c.log"
        )
        app = counter_manifest("redis://127.0.0.1:1", free_port())
        counter = app["spec"]["components"][0]  # alone, at 0 instances: no host needed
        counter["traits"] = [{"type": "spreadscaler", "properties": {"instances": 0}}]
        app["spec"]["components"] = [counter]
        nc = await nats.connect(url, user_credentials=RawCredentials(auth.creds))
        for _ in range(100):  # until the controller answers the wadm API
            with contextlib.suppress(nats.errors.Error):
                await WadmClient(nc, "default").list()
                break
            await asyncio.sleep(0.1)
        await nc.close()
        async with provider(url) as (stub, _):
            checked = await check(stub, {"manifest": app})
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Create(provider_pb2.CreateRequest(urn=APP, properties=checked.inputs))
            assert f"NATS at {url} refused the connection" in str(raised.value.details())
            assert "wasmcloud:credentials" in str(raised.value.details())
        async with provider(url, auth.creds) as (stub, _):
            checked = await check(stub, {"manifest": app})
            assert "placement" in plain(checked.inputs)  # it planned on the live lattice
            created = await stub.Create(
                provider_pb2.CreateRequest(urn=APP, properties=checked.inputs, timeout=60)
            )
            state = plain(created.properties)
            assert state["status"] == "deployed"
            assert auth.creds not in str(state)  # credentials never reach resource state
        async with provider(url) as (stub, _):
            # Without them, refresh and destroy fail naming the setting; neither reads the
            # refusal as a lattice that is gone (which would drop a deployed app from state).
            for call in (
                stub.Read(
                    provider_pb2.ReadRequest(id="counter", urn=APP, properties=created.properties)
                ),
                stub.Delete(
                    provider_pb2.DeleteRequest(id="counter", urn=APP, properties=created.properties)
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await call
                assert "wasmcloud:credentials" in str(raised.value.details())
        nc = await nats.connect(url, user_credentials=RawCredentials(auth.creds))
        try:
            models = (await WadmClient(nc, "default").list()).models
            assert [(m.name, m.deployed_version is not None) for m in models] == [("counter", True)]
        finally:
            await nc.close()
    finally:
        if controller is not None:
            controller.stop()
        server.terminate()
        server.wait(timeout=15)
