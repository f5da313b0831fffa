"""Plain wasi:http request/response values: what the http-server provider, the wRPC
codec and the component runtime pass between each other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class HttpRequest:
    method: str  # upper case, e.g. "GET"
    path_with_query: str
    scheme: str = "http"
    authority: str = ""
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    # A body still arriving when the component is called (a wRPC byte stream that comes
    # after the call): calling it waits for the whole body, from a worker thread.
    pending_body: Callable[[], bytes] | None = None

    def read_body(self) -> bytes:
        return self.body if self.pending_body is None else self.pending_body()


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def text(cls, status: int, message: str) -> HttpResponse:
        return cls(status, [("content-type", b"text/plain; charset=utf-8")], message.encode())
