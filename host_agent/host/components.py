"""Components running on this host: compiled image, instance pool, wRPC exports.

Each running component serves its wasi:http/incoming-handler export on the wRPC
subject `{lattice}.{component_id}.wrpc.0.0.1.wrpc:http/incoming-handler@0.1.0.handle`
(queue group per component, so several hosts share the load), and reaches providers
for its wasi:keyvalue imports through the links in the lattice.

Custom interfaces (outside `wasi:`) link components to each other: each function a
component exports is served on `{lattice}.{component_id}.wrpc.0.0.1.{ns:pkg/iface@ver}.
{function}` (same queue group), and each function it imports is a wRPC call to the
component its link names. Values are encoded from the component's own types
(host_agent/runtime/wrpc_values.py). A resource's functions travel under wRPC's names
(`counter.add` for `[method]counter.add`); which resources cross, and how, is in
host_agent/runtime/custom.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from nats.aio.subscription import Subscription

from host_agent.host.claims import ClaimsError, ComponentClaims, component_claims
from host_agent.host.linked_blobstore import LinkedBlobstore
from host_agent.host.links import LinkIndex, LinkKey
from host_agent.host.outgoing_http import LinkedOutgoingHttp
from host_agent.interfaces.keyvalue import KeyValueError
from host_agent.lattice.protocol import Link
from host_agent.runtime.custom import (
    ComponentCallError,
    CustomInterface,
    custom_exports,
    custom_imports,
    wire_name,
)
from host_agent.runtime.engine import component_engine
from host_agent.runtime.image import HTTP_HANDLER, ComponentImage, load_component
from host_agent.runtime.inline import runs_locally
from host_agent.runtime.instance import ComponentInstance, ComponentTrap, import_problems
from host_agent.runtime.interface import split_import
from host_agent.runtime.native_http import RUNS_NATIVELY, NativeHttpInstance, load_native
from host_agent.runtime.pool import InstancePool, PooledInstance
from host_agent.runtime.provider_versions import (
    ProviderOf,
    link_advice,
    linked_version_problems,
)
from host_agent.runtime.wrpc_values import (
    HandleCodec,
    UnsupportedType,
    WitType,
    decode_values,
    encode_values,
    func_signature,
    param_labels,
)
from host_agent.telemetry import otel as telemetry
from host_agent.wrpc import keyvalue as kv
from host_agent.wrpc.codec import DecodeError
from host_agent.wrpc.http import (
    HTTP_INSTANCE,
    decode_request,
    encode_response,
    pending_request_paths,
)
from host_agent.wrpc.transport import NoResponders, Payload, WrpcClient, WrpcError, WrpcServer

log = logging.getLogger("host_agent.components")

KEYVALUE_TIMEOUT = 10.0
HTTP_OPERATION = f"{HTTP_INSTANCE}.handle"  # the invocation metrics' `operation`
# How long a component's call to a linked component may take, end to end: under the
# http-server's default 10 s, so an HTTP caller can still answer with the reason.
COMPONENT_CALL_TIMEOUT = 5.0


def wait_from_thread(
    loop: asyncio.AbstractEventLoop, call: Coroutine[Any, Any, Payload], timeout: float
) -> Payload:
    """Run a wRPC call on the host's event loop and wait for it from a component's worker
    thread (a guest's import call is synchronous); one that outlives `timeout` is cancelled
    and raises TimeoutError."""
    future = asyncio.run_coroutine_threadsafe(call, loop)
    try:
        return future.result(timeout)
    except TimeoutError:
        future.cancel()
        raise


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
            return wait_from_thread(self._loop, call, KEYVALUE_TIMEOUT + 1).data
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


@dataclass(frozen=True)
class Signature:
    """One function's parameter and result types, for the wRPC encoding."""

    params: list[tuple[str, WitType]]
    result: WitType | None

    @property
    def param_types(self) -> list[WitType]:
        return [ty for _, ty in self.params]

    @property
    def param_labels(self) -> list[str]:
        return param_labels([name for name, _ in self.params])

    @property
    def result_types(self) -> list[WitType]:
        return [] if self.result is None else [self.result]

    @property
    def result_labels(self) -> list[str]:
        return [] if self.result is None else ["result"]

    def results(self, value: Any) -> list[Any]:
        return [] if self.result is None else [value]


FunctionKey = tuple[str, str]  # (versioned interface, function)


def signatures(interfaces: dict[str, CustomInterface]) -> dict[FunctionKey, Signature]:
    """Every function's signature; a type that cannot cross wRPC refuses the component."""
    found: dict[FunctionKey, Signature] = {}
    for iface in interfaces.values():
        for function, func_type in iface.functions.items():
            try:
                params, result = func_signature(func_type, iface.resource_name)
            except UnsupportedType as error:
                raise ComponentStartError(f"{iface.name}.{function}: {error}") from None
            found[(iface.name, function)] = Signature(params, result)
    return found


class LinkedComponents:
    """A component's custom imports: each call goes to the component its link names.

    Called from the component's worker thread; the wRPC call runs on the host's event
    loop and the thread waits for it. Every failure is a ComponentCallError naming the
    target and the function, which traps the caller.
    """

    def __init__(
        self,
        component_id: str,
        links: Callable[[], LinkIndex],
        client: WrpcClient,
        loop: asyncio.AbstractEventLoop,
        imports: dict[str, CustomInterface],
        timeout: float = COMPONENT_CALL_TIMEOUT,
    ) -> None:
        self.component_id = component_id
        self._links = links
        self._client = client
        self._loop = loop
        self._imports = imports
        self._signatures = signatures(imports)
        self._timeout = timeout

    def call(
        self, interface: str, function: str, args: list[Any], handles: HandleCodec | None = None
    ) -> Any:
        base, _ = split_import(interface)
        wire = wire_name(function)  # a resource's `[method]counter.add` is `counter.add`
        what = f"{interface}.{wire}"
        namespace, package, name = self._imports[base].namespace_package_interface
        target = self._links().target_for(self.component_id, namespace, package, name)
        if target is None:
            advice = link_advice(self.component_id, base)
            raise ComponentCallError(f"{self.component_id} has no link for {base}; {advice}")
        signature = self._signatures[(interface, function)]
        try:
            params = encode_values(
                signature.param_types, args, handles=handles, labels=signature.param_labels
            )
        except ValueError as error:
            raise ComponentCallError(f"cannot send {what} to {target}: {error}") from None
        call = self._client.invoke(
            target,
            interface,
            wire,
            Payload(params),
            source_id=self.component_id,
            timeout=self._timeout,
        )
        try:
            reply = wait_from_thread(self._loop, call, self._timeout + 1)
        except NoResponders:
            raise ComponentCallError(
                f"no running instance of {target} serves {what}: start {target}, "
                f"built against {interface}"
            ) from None
        except WrpcError as error:
            raise ComponentCallError(f"{target} failed {what}: {error}") from None
        except TimeoutError:
            raise ComponentCallError(
                f"{target} did not answer {what} within {self._timeout:g} s"
            ) from None
        try:
            values = decode_values(
                signature.result_types,
                reply.data,
                handles=handles,
                labels=signature.result_labels,
            )
        except DecodeError as error:
            raise ComponentCallError(
                f"the reply of {target} to {what} does not decode: {error}"
            ) from None
        return values[0] if signature.result is not None else None


@dataclass
class RunningComponent:
    id: str
    image: ComponentImage
    pool: InstancePool
    server: Subscription | None
    # Custom exports: their signatures, and one subscription per served function.
    export_signatures: dict[FunctionKey, Signature]
    export_servers: dict[FunctionKey, Subscription]


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
        self.engine = component_engine()
        self.running: dict[str, RunningComponent] = {}
        # Revealed secrets by component id, set by the host before each scale from the
        # references its manifest gave it (wasmcloud:secrets/store reads them).
        self.secrets: dict[str, dict[str, dict[str, Any]]] = {}
        # Every image asked to run here, even refused ones, so link.put can explain
        # a WIT version mismatch for a component that could not start.
        self.images: dict[str, ComponentImage] = {}
        self._loading: dict[str, asyncio.Future[ComponentImage]] = {}
        # Verified claims of the signed components loaded here, by image digest.
        self.claims: dict[str, ComponentClaims] = {}
        # Called when the set of running components changes (their link grant follows).
        self.on_change: Callable[[], None] = lambda: None
        # The built-in a provider id runs, here or on another host (set by the ctl
        # handlers): a link to or from one is judged against the versions it serves.
        self.provider_of: ProviderOf = lambda _: None
        # A link put and a component start each judge the link by what the other has
        # done: link.put holds this lock from its check until the link is stored, and a
        # start checks under it, so one of the two always sees the other (a link put
        # while the component compiles is caught when it starts).
        self.link_check = asyncio.Lock()
        # The links stored now from a component, whichever host put them (set by the ctl
        # handlers): a start reads them, as the link index may not show them yet (the KV
        # watch delivers them later).
        self.links_from: Callable[[str], Awaitable[list[Link]]] | None = None

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
        native = load_native(wasm, image.digest, image.imports, image.exports)
        if native is not None:
            image = replace(image, native_http=native)
        if claims is not None:
            self.claims[image.digest] = claims
        return image

    async def run(self, component_id: str, image: ComponentImage, count: int) -> None:
        """Start (or resize, or replace) `component_id` with `count` instances."""
        async with self.link_check:
            self.images[component_id] = image
            links = await self._links_of(component_id)
            problems = import_problems(image) + linked_version_problems(
                image.imports, image.exports, component_id, links, self.provider_of
            )
        if problems:
            raise ComponentStartError("; ".join(problems))
        loop = asyncio.get_running_loop()
        keyvalue = LinkedKeyValue(component_id, self.links, self.client, loop)
        blobstore = LinkedBlobstore(component_id, self.links, self.client, loop)
        http_client = LinkedOutgoingHttp(component_id, self.links, self.client, loop)
        linked = LinkedComponents(
            component_id, self.links, self.client, loop, custom_imports(image)
        )
        export_signatures = signatures(custom_exports(image))

        def secrets() -> dict[str, dict[str, Any]]:
            return self.secrets.get(component_id, {})

        def make_instance() -> PooledInstance:
            if image.native_http is not None:
                return NativeHttpInstance(image.native_http, component_id)
            return ComponentInstance(
                image,
                keyvalue,
                component_id,
                linked,
                secrets,
                http_client=http_client,
                blobstore=blobstore,
            )

        if image.native_http is not None:
            log.info("%s: %s", component_id, RUNS_NATIVELY)
        pool = InstancePool(
            make_instance,
            count,
            inline=runs_locally(image.imports),
            name=component_id,
        )
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
                # A component that never reads the request body (most GETs) answers
                # without waiting for the caller to stream an empty one.
                lazy_params=True,
            )
        export_servers = await self._serve_exports(
            component_id, export_signatures, previous.export_servers if previous else {}
        )
        self.running[component_id] = RunningComponent(
            component_id, image, pool, server, export_signatures, export_servers
        )
        if previous is not None:
            previous.pool.close()
        else:
            self.on_change()

    async def _links_of(self, component_id: str) -> list[Link]:
        """The links from ``component_id``: those stored now, and the index's (all of them
        if the store cannot be read: the start is not refused for that)."""
        indexed = [link for link in self.links().links if link.source_id == component_id]
        if self.links_from is None:
            return indexed
        try:
            stored = await self.links_from(component_id)
        except Exception as error:  # a NATS hiccup: judge by the index alone
            log.warning("cannot read the links from %s: %s", component_id, error)
            return indexed
        known = {_link_key(link) for link in stored}
        return stored + [link for link in indexed if _link_key(link) not in known]

    async def _serve_exports(
        self,
        component_id: str,
        wanted: dict[FunctionKey, Signature],
        serving: dict[FunctionKey, Subscription],
    ) -> dict[FunctionKey, Subscription]:
        """Subscribe the custom export functions not served yet; stop serving the ones the
        (updated) component no longer exports."""
        servers = {}
        for key, subscription in serving.items():
            if key in wanted:
                servers[key] = subscription
            else:
                await subscription.unsubscribe()
        for key in wanted.keys() - servers.keys():
            interface, function = key
            servers[key] = await self.server.serve(
                component_id, interface, function, self._export_handler(component_id, key)
            )
        return servers

    def _export_handler(self, component_id: str, key: FunctionKey) -> Any:
        interface, function = key
        what = f"{interface}.{function}"

        async def handle(params: Payload, headers: dict[str, str]) -> Payload:
            running = self.running.get(component_id)
            signature = running.export_signatures.get(key) if running else None
            if running is None or signature is None:
                raise WrpcError(f"{component_id} on this host does not serve {what}")
            try:
                args = decode_values(
                    signature.param_types, params.data, labels=signature.param_labels
                )
            except DecodeError as error:
                raise WrpcError(
                    f"the parameters of {what} for {component_id} do not decode: {error}"
                ) from None
            base, _ = split_import(interface)
            started = telemetry.invocation_started()
            try:
                result = await running.pool.call(base, function, args)
            except ComponentTrap as trap:
                telemetry.record_invocation(component_id, what, started, True)
                raise WrpcError(f"{component_id} trapped in {what}: {trap}") from None
            telemetry.record_invocation(component_id, what, started, False)
            results = signature.results(result)
            return Payload(
                encode_values(signature.result_types, results, labels=signature.result_labels)
            )

        return handle

    def _http_handler(self, component_id: str) -> Any:
        async def handle(params: Payload, headers: dict[str, str]) -> Payload:
            running = self.running.get(component_id)
            if running is None:
                raise WrpcError(f"component {component_id} is not running on this host")
            request = decode_request(params)
            started = telemetry.invocation_started()
            try:
                response = await running.pool.handle_http(request)
            except BaseException:
                telemetry.record_invocation(component_id, HTTP_OPERATION, started, True)
                raise
            # A trap is answered 500 by the pool: 5xx counts as a failed invocation.
            error = response.status >= 500
            telemetry.record_invocation(component_id, HTTP_OPERATION, started, error)
            return encode_response(response)

        return handle

    async def stop(self, component_id: str) -> None:
        self.images.pop(component_id, None)  # link.put must not judge by a stopped image
        running = self.running.pop(component_id, None)
        if running is None:
            return
        if running.server is not None:
            await running.server.unsubscribe()
        for subscription in running.export_servers.values():
            await subscription.unsubscribe()
        running.pool.close()
        self.on_change()

    async def stop_all(self) -> None:
        for component_id in list(self.running):
            await self.stop(component_id)


def _link_key(link: Link) -> LinkKey:
    return (link.source_id, link.target, link.name, link.wit_namespace, link.wit_package)
