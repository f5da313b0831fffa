"""One instantiated component: its store, its linker and its resource table.

A linker is built per instance because the host functions close over the instance's
resource table; that costs well under a millisecond and instances are long-lived.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from wasmtime import Store, WasmtimeError
from wasmtime.component import Linker, ResourceType

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.runtime import compat
from host_agent.runtime.custom import (
    ComponentCallError,
    NoRemoteCalls,
    RemoteCalls,
    RemoteHandle,
    RemoteHandles,
    custom_imports,
    is_custom,
    resource_problems,
)
from host_agent.runtime.image import HTTP_HANDLER, ComponentImage
from host_agent.runtime.inline import NO_DEADLINE_TICKS
from host_agent.runtime.interface import HostInterface
from host_agent.runtime.resources import ResourceTable
from host_agent.runtime.wasi_blobstore import BlobstoreClient, NoBlobstore, blobstore_interfaces
from host_agent.runtime.wasi_cli import cli_interfaces
from host_agent.runtime.wasi_http import (
    IncomingRequest,
    ResponseOutparam,
    ResponseSlot,
    http_interfaces,
)
from host_agent.runtime.wasi_http_outgoing import NoOutgoingHttp, OutgoingHttp, with_outgoing
from host_agent.runtime.wasi_io import io_interfaces
from host_agent.runtime.wasi_keyvalue import KeyValueClient, keyvalue_interfaces
from host_agent.runtime.wasmcloud_secrets import SecretSource, secrets_interfaces

log = logging.getLogger(__name__)
compat.install()

# Imported by every componentize-py (and most wasi-libc) component but never offered:
# a call traps with wasmtime's "unknown import" message naming the function.
TRAPPED_PREFIXES = ("wasi:filesystem/", "wasi:sockets/")


class ComponentTrap(Exception):
    """The guest trapped; the instance is dead and must be replaced."""


class NoKeyValue:
    """Stands in when checking imports, where no calls are made."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        raise RuntimeError("no key-value client")


def host_interfaces(
    table: ResourceTable,
    keyvalue: KeyValueClient,
    stdout: Callable[[bytes], None],
    stderr: Callable[[bytes], None],
    secrets: SecretSource = dict,
    http_client: OutgoingHttp | None = None,
    blobstore: BlobstoreClient | None = None,
) -> list[HostInterface]:
    return [
        *io_interfaces(table),
        *cli_interfaces(table, stdout, stderr, environment={}),
        *with_outgoing(http_interfaces(table), table, http_client or NoOutgoingHttp()),
        *keyvalue_interfaces(table, keyvalue),
        *secrets_interfaces(table, secrets),
        *blobstore_interfaces(table, blobstore or NoBlobstore()),
    ]


def _ignore(_: bytes) -> None:
    return None


SERVED = {
    iface.name: iface for iface in host_interfaces(ResourceTable(), NoKeyValue(), _ignore, _ignore)
}


def import_problems(image: ComponentImage) -> list[str]:
    """Why this host cannot run the component, one sentence per import; empty if it can."""
    problems = []
    for base, version in sorted(image.imports.items()):
        served = SERVED.get(base)
        if served is not None:
            if not served.accepts(version):
                wanted = served.version_family.rstrip(".")
                problems.append(
                    f"imports {base}@{version} but this lattice serves {base}@{wanted}"
                    f"{'.x' if served.version_family.endswith('.') else ''}; "
                    f"rebuild the component against {base}@{wanted}"
                )
        elif is_custom(base):
            continue  # served by a linked component; the link may come later
        elif not base.startswith(TRAPPED_PREFIXES):
            problems.append(
                f"missing import {base}@{version}: no built-in interface or provider offers it"
            )
    return problems + resource_problems(image)


class ComponentInstance:
    def __init__(
        self,
        image: ComponentImage,
        keyvalue: KeyValueClient,
        component_id: str = "component",
        remote: RemoteCalls | None = None,
        secrets: SecretSource = dict,
        http_client: OutgoingHttp | None = None,
        blobstore: BlobstoreClient | None = None,
    ) -> None:
        self.image = image
        self.component_id = component_id
        self.table = ResourceTable()
        self.store = Store(image.engine)
        self.store.set_epoch_deadline(NO_DEADLINE_TICKS)  # the pool shortens it inline
        self.dead = False
        self._names: dict[int, str] = {}
        self._exports: dict[tuple[str, str], Any] = {}
        linker = Linker(image.engine)
        with linker.root() as root:
            ifaces = host_interfaces(
                self.table, keyvalue, self._stdout, self._stderr, secrets, http_client, blobstore
            )
            for iface in ifaces:
                if iface.name not in image.imports:
                    continue
                with root.add_instance(image.import_name(iface.name)) as inst:
                    for name, kind in iface.resources.items():
                        inst.add_resource(name, ResourceType.host(self.table.tag(kind)), self._dtor)
                    for name, func in iface.functions.items():
                        inst.add_func(name, func)
                self._names[id(iface)] = iface.name
            calls = remote or NoRemoteCalls()
            for custom in custom_imports(image).values():
                with root.add_instance(custom.name) as inst:
                    # A linked peer's resource: the guest's drop only forgets the handle
                    # bytes here, as wrpc-runtime-wasmtime 0.24.1 does (see custom.py).
                    remote_type = ResourceType.host(self.table.tag(RemoteHandle))
                    for name in custom.resources:
                        inst.add_resource(name, remote_type, self._dtor)
                    for name in custom.functions:
                        inst.add_func(name, self._forward(calls, custom.name, name))
        linker.define_unknown_imports_as_traps(image.component)
        try:
            self.instance = linker.instantiate(self.store, image.component)
        except WasmtimeError as error:
            raise ComponentTrap(f"instantiation failed: {error}") from None
        self._handle = (
            self._export_func(HTTP_HANDLER, "handle") if HTTP_HANDLER in image.exports else None
        )

    def _export_func(self, interface: str, name: str) -> Any:
        parent = self.instance.get_export_index(self.store, self.image.export_name(interface))
        index = self.instance.get_export_index(self.store, name, parent)
        func = self.instance.get_func(self.store, index) if index is not None else None
        if func is None:
            raise ComponentTrap(f"component exports {interface} without `{name}`")
        return func

    def call_export(self, interface: str, function: str, args: list[Any]) -> Any:
        """Call `function` of the exported `interface` (unversioned name) with Python
        values; returns its result (None without one). Raises ComponentTrap if the guest
        traps, or if it does not export that function (the instance stays usable then)."""
        if self.dead:
            raise ComponentTrap("instance is dead after an earlier trap")
        func = self._exports.get((interface, function))
        if func is None:
            if interface not in self.image.exports:
                raise ComponentTrap(f"{self.component_id} does not export {interface}")
            func = self._export_func(interface, function)
            self._exports[(interface, function)] = func
        try:
            result = func(self.store, *args)
            func.post_return(self.store)
        except Exception as error:  # a trap, or a host function's exception surfacing as one
            self.dead = True
            raise ComponentTrap(trap_message(error)) from error
        return result

    def _forward(self, calls: RemoteCalls, interface: str, function: str) -> Callable[..., Any]:
        """The host function behind one imported custom function: the call goes to the
        linked component. A failure raises, which traps the caller with that message."""

        def forward(store: Any, *args: Any) -> Any:
            handles = RemoteHandles(self.table, store)
            try:
                return calls.call(interface, function, list(args), handles)
            except ComponentCallError:
                raise
            except Exception as error:  # a bug in the forwarding must still name the call
                message = f"calling {interface}.{function} failed: {error}"
                raise ComponentCallError(message) from None

        return forward

    def _dtor(self, store: Any, rep: int) -> None:
        self.table.drop(rep)

    def _stdout(self, data: bytes) -> None:
        log.info("%s stdout: %s", self.component_id, data.decode(errors="replace").rstrip())

    def _stderr(self, data: bytes) -> None:
        log.warning("%s stderr: %s", self.component_id, data.decode(errors="replace").rstrip())

    def set_epoch_deadline(self, ticks: int) -> None:
        """How many epoch ticks the next calls may run before wasmtime interrupts them."""
        self.store.set_epoch_deadline(ticks)

    def handle_http(self, request: HttpRequest) -> HttpResponse:
        """Call wasi:http/incoming-handler.handle; raises ComponentTrap if the guest traps."""
        if self._handle is None:
            raise ComponentTrap(f"{self.component_id} does not export {HTTP_HANDLER}")
        if self.dead:
            raise ComponentTrap("instance is dead after an earlier trap")
        slot = ResponseSlot()
        incoming = self.table.own(IncomingRequest(request))
        outparam = self.table.own(ResponseOutparam(slot))
        try:
            self._handle(self.store, incoming, outparam)
            self._handle.post_return(self.store)
        except Exception as error:  # a trap, or a host function's exception surfacing as one
            self.dead = True
            raise ComponentTrap(trap_message(error)) from error
        return slot.result()


def trap_message(error: BaseException) -> str:
    """The line that says why: wasmtime puts the cause after a wasm backtrace."""
    text = str(error)
    _, caused, cause = text.partition("Caused by:")
    lines = [line.strip() for line in (cause if caused else text).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
