"""wRPC over NATS: invoke a function on an entity, or serve one.

Subjects and handshake follow wrpc-transport-nats 0.27 (the version wasmCloud 1.4 uses):

  invocation  {lattice}.{entity}.wrpc.0.0.1.{instance}.{function}   queue {lattice}.{entity}
  caller      subscribes R and R.results(.>); publishes the params with reply-to R
  server      answers R with an empty "accept" whose reply-to is its inbox S, writes the
              results to R.results and then an empty message (end of results)
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
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

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
    """A root value plus the bytes of its nested (deferred) paths, e.g. {"0.0": body}."""

    data: bytes
    nested: dict[str, bytes] = field(default_factory=dict)


PendingPaths = Callable[[bytes], list[str]]
Handler = Callable[[Payload, dict[str, str]], Awaitable[Payload]]


def invocation_subject(lattice: str, entity_id: str, instance: str, function: str) -> str:
    return f"{lattice}.{entity_id}.wrpc.{WRPC_VERSION}.{instance}.{function}"


def queue_group(lattice: str, entity_id: str) -> str:
    return f"{lattice}.{entity_id}"


class NestedCollector:
    """Collects nested-path messages under `prefix.` until each path's empty end message."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix + "."
        self.buffers: dict[str, bytearray] = {}
        self.ended: dict[str, asyncio.Event] = {}

    def _event(self, path: str) -> asyncio.Event:
        return self.ended.setdefault(path, asyncio.Event())

    async def on_message(self, msg: Msg) -> None:
        path = msg.subject[len(self.prefix) :]
        if msg.data:
            self.buffers.setdefault(path, bytearray()).extend(msg.data)
        else:
            self._event(path).set()

    async def read(self, paths: list[str], timeout: float) -> dict[str, bytes]:
        await asyncio.wait_for(
            asyncio.gather(*(self._event(path).wait() for path in paths)), timeout
        )
        return {path: bytes(self.buffers.get(path, b"")) for path in paths}


async def publish_nested(nc: NatsClient, prefix: str, nested: dict[str, bytes]) -> None:
    for path, data in nested.items():
        subject = f"{prefix}.{path}"
        limit = max(1024, nc.max_payload - 1024)
        for start in range(0, len(data), limit):
            await nc.publish(subject, data[start : start + limit])
        await nc.publish(subject, b"")  # end of this path


class WrpcClient:
    def __init__(self, nc: NatsClient, lattice: str) -> None:
        self.nc = nc
        self.lattice = lattice

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
    ) -> Payload:
        """Call `instance.function` on `target`; returns the results (and nested values)."""
        # One connection for the whole call: a caller whose grant is renewed swaps `nc`
        # (host_agent/wrpc/granted.py) while calls made on the old one finish there.
        nc = self.nc
        inbox = nc.new_inbox()
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[bytes] = loop.create_future()
        results = bytearray()
        nested = NestedCollector(f"{inbox}.results")

        async def on_accept(msg: Msg) -> None:
            if msg.headers and msg.headers.get("Status") == "503":
                if not ended.done():
                    ended.set_exception(
                        NoResponders(f"nothing serves {instance}.{function} for {target}")
                    )
                return
            if params.nested and msg.reply:
                await publish_nested(nc, f"{msg.reply}.params", params.nested)

        async def on_results(msg: Msg) -> None:
            if msg.data:
                results.extend(msg.data)
            elif not ended.done():
                ended.set_result(bytes(results))

        async def on_error(msg: Msg) -> None:
            if not ended.done():
                ended.set_exception(WrpcError(msg.data.decode(errors="replace") or "remote error"))

        subs = [
            await nc.subscribe(inbox, cb=on_accept),
            await nc.subscribe(f"{inbox}.results", cb=on_results),
            await nc.subscribe(f"{inbox}.results.>", cb=nested.on_message),
            await nc.subscribe(f"{inbox}.error", cb=on_error),
        ]
        headers = {"source-id": source_id, "link-name": link_name} if source_id else None
        # With tracing on, the call is a CLIENT span whose context travels in the NATS
        # headers as W3C `traceparent`, the way wRPC carries it.
        span = None
        if telemetry.TRACING:
            headers = headers or {}
            span = telemetry.start_client_span(target, instance, function, source_id, headers)
        error: BaseException | None = None
        try:
            await nc.publish(
                invocation_subject(self.lattice, target, instance, function),
                params.data,
                reply=inbox,
                headers=headers,
            )
            data = await asyncio.wait_for(ended, timeout)
            paths = pending_results(data) if pending_results else []
            return Payload(data, await nested.read(paths, timeout) if paths else {})
        except BaseException as failure:
            error = failure
            raise
        finally:
            if span is not None:
                telemetry.end_client_span(span, error)
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()


class WrpcServer:
    def __init__(self, nc: NatsClient, lattice: str) -> None:
        self.nc = nc
        self.lattice = lattice

    async def serve(
        self,
        entity_id: str,
        instance: str,
        function: str,
        handler: Handler,
        pending_params: PendingPaths | None = None,
    ) -> Subscription:
        """Serve `instance.function` for `entity_id`; returns the subscription to stop it."""

        async def on_invocation(msg: Msg) -> None:
            if msg.reply:
                # Calls run concurrently; the component pool bounds how many run at once.
                answer = self._answer(msg, handler, pending_params, (entity_id, instance, function))
                asyncio.get_running_loop().create_task(answer)

        return await self.nc.subscribe(
            invocation_subject(self.lattice, entity_id, instance, function),
            queue=queue_group(self.lattice, entity_id),
            cb=on_invocation,
        )

    async def _answer(
        self,
        msg: Msg,
        handler: Handler,
        pending: PendingPaths | None,
        served: tuple[str, str, str],  # entity id, instance, function
    ) -> None:
        reply = msg.reply
        try:
            params = Payload(msg.data)
            paths = pending(msg.data) if pending else []
            inbox = self.nc.new_inbox()
            if paths:
                collector = NestedCollector(f"{inbox}.params")
                sub = await self.nc.subscribe(f"{inbox}.params.>", cb=collector.on_message)
                await self.nc.publish(reply, b"", reply=inbox)  # accept
                try:
                    params.nested = await collector.read(paths, NESTED_TIMEOUT)
                finally:
                    await sub.unsubscribe()
            else:
                await self.nc.publish(reply, b"", reply=inbox)  # accept
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
            await self.nc.publish(f"{reply}.error", str(error).encode())
            return
        limit = max(1024, self.nc.max_payload - 1024)
        for start in range(0, len(answer.data), limit):
            await self.nc.publish(f"{reply}.results", answer.data[start : start + limit])
        await publish_nested(self.nc, f"{reply}.results", answer.nested)
        await self.nc.publish(f"{reply}.results", b"")
