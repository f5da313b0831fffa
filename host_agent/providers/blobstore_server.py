"""The common part of the blobstore providers: serve wrpc:blobstore/blobstore@0.2.0.

Each link from a component (source) to this provider (target) gets its own backend, built
from the link's target_config (and secrets), as upstream's blobstore-fs and blobstore-s3
do per link; calls are routed by the `source-id` header the caller's host sets. A link
whose config is refused answers every call of its component with the reason and the fix,
so the component (and the user's curl) sees it, not only the provider's log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from nats.aio.client import Client as NatsClient

from host_agent.interfaces.blobstore import (
    WRPC_BLOBSTORE_INSTANCE,
    BlobstoreError,
    ObjectId,
    ObjectInfo,
)
from host_agent.providers.contract import HostData, InterfaceLinkDefinition
from host_agent.secrets.provider import host_secrets, link_secrets
from host_agent.wrpc import blobstore as wire
from host_agent.wrpc.transport import Payload, PendingPaths, WrpcServer

log = logging.getLogger("host_agent.provider.blobstore")


class LinkConfigError(ValueError):
    """A link's config is refused: the message names the field and the fix."""


class BlobstoreBackend(Protocol):
    async def create_container(self, name: str) -> None: ...
    async def container_exists(self, name: str) -> bool: ...
    async def delete_container(self, name: str) -> None: ...
    async def clear_container(self, name: str) -> None: ...
    async def container_info(self, name: str) -> int: ...
    async def list_objects(self, name: str, limit: int | None, offset: int | None) -> list[str]: ...
    async def copy_object(self, src: ObjectId, dest: ObjectId) -> None: ...
    async def move_object(self, src: ObjectId, dest: ObjectId) -> None: ...
    async def delete_object(self, id_: ObjectId) -> None: ...
    async def delete_objects(self, container: str, names: list[str]) -> None: ...
    async def has_object(self, id_: ObjectId) -> bool: ...
    async def object_info(self, id_: ObjectId) -> ObjectInfo: ...
    async def get_data(self, id_: ObjectId, start: int, end: int) -> bytes: ...
    async def write_data(self, id_: ObjectId, data: bytes) -> None: ...
    async def close(self) -> None: ...


# A backend from a link's target_config, its secrets (over the provider's own) and the
# source component's id; raises LinkConfigError for a config it refuses.
BackendFactory = Callable[[dict[str, str], dict[str, str], str], BlobstoreBackend]
Handler = Callable[[Payload, dict[str, str]], Awaitable[Payload]]


class BlobstoreProvider:
    def __init__(self, make_backend: BackendFactory) -> None:
        self._make_backend = make_backend
        self._backends: dict[str, BlobstoreBackend] = {}  # by source component id
        self._refused: dict[str, str] = {}  # source component id -> why its config was
        self._host: HostData | None = None
        self.provider_id = ""

    async def start(self, host: HostData, nc: NatsClient) -> None:
        self.provider_id = host.provider_key
        self._host = host
        server = WrpcServer(nc, host.lattice_rpc_prefix)
        for function, (handler, pending) in self._handlers().items():
            await server.serve(
                host.provider_key, WRPC_BLOBSTORE_INSTANCE, function, handler, pending
            )

    async def link_put(self, link: InterfaceLinkDefinition) -> None:
        if link.target != self.provider_id or (link.wit_namespace, link.wit_package) != (
            "wasi",
            "blobstore",
        ):
            return
        assert self._host is not None
        await self._forget(link.source_id)
        secrets = host_secrets(self._host) | link_secrets(link, self._host, "target")
        try:
            backend = self._make_backend(dict(link.target_config), secrets, link.source_id)
        except LinkConfigError as error:
            self._refused[link.source_id] = f"the link from {link.source_id}: {error}"
            log.warning("refused %s", self._refused[link.source_id])
            return
        self._backends[link.source_id] = backend
        log.info("link from %s ready (%s)", link.source_id, ", ".join(link.interfaces))

    async def link_del(self, link: InterfaceLinkDefinition) -> None:
        if link.target == self.provider_id:
            await self._forget(link.source_id)

    async def _forget(self, source: str) -> None:
        self._refused.pop(source, None)
        backend = self._backends.pop(source, None)
        if backend is not None:
            await backend.close()

    def _backend(self, headers: dict[str, str]) -> BlobstoreBackend:
        source = headers.get("source-id", "")
        refused = self._refused.get(source)
        if refused is not None:
            raise BlobstoreError(refused)
        backend = self._backends.get(source)
        if backend is None:
            # No provider-wide fallback: data goes only where a link's config says.
            raise BlobstoreError(
                f"no link from {source or 'an unnamed caller'} to {self.provider_id} has "
                "reached it yet"
            )
        return backend

    def _handlers(self) -> dict[str, tuple[Handler, PendingPaths | None]]:
        # Each backend method by its name: the Protocol's own functions are only stubs.
        def by_name(method: str, encode: Callable[[Any], Payload]) -> Handler:
            async def handle(params: Payload, headers: dict[str, str]) -> Payload:
                name = wire.read_name(params)
                return await wire.answer(getattr(self._backend(headers), method)(name), encode)

            return handle

        def by_id(method: str, encode: Callable[[Any], Payload]) -> Handler:
            async def handle(params: Payload, headers: dict[str, str]) -> Payload:
                id_ = wire.read_object_id(params)
                return await wire.answer(getattr(self._backend(headers), method)(id_), encode)

            return handle

        def by_pair(method: str) -> Handler:
            async def handle(params: Payload, headers: dict[str, str]) -> Payload:
                src, dest = wire.read_src_dest(params)
                call = getattr(self._backend(headers), method)(src, dest)
                return await wire.answer(call, wire.encode_unit)

            return handle

        async def list_objects(params: Payload, headers: dict[str, str]) -> Payload:
            name, limit, offset = wire.read_list_objects(params)
            backend = self._backend(headers)
            return await wire.answer(backend.list_objects(name, limit, offset), wire.encode_names)

        async def delete_objects(params: Payload, headers: dict[str, str]) -> Payload:
            container, names = wire.read_delete_objects(params)
            backend = self._backend(headers)
            return await wire.answer(backend.delete_objects(container, names), wire.encode_unit)

        async def get_data(params: Payload, headers: dict[str, str]) -> Payload:
            id_, start, end = wire.read_get_data(params)
            backend = self._backend(headers)
            return await wire.answer(backend.get_data(id_, start, end), wire.encode_data)

        async def write_data(params: Payload, headers: dict[str, str]) -> Payload:
            id_, data = wire.read_write_data(params)
            backend = self._backend(headers)
            return await wire.answer(backend.write_data(id_, data), wire.encode_written)

        return {
            "clear-container": (by_name("clear_container", wire.encode_unit), None),
            "container-exists": (by_name("container_exists", wire.encode_bool), None),
            "create-container": (by_name("create_container", wire.encode_unit), None),
            "delete-container": (by_name("delete_container", wire.encode_unit), None),
            "get-container-info": (by_name("container_info", wire.encode_container_info), None),
            "list-container-objects": (list_objects, None),
            "copy-object": (by_pair("copy_object"), None),
            "delete-object": (by_id("delete_object", wire.encode_unit), None),
            "delete-objects": (delete_objects, None),
            "get-container-data": (get_data, None),
            "get-object-info": (by_id("object_info", wire.encode_object_info), None),
            "has-object": (by_id("has_object", wire.encode_bool), None),
            "move-object": (by_pair("move_object"), None),
            "write-container-data": (write_data, wire.pending_write_paths),
        }

    async def health(self) -> tuple[bool, str]:
        message = f"{len(self._backends)} linked component(s)"
        if self._refused:
            message += "; refused: " + "; ".join(self._refused.values())
        return True, message

    async def stop(self) -> None:
        for source in list(self._backends):
            await self._forget(source)
