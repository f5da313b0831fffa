"""wasi:blobstore@0.2.0-draft (blobstore, container, types) for components, routed to the
provider the component's link names (wasmCloud 1.x's runtime does the same over
wrpc:blobstore/blobstore@0.2.0).

Values cross the guest's wasi:io streams: ``outgoing-value-write-body`` hands out an
output stream, ``write-data`` sends what the guest wrote to it; ``get-data`` fetches the
range and ``incoming-value-consume-async`` hands it back as an input stream the guest
reads in chunks (or ``-consume-sync`` as one list). Between guest and wire the host holds
the object in memory, up to MAX_OBJECT_BYTES: the guest writes the body before calling
write-data, as the wasi-blobstore draft's examples do; a write after it finds the stream
closed. A `container` handle is only its name, as upstream's runtime keeps it.

wasmtime-py spells `result<T, string>` untagged (the value, or the error string) unless
both sides are strings (`container.name`), which takes `Variant("ok"|"err", ...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from wasmtime.component import Record, Variant

from host_agent.interfaces.blobstore import (
    BLOBSTORE_VERSION,
    MAX_OBJECT_BYTES,
    BlobstoreError,
    ObjectId,
    ObjectInfo,
)
from host_agent.runtime.interface import HostInterface
from host_agent.runtime.resources import GuestHandle, ResourceTable
from host_agent.runtime.wasi_io import InputStream, OutputStream

T = TypeVar("T")


class BlobstoreClient(Protocol):
    """What the runtime needs from the lattice to serve wasi:blobstore (blocking calls)."""

    def create_container(self, name: str) -> None: ...
    def container_exists(self, name: str) -> bool: ...
    def delete_container(self, name: str) -> None: ...
    def clear_container(self, name: str) -> None: ...
    def container_info(self, name: str) -> int: ...
    def list_objects(self, container: str) -> list[str]: ...
    def copy_object(self, src: ObjectId, dest: ObjectId) -> None: ...
    def move_object(self, src: ObjectId, dest: ObjectId) -> None: ...
    def delete_object(self, id_: ObjectId) -> None: ...
    def delete_objects(self, container: str, names: list[str]) -> None: ...
    def has_object(self, id_: ObjectId) -> bool: ...
    def object_info(self, id_: ObjectId) -> ObjectInfo: ...
    def get_data(self, id_: ObjectId, start: int, end: int) -> bytes: ...
    def write_data(self, id_: ObjectId, data: bytes) -> None: ...


class NoBlobstore:
    """Stands in where no calls are made (checking imports) or none are linked."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def refuse(*args: Any) -> Any:
            raise BlobstoreError("this instance has no blobstore client")

        return refuse


class Container:
    def __init__(self, name: str) -> None:
        self.name = name


class OutgoingValue:
    def __init__(self) -> None:
        self.body: OutputStream | None = None
        self.written = False


class IncomingValue:
    def __init__(self, data: bytes) -> None:
        self.data = data


class StreamObjectNames:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.offset = 0

    def take(self, count: int) -> tuple[list[str], bool]:
        taken = self.names[self.offset : self.offset + count]
        self.offset += len(taken)
        return taken, self.offset >= len(self.names)


def _record(**fields: Any) -> Record:
    record = Record()
    for key, value in fields.items():
        setattr(record, key.replace("_", "-"), value)  # wasmtime-py reads WIT field names
    return record


def _object_id(value: Any) -> ObjectId:
    return ObjectId(value.container, value.object)


def blobstore_interfaces(table: ResourceTable, client: BlobstoreClient) -> list[HostInterface]:
    def guarded(call: Callable[[], T]) -> T | str:
        try:
            return call()
        except BlobstoreError as error:
            return str(error)

    # wasi:blobstore/blobstore ----------------------------------------------------------
    def create_container(store: Any, name: str) -> Any:
        def call() -> Any:
            client.create_container(name)
            return table.own(Container(name))

        return guarded(call)

    def get_container(store: Any, name: str) -> Any:
        def call() -> Any:
            if not client.container_exists(name):
                raise BlobstoreError(f"container {name!r} does not exist; create it first")
            return table.own(Container(name))

        return guarded(call)

    def delete_container(store: Any, name: str) -> Any:
        return guarded(lambda: client.delete_container(name))

    def container_exists(store: Any, name: str) -> Any:
        return guarded(lambda: client.container_exists(name))

    def copy_object(store: Any, src: Any, dest: Any) -> Any:
        return guarded(lambda: client.copy_object(_object_id(src), _object_id(dest)))

    def move_object(store: Any, src: Any, dest: Any) -> Any:
        return guarded(lambda: client.move_object(_object_id(src), _object_id(dest)))

    # wasi:blobstore/container ----------------------------------------------------------
    def container_of(store: Any, handle: GuestHandle) -> str:
        return table.get(store, handle, Container).name

    def name(store: Any, self_: GuestHandle) -> Any:
        return Variant("ok", container_of(store, self_))

    def info(store: Any, self_: GuestHandle) -> Any:
        container = container_of(store, self_)

        def call() -> Record:
            return _record(name=container, created_at=client.container_info(container))

        return guarded(call)

    def get_data(store: Any, self_: GuestHandle, object_: str, start: int, end: int) -> Any:
        id_ = ObjectId(container_of(store, self_), object_)
        return guarded(lambda: table.own(IncomingValue(client.get_data(id_, start, end))))

    def write_data(store: Any, self_: GuestHandle, object_: str, data: GuestHandle) -> Any:
        id_ = ObjectId(container_of(store, self_), object_)
        value = table.get(store, data, OutgoingValue)
        if value.written:
            return "write-data was already called with this outgoing-value; make a new one"
        value.written = True
        body = b""
        if value.body is not None:
            if value.body.closed:  # only a write past the limit closes it before here
                return f"the object is larger than the host's limit of {MAX_OBJECT_BYTES} bytes"
            body = bytes(value.body.buffer)
            value.body.closed = True  # later writes would be lost: the guest sees why
        return guarded(lambda: client.write_data(id_, body))

    def list_objects(store: Any, self_: GuestHandle) -> Any:
        container = container_of(store, self_)
        return guarded(lambda: table.own(StreamObjectNames(client.list_objects(container))))

    def delete_object(store: Any, self_: GuestHandle, object_: str) -> Any:
        id_ = ObjectId(container_of(store, self_), object_)
        return guarded(lambda: client.delete_object(id_))

    def delete_objects(store: Any, self_: GuestHandle, names: list[str]) -> Any:
        container = container_of(store, self_)
        return guarded(lambda: client.delete_objects(container, names))

    def has_object(store: Any, self_: GuestHandle, object_: str) -> Any:
        id_ = ObjectId(container_of(store, self_), object_)
        return guarded(lambda: client.has_object(id_))

    def object_info(store: Any, self_: GuestHandle, object_: str) -> Any:
        id_ = ObjectId(container_of(store, self_), object_)

        def call() -> Record:
            found = client.object_info(id_)
            return _record(
                name=object_, container=id_.container, created_at=found.created_at, size=found.size
            )

        return guarded(call)

    def clear(store: Any, self_: GuestHandle) -> Any:
        container = container_of(store, self_)
        return guarded(lambda: client.clear_container(container))

    def read_names(store: Any, self_: GuestHandle, count: int) -> Any:
        return table.get(store, self_, StreamObjectNames).take(count)

    def skip_names(store: Any, self_: GuestHandle, count: int) -> Any:
        skipped, ended = table.get(store, self_, StreamObjectNames).take(count)
        return (len(skipped), ended)

    # wasi:blobstore/types --------------------------------------------------------------
    def new_outgoing_value(store: Any) -> Any:
        return table.own(OutgoingValue())

    def write_body(store: Any, self_: GuestHandle) -> Any:
        value = table.get(store, self_, OutgoingValue)
        if value.body is not None or value.written:
            return None  # result<output-stream>'s error: the body was already taken
        value.body = OutputStream(limit=MAX_OBJECT_BYTES)
        return table.own(value.body)

    def finish(store: Any, this: GuestHandle) -> Any:
        # Upstream's runtime WIT has it (the crate's WIT does not): write-data is complete
        # by the time it returns here, so there is nothing left to wait for.
        table.take(store, this, OutgoingValue)
        return None

    def consume_sync(store: Any, this: GuestHandle) -> Any:
        return table.take(store, this, IncomingValue).data

    def consume_async(store: Any, this: GuestHandle) -> Any:
        return table.own(InputStream(table.take(store, this, IncomingValue).data))

    def size(store: Any, self_: GuestHandle) -> int:
        return len(table.get(store, self_, IncomingValue).data)

    return [
        HostInterface(
            "wasi:blobstore/types",
            BLOBSTORE_VERSION,
            resources={"outgoing-value": OutgoingValue, "incoming-value": IncomingValue},
            functions={
                "[static]outgoing-value.new-outgoing-value": new_outgoing_value,
                "[method]outgoing-value.outgoing-value-write-body": write_body,
                "[static]outgoing-value.finish": finish,
                "[static]incoming-value.incoming-value-consume-sync": consume_sync,
                "[static]incoming-value.incoming-value-consume-async": consume_async,
                "[method]incoming-value.size": size,
            },
        ),
        HostInterface(
            "wasi:blobstore/container",
            BLOBSTORE_VERSION,
            resources={"container": Container, "stream-object-names": StreamObjectNames},
            functions={
                "[method]container.name": name,
                "[method]container.info": info,
                "[method]container.get-data": get_data,
                "[method]container.write-data": write_data,
                "[method]container.list-objects": list_objects,
                "[method]container.delete-object": delete_object,
                "[method]container.delete-objects": delete_objects,
                "[method]container.has-object": has_object,
                "[method]container.object-info": object_info,
                "[method]container.clear": clear,
                "[method]stream-object-names.read-stream-object-names": read_names,
                "[method]stream-object-names.skip-stream-object-names": skip_names,
            },
        ),
        HostInterface(
            "wasi:blobstore/blobstore",
            BLOBSTORE_VERSION,
            functions={
                "create-container": create_container,
                "get-container": get_container,
                "delete-container": delete_container,
                "container-exists": container_exists,
                "copy-object": copy_object,
                "move-object": move_object,
            },
        ),
    ]
