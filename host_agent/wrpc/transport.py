"""wRPC over NATS: invoke a function on an entity, or serve one.

Subjects and handshake follow wrpc-transport-nats 0.27 (the version wasmCloud 1.4 uses):

  invocation  {lattice}.{entity}.wrpc.0.0.1.{instance}.{function}   queue {lattice}.{entity}
  caller      subscribes R and R.results(.>); publishes the params with reply-to R
  server      answers R with an empty "accept" whose reply-to is its inbox S, writes the
              results to R.results and then an empty message (end of results)
              (ours sends the accept when the handler first needs a pending parameter,
              or with its results: one write for a call that needs nothing more; the
              caller then skips the parameters nobody will read)
  nested      a value that was not ready when encoded (a pending stream or future) is
              written later on a path subject: R.results.0.0 for the first field of the
              first result, S.params.0.0 for the first field of the first parameter;
              streams are length-prefixed chunks ending with a zero-length chunk

Divergence: a failing handler also publishes its error text to R.error, so our callers
can say why; a real wRPC peer simply ends the results early, which callers report as
"incomplete results". Written by hand because there is no Python wRPC library.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.parser import BytesParser

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from host_agent.telemetry import otel as telemetry

log = logging.getLogger("host_agent.wrpc")

WRPC_VERSION = "0.0.1"
NESTED_TIMEOUT = 10.0


class WrpcError(Exception):
    """The callee reported an error, or the call could not be made."""


class NoResponders(WrpcError):
    """Nobody serves the function (the entity is not running anywhere)."""


@dataclass
class Payload:
    """A root value plus the bytes of its nested (deferred) paths, e.g. {"0.0": body};
    for a handler served with ``lazy_params``, ``later`` has the paths still arriving."""

    data: bytes
    nested: dict[str, bytes] = field(default_factory=dict)
    later: LaterParams | None = None


PendingPaths = Callable[[bytes], list[str]]
Handler = Callable[[Payload, dict[str, str]], Awaitable[Payload]]


class _HeaderLines:
    """What nats-py's client asks of its header parser (``parsebytes(raw).items()``), for
    the plain ``Name: value`` lines NATS headers are. nats-py uses the standard library's
    email parser, which cost the host about a fifth as much CPU as running a trivial
    component, once per invocation (wRPC invocations carry source-id and link-name)."""

    def parsebytes(self, raw: bytes) -> _HeaderLines.Parsed:
        return _HeaderLines.Parsed(raw)

    class Parsed:
        def __init__(self, raw: bytes) -> None:
            self._raw = raw

        def items(self) -> list[tuple[str, str]]:
            found: list[tuple[str, str]] = []
            for line in self._raw.decode("ascii", "surrogateescape").split("\r\n"):
                if line[:1] in (" ", "\t") and found:  # a folded line continues a value
                    name, value = found[-1]
                    found[-1] = (name, f"{value}\r\n{line}")
                    continue
                name, colon, value = line.partition(":")
                if not colon or not name.strip():
                    break  # the end of the headers, as the email parser reads them
                found.append((name, value))
            return found


def fast_headers(nc: NatsClient) -> None:
    """Parse the headers of messages ``nc`` receives with _HeaderLines (nats-py 2.11 keeps
    its parser in ``_hdr_parser``; another client is left as it is)."""
    if isinstance(getattr(nc, "_hdr_parser", None), BytesParser):
        setattr(nc, "_hdr_parser", _HeaderLines())  # noqa: B010 - a private attribute


def invocation_subject(lattice: str, entity_id: str, instance: str, function: str) -> str:
    return f"{lattice}.{entity_id}.wrpc.{WRPC_VERSION}.{instance}.{function}"


def queue_group(lattice: str, entity_id: str) -> str:
    return f"{lattice}.{entity_id}"


class NestedTooLarge(WrpcError):
    """The nested values of a call's results went over the caller's byte limit."""


class NestedCollector:
    """Collects nested-path messages until each path's empty end message; ``read`` waits
    for the paths it names (messages that came first are kept). With a ``limit``, bytes
    past it are not kept: ``read`` raises NestedTooLarge as soon as they arrive, so a
    caller's memory is bounded by what it accepts, not by what the callee sends."""

    def __init__(self, limit: int | None = None) -> None:
        self.buffers: dict[str, bytearray] = {}
        self.ended: set[str] = set()
        self.limit = limit
        self.size = 0
        self._waiting: frozenset[str] = frozenset()
        self._done: asyncio.Future[None] | None = None

    def on_message(self, path: str, data: bytes) -> None:
        if data:
            if self.limit is not None:
                self.size += len(data)
                if self.size > self.limit:
                    if self._done is not None and not self._done.done():
                        self._done.set_result(None)
                    return
            self.buffers.setdefault(path, bytearray()).extend(data)
            return
        self.ended.add(path)
        if self._done is not None and not self._done.done() and self._waiting <= self.ended:
            self._done.set_result(None)

    def _over(self) -> bool:
        return self.limit is not None and self.size > self.limit

    async def read(self, paths: list[str], timeout: float) -> dict[str, bytes]:
        if not self.ended.issuperset(paths) and not self._over():
            self._waiting = frozenset(paths)
            self._done = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self._done, timeout)
        if self._over():
            raise NestedTooLarge(f"nested values over {self.limit} bytes")
        return {path: bytes(self.buffers.get(path, b"")) for path in paths}


class LaterParams:
    """Nested parameter values that were still arriving when the call was handed to its
    handler. wRPC lets a callee start before its caller has sent them (upstream's host
    runs a component while the request body is still a pending stream): a handler that
    may never read them (a component that ignores an empty request body) then does not
    wait for the caller's second message before it starts."""

    def __init__(
        self,
        collector: NestedCollector,
        loop: asyncio.AbstractEventLoop,
        accept: Callable[[], Awaitable[None]],
    ) -> None:
        self._collector = collector
        self._loop = loop
        self._accept = accept  # the caller sends pending values only once accepted

    def wait(self, path: str, timeout: float = NESTED_TIMEOUT) -> bytes:
        """The complete value of ``path``. From a worker thread only: it blocks until the
        caller's messages, which the event loop receives, have come."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError("LaterParams.wait would block the event loop it waits for")
        read = self._read(path, timeout)
        # The read times out on the loop; the extra second bounds this wait if it cannot.
        return asyncio.run_coroutine_threadsafe(read, self._loop).result(timeout + 1)[path]

    async def _read(self, path: str, timeout: float) -> dict[str, bytes]:
        await self._accept()
        return await self._collector.read([path], timeout)


class _Direct:
    """What nats-py's read loop takes for a subscription's pending-message queue: each
    message goes straight to ``handler`` (synchronous; it starts tasks for anything that
    waits). Why: nats-py hands a callback its messages through an asyncio.Queue and a task
    of the subscription's own, a queue put, a task wake-up and a loop turn per message,
    on every reply and invocation of the request path. Written against nats-py 2.11's
    Subscription (pinned); tests/integration/test_wrpc_transport.py exercises it."""

    def __init__(self, sub: Subscription, handler: Callable[[Msg], None]) -> None:
        self._sub = sub
        self._handler = handler

    def put_nowait(self, msg: Msg) -> None:
        self._sub._pending_size -= len(msg.data)  # what nats-py's consumer task would do
        try:
            self._handler(msg)
        except Exception:  # never into nats-py's read loop
            log.exception("handling a message on %s failed", msg.subject)

    async def get(self) -> Msg:
        raise RuntimeError("messages are handed over directly")

    def task_done(self) -> None:
        pass

    def qsize(self) -> int:
        return 0

    def empty(self) -> bool:
        return True

    def full(self) -> bool:
        return False

    async def join(self) -> None:
        pass


async def subscribe_direct(
    nc: NatsClient, subject: str, handler: Callable[[Msg], None], queue: str = ""
) -> Subscription:
    """Subscribe ``handler`` to ``subject`` (in ``queue``), called from the read loop."""
    # Without a callback nats-py starts no consumer task: the queue it would fill is ours.
    sub = await nc.subscribe(subject, queue=queue)
    # No await from here on: the server sees the SUB only after the flusher's next turn.
    sub._pending_queue = _Direct(sub, handler)  # type: ignore[assignment]
    return sub


class InboxMux:
    """One subscription, ``{prefix}.>``, for the reply subjects of every call made (or
    answered) on one connection: each call takes a token and its inbox is
    ``{prefix}.{token}``; a message on ``{prefix}.{token}.{rest}`` goes to that call's
    handler as (rest, message). The subjects on the wire are the ones wRPC names; what
    this saves is a SUB and an UNSUB per subject per call, and the server's work on them
    (four of each per call on the caller's side, one on the server's)."""

    def __init__(self, nc: NatsClient) -> None:
        self.prefix = nc.new_inbox()
        self._skip = len(self.prefix) + 1
        self._routes: dict[str, Callable[[str, Msg], None]] = {}
        self._tokens = itertools.count(1)

    async def start(self, nc: NatsClient) -> InboxMux:
        await subscribe_direct(nc, f"{self.prefix}.>", self._on_message)
        return self

    def open(self, route: Callable[[str, Msg], None]) -> tuple[str, str]:
        """A new inbox whose messages go to ``route``: (token, inbox subject)."""
        token = format(next(self._tokens), "x")
        self._routes[token] = route
        return token, f"{self.prefix}.{token}"

    def close(self, token: str) -> None:
        self._routes.pop(token, None)

    def _on_message(self, msg: Msg) -> None:
        token, _, rest = msg.subject[self._skip :].partition(".")
        route = self._routes.get(token)
        if route is not None:  # else a late message of a call that already ended
            route(rest, msg)


_muxes: weakref.WeakKeyDictionary[NatsClient, asyncio.Future[InboxMux]] = (
    weakref.WeakKeyDictionary()
)


async def inbox_mux(nc: NatsClient) -> InboxMux:
    """The connection's InboxMux, subscribed on first use (concurrent first calls share
    one subscription)."""
    started = _muxes.get(nc)
    if started is not None and started.done():
        if not started.cancelled() and started.exception() is None:
            return started.result()  # the usual case: no shield, no wait
        started = None  # the subscription failed: try again
    if started is None:
        started = _muxes[nc] = asyncio.ensure_future(InboxMux(nc).start(nc))
    return await asyncio.shield(started)


async def publish_chunks(nc: NatsClient, subject: str, data: bytes) -> None:
    """``data`` on ``subject`` in as many messages as the server's payload limit needs."""
    limit = max(1024, nc.max_payload - 1024)
    for start in range(0, len(data), limit):
        await nc.publish(subject, data[start : start + limit])


async def publish_nested(nc: NatsClient, prefix: str, nested: dict[str, bytes]) -> None:
    for path, data in nested.items():
        subject = f"{prefix}.{path}"
        await publish_chunks(nc, subject, data)
        await nc.publish(subject, b"")  # end of this path


class _Call:
    """The caller's side of one invocation: what comes back on its inbox."""

    __slots__ = ("ended", "nc", "nested", "params", "results", "sending", "what")

    def __init__(
        self, nc: NatsClient, params: Payload, what: str, nested_limit: int | None = None
    ) -> None:
        self.nc = nc
        self.ended: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.results = bytearray()
        self.nested = NestedCollector(nested_limit)
        self.params = params
        self.what = what  # "{instance}.{function} for {target}", for errors
        self.sending: asyncio.Future[None] | None = None

    def _send_params(self, inbox: str) -> None:
        # Run after the messages that came with the accept: a callee whose results came
        # with it has answered without them, and nobody would read them.
        if not self.ended.done():
            self.sending = asyncio.ensure_future(self._publish_params(inbox))

    async def _publish_params(self, inbox: str) -> None:
        try:
            await publish_nested(self.nc, f"{inbox}.params", self.params.nested)
        except Exception as error:  # the call itself times out and says so
            log.warning("cannot send the parameters of %s: %s", self.what, error)

    def time_out(self, timeout: float) -> None:
        if not self.ended.done():
            self.ended.set_exception(TimeoutError(f"{self.what}: no answer in {timeout}s"))

    def on_message(self, rest: str, msg: Msg) -> None:
        if rest == "results":
            if msg.data:
                self.results.extend(msg.data)
            elif not self.ended.done():
                self.ended.set_result(bytes(self.results))
        elif rest.startswith("results."):
            self.nested.on_message(rest[8:], msg.data)
        elif rest == "":  # accept (or the server's 503: no responders)
            if msg.headers and msg.headers.get("Status") == "503":
                if not self.ended.done():
                    self.ended.set_exception(NoResponders(f"nothing serves {self.what}"))
            elif self.params.nested and msg.reply:
                asyncio.get_running_loop().call_soon(self._send_params, msg.reply)
        elif rest == "error" and not self.ended.done():
            text = msg.data.decode(errors="replace") or "remote error"
            self.ended.set_exception(WrpcError(text))


class WrpcClient:
    def __init__(self, nc: NatsClient, lattice: str) -> None:
        self.nc = nc
        self.lattice = lattice
        fast_headers(nc)

    async def invoke(
        self,
        target: str,
        instance: str,
        function: str,
        params: Payload,
        *,
        pending_results: PendingPaths | None = None,
        source_id: str = "",
        link_name: str = "default",
        timeout: float = 10.0,
        max_nested_bytes: int | None = None,
    ) -> Payload:
        """Call `instance.function` on `target`; returns the results (and nested values:
        more than `max_nested_bytes` of them raise NestedTooLarge)."""
        # One connection for the whole call: a caller whose grant is renewed swaps `nc`
        # (host_agent/wrpc/granted.py) while calls made on the old one finish there.
        nc = self.nc
        mux = await inbox_mux(nc)
        call = _Call(nc, params, f"{instance}.{function} for {target}", max_nested_bytes)
        token, inbox = mux.open(call.on_message)
        headers = {"source-id": source_id, "link-name": link_name} if source_id else None
        # With tracing on, the call is a CLIENT span whose context travels in the NATS
        # headers as W3C `traceparent`, the way wRPC carries it.
        span = None
        if telemetry.TRACING:
            headers = headers or {}
            span = telemetry.start_client_span(target, instance, function, source_id, headers)
        error: BaseException | None = None
        timer = asyncio.get_running_loop().call_later(timeout, call.time_out, timeout)
        try:
            await nc.publish(
                invocation_subject(self.lattice, target, instance, function),
                params.data,
                reply=inbox,
                headers=headers,
            )
            data = await call.ended
            paths = pending_results(data) if pending_results else []
            return Payload(data, await call.nested.read(paths, timeout) if paths else {})
        except BaseException as failure:
            error = failure
            raise
        finally:
            timer.cancel()
            mux.close(token)
            if span is not None:
                telemetry.end_client_span(span, error)


class WrpcServer:
    def __init__(self, nc: NatsClient, lattice: str) -> None:
        self.nc = nc
        self.lattice = lattice
        fast_headers(nc)
        self._answering: set[asyncio.Task[None]] = set()  # the loop keeps weak references

    async def serve(
        self,
        entity_id: str,
        instance: str,
        function: str,
        handler: Handler,
        pending_params: PendingPaths | None = None,
        *,
        lazy_params: bool = False,
    ) -> Subscription:
        """Serve `instance.function` for `entity_id`; returns the subscription to stop it.
        With ``lazy_params`` the handler is called as soon as the root value is here, and
        reads the pending paths through ``params.later`` if it needs them."""
        served = (entity_id, instance, function)
        loop = asyncio.get_running_loop()

        def on_invocation(msg: Msg) -> None:
            if msg.reply:
                # Calls run concurrently; the component pool bounds how many run at once.
                answer = self._answer(msg, handler, pending_params, served, lazy_params)
                task = loop.create_task(answer)
                self._answering.add(task)
                task.add_done_callback(self._answering.discard)

        return await subscribe_direct(
            self.nc,
            invocation_subject(self.lattice, entity_id, instance, function),
            on_invocation,
            queue=queue_group(self.lattice, entity_id),
        )

    async def _answer(
        self,
        msg: Msg,
        handler: Handler,
        pending: PendingPaths | None,
        served: tuple[str, str, str],  # entity id, instance, function
        lazy: bool,
    ) -> None:
        nc = self.nc
        reply = msg.reply
        mux: InboxMux | None = None
        token = ""
        inbox = ""
        accepted = False

        async def accept() -> None:
            nonlocal accepted
            if not accepted:
                accepted = True
                await nc.publish(reply, b"", reply=inbox or nc.new_inbox())

        try:
            params = Payload(msg.data)
            paths = pending(msg.data) if pending else []
            if paths:
                mux = await inbox_mux(nc)
                collector = NestedCollector()

                def on_params(rest: str, nested: Msg) -> None:
                    if rest.startswith("params."):
                        collector.on_message(rest[7:], nested.data)

                token, inbox = mux.open(on_params)
                if lazy:
                    params.later = LaterParams(collector, asyncio.get_running_loop(), accept)
                else:
                    await accept()
                    params.nested = await collector.read(paths, NESTED_TIMEOUT)
            headers = dict(msg.headers or {})
            if telemetry.TRACING:
                # The SERVER span is current while the handler runs: spans of the calls it
                # makes (a component's keyvalue calls) are its children.
                with telemetry.server_span(*served, headers):
                    answer = await handler(params, headers)
            else:
                answer = await handler(params, headers)
        except Exception as error:  # the caller must hear about every failure
            log.warning("wRPC call on %s failed: %s", msg.subject, error)
            await accept()
            await nc.publish(f"{reply}.error", str(error).encode())
            return
        finally:
            # Nested values that come after this (a body the handler never read) are
            # dropped by the mux, as the late messages of an ended call.
            if mux is not None:
                mux.close(token)
        await accept()
        await publish_chunks(nc, f"{reply}.results", answer.data)
        await publish_nested(nc, f"{reply}.results", answer.nested)
        await nc.publish(f"{reply}.results", b"")
