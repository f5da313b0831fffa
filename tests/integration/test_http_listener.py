"""The http-server provider's HTTP/1.1 side (host_agent/providers/http_listener.py) on a
real socket on 127.0.0.1, with a stub handler in place of the wRPC call to a component:
what a client sees (keep-alive, answers in order, 413 before the body, 100-continue, 400
and the connection closed, HEAD, the headers written) and what the component would be
handed (method, target as sent, authority, headers in order with byte values)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import pytest

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.lattice import event_loop
from host_agent.providers import http_listener
from host_agent.providers.http_listener import HeaderView, HttpListener
from tests.lattice import free_port

pytestmark = pytest.mark.timeout(60)

LIMIT = 1000
TOO_LARGE = "request body over max_body_bytes (1000 bytes) of the test link\n"


def on_uvloop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run the test on the loop the provider runs on (uvloop); an error the loop reports
    (a callback or task of the listener's that raised) fails it."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        errors: list[dict[str, Any]] = []

        async def watched() -> None:
            asyncio.get_running_loop().set_exception_handler(lambda _, c: errors.append(c))
            await test(*args, **kwargs)

        event_loop.run(watched())
        assert errors == []

    return run


class Stub:
    """The handler: records each request, answers with `answer(request)` (by default
    200 echoing the body), one at a time or not (`most` counts overlaps)."""

    def __init__(
        self, answer: Callable[[HttpRequest], Awaitable[HttpResponse]] | None = None
    ) -> None:
        self.seen: list[HttpRequest] = []
        self.answer = answer
        self.running = 0
        self.most = 0

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.seen.append(request)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            if self.answer is not None:
                return await self.answer(request)
            return HttpResponse(200, [("content-type", b"text/plain")], b"echo:" + request.body)
        finally:
            self.running -= 1


async def listening(stub: Stub) -> tuple[HttpListener, int]:
    port = free_port()
    listener = HttpListener(stub, LIMIT, TOO_LARGE)
    await listener.start("127.0.0.1", port)
    return listener, port


@contextlib.asynccontextmanager
async def serving(stub: Stub) -> AsyncIterator[int]:
    """A listener handing requests to ``stub``, on a free loopback port, closed after."""
    listener, port = await listening(stub)
    try:
        yield port
    finally:
        await listener.close()


async def read_response(
    reader: asyncio.StreamReader, head: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """One response: status, headers (lower-cased names), body by its Content-Length
    (none after a HEAD)."""
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = 0 if head else int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
    return status, headers, body


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for a state of the handler or listener the test cannot await."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def at_eof(reader: asyncio.StreamReader) -> bool:
    """The server closed the connection (nothing more follows)."""
    return await asyncio.wait_for(reader.read(1), 10) == b""


@on_uvloop
async def test_keep_alive_as_http_1_1_and_1_0_clients_expect() -> None:
    stub = Stub()
    async with serving(stub) as port:
        # HTTP/1.1: the connection stays open; `Connection: close` closes it after.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert (status, body) == (200, b"echo:")
        assert "connection" not in headers
        writer.write(b"GET /two HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        status, headers, _ = await read_response(reader)
        assert (status, headers["connection"]) == (200, "close")
        assert await at_eof(reader)
        writer.close()

        # HTTP/1.0: closed after the answer, unless it asks for keep-alive.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /three HTTP/1.0\r\n\r\n")
        status, headers, _ = await read_response(reader)
        assert (status, headers["connection"]) == (200, "close")
        assert await at_eof(reader)
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for path in (b"/four", b"/five"):
            writer.write(b"GET " + path + b" HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, _ = await read_response(reader)
            assert (status, headers["connection"]) == (200, "keep-alive")
        writer.close()
        assert [r.path_with_query for r in stub.seen] == [
            "/one",
            "/two",
            "/three",
            "/four",
            "/five",
        ]


@on_uvloop
async def test_an_idle_keep_alive_connection_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_listener, "KEEPALIVE_S", 0.2)
    async with serving(Stub()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        assert await at_eof(reader)  # 0.2 s after the answer, not 10
        writer.close()


@on_uvloop
@pytest.mark.parametrize(
    "part",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ",
        b"PUT /p HTTP/1.1\r\nContent-Length: 10\r\n\r\nhalf",
    ],
    ids=["head", "body"],
)
async def test_a_request_left_half_sent_gets_408_and_the_connection_closes(
    monkeypatch: pytest.MonkeyPatch, part: bytes
) -> None:
    monkeypatch.setattr(http_listener, "READ_STALL_S", 1.0)
    stub = Stub()
    async with serving(stub) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(part)
        status, _, body = await read_response(reader)  # 1 s later, not never
        assert status == 408 and b"send the whole request" in body
        assert await at_eof(reader)
        assert stub.seen == []
        writer.close()


@on_uvloop
async def test_a_slow_client_that_keeps_sending_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_listener, "READ_STALL_S", 1.0)
    stub = Stub()
    async with serving(stub) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"PUT /p HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n")
        for piece in (b"ab", b"cd", b"ef"):  # 1.5 s in all, never 1 s silent
            await asyncio.sleep(0.5)  # the client's pace (the stimulus, not a wait)
            writer.write(piece)
        status, _, body = await read_response(reader)
        assert (status, body) == (200, b"echo:abcdef")
        writer.close()


@on_uvloop
async def test_pipelined_requests_are_answered_in_order_one_at_a_time() -> None:
    release = asyncio.Event()

    async def answer(request: HttpRequest) -> HttpResponse:
        if request.path_with_query == "/slow":
            await release.wait()
        return HttpResponse(200, [], request.path_with_query.encode())

    stub = Stub(answer)
    async with serving(stub) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # Two in one segment, then one more while the first is in flight.
        writer.write(
            b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n"
            b"POST /fast HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        )
        await until(lambda: bool(stub.seen))
        writer.write(b"GET /last HTTP/1.1\r\nHost: a\r\n\r\n")
        await writer.drain()
        # /slow is in flight; the others wait their turn and nothing is written yet.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.3)
        assert [r.path_with_query for r in stub.seen] == ["/slow"]
        release.set()
        answers = [(await read_response(reader))[2] for _ in range(3)]
        assert answers == [b"/slow", b"/fast", b"/last"]
        assert stub.most == 1
        assert [r.body for r in stub.seen] == [b"", b"abc", b""]
        writer.close()


@on_uvloop
async def test_a_content_length_over_the_limit_is_refused_before_the_body_is_sent() -> None:
    stub = Stub()
    async with serving(stub) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # Only the head: the 413 comes without waiting for the (never sent) body.
        writer.write(b"PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert (status, body.decode(), headers["connection"]) == (413, TOO_LARGE, "close")
        assert await at_eof(reader)
        writer.close()
        # At the limit is fine.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"PUT /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000)
        status, _, body = await read_response(reader)
        assert (status, body) == (200, b"echo:" + b"x" * 1000)
        writer.close()
        assert [r.path_with_query for r in stub.seen] == ["/ok"]


@on_uvloop
async def test_a_client_that_sends_the_whole_oversized_body_reads_the_413() -> None:
    """http.client sends all 16 MiB before it reads: the listener drops them while the
    client sends (closing with them unread would reset the connection, 413 lost)."""
    stub = Stub()

    def put(port: int, chunked: bool) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            if chunked:
                pieces = (b"y" * 65536 for _ in range(256))
                connection.request("PUT", "/c", body=pieces, encode_chunked=True)
            else:
                connection.request("PUT", "/l", body=b"x" * (16 * 1024 * 1024))
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    async with serving(stub) as port:
        for chunked in (False, True):
            assert await asyncio.to_thread(put, port, chunked) == (413, TOO_LARGE.encode())
        assert stub.seen == []


@on_uvloop
async def test_a_chunked_body_is_counted_as_it_arrives() -> None:
    stub = Stub()
    async with serving(stub) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # Within the limit: the chunks are joined; trailers are not headers.
        writer.write(
            b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
        status, _, body = await read_response(reader)
        assert (status, body) == (200, b"echo:hello world")
        assert [n for n, _ in stub.seen[0].headers] == ["host", "transfer-encoding"]
        # Over it: 413 as soon as the count passes the limit, before the last chunk.
        writer.write(b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"3e8\r\n" + b"z" * 1000 + b"\r\n1\r\nz\r\n")
        status, _, body = await read_response(reader)
        assert (status, body.decode()) == (413, TOO_LARGE)
        assert len(stub.seen) == 1
        writer.close()


@on_uvloop
async def test_expect_100_continue() -> None:
    stub = Stub()
    async with serving(stub) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"PUT /e HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"body")
        status, _, body = await read_response(reader)
        assert (status, body) == (200, b"echo:body")
        # Over the limit: the 413 instead of 100 Continue (the client sends no body).
        writer.write(
            b"PUT /e HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\nExpect: 100-continue\r\n\r\n"
        )
        status, _, body = await read_response(reader)
        assert (status, body.decode()) == (413, TOO_LARGE)
        assert await at_eof(reader)
        writer.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n",  # no such method
        b"GET /a HTTP/1.1\r\nBad Header: x\r\n\r\n",  # a space in a header name
        b"GET /a HTTP/9.9\r\nHost: a\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
        b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",  # not ASCII: percent-encode it
    ],
)
@on_uvloop
async def test_a_malformed_request_gets_400_and_the_connection_closes(raw: bytes) -> None:
    stub = Stub()
    async with serving(stub) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw + b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert (status, headers["connection"]) == (400, "close")
        assert body.startswith(b"malformed HTTP request: ")
        assert await at_eof(reader)
        assert stub.seen == []  # neither the bad request nor what followed it
        writer.close()


@on_uvloop
async def test_upgrade_is_answered_as_a_plain_request_and_connect_is_501() -> None:
    stub = Stub()
    async with serving(stub) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            b"\x81\x05hello"  # what a client switching protocols early would send
        )
        status, headers, body = await read_response(reader)
        assert (status, body, headers["connection"]) == (200, b"echo:", "close")
        assert await at_eof(reader)
        writer.close()
        assert [r.path_with_query for r in stub.seen] == ["/ws"]

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        status, _, _ = await read_response(reader)
        assert status == 501
        assert await at_eof(reader)
        writer.close()
        assert len(stub.seen) == 1


@on_uvloop
async def test_the_request_handed_on_is_what_the_client_sent() -> None:
    stub = Stub()
    async with serving(stub) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"DELETE /a%20b/../c?x=1&y=%2F&x=2 HTTP/1.1\r\nHost: example.test:8080\r\n"
            b"X-Name: caf\xe9\r\nAccept: a\r\nX-NAME: second\r\nContent-Length: 2\r\n\r\nhi"
        )
        await read_response(reader)
        # No Host (HTTP/1.0): the listening address; an absolute-form target: its parts.
        writer.write(b"GET /h HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        await read_response(reader)
        writer.write(b"GET http://other.test:81/p?q=1 HTTP/1.1\r\nHost: ignored\r\n\r\n")
        await read_response(reader)
        writer.close()
        first, second, third = stub.seen
        assert first == HttpRequest(
            "DELETE",
            "/a%20b/../c?x=1&y=%2F&x=2",
            "http",
            "example.test:8080",
            [
                ("host", b"example.test:8080"),
                ("x-name", b"caf\xe9"),
                ("accept", b"a"),
                ("x-name", b"second"),
                ("content-length", b"2"),
            ],
            b"hi",
        )
        assert (second.path_with_query, second.authority) == ("/h", f"127.0.0.1:{port}")
        assert (third.path_with_query, third.authority) == ("/p?q=1", "other.test:81")


@on_uvloop
async def test_response_headers_and_head() -> None:
    async def answer(request: HttpRequest) -> HttpResponse:
        headers = [
            ("content-type", b"text/plain"),
            ("Content-Length", b"999"),  # the component's own: replaced by the right one
            ("transfer-encoding", b"chunked"),
            ("connection", b"close"),
            ("x-multi", b"1"),
            ("x-multi", b"2"),
        ]
        if request.path_with_query == "/dated":
            headers.append(("date", b"Thu, 01 Jan 2026 00:00:00 GMT"))
        return HttpResponse(200, headers, b"twelve bytes")

    async with serving(Stub(answer)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert await asyncio.wait_for(reader.readexactly(12), 10) == b"twelve bytes"
        lines = head.decode().split("\r\n")
        assert lines[0] == "HTTP/1.1 200 OK"
        names = [line.partition(":")[0].lower() for line in lines[1:] if line]
        assert sorted(names) == ["content-length", "content-type", "date", "x-multi", "x-multi"]
        assert "Content-Length: 12" in lines and "x-multi: 1" in lines and "x-multi: 2" in lines
        # The component's Date is kept; HEAD: the same headers, no body.
        writer.write(b"HEAD /dated HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        status, headers, _ = await read_response(reader, head=True)
        assert (status, headers["content-length"]) == (200, "12")
        assert headers["date"] == "Thu, 01 Jan 2026 00:00:00 GMT"
        assert await at_eof(reader)  # no body bytes followed the head
        writer.close()


@on_uvloop
async def test_a_header_with_a_line_break_is_not_written() -> None:
    async def answer(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, [("x-evil", b"a\r\nSet-Cookie: injected")], b"body")

    async with serving(Stub(answer)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert status == 502 and "set-cookie" not in headers
        assert b"not valid HTTP" in body
        writer.close()


@on_uvloop
async def test_close_ends_open_connections_and_a_lost_client_is_no_crash() -> None:
    release = asyncio.Event()
    answered: list[str] = []

    async def answer(request: HttpRequest) -> HttpResponse:
        if request.path_with_query == "/wait":
            await release.wait()
        answered.append(request.path_with_query)
        return HttpResponse(200, [], b"done")

    stub = Stub(answer)
    listener, port = await listening(stub)
    # A client that goes away while its request is in flight: the handler finishes, the
    # answer is dropped and the connection closed.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /wait HTTP/1.1\r\nHost: a\r\n\r\n")
    await until(lambda: bool(stub.seen))
    writer.close()
    await writer.wait_closed()
    release.set()
    await until(lambda: bool(answered))
    await until(lambda: not listener.connections)
    # The listener still serves.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (await read_response(reader))[2] == b"done"

    # Closing the listener: the idle keep-alive connection and one with a request in
    # flight are closed, and nothing listens on the port any more.
    release.clear()
    busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", port)
    busy_writer.write(b"GET /wait HTTP/1.1\r\nHost: a\r\n\r\n")
    await until(lambda: len(stub.seen) == 3)
    await listener.close()
    assert await at_eof(reader)
    assert await at_eof(busy_reader)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    writer.close()
    busy_writer.close()
    assert listener.connections == set()


def test_the_header_view_finds_names_regardless_of_case() -> None:
    view = HeaderView([("traceparent", b"00-ab"), ("x-a", b"1"), ("x-a", b"caf\xe9")])
    assert "TraceParent" in view and view["TRACEPARENT"] == "00-ab"
    assert view["X-A"] == "caf\xe9"  # the last of a repeated name, latin-1
    assert "missing" not in view and len(view) == 2
