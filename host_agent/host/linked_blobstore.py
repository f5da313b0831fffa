"""wasi:blobstore for one component: each call goes, as wrpc:blobstore/blobstore@0.2.0, to
the provider the component's `wasi:blobstore` link names (link interfaces `[blobstore]`,
as in upstream manifests; container and types calls follow the same link).

Called from the component's worker thread; the wRPC call runs on the host's event loop
and the thread waits for it, as LinkedKeyValue does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from host_agent.host.links import LinkIndex
from host_agent.interfaces.blobstore import (
    WRPC_BLOBSTORE_INSTANCE,
    BlobstoreError,
    ObjectId,
    ObjectInfo,
)
from host_agent.wrpc import blobstore as wire
from host_agent.wrpc.codec import DecodeError
from host_agent.wrpc.transport import Payload, PendingPaths, WrpcClient, WrpcError

BLOBSTORE_TIMEOUT = 20.0  # an object of many MiB crosses NATS in 1 MiB messages


class LinkedBlobstore:
    def __init__(
        self,
        component_id: str,
        links: Callable[[], LinkIndex],
        client: WrpcClient,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.component_id = component_id
        self._links = links
        self._client = client
        self._loop = loop

    def _call(self, function: str, params: Payload, pending: PendingPaths | None = None) -> Payload:
        target = self._links().target_for(self.component_id, "wasi", "blobstore", "blobstore")
        if target is None:
            raise BlobstoreError(
                f"{self.component_id} has no link for wasi:blobstore/blobstore; put a link "
                "to a blobstore provider (interfaces: [blobstore])"
            )
        call = self._client.invoke(
            target,
            WRPC_BLOBSTORE_INSTANCE,
            function,
            params,
            pending_results=pending,
            source_id=self.component_id,
            timeout=BLOBSTORE_TIMEOUT,
        )
        future = asyncio.run_coroutine_threadsafe(call, self._loop)
        try:
            return future.result(BLOBSTORE_TIMEOUT + 1)
        except TimeoutError:
            future.cancel()
            raise BlobstoreError(f"blobstore provider {target} did not answer") from None
        except (WrpcError, DecodeError) as error:
            raise BlobstoreError(f"blobstore provider {target}: {error}") from None

    def create_container(self, name: str) -> None:
        wire.decode_unit(self._call("create-container", wire.name(name)))

    def container_exists(self, name: str) -> bool:
        return wire.decode_bool(self._call("container-exists", wire.name(name)))

    def delete_container(self, name: str) -> None:
        wire.decode_unit(self._call("delete-container", wire.name(name)))

    def clear_container(self, name: str) -> None:
        wire.decode_unit(self._call("clear-container", wire.name(name)))

    def container_info(self, name: str) -> int:
        return wire.decode_container_info(self._call("get-container-info", wire.name(name)))

    def list_objects(self, container: str) -> list[str]:
        params = wire.list_objects(container, None, None)
        results = self._call("list-container-objects", params, wire.pending_stream_paths)
        return wire.decode_names(results)

    def copy_object(self, src: ObjectId, dest: ObjectId) -> None:
        wire.decode_unit(self._call("copy-object", wire.src_dest(src, dest)))

    def move_object(self, src: ObjectId, dest: ObjectId) -> None:
        wire.decode_unit(self._call("move-object", wire.src_dest(src, dest)))

    def delete_object(self, id_: ObjectId) -> None:
        wire.decode_unit(self._call("delete-object", wire.object_id(id_)))

    def delete_objects(self, container: str, names: list[str]) -> None:
        wire.decode_unit(self._call("delete-objects", wire.delete_objects(container, names)))

    def has_object(self, id_: ObjectId) -> bool:
        return wire.decode_bool(self._call("has-object", wire.object_id(id_)))

    def object_info(self, id_: ObjectId) -> ObjectInfo:
        return wire.decode_object_info(self._call("get-object-info", wire.object_id(id_)))

    def get_data(self, id_: ObjectId, start: int, end: int) -> bytes:
        params = wire.get_data(id_, start, end)
        return wire.decode_data(self._call("get-container-data", params, wire.pending_stream_paths))

    def write_data(self, id_: ObjectId, data: bytes) -> None:
        wire.decode_written(self._call("write-container-data", wire.write_data(id_, data)))
