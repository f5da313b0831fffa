"""``pulumi-resource-wasmcloud``: the provider plugin process the Pulumi engine starts."""

from __future__ import annotations

import asyncio
import contextlib
import sys

from pulumi_wasmcloud import __version__
from pulumi_wasmcloud.provider.provider import WasmcloudProvider, grpc_server


async def _serve(args: list[str], engine: str | None) -> None:
    # The SDK's `experimental.server.main` does the same, minus the interceptor that turns
    # failures into plain sentences (provider.PlainErrors).
    server, port = grpc_server(WasmcloudProvider(engine), __version__, args, engine)
    await server.start()
    sys.stdout.buffer.write(f"{port}\n".encode())  # the engine reads the port from stdout
    sys.stdout.buffer.flush()
    await server.wait_for_termination()


def main() -> None:
    args = sys.argv[1:]
    engine = next((arg for arg in args if not arg.startswith("-")), None)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args, engine))


if __name__ == "__main__":
    main()
