"""wrpc:blobstore over a real nats-server between the host's side (LinkedBlobstore, as a
component's worker thread calls it) and the blobstore-fs provider's server: objects larger
than one NATS message cross both ways in chunks, every function answers, errors arrive as
the provider's sentences. No host process: the provider runs in this test's event loop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import nats

from host_agent.host.linked_blobstore import LinkedBlobstore
from host_agent.host.links import LinkIndex
from host_agent.interfaces.blobstore import BlobstoreError, ObjectId
from host_agent.lattice.protocol import Link
from host_agent.providers import blobstore_fs
from host_agent.providers.blobstore_server import BlobstoreProvider
from host_agent.providers.contract import HostData, InterfaceLinkDefinition
from host_agent.wrpc.transport import WrpcClient
from tests.lattice import NatsServer, run_async


@run_async
async def test_every_function_and_multi_message_objects(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    provider_nc = await nats.connect(nats_server.url)
    host_nc = await nats.connect(nats_server.url)
    provider = BlobstoreProvider(blobstore_fs.backend)
    host = HostData(
        host_id="h",
        lattice_rpc_prefix="default",
        lattice_rpc_url=nats_server.url,
        provider_key="store",
        instance_id="i",
    )
    try:
        await provider.start(host, provider_nc)
        root = tmp_path / "root"
        await provider.link_put(
            InterfaceLinkDefinition(
                source_id="comp",
                target="store",
                wit_namespace="wasi",
                wit_package="blobstore",
                interfaces=["blobstore"],
                target_config={"ROOT": str(root)},
            )
        )
        await provider_nc.flush()
        link = Link(
            source_id="comp",
            target="store",
            wit_namespace="wasi",
            wit_package="blobstore",
            interfaces=["blobstore"],
        )
        store = LinkedBlobstore(
            "comp",
            lambda: LinkIndex([link]),
            WrpcClient(host_nc, "default"),
            asyncio.get_running_loop(),
        )
        big = os.urandom(3 * 1024 * 1024 + 5)  # three NATS messages' worth

        def calls() -> None:  # a component's worker thread: blocking calls
            assert not store.container_exists("c")
            store.create_container("c")
            assert store.container_exists("c")
            assert store.container_info("c") > 0
            store.write_data(ObjectId("c", "big"), big)
            store.write_data(ObjectId("c", "empty"), b"")
            assert store.get_data(ObjectId("c", "big"), 0, len(big) - 1) == big
            assert store.get_data(ObjectId("c", "big"), 10, 19) == big[10:20]
            assert store.get_data(ObjectId("c", "empty"), 0, 0) == b""
            assert store.object_info(ObjectId("c", "big")).size == len(big)
            assert store.has_object(ObjectId("c", "big"))
            store.copy_object(ObjectId("c", "big"), ObjectId("c", "copy"))
            store.move_object(ObjectId("c", "copy"), ObjectId("c", "moved"))
            assert store.list_objects("c") == ["big", "empty", "moved"]
            store.delete_objects("c", ["big", "moved"])
            store.delete_object(ObjectId("c", "empty"))
            assert store.list_objects("c") == []
            try:
                store.get_data(ObjectId("nope", "x"), 0, 1)
            except BlobstoreError as error:
                assert str(error) == "container 'nope' does not exist; create it first"
            else:
                raise AssertionError("a missing container must be an error")
            store.write_data(ObjectId("c", "x"), b"1")
            store.clear_container("c")
            assert store.list_objects("c") == []
            store.delete_container("c")
            assert not store.container_exists("c")

        await asyncio.to_thread(calls)
        assert not root.joinpath("c").exists()
    finally:
        await provider.stop()
        await provider_nc.close()
        await host_nc.close()
