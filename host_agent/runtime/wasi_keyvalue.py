"""wasi:keyvalue store and atomics, routed to whichever provider the component is linked to.

The guest sees a `bucket` resource; like wasmCloud 1.x, the host keeps only the bucket's
name and sends it with every call, so opening a bucket costs no round trip.
"""

from __future__ import annotations

from typing import Any, Protocol

from wasmtime.component import Record, Variant

from host_agent.interfaces.keyvalue import KEYVALUE_VERSION, KeyValueError
from host_agent.runtime.interface import HostInterface
from host_agent.runtime.resources import GuestHandle, ResourceTable


def error_variant(error: KeyValueError) -> Variant:
    """The guest's view of a KeyValueError: wasi:keyvalue/store's `error` variant."""
    if error.kind == "other":
        return Variant("other", error.message)
    return Variant(error.kind)


class KeyValueClient(Protocol):
    """What the runtime needs from the lattice to serve wasi:keyvalue (blocking calls)."""

    def get(self, bucket: str, key: str) -> bytes | None: ...
    def set(self, bucket: str, key: str, value: bytes) -> None: ...
    def delete(self, bucket: str, key: str) -> None: ...
    def exists(self, bucket: str, key: str) -> bool: ...
    def list_keys(self, bucket: str, cursor: int | None) -> tuple[list[str], int | None]: ...
    def increment(self, bucket: str, key: str, delta: int) -> int: ...


class Bucket:
    def __init__(self, name: str) -> None:
        self.name = name


def keyvalue_interfaces(table: ResourceTable, client: KeyValueClient) -> list[HostInterface]:
    def guarded(call: Any) -> Any:
        try:
            result = call()
        except KeyValueError as error:
            return error_variant(error)
        return result

    def open_(store: Any, identifier: str) -> Any:
        return table.own(Bucket(identifier))

    def get(store: Any, self_: GuestHandle, key: str) -> Any:
        bucket = table.get(store, self_, Bucket).name
        return guarded(lambda: client.get(bucket, key))

    def set_(store: Any, self_: GuestHandle, key: str, value: bytes) -> Any:
        bucket = table.get(store, self_, Bucket).name
        return guarded(lambda: client.set(bucket, key, value))

    def delete(store: Any, self_: GuestHandle, key: str) -> Any:
        bucket = table.get(store, self_, Bucket).name
        return guarded(lambda: client.delete(bucket, key))

    def exists(store: Any, self_: GuestHandle, key: str) -> Any:
        bucket = table.get(store, self_, Bucket).name
        return guarded(lambda: client.exists(bucket, key))

    def list_keys(store: Any, self_: GuestHandle, cursor: int | None) -> Any:
        bucket = table.get(store, self_, Bucket).name

        def call() -> Record:
            keys, next_cursor = client.list_keys(bucket, cursor)
            response = Record()
            setattr(response, "keys", keys)  # noqa: B010 - Record is a bare attribute bag
            setattr(response, "cursor", next_cursor)  # noqa: B010
            return response

        return guarded(call)

    def increment(store: Any, bucket_: GuestHandle, key: str, delta: int) -> Any:
        bucket = table.get(store, bucket_, Bucket).name
        return guarded(lambda: client.increment(bucket, key, delta))

    store_iface = HostInterface(
        "wasi:keyvalue/store",
        KEYVALUE_VERSION,
        resources={"bucket": Bucket},
        functions={
            "open": open_,
            "[method]bucket.get": get,
            "[method]bucket.set": set_,
            "[method]bucket.delete": delete,
            "[method]bucket.exists": exists,
            "[method]bucket.list-keys": list_keys,
        },
    )
    atomics = HostInterface(
        "wasi:keyvalue/atomics", KEYVALUE_VERSION, functions={"increment": increment}
    )
    return [store_iface, atomics]
