"""The http-server provider: listen where each link says, forward requests over wRPC.

A link from this provider (source) to a component (target) on
wasi:http/incoming-handler with source_config `address` (default 127.0.0.1:8000)
opens a listener there. Each request is read in full (up to `max_body_bytes`, default
16 MiB, else 413), sent to the component as wrpc:http/incoming-handler.handle, and the
response written back. No running component -> 503; no answer in `timeout_ms` -> 504.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler
from nats.aio.client import Client as NatsClient

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.providers.contract import HostData, InterfaceLinkDefinition
from host_agent.providers.sdk import run_provider
from host_agent.telemetry import otel as telemetry
from host_agent.wrpc.http import (
    HTTP_INSTANCE,
    decode_response,
    encode_request,
    pending_response_paths,
)
from host_agent.wrpc.transport import NoResponders, WrpcClient, WrpcError

log = logging.getLogger("host_agent.provider.http_server")

DEFAULT_ADDRESS = "127.0.0.1:8000"
DEFAULT_MAX_BODY = 16 * 1024 * 1024
DEFAULT_TIMEOUT_MS = 10_000


@dataclass
class Listener:
    link: InterfaceLinkDefinition
    runner: web.AppRunner
    address: str


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {address!r} must be host:port, e.g. 127.0.0.1:8080")
    # No host (":8080") means loopback: listening on every interface is a choice the
    # address must spell out (upstream's default is 0.0.0.0).
    return host.strip("[]") or "127.0.0.1", int(port)


class HttpServerProvider:
    def __init__(self) -> None:
        self.client: WrpcClient | None = None
        self.provider_id = ""
        self.listeners: dict[tuple[str, str], Listener] = {}  # (target, link name)

    async def start(self, host: HostData, nc: NatsClient) -> None:
        self.client = WrpcClient(nc, host.lattice_rpc_prefix)
        self.provider_id = host.provider_key

    def use_caller(self, client: WrpcClient) -> None:
        """Calls go out on the link grant's connection (per-link authorization)."""
        self.client = client

    def _serves(self, link: InterfaceLinkDefinition) -> bool:
        return (
            link.source_id == self.provider_id
            and link.wit_namespace == "wasi"
            and link.wit_package == "http"
            and "incoming-handler" in link.interfaces
        )

    async def link_put(self, link: InterfaceLinkDefinition) -> None:
        if not self._serves(link):
            return
        key = (link.target, link.name)
        address = link.source_config.get("address", DEFAULT_ADDRESS)
        existing = self.listeners.get(key)
        if existing is not None and existing.address == address and existing.link == link:
            return
        if existing is not None:
            await self._close(key)
        host, port = _split_address(address)
        app = web.Application(
            client_max_size=int(link.source_config.get("max_body_bytes", DEFAULT_MAX_BODY))
        )
        app.router.add_route("*", "/{tail:.*}", self._handler(link))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_address=True).start()
        except OSError as error:
            await runner.cleanup()
            log.error("cannot listen on %s for %s: %s", address, link.target, error)
            return
        self.listeners[key] = Listener(link, runner, address)
        log.info("listening on http://%s for component %s", address, link.target)

    async def link_del(self, link: InterfaceLinkDefinition) -> None:
        if link.source_id == self.provider_id:
            await self._close((link.target, link.name))

    async def _close(self, key: tuple[str, str]) -> None:
        listener = self.listeners.pop(key, None)
        if listener is not None:
            await listener.runner.cleanup()
            log.info("stopped listening on %s", listener.address)

    def _handler(self, link: InterfaceLinkDefinition) -> Handler:
        limit = int(link.source_config.get("max_body_bytes", DEFAULT_MAX_BODY))
        timeout = int(link.source_config.get("timeout_ms", DEFAULT_TIMEOUT_MS)) / 1000

        async def handle(request: web.Request) -> web.StreamResponse:
            if not telemetry.TRACING:
                return await respond(request)
            # The request's SERVER span: the root of its trace (or the child of the HTTP
            # client's `traceparent`); the wRPC call to the component is its child.
            with telemetry.http_server_span(request.method, request.path, request.headers) as span:
                response = await respond(request)
                telemetry.set_http_status(span, response.status)
                return response

        async def respond(request: web.Request) -> web.StreamResponse:
            if request.content_length is not None and request.content_length > limit:
                return web.Response(status=413, text=f"request body over {limit} bytes")
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return web.Response(status=413, text=f"request body over {limit} bytes")
            outgoing = HttpRequest(
                method=request.method,
                path_with_query=request.path_qs,
                scheme=request.scheme,
                authority=request.host,
                headers=[(k.lower(), v.encode()) for k, v in request.headers.items()],
                body=body,
            )
            response = await self._forward(link, outgoing, timeout)
            return web.Response(
                status=response.status,
                body=response.body,
                headers=[
                    (k, v.decode("latin-1"))
                    for k, v in response.headers
                    if k.lower() not in ("content-length", "transfer-encoding")
                ],
            )

        return handle

    async def _forward(
        self, link: InterfaceLinkDefinition, request: HttpRequest, timeout: float
    ) -> HttpResponse:
        assert self.client is not None
        try:
            reply = await self.client.invoke(
                link.target,
                HTTP_INSTANCE,
                "handle",
                encode_request(request),
                pending_results=pending_response_paths,
                source_id=self.provider_id,
                link_name=link.name,
                timeout=timeout,
            )
        except NoResponders:
            return HttpResponse.text(503, f"component {link.target} is not running")
        except TimeoutError:
            return HttpResponse.text(504, f"component {link.target} did not answer in {timeout}s")
        except WrpcError as error:
            return HttpResponse.text(500, f"component {link.target} failed: {error}")
        return decode_response(reply)

    async def health(self) -> tuple[bool, str]:
        return True, f"{len(self.listeners)} listener(s)"

    async def stop(self) -> None:
        for key in list(self.listeners):
            await self._close(key)


def main() -> None:
    run_provider(HttpServerProvider())


if __name__ == "__main__":
    main()
