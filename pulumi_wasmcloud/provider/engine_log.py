"""Messages to the Pulumi engine (shown under the resource in the CLI): progress while
an application deploys, warnings such as unplaced instances in preview."""

from __future__ import annotations

import contextlib
import contextvars

import grpc
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc

# The resource the current request is about, so messages show under it in the CLI.
current_urn: contextvars.ContextVar[str] = contextvars.ContextVar("current_urn", default="")


class EngineLog:
    def __init__(self, address: str | None) -> None:
        self._address = address
        self._stub: engine_pb2_grpc.EngineStub | None = None

    async def _send(self, severity: int, message: str, urn: str, ephemeral: bool) -> None:
        if self._address is None:
            return
        if self._stub is None:
            # Created on first use: a grpc.aio channel belongs to the event loop it was
            # made in, and the provider server runs its own loop.
            self._stub = engine_pb2_grpc.EngineStub(grpc.aio.insecure_channel(self._address))
        # A message that cannot be shown must never fail the operation.
        with contextlib.suppress(grpc.RpcError):
            request = engine_pb2.LogRequest(
                message=message, urn=urn or current_urn.get(), ephemeral=ephemeral
            )
            request.severity = severity  # type: ignore[assignment]
            await self._stub.Log(request)

    async def info(self, message: str, urn: str = "") -> None:
        await self._send(engine_pb2.INFO, message, urn, ephemeral=True)

    async def note(self, message: str, urn: str = "") -> None:
        """An info message that stays in the output (what a preview says will change on a
        machine, what an `up` did there), unlike ``info``'s passing progress."""
        await self._send(engine_pb2.INFO, message, urn, ephemeral=False)

    async def warn(self, message: str, urn: str = "") -> None:
        await self._send(engine_pb2.WARNING, message, urn, ephemeral=False)
