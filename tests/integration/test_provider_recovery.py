"""The native provider in-process over gRPC, served the way the plugin serves it
(``grpc_server``, with the engine's Log service played by the test so progress messages
can be read): failures as plain sentences, every Lattice property taking effect,
applications waiting for hosts to rejoin after a NATS restart, and deletes that fail
while instances still run. Real nats-server, controllers and hosts throughout."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc
from pulumi.runtime.rpc import UNKNOWN as UNKNOWN_SENTINEL

from host_agent.lattice.client import CtlClient
from host_agent.lattice.wadm import WadmClient
from host_agent.local.supervisor import ManagedProcess, listening, wait_for_exit
from pulumi_wasmcloud.provider import application_resource
from tests.lattice import (
    ControllerProcess,
    NatsServer,
    Processes,
    counter_manifest,
    free_port,
    run_async,
)
from tests.provider_grpc import plain, provider, struct

APP = "urn:pulumi:test::proj::wasmcloud:index:Application::counter"
LATTICE = "urn:pulumi:test::proj::wasmcloud:index:Lattice::lattice"


def host_urn(name: str) -> str:
    return f"urn:pulumi:test::proj::wasmcloud:index:Host::{name}"


async def create(
    stub: provider_pb2_grpc.ResourceProviderStub, urn: str, news: dict[str, Any]
) -> provider_pb2.CreateResponse:
    checked = await stub.Check(provider_pb2.CheckRequest(urn=urn, news=struct(news)))
    assert list(checked.failures) == [], checked.failures
    return await stub.Create(
        provider_pb2.CreateRequest(urn=urn, properties=checked.inputs, timeout=120)
    )


async def until_a_host_answers(url: str) -> None:
    nc = await nats.connect(url)
    try:
        while not await CtlClient(nc, "default").ping_hosts(wait=0.3):
            await asyncio.sleep(0.1)  # "no responders" comes back at once: pace the pings
    finally:
        await nc.close()


def counter_alone(instances: int) -> dict[str, Any]:
    """The counter app with only its counter component, ``instances`` of it, no links."""
    app = counter_manifest("redis://127.0.0.1:1", free_port())
    counter = app["spec"]["components"][0]
    counter["traits"] = [{"type": "spreadscaler", "properties": {"instances": instances}}]
    app["spec"]["components"] = [counter]
    return app


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")


def pid_of(state_dir: Path, name: str) -> int:
    pid = ManagedProcess(name, state_dir).pid()
    assert pid is not None, f"{name} does not run"
    return pid


@asynccontextmanager
async def lattice_resource(
    stub: provider_pb2_grpc.ResourceProviderStub, state_dir: Path, **extra: Any
) -> AsyncIterator[provider_pb2.CreateResponse]:
    """A Lattice created through the provider; deleted (every process stopped) after."""
    created = await create(
        stub,
        LATTICE,
        # Plain: the tests talk to NATS as anyone (test_local_security.py covers secured).
        {
            "natsPort": free_port(),
            "stateDir": str(state_dir),
            "heartbeatSeconds": 2,
            "secure": False,
            **extra,
        },
    )
    try:
        yield created
    finally:
        for name in ("host-rejoin-core", "host-rejoin-edge", "controller", "redis-server"):
            ManagedProcess(name, state_dir).stop()
        ManagedProcess("nats-server", state_dir).stop()


# -- failures are sentences -------------------------------------------------------------


@run_async
async def test_failures_reach_the_engine_as_sentences_not_class_reprs() -> None:
    manifest = counter_manifest("redis://127.0.0.1:1", 1)
    async with provider() as (stub, _):
        # An unreachable lattice: what to check, not a connection error's repr.
        inputs = {
            "natsUrl": "nats://127.0.0.1:1",
            "lattice": "default",
            "allowUnplaced": False,
            "manifest": manifest,
            "unplaced": {"counter": 3},
        }
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Create(provider_pb2.CreateRequest(urn=APP, properties=struct(inputs)))
        details = str(raised.value.details())
        assert details.startswith("cannot reach NATS at nats://127.0.0.1:1: "), details
        assert "Is the lattice running?" in details and "nothing was changed" in details
        assert "<class" not in details and "Unexpected" not in details

        # A bug (state without a manifest) still reads as a sentence, with its type name.
        del inputs["manifest"]
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Create(provider_pb2.CreateRequest(urn=APP, properties=struct(inputs)))
        details = str(raised.value.details())
        assert details.startswith("internal error in the wasmcloud provider (KeyError"), details
        assert "<class" not in details

        # Optional methods stay UNIMPLEMENTED: the engine's handshake falls back on it.
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Handshake(provider_pb2.ProviderHandshakeRequest())
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


# -- Lattice updates take effect -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(180)
@run_async
async def test_lattice_updates_restart_what_reads_the_changed_value(tmp_path: Path) -> None:
    state_dir = tmp_path / "lattice"
    async with provider() as (stub, _), lattice_resource(stub, state_dir) as created:
        controller = pid_of(state_dir, "controller")
        nats_pid = pid_of(state_dir, "nats-server")
        redis_port = free_port()
        news = {**plain(created.properties), "heartbeatSeconds": 7, "redisPort": redis_port}
        checked = await stub.Check(
            provider_pb2.CheckRequest(urn=LATTICE, olds=created.properties, news=struct(news))
        )
        diff = await stub.Diff(
            provider_pb2.DiffRequest(
                id=created.id, urn=LATTICE, olds=created.properties, news=checked.inputs
            )
        )
        assert set(diff.diffs) == {"heartbeatSeconds", "redisPort"}
        assert list(diff.replaces) == []  # in place, so the update must apply them itself

        await stub.Update(
            provider_pb2.UpdateRequest(
                id=created.id, urn=LATTICE, olds=created.properties, news=checked.inputs
            )
        )
        restarted = pid_of(state_dir, "controller")
        assert restarted != controller
        argv = cmdline(restarted)
        assert argv[argv.index("--heartbeat-interval") + 1] == "7"
        assert pid_of(state_dir, "nats-server") == nats_pid  # untouched
        assert listening(redis_port)
        # The update returned once the new controller answers the wadm API.
        nc = await nats.connect(str(plain(created.properties)["natsUrl"]))
        try:
            assert (await WadmClient(nc, "default", timeout=1.0).list()).models == []
        finally:
            await nc.close()


@run_async
async def test_wrongly_typed_lattice_inputs_are_refused_by_name() -> None:
    async with provider() as (stub, _):
        news = {"natsPort": "4222", "heartbeatSeconds": 0, "stateDir": 5}
        checked = await stub.Check(provider_pb2.CheckRequest(urn=LATTICE, news=struct(news)))
        assert sorted(f.property for f in checked.failures) == [
            "heartbeatSeconds",
            "natsPort",
            "stateDir",
        ]


@run_async
async def test_unknown_lattice_inputs_are_checked_once_known() -> None:
    """Values that are outputs of resources still to be created reach check as unknown
    in preview: not refused as wrongly typed, and the lattice's natsUrl is unknown too."""
    async with provider() as (stub, _):
        news = {"natsPort": UNKNOWN_SENTINEL, "heartbeatSeconds": UNKNOWN_SENTINEL}
        checked = await stub.Check(provider_pb2.CheckRequest(urn=LATTICE, news=struct(news)))
        assert list(checked.failures) == []
        created = await stub.Create(
            provider_pb2.CreateRequest(urn=LATTICE, properties=checked.inputs, preview=True)
        )
        assert plain(created.properties)["natsUrl"] == UNKNOWN_SENTINEL


# -- one up after a NATS crash ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(240)
@run_async
async def test_after_a_nats_restart_check_waits_for_the_hosts_in_state(tmp_path: Path) -> None:
    state_dir = tmp_path / "lattice"
    async with provider() as (stub, log), lattice_resource(stub, state_dir) as lattice:
        url = str(plain(lattice.properties)["natsUrl"])
        hosts = {}
        for tier in ("core", "edge"):
            created = await create(
                stub,
                host_urn(f"rejoin-{tier}"),
                {
                    "name": f"rejoin-{tier}",
                    "natsUrl": url,
                    "labels": {"tier": tier},
                    "stateDir": str(state_dir),
                    "heartbeatSeconds": 2,
                },
            )
            hosts[tier] = created
        manifest = counter_manifest("redis://127.0.0.1:1", free_port())
        app = {"manifest": manifest, "natsUrl": url}
        checked = await stub.Check(provider_pb2.CheckRequest(urn=APP, news=struct(app)))
        assert list(checked.failures) == []
        before = plain(checked.inputs)["placement"]
        assert sum(before["counter"].values()) == 3

        # What `up` does after `kill -9` of nats-server: the Lattice's diff sees it dead,
        # its update restarts it, and the hosts (still running) reconnect. The hosts are
        # paused across the restart so the check surely comes before they are back.
        host_pids = [pid_of(state_dir, f"host-rejoin-{tier}") for tier in hosts]
        for pid in host_pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            nats_pid = pid_of(state_dir, "nats-server")
            os.kill(nats_pid, signal.SIGKILL)
            assert await wait_for_exit(nats_pid, 10)
            lattice_state = await stub.Read(
                provider_pb2.ReadRequest(id=lattice.id, urn=LATTICE, properties=lattice.properties)
            )
            assert plain(lattice_state.properties)["running"] is False
            await stub.Update(
                provider_pb2.UpdateRequest(
                    id=lattice.id,
                    urn=LATTICE,
                    olds=lattice_state.properties,
                    news=lattice.properties,
                )
            )
            for tier, created in hosts.items():  # the engine diffs each Host (unchanged)
                await stub.Diff(
                    provider_pb2.DiffRequest(
                        id=created.id,
                        urn=host_urn(f"rejoin-{tier}"),
                        olds=created.properties,
                        news=created.properties,
                    )
                )
            log.messages.clear()
            log.arrived.clear()
            rechecking = asyncio.ensure_future(
                stub.Check(
                    provider_pb2.CheckRequest(urn=APP, olds=checked.inputs, news=struct(app))
                )
            )
            await asyncio.wait_for(log.arrived.wait(), 30)  # the first progress message
            assert not rechecking.done()
            waiting = log.messages[0]
            assert waiting.startswith("waiting for 2 host(s) to rejoin the lattice ("), waiting
            assert "rejoin-core" in waiting and "rejoin-edge" in waiting
        finally:
            for pid in host_pids:
                os.kill(pid, signal.SIGCONT)
        rechecked = await rechecking
        assert list(rechecked.failures) == []
        assert plain(rechecked.inputs)["placement"] == before
        assert plain(rechecked.inputs)["unplaced"] == {}


@pytest.mark.slow
@pytest.mark.timeout(240)
@run_async
async def test_create_plans_again_when_check_ran_before_its_hosts_joined(
    nats_server: NatsServer, processes: Processes
) -> None:
    """`up` checks an Application before it runs the Host steps the Application depends
    on: a host that this update starts (or restarts) was not in the lattice then. Create
    plans again on the lattice as it is, instead of refusing the check's stale plan."""
    processes.controller()
    app = counter_alone(2)
    async with provider(nats_server.url) as (stub, _):
        checked = await stub.Check(
            provider_pb2.CheckRequest(urn=APP, news=struct({"manifest": app}))
        )
        assert list(checked.failures) == []
        assert plain(checked.inputs)["unplaced"] == {"counter": 2}

        processes.host(tier="edge")
        await until_a_host_answers(nats_server.url)
        created = await stub.Create(
            provider_pb2.CreateRequest(urn=APP, properties=checked.inputs, timeout=120)
        )
        outputs = plain(created.properties)
        assert outputs["status"] == "deployed"
        assert outputs["unplaced"] == {}
        assert sum(outputs["placement"]["counter"].values()) == 2


# -- delete fails while instances still run ---------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(240)
@run_async
async def test_delete_fails_naming_what_still_runs_per_host(
    nats_server: NatsServer,
    processes: Processes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    processes.host(tier="edge")
    # A long leader lease: once the leader dies, the standby serves the wadm API at once
    # but reconciles nothing until the lease ages out, so deleted instances stay.
    leader = ControllerProcess(nats_server, "--lease-ttl", "120", log=tmp_path / "leader.log")
    standby = None
    app = counter_alone(2)
    try:
        await until_a_host_answers(nats_server.url)
        async with provider(nats_server.url) as (stub, _):
            created = await create(stub, APP, {"manifest": app})
            assert plain(created.properties)["status"] == "deployed"
            running = plain(created.properties)["placement"]["counter"]
            [(host_name, count)] = running.items()
            assert count == 2

            leader.kill()
            standby = ControllerProcess(
                nats_server, "--lease-ttl", "120", log=tmp_path / "standby.log"
            )
            nc = await nats.connect(nats_server.url)
            try:
                while True:  # the standby answers the API (a reply, not "no responders")
                    try:
                        await WadmClient(nc, "default", timeout=1.0).list()
                        break
                    except nats.errors.NoRespondersError:
                        await asyncio.sleep(0.1)
            finally:
                await nc.close()

            monkeypatch.setattr(application_resource, "DELETE_TIMEOUT", 2.0)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Delete(
                    provider_pb2.DeleteRequest(id="counter", urn=APP, properties=created.properties)
                )
            details = str(raised.value.details())
            assert "counter was deleted from the controller" in details, details
            assert f"on {host_name}: counter x2" in details, details
    finally:
        leader.stop()
        if standby is not None:
            standby.stop()


# -- an update fixing a failed version --------------------------------------------------


@run_async
async def test_an_update_fixing_a_failed_version_is_not_failed_by_its_old_status(
    nats_server: NatsServer, processes: Processes
) -> None:
    """Version 1 asks for a tier no host has and is "failed"; version 2 asks for the tier
    the host has. wadm keeps the last status until its next reconcile, so the update may
    first read version 1's "failed": it must wait for version 2's own status instead of
    failing on the one it fixes."""
    processes.controller()
    processes.host(tier="edge")
    await until_a_host_answers(nats_server.url)
    app = counter_alone(1)
    spread = app["spec"]["components"][0]["traits"][0]["properties"]
    spread["spread"] = [{"name": "core", "requirements": {"tier": "core"}}]
    async with provider(nats_server.url) as (stub, _):
        created = await create(stub, APP, {"manifest": app, "allowUnplaced": True})
        assert plain(created.properties)["status"] == "failed"

        spread["spread"] = [{"name": "edge", "requirements": {"tier": "edge"}}]
        checked = await stub.Check(
            provider_pb2.CheckRequest(
                urn=APP, olds=created.properties, news=struct({"manifest": app})
            )
        )
        assert list(checked.failures) == []
        updated = await stub.Update(
            provider_pb2.UpdateRequest(
                id="counter", urn=APP, olds=created.properties, news=checked.inputs, timeout=120
            )
        )
        after = plain(updated.properties)
        assert after["status"] == "deployed"
        assert sum(after["placement"]["counter"].values()) == 1


@run_async
async def test_a_failure_that_lasts_fails_the_create_naming_it(
    nats_server: NatsServer, processes: Processes
) -> None:
    """A failure that is the version's own (its component's file does not exist, though
    our plan places it) fails `up` with the controller's message, after FAILED_GRACE."""
    processes.controller()
    processes.host(tier="edge")
    await until_a_host_answers(nats_server.url)
    app = counter_alone(1)
    app["spec"]["components"][0]["properties"]["image"] = "file:///nonexistent/counter.wasm"
    async with provider(nats_server.url) as (stub, _):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await create(stub, APP, {"manifest": app})
        assert "counter failed to deploy" in str(failed.value.details())
        assert "/nonexistent/counter.wasm" in str(failed.value.details())
