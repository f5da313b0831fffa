"""A lean HTTP/1.1 server for the http-server provider: one asyncio.Protocol per
connection, parsed by httptools (llhttp), each request read in full and handed to a
handler coroutine as an HttpRequest, its HttpResponse written back.

What a client gets (the behaviour aiohttp's server gave the provider before, without its
per-request Request/Response/router objects):

- keep-alive: HTTP/1.1 by default, HTTP/1.0 only with ``Connection: keep-alive``;
  ``Connection: close`` is honoured. An idle connection is closed after KEEPALIVE_S.
- a request the client stops sending midway (no byte for READ_STALL_S, in its head or
  its body) gets 408 and the connection closes: a client that opens connections and
  sends half a request cannot hold them forever.
  Pipelined requests are answered in order, one at a time (reading pauses meanwhile).
- the body limit: a Content-Length over ``max_body_bytes`` is answered 413 (the caller's
  sentence) at once, without reading the body; a chunked body is counted as it arrives
  and refused the same way. ``Expect: 100-continue`` gets ``HTTP/1.1 100 Continue`` (or
  the 413, and then the client sends no body). After a 413 the connection closes: what
  the client still sends is read and dropped for up to LINGER_S, so it reads the 413
  rather than a reset.
- a malformed request (llhttp's strict parse: an unknown method, a non-ASCII byte in the
  target, conflicting lengths...): 400 naming the parser's complaint, and the connection
  closed.
- an Upgrade request (``Connection: upgrade`` + ``Upgrade: websocket`` / ``h2c``) is
  answered as a plain HTTP/1.1 request, with no switch of protocols, and the connection
  is closed after the answer; one that carries a body, and CONNECT, get 501 (there is
  no tunnel to give them).
- responses: the handler's status and headers, minus content-length, transfer-encoding
  and connection, plus a Content-Length of the body, a Date (unless the handler gave one)
  and ``Connection: close`` / ``keep-alive`` where the client needs to know. HEAD gets
  the headers without the body; 1xx, 204 and 304 carry no body.
- the request handed on: the method, the request target exactly as sent (an
  absolute-form target is reduced to its path and query), scheme http, the authority
  from the Host header (else the listening address), the headers with lower-cased names
  and byte values in the order sent.
- a connection lost mid-request: the handler still finishes; its answer is dropped.
  ``HttpListener.close()`` stops listening and closes every open connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import cast

import httptools

from host_agent.interfaces.http import Headers, HttpRequest, HttpResponse

log = logging.getLogger("host_agent.provider.http_server")

Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]

KEEPALIVE_S = 75.0  # an idle keep-alive connection's life (aiohttp's default)
LINGER_S = 5.0  # how long a refused request's remaining body is read and dropped
READ_STALL_S = 30.0  # silence allowed inside a request (hyper's header read timeout)
_DROPPED = frozenset({"content-length", "transfer-encoding", "connection"})
_NO_BODY = frozenset({204, 304})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HeaderView(Mapping[str, str]):
    """A request's headers looked up regardless of case (the last of a repeated name),
    values as latin-1 text: what telemetry.http_server_span reads ``traceparent`` from."""

    __slots__ = ("_values",)

    def __init__(self, headers: Headers) -> None:
        self._values = {name.lower(): value.decode("latin-1") for name, value in headers}

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


_date_second = 0
_date_line = b""


def _date() -> bytes:
    """The Date header line, formatted once a second."""
    global _date_second, _date_line
    now = int(time.time())
    if now != _date_second:
        _date_second = now
        _date_line = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
    return _date_line


_status_lines: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _status_lines.get(status)
    if line is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        line = _status_lines[status] = f"HTTP/1.1 {status} {reason}\r\n".encode()
    return line


def _text(status: int, message: str) -> HttpResponse:
    return HttpResponse.text(status, message if message.endswith("\n") else message + "\n")


class _Pending:
    """One request in the connection's queue: to forward, or already refused."""

    __slots__ = ("answer", "close", "head", "http10", "request")

    def __init__(
        self,
        request: HttpRequest | None,
        answer: HttpResponse | None,
        head: bool = False,
        close: bool = True,
        http10: bool = False,
    ) -> None:
        self.request = request
        self.answer = answer  # a refusal: the connection closes after it, lingering
        self.head = head
        self.close = close  # the connection closes after this one's answer
        self.http10 = http10  # an HTTP/1.0 client: told when the connection stays open


def _head(response: HttpResponse, close: bool, http10: bool) -> bytes:
    """The status line and headers of ``response``; ValueError for a header the client
    could not read (a line break in it)."""
    status = response.status
    if not 100 <= status <= 999:
        raise ValueError(f"status {status} is not a three-digit HTTP status")
    parts = [_status_line(status)]
    dated = False
    for name, value in response.headers:
        lower = name.lower()
        if lower in _DROPPED:
            continue
        if "\r" in name or "\n" in name or b"\r" in value or b"\n" in value:
            raise ValueError(f"header {name!r} has a line break")
        if lower == "date":
            dated = True
        parts.append(f"{name}: ".encode("latin-1") + value + b"\r\n")
    if not dated:
        parts.append(_date())
    if status >= 200 and status not in _NO_BODY:
        parts.append(b"Content-Length: %d\r\n" % len(response.body))
    if close:
        parts.append(b"Connection: close\r\n")
    elif http10:
        parts.append(b"Connection: keep-alive\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpListener) -> None:
        self.server = server
        self.loop = server.loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.local = ""
        self.queue: deque[_Pending | bytes] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.paused = False  # reading paused while answers are owed
        self.write_paused: asyncio.Future[None] | None = None
        self.idle: asyncio.TimerHandle | None = None
        self.refusing = False  # a final answer is queued: what follows is dropped
        self.eof = False  # the client has sent all it will
        self.lingering: asyncio.TimerHandle | None = None
        self.stall: asyncio.TimerHandle | None = None  # armed while a request is half-read
        self.reading = False  # a request has begun and is not complete yet
        # the message being parsed
        self.url = b""
        self.headers: Headers = []
        self.in_headers = False
        self.body: list[bytes] = []
        self.size = 0
        self.skip_body = False  # answered already (413, 501): its body is not kept

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass, but has its methods
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        sockname = transport.get_extra_info("sockname")
        if isinstance(sockname, tuple):
            host = sockname[0]
            self.local = f"[{host}]:{sockname[1]}" if ":" in host else f"{host}:{sockname[1]}"
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        for timer in (self.idle, self.lingering, self.stall):
            if timer is not None:
                timer.cancel()
        self.queue.clear()
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)
        self.transport = None

    def pause_writing(self) -> None:
        if self.write_paused is None or self.write_paused.done():
            self.write_paused = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)

    def eof_received(self) -> bool:
        # The client has sent all it will: answer what is owed, then close.
        if self.worker is None and not self.queue:
            return False  # close now
        self.eof = True
        return True  # keep the write side open for the owed answers

    def data_received(self, data: bytes) -> None:
        if self.refusing:
            return  # a final answer is owed or written: drop the rest
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # the upgrade request is queued with close=True; the rest is dropped
        except httptools.HttpParserError as error:
            cause = error.__context__ or error
            self._refuse(_text(400, f"malformed HTTP request: {cause}"))
        self._answer_queued()
        self._arm_stall()

    def _answer_queued(self) -> None:
        if self.queue:
            if self.worker is None:
                self.worker = self.loop.create_task(self._work())
            if not self.paused and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self.reading = True
        self.url = b""
        self.headers = []
        self.in_headers = True
        self.body = []
        self.size = 0
        self.skip_body = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_headers:  # not a chunked body's trailers
            self.headers.append((name.decode("latin-1").lower(), value))

    def on_headers_complete(self) -> None:
        self.in_headers = False
        if self.refusing:
            return
        length: int | None = None
        expect = False
        chunked = False
        for name, value in self.headers:
            if name == "content-length":
                length = int(value)  # llhttp has checked it is digits
            elif name == "expect":
                expect = value.lower() == b"100-continue"
            elif name == "transfer-encoding":
                chunked = True
        limit = self.server.max_body_bytes
        if self.parser.should_upgrade() and (
            self.parser.get_method() == b"CONNECT" or chunked or length
        ):
            self.skip_body = True
            self._refuse(
                _text(501, "CONNECT, and an Upgrade request with a body, are not supported")
            )
        elif length is not None and length > limit:
            self.skip_body = True
            self._refuse(_text(413, self.server.too_large))
        elif expect and self.parser.get_http_version() == "1.1":
            self._continue()

    def on_body(self, body: bytes) -> None:
        if self.skip_body or self.refusing:
            return
        self.size += len(body)
        if self.size > self.server.max_body_bytes:
            self.skip_body = True
            self.body = []
            self._refuse(_text(413, self.server.too_large))
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.reading = False
        if self.skip_body or self.refusing:
            return
        parser = self.parser
        method = parser.get_method().decode()
        url = self.url
        authority = ""
        if not url.startswith(b"/") and url != b"*":  # absolute-form: http://host/path
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                self._refuse(_text(400, f"malformed HTTP request: bad target {url!r}"))
                return
            authority = parsed.host.decode("latin-1") if parsed.host else ""
            if parsed.port is not None:
                authority += f":{parsed.port}"
            url = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
        target = url.decode("ascii")  # llhttp refuses any other byte in a target
        headers = self.headers
        if not authority:
            for name, value in headers:
                if name == "host":
                    authority = value.decode("latin-1")
                    break
            else:
                authority = self.local
        body = self.body
        request = HttpRequest(
            method,
            target,
            "http",
            authority,
            headers,
            body[0] if len(body) == 1 else b"".join(body),
        )
        upgrade = parser.should_upgrade()
        keep = parser.should_keep_alive() and not upgrade
        http10 = parser.get_http_version() == "1.0"
        self.queue.append(_Pending(request, None, method == "HEAD", not keep, http10))
        if upgrade:
            self.refusing = True

    # the answers, in order

    def _continue(self) -> None:
        if self.worker is None and not self.queue:
            assert self.transport is not None
            self.transport.write(_CONTINUE)
        else:
            self.queue.append(_CONTINUE)  # after the answers owed before it

    def _refuse(self, answer: HttpResponse) -> None:
        """Queue a final answer; the connection closes after it."""
        self.refusing = True
        self.queue.append(_Pending(None, answer))

    async def _work(self) -> None:
        queue = self.queue
        try:
            while queue:
                item = queue.popleft()
                if isinstance(item, bytes):
                    if self.transport is None:
                        return
                    self.transport.write(item)
                    continue
                response = item.answer
                if response is None:
                    assert item.request is not None
                    try:
                        response = await self.server.handler(item.request)
                    except Exception:
                        log.exception(
                            "answering %s %s", item.request.method, item.request.path_with_query
                        )
                        response = _text(500, "internal error in the http-server provider")
                transport = self.transport
                if transport is None or transport.is_closing():
                    return  # the client went away: its answer is dropped
                try:
                    head = _head(response, item.close, item.http10)
                except (UnicodeEncodeError, ValueError) as error:
                    log.error("the component's answer is not valid HTTP: %s", error)
                    response = _text(502, f"the component's answer is not valid HTTP: {error}")
                    head = _head(response, item.close, item.http10)
                body = response.body
                if item.head or not body or response.status < 200 or response.status in _NO_BODY:
                    transport.write(head)
                elif len(body) <= 65536:
                    transport.write(head + body)
                else:
                    transport.write(head)
                    transport.write(body)
                if item.close:
                    if item.answer is not None:
                        self._linger(transport)
                    else:
                        transport.close()
                    return
                if self.write_paused is not None:
                    await self.write_paused
                    self.write_paused = None
        finally:
            self.worker = None
        transport = self.transport
        if transport is None:
            return
        if self.eof:
            transport.close()
            return
        if self.paused:
            self.paused = False
            transport.resume_reading()
        if self.reading:
            self._arm_stall()  # a pipelined request read in part while answering
        else:
            self._arm_idle()

    def _arm_stall(self) -> None:
        """(Re)start the clock on a half-read request; only while this side reads."""
        if self.stall is not None:
            self.stall.cancel()
            self.stall = None
        if self.reading and not self.paused and not self.refusing and self.transport:
            self.stall = self.loop.call_later(READ_STALL_S, self._stalled)

    def _stalled(self) -> None:
        self.stall = None
        if self.transport is None or not self.reading or self.paused or self.refusing:
            return
        self._refuse(
            _text(
                408,
                f"the request was not completed: nothing arrived for {READ_STALL_S:.0f} s; "
                "send the whole request",
            )
        )
        self._answer_queued()

    def _linger(self, transport: asyncio.Transport) -> None:
        """After a refusal: close, reading and dropping what the client still sends for
        up to LINGER_S (closing with unread bytes would reset the connection, and the
        client might lose the answer)."""
        self.refusing = True
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        if self.paused:
            self.paused = False
            transport.resume_reading()
        self.lingering = self.loop.call_later(LINGER_S, transport.close)

    def _arm_idle(self) -> None:
        if self.transport is not None:
            self.idle = self.loop.call_later(KEEPALIVE_S, self.transport.close)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
        if self.transport is not None:
            self.transport.close()


class HttpListener:
    """One listening address: its connections, the body limit and the handler."""

    def __init__(self, handler: Handler, max_body_bytes: int, too_large: str) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.too_large = too_large  # the 413's sentence
        self.loop = asyncio.get_running_loop()
        self.connections: set[_Connection] = set()
        self.server: asyncio.AbstractServer | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen; OSError when the address cannot be had."""
        self.server = await self.loop.create_server(
            lambda: _Connection(self), host, port, reuse_address=True
        )

    async def close(self) -> None:
        """Stop listening and close every open connection (their requests unanswered)."""
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.close()
        if self.server is not None:
            await self.server.wait_closed()
            self.server = None
