"""wasi:io (error, poll, streams) in Python.

The host owns this whole resource family because wasi:http hands streams to the guest,
and wasmtime-py cannot mix Python-made handles with its native WASI streams (see
docs/architecture.md). Everything here is synchronous: bodies are complete in memory
before the guest runs, so every pollable is immediately ready.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasmtime.component import ResourceAny, Variant

from host_agent.runtime.interface import HostInterface
from host_agent.runtime.resources import GuestHandle, ResourceTable

WRITE_BUDGET = 4096  # what check-write promises; the guest must not write more at once

# How wasmtime-py wants stream results spelled (it lowers by Python class, see compat.py):
# `result<_, stream-error>` is tagged; `result<T, stream-error>` is not, and there the
# `closed` error is plain None.
WRITE_OK = Variant("ok")
WRITE_CLOSED = Variant("err", None)
CLOSED = None


class IoError:
    def __init__(self, message: str) -> None:
        self.message = message


class Pollable:
    """Always ready: nothing the host hands out ever waits."""


class InputStream:
    def __init__(self, data: bytes = b"") -> None:
        self._data = memoryview(data)
        self._offset = 0

    def read(self, length: int) -> bytes | None:
        if self._offset >= len(self._data):
            return None
        chunk = bytes(self._data[self._offset : self._offset + length])
        self._offset += len(chunk)
        return chunk


class OutputStream:
    """Collects bytes; `sink` (if any) sees each write, e.g. to log guest stdout."""

    def __init__(self, sink: Callable[[bytes], None] | None = None, limit: int | None = None):
        self.buffer = bytearray()
        self.closed = False
        self.overflowed = False  # closed because a write went over the limit
        self._sink = sink
        self.limit = limit

    def write(self, data: bytes) -> bool:
        """Accept `data`; False when the stream is closed (or just went over its limit)."""
        if self.closed:
            return False
        if self.limit is not None and len(self.buffer) + len(data) > self.limit:
            self.closed = True  # over the limit: the guest sees the stream close
            self.overflowed = True
            return False
        if self._sink is not None:
            self._sink(data)
        else:
            self.buffer += data
        return True


def io_interfaces(table: ResourceTable) -> list[HostInterface]:
    def write(store: Any, self_: GuestHandle, data: bytes) -> Any:
        stream = table.get(store, self_, OutputStream)
        if len(data) > WRITE_BUDGET:
            raise RuntimeError(f"guest wrote {len(data)} bytes, over its check-write budget")
        return WRITE_OK if stream.write(data) else WRITE_CLOSED

    def splice(store: Any, self_: GuestHandle, src: GuestHandle, length: int) -> Any:
        out = table.get(store, self_, OutputStream)
        chunk = table.get(store, src, InputStream).read(min(length, WRITE_BUDGET))
        if chunk is None:
            return CLOSED
        return len(chunk) if out.write(chunk) else CLOSED

    def read(store: Any, self_: GuestHandle, length: int) -> Any:
        chunk = table.get(store, self_, InputStream).read(length)
        return CLOSED if chunk is None else chunk

    def skip(store: Any, self_: GuestHandle, length: int) -> Any:
        chunk = table.get(store, self_, InputStream).read(length)
        return CLOSED if chunk is None else len(chunk)

    def ok_if_open(store: Any, self_: GuestHandle) -> Any:
        return WRITE_CLOSED if table.get(store, self_, OutputStream).closed else WRITE_OK

    def check_write(store: Any, self_: GuestHandle) -> Any:
        return CLOSED if table.get(store, self_, OutputStream).closed else WRITE_BUDGET

    def write_zeroes(store: Any, self_: GuestHandle, length: int) -> Any:
        return (
            WRITE_OK if table.get(store, self_, OutputStream).write(bytes(length)) else WRITE_CLOSED
        )

    def subscribe(store: Any, self_: GuestHandle) -> Any:
        table.get(store, self_, object)
        return table.own(Pollable())

    def ready(store: Any, self_: GuestHandle) -> bool:
        table.get(store, self_, Pollable)
        return True

    def block(store: Any, self_: GuestHandle) -> None:
        table.get(store, self_, Pollable)

    def poll(store: Any, pollables: list[ResourceAny]) -> list[int]:
        for pollable in pollables:
            table.get(store, pollable, Pollable)
        return list(range(len(pollables)))

    def to_debug_string(store: Any, self_: GuestHandle) -> str:
        return table.get(store, self_, IoError).message

    streams = HostInterface(
        "wasi:io/streams",
        "0.2.",
        resources={"input-stream": InputStream, "output-stream": OutputStream},
        functions={
            "[method]output-stream.check-write": check_write,
            "[method]output-stream.write": write,
            "[method]output-stream.blocking-write-and-flush": write,
            "[method]output-stream.flush": ok_if_open,
            "[method]output-stream.blocking-flush": ok_if_open,
            "[method]output-stream.subscribe": subscribe,
            "[method]output-stream.write-zeroes": write_zeroes,
            "[method]output-stream.blocking-write-zeroes-and-flush": write_zeroes,
            "[method]output-stream.splice": splice,
            "[method]output-stream.blocking-splice": splice,
            "[method]input-stream.read": read,
            "[method]input-stream.blocking-read": read,
            "[method]input-stream.skip": skip,
            "[method]input-stream.blocking-skip": skip,
            "[method]input-stream.subscribe": subscribe,
        },
    )
    poll_iface = HostInterface(
        "wasi:io/poll",
        "0.2.",
        resources={"pollable": Pollable},
        functions={
            "[method]pollable.ready": ready,
            "[method]pollable.block": block,
            "poll": poll,
        },
    )
    error = HostInterface(
        "wasi:io/error",
        "0.2.",
        resources={"error": IoError},
        functions={"[method]error.to-debug-string": to_debug_string},
    )
    return [error, poll_iface, streams]
