"""wrpc:http/incoming-handler@0.1.0 `handle`: requests and responses on the wire.

    record request  { body: stream<u8>, trailers: future<option<fields>>, method: method,
                      path-with-query: option<string>, scheme: option<scheme>,
                      authority: option<string>, headers: fields }
    record response { body: stream<u8>, trailers: future<option<fields>>,
                      status: u16, headers: fields }
    handle: func(request) -> result<response, error-code>
    fields = list<tuple<string, list<list<u8>>>>

A body of at most INLINE_BODY bytes goes inline (a ready stream). A larger one, and an
empty one, is "pending" (0): its bytes follow on the nested path 0.0 as a wRPC byte
stream (length-prefixed chunks, then a zero-length end), which the transport publishes
in messages under the connection's max_payload, so a body is not bounded by the size of
one NATS message (1 MiB by default). An empty body is pending because an empty inline
chunk means "pending" to wRPC decoders. Trailers are always sent ready and empty.
"""

from __future__ import annotations

from host_agent.interfaces.http import Headers, HttpRequest, HttpResponse
from host_agent.wrpc.codec import DecodeError, Reader, Writer, read_stream_frames, stream_frames
from host_agent.wrpc.transport import Payload

HTTP_INSTANCE = "wrpc:http/incoming-handler@0.1.0"
BODY_PATH = "0.0"  # first field (body) of the first parameter / result
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
SCHEMES = ("http", "https")
INTERNAL_ERROR = 38  # error-code.internal-error(option<string>) in wasi:http 0.2
# The largest body sent inline in the root message: small bodies save the nested path's
# round trip (the callee's accept), larger ones stream so the root stays one message.
INLINE_BODY = 64 * 1024


def _body(writer: Writer, body: bytes, nested: dict[str, bytes]) -> None:
    if 0 < len(body) <= INLINE_BODY:
        writer.list_u8(body)
    else:
        writer.u8(0)
        nested[BODY_PATH] = stream_frames(body)
    writer.u8(1).u8(0)  # trailers: ready, none


def _fields(writer: Writer, headers: Headers) -> None:
    grouped: dict[str, list[bytes]] = {}
    for name, value in headers:
        grouped.setdefault(name, []).append(value)
    writer.u(len(grouped))
    for name, values in grouped.items():
        writer.string(name).u(len(values))
        for value in values:
            writer.list_u8(value)


def _read_fields(reader: Reader) -> Headers:
    headers: Headers = []
    for _ in range(reader.u(32)):
        name = reader.string()
        headers.extend((name, reader.list_u8()) for _ in range(reader.u(32)))
    return headers


def _read_body(reader: Reader, nested: dict[str, bytes]) -> bytes:
    body = reader.list_u8()
    if not body:  # pending: the chunks came on the nested path
        body = read_stream_frames(nested.get(BODY_PATH, b""))
    _skip_trailers(reader)
    return body


def _skip_trailers(reader: Reader) -> None:
    if reader.option() and reader.option():  # trailers ready, and present
        _read_fields(reader)  # trailers are not passed on


def _pending_body(data: bytes) -> list[str]:
    return [BODY_PATH] if data[:1] == b"\x00" else []


# request (the http-server provider encodes, the component's host decodes) -------------
def encode_request(request: HttpRequest) -> Payload:
    writer = Writer()
    nested: dict[str, bytes] = {}
    _body(writer, request.body, nested)
    method = request.method.upper()
    if method in METHODS:
        writer.u(METHODS.index(method))
    else:
        writer.u(len(METHODS)).string(request.method)
    writer.option_string(request.path_with_query)
    scheme = request.scheme.lower()
    writer.u8(1)
    if scheme in SCHEMES:
        writer.u(SCHEMES.index(scheme))
    else:
        writer.u(len(SCHEMES)).string(request.scheme)
    writer.option_string(request.authority or None)
    _fields(writer, request.headers)
    return Payload(writer.finish(), nested)


pending_request_paths = _pending_body


def decode_request(params: Payload) -> HttpRequest:
    """The request; a body still arriving (the params were served lazily) is read when the
    component asks for it (``HttpRequest.pending_body``)."""
    reader = Reader(params.data)
    later = params.later
    pending_body = None
    if later is not None and params.data[:1] == b"\x00":
        reader.u8()
        _skip_trailers(reader)
        body = b""

        def pending_body() -> bytes:
            return read_stream_frames(later.wait(BODY_PATH))

    else:
        body = _read_body(reader, params.nested)
    case = reader.u(32)
    if case < len(METHODS):
        method = METHODS[case]
    elif case == len(METHODS):
        method = reader.string()
    else:
        raise DecodeError(f"unknown method case {case}")
    path = reader.option_string() or "/"
    scheme = "http"
    if reader.option():
        case = reader.u(32)
        scheme = SCHEMES[case] if case < len(SCHEMES) else reader.string()
    authority = reader.option_string() or ""
    headers = _read_fields(reader)
    return HttpRequest(method, path, scheme, authority, headers, body, pending_body)


# response (the component's host encodes, the http-server provider decodes) ------------
def encode_response(response: HttpResponse) -> Payload:
    writer = Writer().u8(0)  # result::ok
    nested: dict[str, bytes] = {}
    _body(writer, response.body, nested)
    writer.u(response.status)
    _fields(writer, response.headers)
    return Payload(writer.finish(), nested)


def pending_response_paths(data: bytes) -> list[str]:
    return _pending_body(data[1:]) if data[:1] == b"\x00" else []


def decode_response(results: Payload) -> HttpResponse:
    reader = Reader(results.data)
    if reader.u8() != 0:
        case = reader.u(32)
        detail = reader.option_string() if case == INTERNAL_ERROR else None
        return HttpResponse.text(500, f"component failed: {detail or f'error-code {case}'}")
    body = _read_body(reader, results.nested)
    status = reader.u(16)
    return HttpResponse(status, _read_fields(reader), body)
