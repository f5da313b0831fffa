"""wasmcloud:secrets/store and /reveal (0.1.0-draft), as host 1.4.2 serves them.

A component gets only the secrets its manifest names (resolved by the host when it
scales the component); ``get`` takes the secret's name in the manifest and hands out an
opaque ``secret`` handle, ``reveal`` turns a handle into its value. A name the component
was not given is ``not-found``: nothing is fetched on the guest's behalf.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from wasmtime.component import Variant

from host_agent.runtime.interface import HostInterface
from host_agent.runtime.resources import GuestHandle, ResourceTable

SECRETS_VERSION = "0.1.0-draft"

# The component's secrets by name: wasmcloud-core SecretValue shapes
# ({"kind": "String", "value": str} or {"kind": "Bytes", "value": [int, ...]}).
SecretSource = Callable[[], Mapping[str, Mapping[str, Any]]]


class SecretHandle:
    """What the guest holds: the name only; the value is read again at reveal."""

    def __init__(self, name: str) -> None:
        self.name = name


def secrets_interfaces(table: ResourceTable, source: SecretSource) -> list[HostInterface]:
    def get(store: Any, key: str) -> Any:
        if key not in source():
            return Variant("not-found")
        return table.own(SecretHandle(key))

    def reveal(store: Any, handle: GuestHandle) -> Any:
        name = table.get(store, handle, SecretHandle).name
        value = source().get(name)
        if value is None:  # the component was scaled again without it: reveal nothing
            return ""
        if value.get("kind") == "Bytes":
            return bytes(value.get("value") or [])
        return str(value.get("value", ""))

    return [
        HostInterface(
            "wasmcloud:secrets/store",
            SECRETS_VERSION,
            resources={"secret": SecretHandle},
            functions={"get": get},
        ),
        HostInterface("wasmcloud:secrets/reveal", SECRETS_VERSION, functions={"reveal": reveal}),
    ]
