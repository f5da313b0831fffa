"""Messages to the Pulumi engine (shown under the resource in the CLI): progress while
an application deploys, warnings such as unplaced instances in preview."""

from __future__ import annotations

import contextlib

import grpc
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc


class EngineLog:
    def __init__(self, address: str | None) -> None:
        self._stub = (
            engine_pb2_grpc.EngineStub(grpc.aio.insecure_channel(address)) if address else None
        )

    async def _send(self, severity: int, message: str, urn: str, ephemeral: bool) -> None:
        if self._stub is None:
            return
        # A message that cannot be shown must never fail the operation.
        with contextlib.suppress(grpc.RpcError):
            request = engine_pb2.LogRequest(message=message, urn=urn, ephemeral=ephemeral)
            request.severity = severity  # type: ignore[assignment]
            await self._stub.Log(request)

    async def info(self, message: str, urn: str = "") -> None:
        await self._send(engine_pb2.INFO, message, urn, ephemeral=True)

    async def warn(self, message: str, urn: str = "") -> None:
        await self._send(engine_pb2.WARNING, message, urn, ephemeral=False)
