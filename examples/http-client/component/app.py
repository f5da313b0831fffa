"""Fetch through the lattice: `GET /fetch?authority=HOST:PORT&path=/x` makes one outgoing
request with wasi:http/outgoing-handler and answers with what came back.

The request goes to the http-client provider this component is linked to; the
component never opens a socket. Query parameters (all optional but `authority`):

    authority            where to send it, e.g. 127.0.0.1:8081
    path                 the path and query to ask for (default /)
    scheme               http (default) or https
    first_byte_timeout_ms  the request-options timeout for the response's first byte

The incoming request's method and body are forwarded. The answer is 200 with
`<status> <body>` for any response, or 502 with `error <error-code> <detail>`.
"""

from urllib.parse import parse_qs

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import outgoing_handler
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Delete,
    Method_Get,
    Method_Post,
    Method_Put,
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    RequestOptions,
    ResponseOutparam,
    Scheme_Http,
    Scheme_Https,
)

CHUNK = 4096  # wasi:io output streams accept at most 4 KiB per blocking write
METHODS = {"GET": Method_Get, "POST": Method_Post, "PUT": Method_Put, "DELETE": Method_Delete}


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        _, _, query = (request.path_with_query() or "/").partition("?")
        params = {name: values[0] for name, values in parse_qs(query).items()}
        authority = params.get("authority")
        if not authority:
            respond(response_out, 400, "give ?authority=HOST:PORT (and &path=/...)")
            return
        method = type(request.method()).__name__.removeprefix("Method_").upper()
        body = read_all(request.consume().stream())
        try:
            status, text = fetch(method, authority, params, body)
        except Err as error:
            respond(response_out, 502, "error " + describe(error.value))
            return
        respond(response_out, 200, f"{status} {text}")


def fetch(method: str, authority: str, params: dict, body: bytes) -> tuple[int, str]:
    outgoing = OutgoingRequest(Fields.from_list([("x-sent-by", b"http-client example")]))
    outgoing.set_method(METHODS.get(method, Method_Get)())
    https = params.get("scheme") == "https"
    outgoing.set_scheme(Scheme_Https() if https else Scheme_Http())
    outgoing.set_authority(authority)
    outgoing.set_path_with_query(params.get("path", "/"))
    options = None
    if "first_byte_timeout_ms" in params:
        options = RequestOptions()
        options.set_first_byte_timeout(int(params["first_byte_timeout_ms"]) * 1_000_000)
    request_body = outgoing.body()
    with request_body.write() as stream:
        for start in range(0, len(body), CHUNK):
            stream.blocking_write_and_flush(body[start : start + CHUNK])
    OutgoingBody.finish(request_body, None)
    future = outgoing_handler.handle(outgoing, options)
    future.subscribe().block()
    answer = future.get()
    if answer is None or isinstance(answer, Err):
        raise Err("internal-error no response")
    inner = answer.value
    if isinstance(inner, Err):
        raise inner
    response = inner.value
    data = read_all(response.consume().stream())
    return response.status(), data.decode(errors="replace")


def read_all(stream) -> bytes:
    data = bytearray()
    with stream:
        while True:
            try:
                data += stream.blocking_read(65536)
            except Err as error:
                if isinstance(error.value, StreamError_Closed):
                    return bytes(data)
                raise


def describe(code) -> str:
    """`HTTP-response-body-size 1234`, from a wasi:http error-code binding."""
    if isinstance(code, str):
        return code
    name = type(code).__name__.removeprefix("ErrorCode_")
    value = getattr(code, "value", None)
    return name if value is None else f"{name} {value}"


def respond(response_out: ResponseOutparam, status: int, text: str) -> None:
    headers = Fields.from_list([("content-type", b"text/plain; charset=utf-8")])
    response = OutgoingResponse(headers)
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    data = text.encode()
    with body.write() as stream:
        for start in range(0, len(data), CHUNK):
            stream.blocking_write_and_flush(data[start : start + CHUNK])
    OutgoingBody.finish(body, None)
