"""Every Host property takes effect: labels in place, natsUrl and heartbeatSeconds by
restarting the host with the same identity, the rest by replacing it. Real nats-server on
loopback, the Pulumi provider in process over gRPC, real host processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from host_agent.lattice.client import CtlClient
from host_agent.local.supervisor import ManagedProcess
from pulumi_wasmcloud.provider import host_resource
from tests.integration.test_remote_nats import check_host, cmdline, host_inputs, host_urn
from tests.lattice import NatsServer, run_async
from tests.provider_grpc import plain, provider, struct

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def environment(state_dir: Path, name: str) -> dict[str, str]:
    pid = ManagedProcess(f"host-{name}", state_dir).pid()
    assert pid is not None, f"host {name} does not run"
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)


async def ping(url: str, host_id: str) -> dict[str, Any]:
    nc = await nats.connect(url)
    try:
        hosts = await CtlClient(nc, "default").ping_hosts(wait=0.5)
    finally:
        await nc.close()
    [host] = [h for h in hosts if h["id"] == host_id]
    return host


async def change(
    stub: provider_pb2_grpc.ResourceProviderStub,
    host_id: str,
    olds: Any,
    news: dict[str, Any],
) -> tuple[provider_pb2.DiffResponse, provider_pb2.UpdateResponse | None]:
    """Check, Diff and (unless it replaces) Update, as the engine does for a change."""
    urn = host_urn(news["name"])
    checked = await check_host(stub, news)
    diff = await stub.Diff(
        provider_pb2.DiffRequest(id=host_id, urn=urn, olds=olds, news=checked.inputs)
    )
    if list(diff.replaces):
        return diff, None
    updated = await stub.Update(
        provider_pb2.UpdateRequest(id=host_id, urn=urn, olds=olds, news=checked.inputs, timeout=120)
    )
    return diff, updated


@run_async
async def test_every_host_property_takes_effect(nats_server: NatsServer, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    inputs = host_inputs("edge", nats_server.url, state_dir, tier="edge")
    urn = host_urn("edge")
    process = ManagedProcess("host-edge", state_dir)
    async with provider(nats_server.url) as (stub, _):
        checked = await check_host(stub, inputs)
        created = await stub.Create(
            provider_pb2.CreateRequest(urn=urn, properties=checked.inputs, timeout=120)
        )
        host_id, seed = created.id, plain(created.properties)["seed"]["value"]
        updated: provider_pb2.UpdateResponse | None = None
        try:
            first = process.pid()
            assert environment(state_dir, "edge")["WASMCLOUD_HEARTBEAT_INTERVAL"] == "1"

            # Labels change in place: same process.
            news = {**inputs, "labels": {"tier": "core"}}
            diff, updated = await change(stub, host_id, created.properties, news)
            assert list(diff.replaces) == [] and updated is not None
            assert process.pid() == first
            assert (await ping(nats_server.url, host_id))["labels"]["tier"] == "core"

            # heartbeatSeconds: the host restarts with the new interval and the same id.
            news = {**news, "heartbeatSeconds": 2}
            diff, updated = await change(stub, host_id, updated.properties, news)
            assert list(diff.diffs) == ["heartbeatSeconds"] and list(diff.replaces) == []
            assert updated is not None and process.pid() != first
            assert environment(state_dir, "edge")["WASMCLOUD_HEARTBEAT_INTERVAL"] == "2"
            assert (await ping(nats_server.url, host_id))["labels"]["tier"] == "core"

            # natsUrl: the host reconnects at the new address, still the same host.
            other_url = nats_server.url.replace("127.0.0.1", "localhost")
            news = {**news, "natsUrl": other_url}
            second = process.pid()
            diff, updated = await change(stub, host_id, updated.properties, news)
            assert list(diff.diffs) == ["natsUrl"] and list(diff.replaces) == []
            assert updated is not None and process.pid() != second
            assert (await ping(other_url, host_id))["ctl_host"] == other_url
            assert plain(updated.properties)["seed"]["value"] == seed
            assert seed not in cmdline(state_dir, "edge")

            # The rest replace the host.
            for field, value in (
                ("lattice", "other"),
                ("name", "edge-2"),
                ("stateDir", str(tmp_path / "elsewhere")),
                ("target", "local-2"),
            ):
                diff = await stub.Diff(
                    provider_pb2.DiffRequest(
                        id=host_id,
                        urn=urn,
                        olds=updated.properties,
                        news=struct({**plain(updated.properties), field: value}),
                    )
                )
                assert list(diff.replaces) == [field], field
        finally:
            state = updated.properties if updated is not None else created.properties
            await stub.Delete(provider_pb2.DeleteRequest(id=host_id, urn=urn, properties=state))
        assert process.pid() is None


@run_async
async def test_a_failed_create_leaves_no_host_and_the_next_create_succeeds(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create that fails after starting its host (here: the join wait runs out) stops
    that host, so the next `up` starts afresh; a host of the same name that the stack does
    not know is refused naming it, not waited on until the join times out."""
    state_dir = tmp_path / "state"
    inputs = host_inputs("edge", nats_server.url, state_dir)
    urn = host_urn("edge")
    process = ManagedProcess("host-edge", state_dir)
    try:
        async with provider(nats_server.url) as (stub, _):
            checked = await check_host(stub, inputs)
            monkeypatch.setattr(host_resource, "READY_TIMEOUT", 0.0)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Create(provider_pb2.CreateRequest(urn=urn, properties=checked.inputs))
            assert "host edge did not join lattice default" in str(raised.value.details())
            assert process.pid() is None

            monkeypatch.undo()
            created = await stub.Create(
                provider_pb2.CreateRequest(urn=urn, properties=checked.inputs, timeout=120)
            )
            assert (await ping(nats_server.url, created.id))["id"] == created.id
            await stub.Delete(
                provider_pb2.DeleteRequest(id=created.id, urn=urn, properties=created.properties)
            )
            assert process.pid() is None

            stranger, _ = process.start(["sleep", "60"])
            try:
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await stub.Create(
                        provider_pb2.CreateRequest(urn=urn, properties=checked.inputs)
                    )
                details = str(raised.value.details())
                assert details.startswith("name: a host process named edge already runs"), details
                assert f"(pid {stranger})" in details
                assert process.pid() == stranger  # not this resource's to stop
            finally:
                process.stop()
    finally:
        process.stop()  # whatever a failing assertion left running
