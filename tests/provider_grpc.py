"""The native provider in-process, served the way the plugin serves it (``grpc_server``,
so failures pass through the same error handling), with the engine's Log service played
by the test so progress messages can be read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, provider_pb2, provider_pb2_grpc

from pulumi_wasmcloud.provider.provider import WasmcloudProvider, grpc_server

PROVIDER_URN = "urn:pulumi:test::proj::pulumi:providers:wasmcloud::default"


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def plain(message: struct_pb2.Struct) -> dict[str, Any]:
    return dict(json_format.MessageToDict(message))


@dataclass
class EngineLog(engine_pb2_grpc.EngineServicer):  # type: ignore[misc]
    """The engine's Log service: what the CLI would show under each resource."""

    messages: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def Log(self, request: engine_pb2.LogRequest, context: Any) -> empty_pb2.Empty:
        self.messages.append(request.message)
        self.arrived.set()
        return empty_pb2.Empty()


@asynccontextmanager
async def provider(
    nats_url: str | None = None, credentials: str | None = None
) -> AsyncIterator[tuple[provider_pb2_grpc.ResourceProviderStub, EngineLog]]:
    """The provider on a loopback port, configured like a stack would (``wasmcloud:natsUrl``
    and ``wasmcloud:credentials`` when given)."""
    engine = grpc.aio.server()
    log = EngineLog()
    engine_pb2_grpc.add_EngineServicer_to_server(log, engine)
    engine_port = engine.add_insecure_port("127.0.0.1:0")
    await engine.start()
    address = f"127.0.0.1:{engine_port}"
    server, port = grpc_server(WasmcloudProvider(address), "0.0.0-test", [], address)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = provider_pb2_grpc.ResourceProviderStub(channel)
    config = {"natsUrl": nats_url} if nats_url else {}
    if credentials:
        config["credentials"] = credentials
    checked = await stub.CheckConfig(
        provider_pb2.CheckRequest(urn=PROVIDER_URN, news=struct(config))
    )
    await stub.Configure(provider_pb2.ConfigureRequest(args=checked.inputs))
    try:
        yield stub, log
    finally:
        await channel.close()
        await server.stop(None)
        await engine.stop(None)
