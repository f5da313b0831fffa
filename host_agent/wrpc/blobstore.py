"""wrpc:blobstore/blobstore@0.2.0: parameters and results on the wire.

Every function answers ``result<T, string>``. Streams follow the wRPC layout used by
host_agent/wrpc/http.py: object bytes always travel as a pending ``stream<u8>`` on a
nested path (the parameter ``1`` of write-container-data, the result field ``0.0`` of
get-container-data), in length-prefixed chunks, so an object larger than one NATS
message crosses in pieces; a listing's ``stream<string>`` goes inline when it has names
(a zero count means "pending" to wRPC, so an empty one is pending with only its end
marker). The ``future<result<_, string>>`` beside a stream is always sent ready.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from host_agent.interfaces.blobstore import BlobstoreError, ObjectId, ObjectInfo
from host_agent.wrpc.codec import DecodeError, Reader, Writer, read_stream_frames, stream_frames
from host_agent.wrpc.transport import Payload

T = TypeVar("T")
DATA_PARAM_PATH = "1"  # write-container-data's `data`, the second parameter
STREAM_RESULT_PATH = "0.0"  # the stream in result::ok's tuple
STRING_CHUNK = 256  # names per frame of a pending stream<string>


# parameters -------------------------------------------------------------------------
def name(container: str) -> Payload:
    return Payload(Writer().string(container).finish())


def read_name(params: Payload) -> str:
    return _whole(params.data, Reader.string)


def _object_id(writer: Writer, id_: ObjectId) -> Writer:
    return writer.string(id_.container).string(id_.object)


def _read_object_id(reader: Reader) -> ObjectId:
    return ObjectId(reader.string(), reader.string())


def object_id(id_: ObjectId) -> Payload:
    return Payload(_object_id(Writer(), id_).finish())


def read_object_id(params: Payload) -> ObjectId:
    return _whole(params.data, _read_object_id)


def src_dest(src: ObjectId, dest: ObjectId) -> Payload:
    return Payload(_object_id(_object_id(Writer(), src), dest).finish())


def read_src_dest(params: Payload) -> tuple[ObjectId, ObjectId]:
    return _whole(params.data, lambda r: (_read_object_id(r), _read_object_id(r)))


def list_objects(container: str, limit: int | None, offset: int | None) -> Payload:
    writer = Writer().string(container)
    for value in (limit, offset):
        writer.u8(0) if value is None else writer.u8(1).u(value)
    return Payload(writer.finish())


def read_list_objects(params: Payload) -> tuple[str, int | None, int | None]:
    def read(reader: Reader) -> tuple[str, int | None, int | None]:
        container = reader.string()
        limit = reader.u() if reader.option() else None
        offset = reader.u() if reader.option() else None
        return container, limit, offset

    return _whole(params.data, read)


def delete_objects(container: str, names: list[str]) -> Payload:
    writer = Writer().string(container).u(len(names))
    for object_name in names:
        writer.string(object_name)
    return Payload(writer.finish())


def read_delete_objects(params: Payload) -> tuple[str, list[str]]:
    def read(reader: Reader) -> tuple[str, list[str]]:
        container = reader.string()
        return container, [reader.string() for _ in range(reader.u(32))]

    return _whole(params.data, read)


def get_data(id_: ObjectId, start: int, end: int) -> Payload:
    return Payload(_object_id(Writer(), id_).u(start).u(end).finish())


def read_get_data(params: Payload) -> tuple[ObjectId, int, int]:
    return _whole(params.data, lambda r: (_read_object_id(r), r.u(), r.u()))


def write_data(id_: ObjectId, data: bytes) -> Payload:
    # The stream is pending (0): its chunks follow on the parameter's nested path.
    return Payload(_object_id(Writer(), id_).u8(0).finish(), {DATA_PARAM_PATH: stream_frames(data)})


def pending_write_paths(data: bytes) -> list[str]:
    """The nested paths write-container-data's parameters wait for (the pending stream)."""
    try:
        reader = Reader(data)
        _read_object_id(reader)
        return [DATA_PARAM_PATH] if reader.u8() == 0 else []
    except DecodeError:
        return []  # read_write_data names the problem


def read_write_data(params: Payload) -> tuple[ObjectId, bytes]:
    reader = Reader(params.data)
    id_ = _read_object_id(reader)
    inline = reader.list_u8()
    _end(reader)
    if inline:
        return id_, inline
    return id_, read_stream_frames(params.nested.get(DATA_PARAM_PATH, b""))


# results ----------------------------------------------------------------------------
def encode_error(message: str) -> Payload:
    return Payload(Writer().u8(1).string(message or "error").finish())


def encode_unit(_: None) -> Payload:
    return Payload(Writer().u8(0).finish())


def encode_bool(value: bool) -> Payload:
    return Payload(Writer().u8(0).boolean(value).finish())


def encode_container_info(created_at: int) -> Payload:
    return Payload(Writer().u8(0).u(created_at).finish())


def encode_object_info(info: ObjectInfo) -> Payload:
    return Payload(Writer().u8(0).u(info.created_at).u(info.size).finish())


def encode_names(names: list[str]) -> Payload:
    writer = Writer().u8(0)
    nested: dict[str, bytes] = {}
    if names:
        writer.u(len(names))
        for object_name in names:
            writer.string(object_name)
    else:
        writer.u8(0)
        nested[STREAM_RESULT_PATH] = Writer().u8(0).finish()
    writer.u8(1).u8(0)  # the status future: ready, ok
    return Payload(writer.finish(), nested)


def encode_data(data: bytes) -> Payload:
    writer = Writer().u8(0).u8(0)  # ok, the stream pending
    writer.u8(1).u8(0)  # the status future: ready, ok
    return Payload(writer.finish(), {STREAM_RESULT_PATH: stream_frames(data)})


def encode_written(_: None) -> Payload:
    return Payload(Writer().u8(0).u8(1).u8(0).finish())  # ok(future ready(ok))


async def answer(call: Awaitable[T], encode: Callable[[T], Payload]) -> Payload:
    """Run a backend call and encode its `result<T, string>`."""
    try:
        return encode(await call)
    except BlobstoreError as error:
        return encode_error(str(error))


def pending_stream_paths(data: bytes) -> list[str]:
    """The nested path a list/get result waits for: ok, then a pending (0) stream."""
    return [STREAM_RESULT_PATH] if data[:2] == b"\x00\x00" else []


def _result(data: bytes) -> Reader:
    """A reader at the ok payload; raises BlobstoreError with the provider's message."""
    reader = Reader(data)
    if reader.u8() == 0:
        return reader
    raise BlobstoreError(reader.string())


def _status(reader: Reader) -> None:
    """A ready `future<result<_, string>>`: raises the error it carries."""
    if not reader.option():
        raise DecodeError("the provider sent the stream's status as pending; expected it ready")
    if reader.u8() != 0:
        raise BlobstoreError(reader.string())
    _end(reader)


def decode_unit(results: Payload) -> None:
    _end(_result(results.data))


def decode_bool(results: Payload) -> bool:
    reader = _result(results.data)
    value = reader.boolean()
    _end(reader)
    return value


def decode_container_info(results: Payload) -> int:
    reader = _result(results.data)
    created_at = reader.u()
    _end(reader)
    return created_at


def decode_object_info(results: Payload) -> ObjectInfo:
    reader = _result(results.data)
    info = ObjectInfo(reader.u(), reader.u())
    _end(reader)
    return info


def decode_names(results: Payload) -> list[str]:
    reader = _result(results.data)
    count = reader.u(32)
    names = [reader.string() for _ in range(count)]
    if not count:
        frames = Reader(results.nested.get(STREAM_RESULT_PATH, b"\x00"))
        while chunk := frames.u(32):
            names.extend(frames.string() for _ in range(chunk))
    _status(reader)
    return names


def decode_data(results: Payload) -> bytes:
    reader = _result(results.data)
    inline = reader.list_u8()
    data = inline or read_stream_frames(results.nested.get(STREAM_RESULT_PATH, b""))
    _status(reader)
    return data


def decode_written(results: Payload) -> None:
    _status(_result(results.data))


def _end(reader: Reader) -> None:
    if not reader.at_end():
        raise DecodeError(f"{reader.remaining()} unexpected bytes after the value")


def _whole(data: bytes, read: Callable[[Reader], T]) -> T:
    reader = Reader(data)
    value = read(reader)
    _end(reader)
    return value
