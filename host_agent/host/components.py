"""Components running on this host: compiled image, instance pool, wRPC export.

Each running component serves its wasi:http/incoming-handler export on the wRPC
subject `{lattice}.{component_id}.wrpc.0.0.1.wrpc:http/incoming-handler@0.1.0.handle`
(queue group per component, so several hosts share the load), and reaches providers
for its wasi:keyvalue imports through the links in the lattice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.subscription import Subscription
from wasmtime import Engine

from host_agent.host.claims import ClaimsError, ComponentClaims, component_claims
from host_agent.host.links import LinkIndex
from host_agent.interfaces.keyvalue import KeyValueError
from host_agent.runtime.image import HTTP_HANDLER, ComponentImage, load_component
from host_agent.runtime.instance import ComponentInstance, import_problems
from host_agent.runtime.pool import InstancePool
from host_agent.wrpc import keyvalue as kv
from host_agent.wrpc.codec import DecodeError
from host_agent.wrpc.http import (
    HTTP_INSTANCE,
    decode_request,
    encode_response,
    pending_request_paths,
)
from host_agent.wrpc.transport import Payload, WrpcClient, WrpcError, WrpcServer

log = logging.getLogger("host_agent.components")

KEYVALUE_TIMEOUT = 10.0


class ComponentStartError(Exception):
    pass


class LinkedKeyValue:
    """wasi:keyvalue for one component: each call goes to the provider its link names.

    Called from the component's worker thread; the wRPC call itself runs on the host's
    event loop and the thread waits for its result.
    """

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

    def _call(self, interface: str, function: str, params: bytes) -> bytes:
        target = self._links().target_for(self.component_id, "wasi", "keyvalue", interface)
        if target is None:
            raise KeyValueError(
                "other",
                f"{self.component_id} has no link for wasi:keyvalue/{interface}; "
                "put a link to a keyvalue provider",
            )
        call = self._client.invoke(
            target,
            kv.instance(interface),
            function,
            Payload(params),
            source_id=self.component_id,
            timeout=KEYVALUE_TIMEOUT,
        )
        try:
            future = asyncio.run_coroutine_threadsafe(call, self._loop)
            return future.result(KEYVALUE_TIMEOUT + 1).data
        except (WrpcError, DecodeError) as error:
            raise KeyValueError("other", f"keyvalue provider {target}: {error}") from None
        except TimeoutError:
            raise KeyValueError("other", f"keyvalue provider {target} did not answer") from None

    def get(self, bucket: str, key: str) -> bytes | None:
        return kv.decode_get(self._call("store", "get", kv.bucket_key(bucket, key)))

    def set(self, bucket: str, key: str, value: bytes) -> None:
        kv.decode_unit(self._call("store", "set", kv.bucket_key_value(bucket, key, value)))

    def delete(self, bucket: str, key: str) -> None:
        kv.decode_unit(self._call("store", "delete", kv.bucket_key(bucket, key)))

    def exists(self, bucket: str, key: str) -> bool:
        return kv.decode_exists(self._call("store", "exists", kv.bucket_key(bucket, key)))

    def list_keys(self, bucket: str, cursor: int | None) -> tuple[list[str], int | None]:
        reply = self._call("store", "list-keys", kv.bucket_cursor(bucket, cursor))
        return kv.decode_list_keys(reply)

    def increment(self, bucket: str, key: str, delta: int) -> int:
        params = kv.bucket_key_delta(bucket, key, delta)
        return kv.decode_increment(self._call("atomics", "increment", params))


@dataclass
class RunningComponent:
    id: str
    image: ComponentImage
    pool: InstancePool
    server: Subscription | None


class ComponentHost:
    def __init__(
        self,
        lattice: str,
        client: WrpcClient,
        server: WrpcServer,
        links: Callable[[], LinkIndex],
    ) -> None:
        self.lattice = lattice
        self.client = client
        self.server = server
        self.links = links
        self.engine = Engine()
        self.running: dict[str, RunningComponent] = {}
        # Every image asked to run here, even refused ones, so link.put can explain
        # a WIT version mismatch for a component that could not start.
        self.images: dict[str, ComponentImage] = {}
        self._loading: dict[str, asyncio.Future[ComponentImage]] = {}
        # Verified claims of the signed components loaded here, by image digest.
        self.claims: dict[str, ComponentClaims] = {}

    async def load(self, wasm: bytes) -> ComponentImage:
        """Compile (or load from cache) once per distinct binary: scale requests that
        arrive while the same component is compiling wait for that compile instead of
        starting another one on the same cores."""
        digest = hashlib.sha256(wasm).hexdigest()
        loading = self._loading.get(digest)
        if loading is None:
            loop = asyncio.get_running_loop()
            loading = loop.run_in_executor(None, self._verify_and_compile, wasm)
            self._loading[digest] = loading
            loading.add_done_callback(lambda _: self._loading.pop(digest, None))
        return await asyncio.shield(loading)

    def _verify_and_compile(self, wasm: bytes) -> ComponentImage:
        """Check a signed component's claims (as 1.4.2 does before running it), then
        compile. Runs in a worker thread: hashing and compiling take a while."""
        try:
            claims = component_claims(wasm)
        except ClaimsError as error:
            message = f"the component's embedded claims are refused: {error}"
            raise ComponentStartError(message) from None
        image = load_component(wasm, self.engine)
        if claims is not None:
            self.claims[image.digest] = claims
        return image

    async def run(self, component_id: str, image: ComponentImage, count: int) -> None:
        """Start (or resize, or replace) `component_id` with `count` instances."""
        self.images[component_id] = image
        problems = import_problems(image)
        if problems:
            raise ComponentStartError("; ".join(problems))
        loop = asyncio.get_running_loop()
        keyvalue = LinkedKeyValue(component_id, self.links, self.client, loop)
        pool = InstancePool(lambda: ComponentInstance(image, keyvalue, component_id), count)
        try:
            await pool.fill()
        except Exception as error:
            pool.close()
            raise ComponentStartError(str(error)) from None
        previous = self.running.get(component_id)
        server = previous.server if previous else None
        if server is None and HTTP_HANDLER in image.exports:
            server = await self.server.serve(
                component_id,
                HTTP_INSTANCE,
                "handle",
                self._http_handler(component_id),
                pending_params=pending_request_paths,
            )
        self.running[component_id] = RunningComponent(component_id, image, pool, server)
        if previous is not None:
            previous.pool.close()

    def _http_handler(self, component_id: str) -> Any:
        async def handle(params: Payload, headers: dict[str, str]) -> Payload:
            running = self.running.get(component_id)
            if running is None:
                raise WrpcError(f"component {component_id} is not running on this host")
            request = decode_request(params)
            response = await running.pool.handle_http(request)
            return encode_response(response)

        return handle

    async def stop(self, component_id: str) -> None:
        running = self.running.pop(component_id, None)
        if running is None:
            return
        if running.server is not None:
            await running.server.unsubscribe()
        running.pool.close()

    async def stop_all(self) -> None:
        for component_id in list(self.running):
            await self.stop(component_id)
