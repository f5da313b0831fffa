"""http-client: components' outgoing HTTP (wasi:http/outgoing-handler), sent with aiohttp.

Serves wrpc:http/outgoing-handler@0.1.0 `handle`, as wasmCloud's http-client provider
does; the host forwards a component's wasi:http/outgoing-handler@0.2.x calls here when
a link from the component names this provider. Each link's target_config (over the
provider's own config) says how that component's requests go out:

    connect_timeout_ms        default 5000  } used when the component's request-options
    first_byte_timeout_ms     default 10000 } leave that timeout unset; a timeout the
    between_bytes_timeout_ms  default 10000 } component sets wins
    max_body_bytes            default 16 MiB: the most a request or response body may
                              hold (HTTP-request-body-size / HTTP-response-body-size)
    ssl_certs_file            a PEM bundle of extra CA certificates
    load_native_certs         "true" (default) / "false": the system's CA certificates
    load_webpki_certs         accepted as upstream spells it; Mozilla's roots are the
                              system's here, so it changes nothing

A value of the wrong shape is refused by name: the component's calls over that link get
`internal-error` with the sentence, and the provider log says it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass

import aiohttp
from nats.aio.client import Client as NatsClient

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.providers.contract import HostData, InterfaceLinkDefinition
from host_agent.providers.sdk import run_provider
from host_agent.wrpc.codec import DecodeError
from host_agent.wrpc.http_outgoing import (
    OUTGOING_INSTANCE,
    HttpErrorCode,
    RequestTimeouts,
    decode_handle_params,
    encode_handle_result,
    pending_params_paths,
)
from host_agent.wrpc.transport import Payload, WrpcError, WrpcServer

log = logging.getLogger("host_agent.provider.http_client")

USER_AGENT = "wasmcloud-provider-http-client (host_agent)"
DEFAULT_MAX_BODY = 16 * 1024 * 1024
DEFAULTS_MS = {
    "connect_timeout_ms": 5_000,
    "first_byte_timeout_ms": 10_000,
    "between_bytes_timeout_ms": 10_000,
}
# Set by aiohttp from the body it sends, or meaningless for a body sent whole.
_REQUEST_HEADERS_SKIPPED = ("host", "content-length", "transfer-encoding", "connection")
READ_CHUNK = 64 * 1024


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ClientConfig:
    connect: float
    first_byte: float
    between_bytes: float
    max_body_bytes: int
    ssl_certs_file: str | None
    load_native_certs: bool

    @classmethod
    def parse(cls, values: dict[str, str], where: str) -> ClientConfig:
        """Strictly from string config values; `where` names them in refusals."""

        def whole(name: str, default: int, unit: str) -> int:
            raw = values.get(name)
            if raw is None:
                return default
            if not isinstance(raw, str) or not raw.isdigit() or int(raw) == 0:
                raise ConfigError(
                    f"{where} {name}={raw!r} is not a positive whole number of {unit}; "
                    f'write e.g. {name}: "{default}"'
                )
            return int(raw)

        def flag(name: str) -> bool:
            raw = values.get(name, "true")
            if not isinstance(raw, str) or raw.lower() not in ("true", "false"):
                raise ConfigError(f'{where} {name}={raw!r} must be "true" or "false"')
            return raw.lower() == "true"

        flag("load_webpki_certs")
        certs = values.get("ssl_certs_file")
        if certs is not None and (not isinstance(certs, str) or not certs):
            raise ConfigError(f"{where} ssl_certs_file must be the path of a PEM file")
        ms = {name: whole(name, default, "milliseconds") for name, default in DEFAULTS_MS.items()}
        return cls(
            ms["connect_timeout_ms"] / 1000,
            ms["first_byte_timeout_ms"] / 1000,
            ms["between_bytes_timeout_ms"] / 1000,
            whole("max_body_bytes", DEFAULT_MAX_BODY, "bytes"),
            certs,
            flag("load_native_certs"),
        )

    def ssl_context(self) -> ssl.SSLContext:
        context = (
            ssl.create_default_context()
            if self.load_native_certs
            else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        )
        if self.ssl_certs_file:
            try:
                context.load_verify_locations(cafile=self.ssl_certs_file)
            except (OSError, ssl.SSLError) as error:
                raise ConfigError(
                    f"ssl_certs_file {self.ssl_certs_file!r} cannot be read as PEM "
                    f"certificates ({error}); give the path of a readable PEM bundle"
                ) from None
        return context


@dataclass
class LinkedClient:
    """One component's way out: its config (or why the config is refused) and session."""

    config: ClientConfig | None
    problem: str | None
    session: aiohttp.ClientSession | None


def _timeout_code(phase: str) -> HttpErrorCode:
    """A timeout while waiting for the response head, or between body bytes."""
    return HttpErrorCode("HTTP-response-timeout" if phase == "head" else "connection-read-timeout")


def error_code(error: BaseException) -> HttpErrorCode:
    """The wasi:http error-code for an aiohttp failure."""
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return HttpErrorCode("DNS-error", (None, None))
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return HttpErrorCode("TLS-certificate-error")
    if isinstance(error, aiohttp.ClientSSLError):
        return HttpErrorCode("TLS-protocol-error")
    if isinstance(error, aiohttp.ClientConnectorError):
        if isinstance(error.os_error, ConnectionRefusedError):
            return HttpErrorCode("connection-refused")
        return HttpErrorCode("destination-unavailable")
    if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return HttpErrorCode("HTTP-response-incomplete")
    if isinstance(error, aiohttp.InvalidURL):
        return HttpErrorCode("HTTP-request-URI-invalid")
    if isinstance(error, aiohttp.ClientResponseError):
        return HttpErrorCode("HTTP-protocol-error")
    return HttpErrorCode("internal-error", str(error) or type(error).__name__)


class HttpClientProvider:
    def __init__(self) -> None:
        self.provider_id = ""
        self._host: HostData | None = None
        self._clients: dict[str, LinkedClient] = {}  # by source component id

    async def start(self, host: HostData, nc: NatsClient) -> None:
        self.provider_id = host.provider_key
        self._host = host
        server = WrpcServer(nc, host.lattice_rpc_prefix)
        await server.serve(
            host.provider_key,
            OUTGOING_INSTANCE,
            "handle",
            self._handle,
            pending_params=pending_params_paths,
        )

    def _serves(self, link: InterfaceLinkDefinition) -> bool:
        return (
            link.target == self.provider_id
            and (link.wit_namespace, link.wit_package) == ("wasi", "http")
            and "outgoing-handler" in link.interfaces
        )

    async def link_put(self, link: InterfaceLinkDefinition) -> None:
        if not self._serves(link):
            return
        assert self._host is not None
        await self._close(link.source_id)
        values = {**self._host.config, **link.target_config}
        where = f"link {link.name!r} from {link.source_id}: target_config (or provider config)"
        try:
            config = ClientConfig.parse(values, where)
            connector = aiohttp.TCPConnector(ssl=config.ssl_context())
        except ConfigError as error:
            log.error("refused the config of %s: %s", link.source_id, error)
            self._clients[link.source_id] = LinkedClient(None, str(error), None)
            return
        session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # the component gets the bytes the server sent
            timeout=aiohttp.ClientTimeout(total=None),
        )
        self._clients[link.source_id] = LinkedClient(config, None, session)
        log.info("link from %s ready", link.source_id)

    async def link_del(self, link: InterfaceLinkDefinition) -> None:
        if self._serves(link):
            await self._close(link.source_id)

    async def _close(self, source_id: str) -> None:
        client = self._clients.pop(source_id, None)
        if client is not None and client.session is not None:
            await client.session.close()

    async def _handle(self, params: Payload, headers: dict[str, str]) -> Payload:
        try:
            request, timeouts = decode_handle_params(params)
        except DecodeError as error:
            raise WrpcError(f"the parameters of {OUTGOING_INSTANCE}.handle: {error}") from None
        source = headers.get("source-id", "")
        client = self._clients.get(source)
        if client is None:
            result: HttpResponse | HttpErrorCode = HttpErrorCode(
                "internal-error",
                f"no link from {source or 'an unnamed caller'} to {self.provider_id} on "
                "wasi:http/outgoing-handler has reached it; put one",
            )
        elif client.problem is not None or client.config is None or client.session is None:
            result = HttpErrorCode("internal-error", client.problem)
        else:
            result = await self._send(client.config, client.session, request, timeouts)
        return encode_handle_result(result)

    async def _send(
        self,
        config: ClientConfig,
        session: aiohttp.ClientSession,
        request: HttpRequest,
        timeouts: RequestTimeouts | None,
    ) -> HttpResponse | HttpErrorCode:
        given = timeouts or RequestTimeouts()
        connect = given.connect or config.connect
        first_byte = given.first_byte or config.first_byte
        between = given.between_bytes or config.between_bytes
        if len(request.body) > config.max_body_bytes:
            return HttpErrorCode("HTTP-request-body-size", len(request.body))
        url = f"{request.scheme}://{request.authority}{request.path_with_query}"
        headers = [
            (name, value.decode("latin-1"))
            for name, value in request.headers
            if name.lower() not in _REQUEST_HEADERS_SKIPPED
        ]
        if not any(name.lower() == "user-agent" for name, _ in headers):
            headers.append(("user-agent", USER_AGENT))
        phase = "head"  # aiohttp's own connect timeout says when connecting was the slow part
        try:
            async with asyncio.timeout(connect + first_byte):
                response = await session.request(
                    request.method,
                    url,
                    headers=headers,
                    data=request.body or None,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=connect, sock_read=first_byte
                    ),
                )
            phase = "body"
            async with response:
                return await self._read(response, config.max_body_bytes, between)
        except aiohttp.ConnectionTimeoutError:
            return HttpErrorCode("connection-timeout")
        except TimeoutError:  # ours, or aiohttp's socket read timeout (a TimeoutError too)
            return _timeout_code(phase)
        except (aiohttp.ClientError, ValueError) as error:
            return error_code(error)

    async def _read(
        self, response: aiohttp.ClientResponse, limit: int, between: float
    ) -> HttpResponse | HttpErrorCode:
        if response.content_length is not None and response.content_length > limit:
            return HttpErrorCode("HTTP-response-body-size", response.content_length)
        body = bytearray()
        while True:
            async with asyncio.timeout(between):
                chunk = await response.content.read(READ_CHUNK)
            if not chunk:
                break
            body += chunk
            if len(body) > limit:
                return HttpErrorCode("HTTP-response-body-size", len(body))
        headers = [
            (name.lower(), value.encode("latin-1"))
            for name, value in response.headers.items()
            if name.lower() != "transfer-encoding"
        ]
        return HttpResponse(response.status, headers, bytes(body))

    async def health(self) -> tuple[bool, str]:
        refused = sum(1 for client in self._clients.values() if client.problem)
        message = f"{len(self._clients)} linked component(s)"
        return True, message + (f", {refused} with refused config" if refused else "")

    async def stop(self) -> None:
        for source in list(self._clients):
            await self._close(source)


def main() -> None:
    run_provider(HttpClientProvider())


if __name__ == "__main__":
    main()
