"""The http-server provider: listen where each link says, forward requests over wRPC.

A link from this provider (source) to a component (target) on
wasi:http/incoming-handler with source_config `address` (default 127.0.0.1:8000)
opens a listener there. Each request is read in full (up to `max_body_bytes`, default
16 MiB, else 413 naming it), sent to the component as wrpc:http/incoming-handler.handle,
and the response written back (a response body over `max_body_bytes` -> 502 naming it).
Bodies over INLINE_BODY cross NATS as wRPC byte streams in chunks (host_agent/wrpc/http.py),
so neither way is bounded by one NATS message. No running component -> 503; no answer in
`timeout_ms` -> 504. A link whose source_config is malformed is refused (no listener) with
a sentence naming the field. The HTTP/1.1 side (parsing, keep-alive, the 413 before the
body is read, writing answers) is host_agent/providers/http_listener.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.providers.contract import HostData, InterfaceLinkDefinition
from host_agent.providers.http_address import DEFAULT_ADDRESS, split_address
from host_agent.providers.http_listener import Handler, HeaderView, HttpListener
from host_agent.providers.sdk import run_provider
from host_agent.telemetry import otel as telemetry
from host_agent.wrpc.http import (
    HTTP_INSTANCE,
    decode_response,
    encode_request,
    pending_response_paths,
)
from host_agent.wrpc.transport import NestedTooLarge, NoResponders, WrpcClient, WrpcError

log = logging.getLogger("host_agent.provider.http_server")

DEFAULT_MAX_BODY = 16 * 1024 * 1024
DEFAULT_TIMEOUT_MS = 10_000


class ConfigError(ValueError):
    """A link's source_config value that cannot be used, named with its fix."""


@dataclass(frozen=True)
class LinkSettings:
    address: str
    max_body_bytes: int
    timeout_s: float

    @classmethod
    def parse(cls, values: dict[str, str], target: str) -> LinkSettings:
        """Strictly from the link's source_config strings (serde reads no "16MiB" as a
        number either): a bad value is refused with its name, never read as the default."""

        def whole(name: str, default: int, unit: str) -> int:
            raw = values.get(name)
            if raw is None:
                return default
            if not isinstance(raw, str) or not raw.isdigit() or int(raw) == 0:
                raise ConfigError(
                    f"the http-server link to {target}: source_config {name}={raw!r} is not "
                    f'a positive whole number of {unit}; write e.g. {name}: "{default}"'
                )
            return int(raw)

        address = values.get("address", DEFAULT_ADDRESS)
        if not isinstance(address, str):
            raise ConfigError(
                f"the http-server link to {target}: source_config address must be a string "
                f'host:port, e.g. address: "{DEFAULT_ADDRESS}"'
            )
        return cls(
            address,
            whole("max_body_bytes", DEFAULT_MAX_BODY, "bytes"),
            whole("timeout_ms", DEFAULT_TIMEOUT_MS, "milliseconds") / 1000,
        )


@dataclass
class Listener:
    link: InterfaceLinkDefinition
    server: HttpListener
    address: str


def _split_address(address: str) -> tuple[str, int]:
    parsed = split_address(address)
    if parsed is None:
        raise ValueError(f"address {address!r} must be host:port, e.g. 127.0.0.1:8080")
    return parsed


def _too_large(link: InterfaceLinkDefinition, settings: LinkSettings) -> str:
    """The 413's sentence: the request body is over the link's max_body_bytes."""
    return (
        f"request body over max_body_bytes ({settings.max_body_bytes} bytes) of the "
        f"http-server link to {link.target}; send a smaller body, or raise max_body_bytes "
        "in the link's source_config\n"
    )


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
        try:
            settings = LinkSettings.parse(link.source_config, link.target)
        except ConfigError as error:
            log.error("%s", error)
            await self._close(key)
            return
        address = settings.address
        existing = self.listeners.get(key)
        if existing is not None and existing.address == address and existing.link == link:
            return
        if existing is not None:
            await self._close(key)
        host, port = _split_address(address)
        server = HttpListener(
            self._handler(link, settings), settings.max_body_bytes, _too_large(link, settings)
        )
        try:
            await server.start(host, port)
        except OSError as error:
            log.error("cannot listen on %s for %s: %s", address, link.target, error)
            return
        self.listeners[key] = Listener(link, server, address)
        log.info("listening on http://%s for component %s", address, link.target)

    async def link_del(self, link: InterfaceLinkDefinition) -> None:
        if link.source_id == self.provider_id:
            await self._close((link.target, link.name))

    async def _close(self, key: tuple[str, str]) -> None:
        listener = self.listeners.pop(key, None)
        if listener is not None:
            await listener.server.close()
            log.info("stopped listening on %s", listener.address)

    def _handler(self, link: InterfaceLinkDefinition, settings: LinkSettings) -> Handler:
        limit = settings.max_body_bytes
        timeout = settings.timeout_s
        answer_too_large = HttpResponse.text(
            502,
            f"component {link.target} answered a body over max_body_bytes ({limit} bytes) of "
            "its http-server link; raise max_body_bytes in the link's source_config\n",
        )

        async def handle(request: HttpRequest) -> HttpResponse:
            if not telemetry.TRACING:
                return await respond(request)
            # The request's SERVER span: the root of its trace (or the child of the HTTP
            # client's `traceparent`); the wRPC call to the component is its child.
            path = request.path_with_query.partition("?")[0]
            headers = HeaderView(request.headers)
            with telemetry.http_server_span(request.method, path, headers) as span:
                response = await respond(request)
                telemetry.set_http_status(span, response.status)
                return response

        async def respond(request: HttpRequest) -> HttpResponse:
            # The body is within the limit: the listener has refused it (413) otherwise.
            response = await self._forward(link, request, timeout, limit)
            if len(response.body) > limit:
                return answer_too_large
            return response

        return handle

    async def _forward(
        self, link: InterfaceLinkDefinition, request: HttpRequest, timeout: float, limit: int
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
                # The streamed body's bytes include its chunks' length prefixes (a few
                # per chunk; a peer may send small chunks): an eighth more than the limit
                # bounds what is kept, and the body itself is checked against the limit.
                max_nested_bytes=limit + limit // 8 + 64,
            )
        except NestedTooLarge:
            return HttpResponse.text(
                502,
                f"component {link.target} answered a body over max_body_bytes ({limit} bytes) "
                "of its http-server link; raise max_body_bytes in the link's source_config\n",
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
