"""wasi:http/outgoing-handler: a component's outgoing HTTP requests, sent by a provider.

The guest builds an `outgoing-request` (and optionally `request-options` with its
timeouts), writes its body and calls `handle`. As in wasmCloud 1.x, the host does not
send the request itself: it goes over wRPC (wrpc:http/outgoing-handler@0.1.0) to the
http-client provider the component's link names, which answers with the response or a
wasi:http error-code. The call completes inside `handle` (the guest's pollables are
always ready, see wasi_io.py), so `future-incoming-response.get` has the answer at once.

The resources of the request side live in wasi:http/types next to the server side's
(wasi_http.py); `with_outgoing` adds them to that interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from wasmtime.component import Record, Variant

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.runtime.interface import HostInterface
from host_agent.runtime.resources import GuestHandle, ResourceTable
from host_agent.runtime.wasi_http import (
    RESULT_ERR,
    RESULT_OK,
    Fields,
    IncomingBody,
    OutgoingBody,
    _method_variant,
)
from host_agent.runtime.wasi_io import Pollable
from host_agent.wrpc.http_outgoing import CASE_INDEX, ERROR_CASES, HttpErrorCode, RequestTimeouts

OUTGOING_HANDLER = "wasi:http/outgoing-handler"


class OutgoingHttp(Protocol):
    """What the runtime needs from the lattice to send a request (a blocking call)."""

    def send(
        self, request: HttpRequest, timeouts: RequestTimeouts | None
    ) -> HttpResponse | HttpErrorCode: ...


class NoOutgoingHttp:
    """Stands in when checking imports, where no calls are made."""

    def send(
        self, request: HttpRequest, timeouts: RequestTimeouts | None
    ) -> HttpResponse | HttpErrorCode:
        return HttpErrorCode("internal-error", "no http-client on this host")


class OutgoingRequest:
    def __init__(self, headers: Fields) -> None:
        self.headers = headers
        self.method = "GET"
        self.path_with_query: str | None = None
        self.scheme: str | None = None
        self.authority: str | None = None
        self.body = OutgoingBody()
        self.body_taken = False


class RequestOptions:
    """Timeouts in nanoseconds (wasi:clocks duration), None when not set."""

    def __init__(self) -> None:
        self.connect: int | None = None
        self.first_byte: int | None = None
        self.between_bytes: int | None = None

    def timeouts(self) -> RequestTimeouts:
        def seconds(value: int | None) -> float | None:
            return None if value is None else value / 1_000_000_000

        return RequestTimeouts(
            seconds(self.connect), seconds(self.first_byte), seconds(self.between_bytes)
        )


class FutureIncomingResponse:
    """The answer to one `handle`. The request is sent on the first `get`, so a guest
    may call `handle` first and write and finish the body afterwards (wasi:http allows
    either order; the body travels whole, so it must be finished by then)."""

    def __init__(self, send: Callable[[], HttpResponse | HttpErrorCode]) -> None:
        self._send = send
        self._result: HttpResponse | HttpErrorCode | None = None
        self.taken = False

    def result(self) -> HttpResponse | HttpErrorCode:
        if self._result is None:
            self._result = self._send()
        return self._result


class IncomingResponse:
    def __init__(self, response: HttpResponse) -> None:
        self.response = response
        self.consumed = False


def _method_name(method: Variant) -> str:
    if method.tag == "other":
        return str(method.payload)
    return str(method.tag).upper()


def _scheme_name(scheme: Variant | None) -> str | None:
    if scheme is None:
        return None
    if scheme.tag == "other":
        return str(scheme.payload)
    return str(scheme.tag).lower()


def error_code_variant(error: HttpErrorCode) -> Variant:
    """The guest's view of an error-code (record payloads as wasmtime Records)."""
    shape = ERROR_CASES[CASE_INDEX[error.case]][1]
    if shape == "":
        return Variant(error.case)
    payload = error.payload
    if shape in ("dns", "tls", "field") or (shape == "field?" and payload is not None):
        names = {
            "dns": ("rcode", "info-code"),
            "tls": ("alert-id", "alert-message"),
        }.get(shape, ("field-name", "field-size"))
        record = Record()
        first, second = payload if payload is not None else (None, None)
        setattr(record, names[0], first)
        setattr(record, names[1], second)
        payload = record
    return Variant(error.case, payload)


def with_outgoing(
    interfaces: list[HostInterface], table: ResourceTable, client: OutgoingHttp
) -> list[HostInterface]:
    """`interfaces` with the request side added to wasi:http/types, and outgoing-handler."""
    resources, functions = _request_side(table)
    out: list[HostInterface] = []
    for iface in interfaces:
        if iface.name == "wasi:http/types":
            iface = HostInterface(
                iface.name,
                iface.version_family,
                resources={**iface.resources, **resources},
                functions={**iface.functions, **functions},
            )
        out.append(iface)
    out.append(_outgoing_handler(table, client))
    return out


def _request_side(table: ResourceTable) -> tuple[dict[str, type], dict[str, Any]]:
    def request_new(store: Any, headers: GuestHandle) -> Any:
        return table.own(OutgoingRequest(table.take(store, headers, Fields)))

    def request(store: Any, self_: GuestHandle) -> OutgoingRequest:
        return table.get(store, self_, OutgoingRequest)

    def body(store: Any, self_: GuestHandle) -> Any:
        outgoing = request(store, self_)
        if outgoing.body_taken:
            return None  # err(): the body was already taken
        outgoing.body_taken = True
        return table.own(outgoing.body)

    def method(store: Any, self_: GuestHandle) -> Variant:
        return _method_variant(request(store, self_).method)

    def set_method(store: Any, self_: GuestHandle, value: Variant) -> Variant:
        name = _method_name(value)
        if not name or any(c in name for c in " \r\n:/"):
            return RESULT_ERR
        request(store, self_).method = name
        return RESULT_OK

    def path(store: Any, self_: GuestHandle) -> str | None:
        return request(store, self_).path_with_query

    def set_path(store: Any, self_: GuestHandle, value: str | None) -> Variant:
        if value is not None and any(c in value for c in " \r\n"):
            return RESULT_ERR
        request(store, self_).path_with_query = value
        return RESULT_OK

    def scheme(store: Any, self_: GuestHandle) -> Variant | None:
        name = request(store, self_).scheme
        if name is None:
            return None
        return Variant(name.upper()) if name in ("http", "https") else Variant("other", name)

    def set_scheme(store: Any, self_: GuestHandle, value: Variant | None) -> Variant:
        request(store, self_).scheme = _scheme_name(value)
        return RESULT_OK

    def authority(store: Any, self_: GuestHandle) -> str | None:
        return request(store, self_).authority

    def set_authority(store: Any, self_: GuestHandle, value: str | None) -> Variant:
        if value is not None and any(c in value for c in " \r\n/?#@"):
            return RESULT_ERR
        request(store, self_).authority = value
        return RESULT_OK

    def headers(store: Any, self_: GuestHandle) -> Any:
        # The child handle shares the request's entries, so writes through it count.
        view = Fields([])
        view.entries = request(store, self_).headers.entries
        return table.own(view)

    def options_new(store: Any) -> Any:
        return table.own(RequestOptions())

    def getter(attribute: str) -> Any:
        def get(store: Any, self_: GuestHandle) -> int | None:
            value: int | None = getattr(table.get(store, self_, RequestOptions), attribute)
            return value

        return get

    def setter(attribute: str) -> Any:
        def set_(store: Any, self_: GuestHandle, value: int | None) -> Variant:
            setattr(table.get(store, self_, RequestOptions), attribute, value)
            return RESULT_OK

        return set_

    def future_subscribe(store: Any, self_: GuestHandle) -> Any:
        table.get(store, self_, FutureIncomingResponse)
        return table.own(Pollable())

    def future_get(store: Any, self_: GuestHandle) -> Any:
        # option<result<result<incoming-response, error-code>>>: the option is tagged for
        # wasmtime-py (the outer result's unit error is also "any object"), the results
        # are not (a resource and a Variant are told apart by class).
        future = table.get(store, self_, FutureIncomingResponse)
        if future.taken:
            return Variant("some", None)  # some(err): the response was already taken
        future.taken = True
        result = future.result()
        if isinstance(result, HttpErrorCode):
            return Variant("some", error_code_variant(result))  # some(ok(err(code)))
        return Variant("some", table.own(IncomingResponse(result)))  # some(ok(ok(response)))

    def response(store: Any, self_: GuestHandle) -> IncomingResponse:
        return table.get(store, self_, IncomingResponse)

    def response_status(store: Any, self_: GuestHandle) -> int:
        return response(store, self_).response.status

    def response_headers(store: Any, self_: GuestHandle) -> Any:
        return table.own(Fields(response(store, self_).response.headers, immutable=True))

    def response_consume(store: Any, self_: GuestHandle) -> Any:
        incoming = response(store, self_)
        if incoming.consumed:
            return None  # err(): the body was already taken
        incoming.consumed = True
        return table.own(IncomingBody(incoming.response.body))

    resources: dict[str, type] = {
        "outgoing-request": OutgoingRequest,
        "request-options": RequestOptions,
        "future-incoming-response": FutureIncomingResponse,
        "incoming-response": IncomingResponse,
    }
    functions: dict[str, Any] = {
        "[constructor]outgoing-request": request_new,
        "[method]outgoing-request.body": body,
        "[method]outgoing-request.method": method,
        "[method]outgoing-request.set-method": set_method,
        "[method]outgoing-request.path-with-query": path,
        "[method]outgoing-request.set-path-with-query": set_path,
        "[method]outgoing-request.scheme": scheme,
        "[method]outgoing-request.set-scheme": set_scheme,
        "[method]outgoing-request.authority": authority,
        "[method]outgoing-request.set-authority": set_authority,
        "[method]outgoing-request.headers": headers,
        "[constructor]request-options": options_new,
        "[method]future-incoming-response.subscribe": future_subscribe,
        "[method]future-incoming-response.get": future_get,
        "[method]incoming-response.status": response_status,
        "[method]incoming-response.headers": response_headers,
        "[method]incoming-response.consume": response_consume,
    }
    for wit, attribute in (
        ("connect-timeout", "connect"),
        ("first-byte-timeout", "first_byte"),
        ("between-bytes-timeout", "between_bytes"),
    ):
        functions[f"[method]request-options.{wit}"] = getter(attribute)
        functions[f"[method]request-options.set-{wit}"] = setter(attribute)
    return resources, functions


def _outgoing_handler(table: ResourceTable, client: OutgoingHttp) -> HostInterface:
    def handle(store: Any, request_: GuestHandle, options: GuestHandle | None) -> Any:
        outgoing = table.take(store, request_, OutgoingRequest)
        timeouts = None
        if options is not None:
            timeouts = table.take(store, options, RequestOptions).timeouts()
        if not outgoing.authority:
            return error_code_variant(HttpErrorCode("HTTP-request-URI-invalid"))

        def send() -> HttpResponse | HttpErrorCode:
            body = outgoing.body
            if outgoing.body_taken and not body.finished:
                return HttpErrorCode(
                    "internal-error",
                    "the request body was not finished (outgoing-body.finish) when its "
                    "response was asked for; finish the body first",
                )
            if body.stream.closed:  # a write went over the host's body limit
                return HttpErrorCode("HTTP-request-body-size", len(body.stream.buffer))
            request = HttpRequest(
                method=outgoing.method,
                path_with_query=outgoing.path_with_query or "/",
                scheme=outgoing.scheme or "https",
                authority=outgoing.authority or "",
                headers=list(outgoing.headers.entries),
                body=bytes(body.stream.buffer),
            )
            return client.send(request, timeouts)

        return table.own(FutureIncomingResponse(send))

    return HostInterface(OUTGOING_HANDLER, "0.2.", functions={"handle": handle})
