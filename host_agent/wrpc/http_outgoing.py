"""wrpc:http/outgoing-handler@0.1.0 `handle`: what the http-client provider serves.

    record request-options { connect-timeout: option<duration>,
                             first-byte-timeout: option<duration>,
                             between-bytes-timeout: option<duration> }   (nanoseconds)
    handle: func(request, options: option<request-options>) -> result<response, error-code>

`request` and `response` are the records of wrpc:http/incoming-handler (wrpc/http.py);
`error-code` is wasi:http 0.2's variant, whose cases and payloads are listed here so a
failure reaches the component as the case the provider chose (connection-refused,
HTTP-response-body-size, ...), not as a generic error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.wrpc.codec import DecodeError, Reader, Writer
from host_agent.wrpc.http import (
    METHODS,
    SCHEMES,
    _read_body,
    _read_fields,
    decode_response,
    encode_request,
    encode_response,
    pending_request_paths,
    pending_response_paths,
)
from host_agent.wrpc.transport import Payload

OUTGOING_INSTANCE = "wrpc:http/outgoing-handler@0.1.0"

# wasi:http 0.2 error-code, in case order, with each case's payload shape:
# "" none, "u64?"/"u32?"/"str?" an option of that, "dns"/"tls"/"field"/"field?" records.
ERROR_CASES: tuple[tuple[str, str], ...] = (
    ("DNS-timeout", ""),
    ("DNS-error", "dns"),
    ("destination-not-found", ""),
    ("destination-unavailable", ""),
    ("destination-IP-prohibited", ""),
    ("destination-IP-unroutable", ""),
    ("connection-refused", ""),
    ("connection-terminated", ""),
    ("connection-timeout", ""),
    ("connection-read-timeout", ""),
    ("connection-write-timeout", ""),
    ("connection-limit-reached", ""),
    ("TLS-protocol-error", ""),
    ("TLS-certificate-error", ""),
    ("TLS-alert-received", "tls"),
    ("HTTP-request-denied", ""),
    ("HTTP-request-length-required", ""),
    ("HTTP-request-body-size", "u64?"),
    ("HTTP-request-method-invalid", ""),
    ("HTTP-request-URI-invalid", ""),
    ("HTTP-request-URI-too-long", ""),
    ("HTTP-request-header-section-size", "u32?"),
    ("HTTP-request-header-size", "field?"),
    ("HTTP-request-trailer-section-size", "u32?"),
    ("HTTP-request-trailer-size", "field"),
    ("HTTP-response-incomplete", ""),
    ("HTTP-response-header-section-size", "u32?"),
    ("HTTP-response-header-size", "field"),
    ("HTTP-response-body-size", "u64?"),
    ("HTTP-response-trailer-section-size", "u32?"),
    ("HTTP-response-trailer-size", "field"),
    ("HTTP-response-transfer-coding", "str?"),
    ("HTTP-response-content-coding", "str?"),
    ("HTTP-response-timeout", ""),
    ("HTTP-upgrade-failed", ""),
    ("HTTP-protocol-error", ""),
    ("loop-detected", ""),
    ("configuration-error", ""),
    ("internal-error", "str?"),
)
CASE_INDEX = {name: index for index, (name, _) in enumerate(ERROR_CASES)}


@dataclass(frozen=True)
class RequestTimeouts:
    """wasi:http request-options, in seconds (None: the provider's default)."""

    connect: float | None = None
    first_byte: float | None = None
    between_bytes: float | None = None


@dataclass(frozen=True)
class HttpErrorCode:
    """One wasi:http error-code: the case name and its payload (None, an int, a string,
    or for record payloads a tuple of the record's fields)."""

    case: str
    payload: Any = None

    def __post_init__(self) -> None:
        if self.case not in CASE_INDEX:
            raise ValueError(f"{self.case!r} is not a wasi:http error-code case")

    def describe(self) -> str:
        return self.case if self.payload is None else f"{self.case}: {self.payload}"


def _duration(writer: Writer, seconds: float | None) -> None:
    if seconds is None:
        writer.u8(0)
    else:
        writer.u8(1).u(int(seconds * 1_000_000_000))


def _read_duration(reader: Reader) -> float | None:
    return reader.u(64) / 1_000_000_000 if reader.option() else None


def encode_handle_params(request: HttpRequest, timeouts: RequestTimeouts | None) -> Payload:
    """The host's side: the component's request and its options."""
    payload = encode_request(request)
    writer = Writer().raw(payload.data)
    if timeouts is None:
        writer.u8(0)
    else:
        writer.u8(1)
        for value in (timeouts.connect, timeouts.first_byte, timeouts.between_bytes):
            _duration(writer, value)
    return Payload(writer.finish(), payload.nested)


pending_params_paths = pending_request_paths


def decode_handle_params(params: Payload) -> tuple[HttpRequest, RequestTimeouts | None]:
    """The provider's side; raises DecodeError for bytes that are not these params."""
    reader = Reader(params.data)
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
    timeouts = None
    if reader.option():
        timeouts = RequestTimeouts(
            _read_duration(reader), _read_duration(reader), _read_duration(reader)
        )
    if not reader.at_end():
        raise DecodeError(f"{reader.remaining()} bytes after the handle parameters")
    return HttpRequest(method, path, scheme, authority, headers, body), timeouts


def _write_payload(writer: Writer, shape: str, payload: Any) -> None:
    if shape == "":
        return
    if shape in ("u64?", "u32?"):
        writer.u8(0) if payload is None else writer.u8(1).u(int(payload))
    elif shape == "str?":
        writer.option_string(payload)
    elif shape == "field?" and payload is None:
        writer.u8(0)
    else:  # dns / tls / field records: two optional fields
        if shape == "field?":
            writer.u8(1)
        first, second = payload if payload is not None else (None, None)
        if shape == "tls":
            writer.u8(0) if first is None else writer.u8(1).u8(int(first))
            writer.option_string(second)
        else:  # dns: (rcode?, info-code?); field: (field-name?, field-size?)
            writer.option_string(first)
            writer.u8(0) if second is None else writer.u8(1).u(int(second))


def _read_payload(reader: Reader, shape: str) -> Any:
    if shape == "":
        return None
    if shape == "u64?":
        return reader.u(64) if reader.option() else None
    if shape == "u32?":
        return reader.u(32) if reader.option() else None
    if shape == "str?":
        return reader.option_string()
    if shape == "field?" and not reader.option():
        return None
    if shape == "tls":
        return (reader.u8() if reader.option() else None, reader.option_string())
    return (reader.option_string(), reader.u(32) if reader.option() else None)


def encode_handle_result(result: HttpResponse | HttpErrorCode) -> Payload:
    """The provider's side: the response, or the error-code the component sees."""
    if isinstance(result, HttpResponse):
        return encode_response(result)
    writer = Writer().u8(1).u(CASE_INDEX[result.case])
    _write_payload(writer, ERROR_CASES[CASE_INDEX[result.case]][1], result.payload)
    return Payload(writer.finish())


def pending_result_paths(data: bytes) -> list[str]:
    return pending_response_paths(data)


def decode_handle_result(results: Payload) -> HttpResponse | HttpErrorCode:
    """The host's side; raises DecodeError for bytes that are not a handle result."""
    if results.data[:1] == b"\x00":
        return decode_response(results)
    reader = Reader(results.data)
    if reader.u8() != 1:
        raise DecodeError("a handle result must start with 0 (ok) or 1 (err)")
    case = reader.u(32)
    if case >= len(ERROR_CASES):
        raise DecodeError(f"unknown error-code case {case}")
    name, shape = ERROR_CASES[case]
    return HttpErrorCode(name, _read_payload(reader, shape))
