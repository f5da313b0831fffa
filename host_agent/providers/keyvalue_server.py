"""The common part of the keyvalue providers: serve wasi:keyvalue store + atomics over wRPC.

Each link from a component (source) to this provider (target) gets its own backend,
built from the link's target_config, like wasmCloud's keyvalue-redis does per link;
calls are routed by the `source-id` header the caller's host sets.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsClient

from host_agent.interfaces.keyvalue import KeyValueError
from host_agent.providers.contract import HostData, InterfaceLinkDefinition
from host_agent.providers.kv_backends import KeyValueBackend
from host_agent.secrets.provider import host_secrets, link_secrets
from host_agent.wrpc import keyvalue as kv
from host_agent.wrpc.transport import Payload, WrpcServer

log = logging.getLogger("host_agent.provider.keyvalue")

# A backend from a config (the host's, or a link's target_config), the provider's NATS
# connection and what its host told it (its lattice).
# The last argument: the secrets (strings) of the link, over the provider's own.
BackendFactory = Callable[[dict[str, str], NatsClient, HostData, dict[str, str]], KeyValueBackend]
Handler = Callable[[bytes, dict[str, str]], Awaitable[bytes]]


def _on_payload(handler: Handler) -> Callable[[Payload, dict[str, str]], Awaitable[Payload]]:
    async def call(params: Payload, headers: dict[str, str]) -> Payload:
        return Payload(await handler(params.data, headers))

    return call


class KeyValueProvider:
    def __init__(self, make_backend: BackendFactory) -> None:
        self._make_backend = make_backend
        self._backends: dict[str, KeyValueBackend] = {}  # by source component id
        self._default: KeyValueBackend | None = None
        self._nc: NatsClient | None = None
        self._host: HostData | None = None
        self.provider_id = ""

    async def start(self, host: HostData, nc: NatsClient) -> None:
        self._nc = nc
        self.provider_id = host.provider_key
        self._host = host
        self._default = self._make_backend(host.config, nc, host, host_secrets(host))
        server = WrpcServer(nc, host.lattice_rpc_prefix)
        for function, handler in self._handlers().items():
            interface, _, name = function.partition(".")
            await server.serve(
                host.provider_key, kv.instance(interface), name, _on_payload(handler)
            )

    async def link_put(self, link: InterfaceLinkDefinition) -> None:
        if link.target != self.provider_id or (link.wit_namespace, link.wit_package) != (
            "wasi",
            "keyvalue",
        ):
            return
        assert self._nc is not None
        old = self._backends.pop(link.source_id, None)
        if old is not None:
            await old.close()
        assert self._host is not None
        secrets = host_secrets(self._host) | link_secrets(link, self._host, "target")
        self._backends[link.source_id] = self._make_backend(
            link.target_config, self._nc, self._host, secrets
        )
        log.info("link from %s ready (%s)", link.source_id, ", ".join(link.interfaces))

    async def link_del(self, link: InterfaceLinkDefinition) -> None:
        if link.target == self.provider_id:
            backend = self._backends.pop(link.source_id, None)
            if backend is not None:
                await backend.close()

    def _backend(self, headers: dict[str, str]) -> KeyValueBackend:
        source = headers.get("source-id", "")
        if source and source not in self._backends:
            # Upstream falls back to the provider-level connection here; a call that races
            # ahead of its link's push would then write to the default store (for Redis,
            # whatever listens on 127.0.0.1:6379). Refusing keeps data where links say.
            raise KeyValueError(
                "other", f"no link from {source} to {self.provider_id} has reached it yet"
            )
        backend = self._backends.get(source) or self._default
        if backend is None:
            raise KeyValueError("no-such-store", "provider is not started")
        return backend

    def _handlers(self) -> dict[str, Handler]:
        async def get(params: bytes, headers: dict[str, str]) -> bytes:
            bucket, key = kv.read_bucket_key(params)
            return await kv.answer(self._backend(headers).get(bucket, key), kv.encode_get)

        async def set_(params: bytes, headers: dict[str, str]) -> bytes:
            bucket, key, value = kv.read_bucket_key_value(params)
            return await kv.answer(self._backend(headers).set(bucket, key, value), kv.encode_unit)

        async def delete(params: bytes, headers: dict[str, str]) -> bytes:
            bucket, key = kv.read_bucket_key(params)
            return await kv.answer(self._backend(headers).delete(bucket, key), kv.encode_unit)

        async def exists(params: bytes, headers: dict[str, str]) -> bytes:
            bucket, key = kv.read_bucket_key(params)
            return await kv.answer(self._backend(headers).exists(bucket, key), kv.encode_exists)

        async def list_keys(params: bytes, headers: dict[str, str]) -> bytes:
            bucket, cursor = kv.read_bucket_cursor(params)
            backend = self._backend(headers)
            return await kv.answer(backend.list_keys(bucket, cursor), kv.encode_list_keys)

        async def increment(params: bytes, headers: dict[str, str]) -> bytes:
            bucket, key, delta = kv.read_bucket_key_delta(params)
            backend = self._backend(headers)
            return await kv.answer(backend.increment(bucket, key, delta), kv.encode_increment)

        return {
            "store.get": get,
            "store.set": set_,
            "store.delete": delete,
            "store.exists": exists,
            "store.list-keys": list_keys,
            "atomics.increment": increment,
        }

    async def health(self) -> tuple[bool, str]:
        return True, f"{len(self._backends)} linked component(s)"

    async def stop(self) -> None:
        for backend in [*self._backends.values(), *([self._default] if self._default else [])]:
            await backend.close()
        self._backends.clear()
