"""The OCI registry beside a lattice, through the native provider over gRPC: the Lattice's
``registryPort`` runs a real docker-registry on loopback that answers the distribution API,
keeps its blobs under the state folder across a port change, goes away on delete, and the
lattice's hosts are allowed to pull from it over plain HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from pulumi.runtime.proto import provider_pb2

from host_agent.local.supervisor import ManagedProcess, listening
from pulumi_wasmcloud.provider.host_resource import host_environment
from tests.lattice import free_port, run_async
from tests.provider_grpc import plain, provider, struct
from tests.registry import http_status, put_blob

LATTICE = "urn:pulumi:test::proj::wasmcloud:index:Lattice::lattice"


@pytest.mark.slow
@pytest.mark.timeout(180)
@run_async
async def test_registry_runs_moves_with_its_port_and_goes_with_the_lattice(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "lattice"
    port, moved_port = free_port(), free_port()
    news = {
        "natsPort": free_port(),
        "stateDir": str(state_dir),
        "heartbeatSeconds": 2,
        "registryPort": port,
    }
    async with provider() as (stub, _):
        checked = await stub.Check(provider_pb2.CheckRequest(urn=LATTICE, news=struct(news)))
        assert list(checked.failures) == []
        created = await stub.Create(
            provider_pb2.CreateRequest(urn=LATTICE, properties=checked.inputs, timeout=120)
        )
        try:
            outputs = plain(created.properties)
            assert outputs["registryUrl"] == f"http://127.0.0.1:{port}"
            assert http_status(f"http://127.0.0.1:{port}/v2/") == 200
            digest = put_blob(outputs["registryUrl"], "counter", b"a component, say")
            assert (state_dir / "registry" / "docker").is_dir()  # blobs in the state folder

            # A new port: the registry moves, with what it stored.
            changed = {**outputs, "registryPort": moved_port}
            checked = await stub.Check(
                provider_pb2.CheckRequest(
                    urn=LATTICE, olds=created.properties, news=struct(changed)
                )
            )
            diff = await stub.Diff(
                provider_pb2.DiffRequest(
                    id=created.id, urn=LATTICE, olds=created.properties, news=checked.inputs
                )
            )
            assert set(diff.diffs) == {"registryPort"} and list(diff.replaces) == []
            updated = await stub.Update(
                provider_pb2.UpdateRequest(
                    id=created.id, urn=LATTICE, olds=created.properties, news=checked.inputs
                )
            )
            moved = plain(updated.properties)
            assert moved["registryUrl"] == f"http://127.0.0.1:{moved_port}"
            assert not listening(port)
            assert http_status(f"{moved['registryUrl']}/v2/counter/blobs/{digest}") == 200

            await stub.Delete(
                provider_pb2.DeleteRequest(
                    id=created.id, urn=LATTICE, properties=updated.properties
                )
            )
            assert not listening(moved_port)
            assert not ManagedProcess("registry", state_dir).running()
            assert not (state_dir / "registry").exists()
        finally:
            for name in ("controller", "registry", "nats-server"):
                ManagedProcess(name, state_dir).stop()


@run_async
async def test_registry_port_of_the_wrong_type_is_refused_by_name() -> None:
    async with provider() as (stub, _):
        news = {"natsPort": free_port(), "registryPort": "5000"}
        checked = await stub.Check(provider_pb2.CheckRequest(urn=LATTICE, news=struct(news)))
        assert [f.property for f in checked.failures] == ["registryPort"]


def test_hosts_of_a_lattice_with_a_registry_may_pull_from_it_over_http() -> None:
    state = {
        "seed": "SNOTREAL",
        "natsUrl": "nats://127.0.0.1:4222",
        "lattice": "default",
        "heartbeatSeconds": 5,
        "labels": {},
        "registryUrl": "http://127.0.0.1:5123",
    }
    env = host_environment(state, None, {"WASMCLOUD_OCI_ALLOWED_INSECURE": "10.0.0.5:5000"})
    assert env["WASMCLOUD_OCI_ALLOWED_INSECURE"] == "10.0.0.5:5000,127.0.0.1:5123"
    without = host_environment({**state, "registryUrl": None}, None, {})
    assert "WASMCLOUD_OCI_ALLOWED_INSECURE" not in without


@run_async
async def test_a_lattice_without_registry_says_so_with_a_known_value() -> None:
    """registryUrl is "" rather than null: a null output reads as unknown in preview, and
    every Host of the lattice would then show a change on each preview."""
    async with provider() as (stub, _):
        checked = await stub.Check(
            provider_pb2.CheckRequest(urn=LATTICE, news=struct({"natsPort": free_port()}))
        )
        created = await stub.Create(
            provider_pb2.CreateRequest(urn=LATTICE, properties=checked.inputs, preview=True)
        )
        assert plain(created.properties)["registryUrl"] == ""
