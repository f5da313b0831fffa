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
from host_agent.lattice.protocol import Link
from host_agent.runtime import compat
from host_agent.runtime.image import HTTP_HANDLER, ComponentImage
from host_agent.runtime.interface import HostInterface
from host_agent.runtime.resources import ResourceTable
from host_agent.runtime.wasi_cli import cli_interfaces
from host_agent.runtime.wasi_http import (
    IncomingRequest,
    ResponseOutparam,
    ResponseSlot,
    http_interfaces,
)
from host_agent.runtime.wasi_io import io_interfaces
from host_agent.runtime.wasi_keyvalue import KeyValueClient, keyvalue_interfaces

log = logging.getLogger(__name__)
compat.install()

# Imported by every componentize-py (and most wasi-libc) component but never offered:
# a call traps with wasmtime's "unknown import" message naming the function.
TRAPPED_PREFIXES = ("wasi:filesystem/", "wasi:sockets/", "wasi:http/outgoing-handler")


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
) -> list[HostInterface]:
    return [
        *io_interfaces(table),
        *cli_interfaces(table, stdout, stderr, environment={}),
        *http_interfaces(table),
        *keyvalue_interfaces(table, keyvalue),
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
        elif not base.startswith(TRAPPED_PREFIXES):
            problems.append(
                f"missing import {base}@{version}: no built-in interface or provider offers it"
            )
    return problems


def version_mismatch(imports: dict[str, str], link: Link) -> str | None:
    """The tutorial's draft-vs-final pitfall, caught at link time: the source component
    imports a version of a linked interface that providers on this lattice do not serve."""
    for interface in link.interfaces:
        base = f"{link.wit_namespace}:{link.wit_package}/{interface}"
        version = imports.get(base)
        served = SERVED.get(base)
        if version is not None and served is not None and not served.accepts(version):
            wanted = served.version_family.rstrip(".")
            return (
                f"{link.source_id} imports {base}@{version} but providers on this lattice "
                f"serve {base}@{wanted}; rebuild the component against {base}@{wanted}"
            )
    return None


class ComponentInstance:
    def __init__(
        self,
        image: ComponentImage,
        keyvalue: KeyValueClient,
        component_id: str = "component",
    ) -> None:
        self.image = image
        self.component_id = component_id
        self.table = ResourceTable()
        self.store = Store(image.engine)
        self.dead = False
        self._names: dict[int, str] = {}
        linker = Linker(image.engine)
        with linker.root() as root:
            for iface in host_interfaces(self.table, keyvalue, self._stdout, self._stderr):
                if iface.name not in image.imports:
                    continue
                with root.add_instance(image.import_name(iface.name)) as inst:
                    for name, kind in iface.resources.items():
                        inst.add_resource(name, ResourceType.host(self.table.tag(kind)), self._dtor)
                    for name, func in iface.functions.items():
                        inst.add_func(name, func)
                self._names[id(iface)] = iface.name
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

    def _dtor(self, store: Any, rep: int) -> None:
        self.table.drop(rep)

    def _stdout(self, data: bytes) -> None:
        log.info("%s stdout: %s", self.component_id, data.decode(errors="replace").rstrip())

    def _stderr(self, data: bytes) -> None:
        log.warning("%s stderr: %s", self.component_id, data.decode(errors="replace").rstrip())

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
            raise ComponentTrap(_trap_message(error)) from error
        return slot.result()


def _trap_message(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
