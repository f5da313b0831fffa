"""wrpc:keyvalue/{store,atomics}@0.2.0-draft: parameters and results on the wire.

On wRPC the wasi `bucket` resource is replaced by the bucket's name, so every call
starts with `bucket: string` (as wasmCloud 1.x's runtime does). Results are
`result<T, error>` with `variant error { no-such-store, access-denied, other(string) }`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from host_agent.interfaces.keyvalue import KEYVALUE_ERROR_KINDS, KEYVALUE_VERSION, KeyValueError
from host_agent.wrpc.codec import DecodeError, Reader, Writer

T = TypeVar("T")
ERROR_CASES = KEYVALUE_ERROR_KINDS


def instance(interface: str) -> str:
    """`store` -> `wrpc:keyvalue/store@0.2.0-draft`."""
    return f"wrpc:keyvalue/{interface}@{KEYVALUE_VERSION}"


# parameters -------------------------------------------------------------------------
def bucket_key(bucket: str, key: str) -> bytes:
    return Writer().string(bucket).string(key).finish()


def bucket_key_value(bucket: str, key: str, value: bytes) -> bytes:
    return Writer().string(bucket).string(key).list_u8(value).finish()


def bucket_cursor(bucket: str, cursor: int | None) -> bytes:
    writer = Writer().string(bucket)
    return (writer.u8(0) if cursor is None else writer.u8(1).u(cursor)).finish()


def bucket_key_delta(bucket: str, key: str, delta: int) -> bytes:
    return Writer().string(bucket).string(key).u(delta).finish()


def read_bucket_key(data: bytes) -> tuple[str, str]:
    reader = Reader(data)
    return reader.string(), reader.string()


def read_bucket_key_value(data: bytes) -> tuple[str, str, bytes]:
    reader = Reader(data)
    return reader.string(), reader.string(), reader.list_u8()


def read_bucket_cursor(data: bytes) -> tuple[str, int | None]:
    reader = Reader(data)
    bucket = reader.string()
    return bucket, (reader.u() if reader.option() else None)


def read_bucket_key_delta(data: bytes) -> tuple[str, str, int]:
    reader = Reader(data)
    return reader.string(), reader.string(), reader.u()


# results ----------------------------------------------------------------------------
def _ok() -> Writer:
    return Writer().u8(0)


def encode_error(error: KeyValueError) -> bytes:
    kind = error.kind if error.kind in ERROR_CASES else "other"
    writer = Writer().u8(1).u(ERROR_CASES.index(kind))
    if kind == "other":
        writer.string(error.message or "error")
    return writer.finish()


def encode_get(value: bytes | None) -> bytes:
    writer = _ok()
    return (writer.u8(0) if value is None else writer.u8(1).list_u8(value)).finish()


def encode_unit(_: None) -> bytes:
    return _ok().finish()


def encode_exists(value: bool) -> bytes:
    return _ok().boolean(value).finish()


def encode_list_keys(page: tuple[list[str], int | None]) -> bytes:
    keys, cursor = page
    writer = _ok().u(len(keys))
    for key in keys:
        writer.string(key)
    return (writer.u8(0) if cursor is None else writer.u8(1).u(cursor)).finish()


def encode_increment(value: int) -> bytes:
    return _ok().u(value).finish()


async def answer(call: Awaitable[T], encode: Callable[[T], bytes]) -> bytes:
    """Run a backend call and encode its `result<T, error>`."""
    try:
        return encode(await call)
    except KeyValueError as error:
        return encode_error(error)


def _result(data: bytes) -> Reader:
    """A reader positioned at the ok payload; raises KeyValueError for `err`."""
    reader = Reader(data)
    if reader.u8() == 0:
        return reader
    case = reader.u()
    if case >= len(ERROR_CASES):
        raise DecodeError(f"unknown keyvalue error case {case}")
    kind = ERROR_CASES[case]
    raise KeyValueError(kind, reader.string() if kind == "other" else "")


def decode_get(data: bytes) -> bytes | None:
    reader = _result(data)
    return reader.list_u8() if reader.option() else None


def decode_unit(data: bytes) -> None:
    _result(data)


def decode_exists(data: bytes) -> bool:
    return _result(data).boolean()


def decode_list_keys(data: bytes) -> tuple[list[str], int | None]:
    reader = _result(data)
    keys = [reader.string() for _ in range(reader.u(32))]
    return keys, (reader.u() if reader.option() else None)


def decode_increment(data: bytes) -> int:
    return _result(data).u()
