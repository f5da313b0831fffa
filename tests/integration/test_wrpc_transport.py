"""wRPC over a real nats-server: concurrent calls on one connection, each with nested
(pending) parameters and results, get their own answers; the connection's subscriptions
do not grow with the calls (one inbox subscription routes every reply); the headers a
caller sends are the ones the handler reads."""

from __future__ import annotations

import asyncio
from email.parser import BytesParser

import nats
import pytest

from host_agent.lattice import event_loop
from host_agent.lattice.connection import settle
from host_agent.wrpc.codec import read_stream_frames, stream_frames
from host_agent.wrpc.transport import Payload, WrpcClient, WrpcError, WrpcServer, _HeaderLines
from tests.lattice import NatsServer

INSTANCE = "test:echo/echo@0.1.0"
NESTED = "0"  # the first parameter / result is a pending stream


def pending(data: bytes) -> list[str]:
    return [NESTED] if data[:1] == b"\x00" else []


def test_concurrent_calls_with_nested_values_each_get_their_own_answer(
    nats_server: NatsServer,
) -> None:
    async def main() -> None:
        server_nc = await nats.connect(nats_server.url)
        caller_nc = await nats.connect(nats_server.url)
        seen_headers: list[dict[str, str]] = []

        async def echo(params: Payload, headers: dict[str, str]) -> Payload:
            seen_headers.append(headers)
            body = read_stream_frames(params.nested[NESTED])
            if body == b"fail":
                raise WrpcError("asked to fail")
            await asyncio.sleep(0.01)  # overlap the calls
            return Payload(b"\x00", {NESTED: stream_frames(body[::-1])})

        await WrpcServer(server_nc, "default").serve("echo", INSTANCE, "echo", echo, pending)
        await settle(server_nc)  # the server has the subscription before the first call
        client = WrpcClient(caller_nc, "default")

        async def call(text: str) -> bytes:
            reply = await client.invoke(
                "echo",
                INSTANCE,
                "echo",
                Payload(b"\x00", {NESTED: stream_frames(text.encode())}),
                pending_results=pending,
                source_id=f"caller-{text}",
                link_name="default",
                timeout=10,
            )
            return read_stream_frames(reply.nested[NESTED])

        await call("warm")  # the caller's inbox subscription exists from here on
        subscriptions = len(caller_nc._subs), len(server_nc._subs)
        texts = [f"call {i}" for i in range(30)]
        answers = await asyncio.gather(*(call(text) for text in texts))
        assert answers == [text[::-1].encode() for text in texts]
        with pytest.raises(WrpcError, match="asked to fail"):
            await call("fail")
        # No subscription per call, on either side.
        assert (len(caller_nc._subs), len(server_nc._subs)) == subscriptions
        by_source = {h["source-id"]: h for h in seen_headers}
        assert by_source["caller-call 7"]["link-name"] == "default"
        assert set(by_source) == {f"caller-{t}" for t in ["warm", *texts, "fail"]}
        await caller_nc.close()
        await server_nc.close()

    event_loop.run(main())


@pytest.mark.parametrize(
    "raw",
    [
        b"source-id: http\r\nlink-name: default\r\n\r\n",
        b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n",
        b"A:b\r\nA: c\r\n\r\n",  # the last of a repeated name wins, as before
        b"X-Folded: one\r\n two\r\n\r\n",
        b"k:  spaced value  \r\n\r\n",
        b"not a header\r\nk: v\r\n\r\n",
        b"a: 1\r\n\r\nb: 2\r\n",
    ],
)
def test_headers_read_as_the_email_parser_reads_them(raw: bytes) -> None:
    """nats-py's own reading (its email parser) and ours give the same headers."""

    def read(parser: object) -> dict[str, str]:
        return {k.strip(): v.strip() for k, v in parser.parsebytes(raw).items()}  # type: ignore[attr-defined]

    assert read(_HeaderLines()) == read(BytesParser())


def test_a_lazy_handler_answers_before_the_callers_pending_params_arrive(
    nats_server: NatsServer,
) -> None:
    """A handler served with lazy_params that does not need its pending stream (a
    component ignoring an empty request body) answers without waiting for it: here the
    caller never sends it at all, and the results still come."""

    async def main() -> None:
        server_nc = await nats.connect(nats_server.url)
        caller_nc = await nats.connect(nats_server.url)

        async def ignore_body(params: Payload, headers: dict[str, str]) -> Payload:
            assert params.later is not None and not params.nested
            return Payload(b"answered")

        server = WrpcServer(server_nc, "default")
        await server.serve("lazy", INSTANCE, "echo", ignore_body, pending, lazy_params=True)
        await settle(server_nc)
        inbox = caller_nc.new_inbox()
        results: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_reply(msg: nats.aio.msg.Msg) -> None:
            if msg.subject == f"{inbox}.results":
                await results.put(msg.data)

        await caller_nc.subscribe(f"{inbox}.>", cb=on_reply)
        await caller_nc.subscribe(inbox, cb=on_reply)  # the accept, unanswered on purpose
        await caller_nc.publish(f"default.lazy.wrpc.0.0.1.{INSTANCE}.echo", b"\x00", reply=inbox)
        assert await asyncio.wait_for(results.get(), 5) == b"answered"
        assert await asyncio.wait_for(results.get(), 5) == b""  # end of results
        await caller_nc.close()
        await server_nc.close()

    event_loop.run(main())


def test_a_lazy_handler_reads_the_pending_params_from_a_worker_thread(
    nats_server: NatsServer,
) -> None:
    """The stream the caller sends after the accept reaches a lazy handler that asks for
    it (a component reading its request body, from its worker thread); asking on the
    event loop's own thread is refused instead of blocking it."""

    async def main() -> None:
        server_nc = await nats.connect(nats_server.url)
        caller_nc = await nats.connect(nats_server.url)
        refused: list[str] = []

        async def echo(params: Payload, headers: dict[str, str]) -> Payload:
            later = params.later
            assert later is not None
            try:
                later.wait(NESTED, 0.5)
            except RuntimeError as error:
                refused.append(str(error))
            body = read_stream_frames(await asyncio.to_thread(later.wait, NESTED))
            return Payload(b"\x00", {NESTED: stream_frames(body[::-1])})

        server = WrpcServer(server_nc, "default")
        await server.serve("lazy", INSTANCE, "echo", echo, pending, lazy_params=True)
        await settle(server_nc)
        client = WrpcClient(caller_nc, "default")
        texts = [f"body {i}" * (i + 1) for i in range(10)]
        replies = await asyncio.gather(
            *(
                client.invoke(
                    "lazy",
                    INSTANCE,
                    "echo",
                    Payload(b"\x00", {NESTED: stream_frames(text.encode())}),
                    pending_results=pending,
                    timeout=10,
                )
                for text in texts
            )
        )
        assert [read_stream_frames(r.nested[NESTED]) for r in replies] == [
            t[::-1].encode() for t in texts
        ]
        assert len(refused) == len(texts) and "event loop" in refused[0]
        await caller_nc.close()
        await server_nc.close()

    event_loop.run(main())


def test_a_callee_that_answers_without_its_pending_params_is_not_sent_them(
    nats_server: NatsServer,
) -> None:
    """The accept travels with the results when the handler did not need the pending
    stream, and the caller then skips sending it: one message each way for a GET's
    empty body. A handler that reads the stream gets it (the accept comes first)."""

    async def main() -> None:
        server_nc = await nats.connect(nats_server.url)
        caller_nc = await nats.connect(nats_server.url)
        watcher = await nats.connect(nats_server.url)
        subjects: list[str] = []

        async def seen(msg: nats.aio.msg.Msg) -> None:
            subjects.append(msg.subject)

        await watcher.subscribe(">", cb=seen)
        await settle(watcher)

        async def ignore(params: Payload, headers: dict[str, str]) -> Payload:
            return Payload(b"ignored")

        async def read(params: Payload, headers: dict[str, str]) -> Payload:
            assert params.later is not None
            return Payload(await asyncio.to_thread(params.later.wait, NESTED))

        server = WrpcServer(server_nc, "default")
        await server.serve("ignore", INSTANCE, "echo", ignore, pending, lazy_params=True)
        await server.serve("read", INSTANCE, "echo", read, pending, lazy_params=True)
        await settle(server_nc)
        client = WrpcClient(caller_nc, "default")
        body = Payload(b"\x00", {NESTED: stream_frames(b"the body")})
        for target in ("ignore", "read"):
            reply = await client.invoke(target, INSTANCE, "echo", body, timeout=10)
            assert reply.data == (b"ignored" if target == "ignore" else stream_frames(b"the body"))
            await settle(caller_nc)
            await settle(watcher)
            params = [s for s in subjects if ".params." in s]
            if target == "ignore":
                assert params == [], subjects
            else:
                assert params, subjects  # sent once the handler asked for them
            subjects.clear()
        for nc in (caller_nc, server_nc, watcher):
            await nc.close()

    event_loop.run(main())
