"""wasi:http/types for incoming requests, in Python.

Only the server side is implemented: a component exporting wasi:http/incoming-handler
receives an `incoming-request` and a `response-outparam`. Outgoing requests
(wasi:http/outgoing-handler) are not offered; their functions trap with a clear message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from wasmtime.component import Variant

from host_agent.interfaces.http import Headers, HttpRequest, HttpResponse
from host_agent.runtime.inline import RunInWorker
from host_agent.runtime.interface import HostInterface
from host_agent.runtime.resources import GuestHandle, ResourceTable
from host_agent.runtime.wasi_io import InputStream, OutputStream, Pollable

log = logging.getLogger(__name__)

MAX_RESPONSE_BODY = 16 * 1024 * 1024
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
RESULT_OK = Variant("ok")
RESULT_ERR = Variant("err")


class Fields:
    def __init__(self, entries: Headers, *, immutable: bool = False) -> None:
        self.entries: Headers = [(name.lower(), value) for name, value in entries]
        self.immutable = immutable

    def get(self, name: str) -> list[bytes]:
        name = name.lower()
        return [value for key, value in self.entries if key == name]

    def remove(self, name: str) -> None:
        name = name.lower()
        self.entries[:] = [(key, value) for key, value in self.entries if key != name]


class IncomingBody:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.stream_taken = False


class FutureTrailers:
    """Requests arrive complete, so trailers are always known: there are none."""


class IncomingRequest:
    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.consumed = False


class OutgoingBody:
    def __init__(self) -> None:
        self.stream = OutputStream(limit=MAX_RESPONSE_BODY)
        self.stream_taken = False
        self.finished = False


class OutgoingResponse:
    def __init__(self, headers: Fields) -> None:
        self.status = 200
        self.headers = headers
        self.body = OutgoingBody()
        self.body_taken = False


@dataclass
class ResponseSlot:
    """Where `response-outparam.set` puts the guest's answer for one request."""

    response: OutgoingResponse | None = None
    error: str | None = None

    def result(self) -> HttpResponse:
        if self.response is None:
            reason = self.error or "the component returned without setting a response"
            return HttpResponse.text(500, reason)
        stream = self.response.body.stream
        if stream.overflowed:  # not a cut-off body answered as if whole
            return HttpResponse.text(500, f"the response body is over {stream.limit} bytes")
        headers = [(name, value) for name, value in self.response.headers.entries]
        return HttpResponse(self.response.status, headers, bytes(stream.buffer))


class ResponseOutparam:
    def __init__(self, slot: ResponseSlot) -> None:
        self.slot = slot


def _method_variant(method: str) -> Variant:
    upper = method.upper()
    return Variant(upper.lower()) if upper in METHODS else Variant("other", method)


def http_interfaces(table: ResourceTable) -> list[HostInterface]:
    def fields_new(store: Any) -> Any:
        return table.own(Fields([]))

    def fields_from_list(store: Any, entries: list[tuple[str, bytes]]) -> Any:
        for name, _ in entries:
            if not name or any(c in name for c in " :\r\n"):
                return Variant("invalid-syntax")
        return table.own(Fields(entries))

    def fields_get(store: Any, self_: GuestHandle, name: str) -> list[bytes]:
        return table.get(store, self_, Fields).get(name)

    def fields_has(store: Any, self_: GuestHandle, name: str) -> bool:
        return bool(table.get(store, self_, Fields).get(name))

    def fields_set(store: Any, self_: GuestHandle, name: str, values: list[bytes]) -> Any:
        fields = table.get(store, self_, Fields)
        if fields.immutable:
            return Variant("immutable")
        fields.remove(name)
        fields.entries += [(name.lower(), value) for value in values]
        return None

    def fields_delete(store: Any, self_: GuestHandle, name: str) -> Any:
        fields = table.get(store, self_, Fields)
        if fields.immutable:
            return Variant("immutable")
        fields.remove(name)
        return None

    def fields_append(store: Any, self_: GuestHandle, name: str, value: bytes) -> Any:
        fields = table.get(store, self_, Fields)
        if fields.immutable:
            return Variant("immutable")
        fields.entries.append((name.lower(), value))
        return None

    def fields_entries(store: Any, self_: GuestHandle) -> list[tuple[str, bytes]]:
        return list(table.get(store, self_, Fields).entries)

    def fields_clone(store: Any, self_: GuestHandle) -> Any:
        return table.own(Fields(table.get(store, self_, Fields).entries))

    def request_method(store: Any, self_: GuestHandle) -> Variant:
        return _method_variant(table.get(store, self_, IncomingRequest).request.method)

    def request_path(store: Any, self_: GuestHandle) -> str:
        return table.get(store, self_, IncomingRequest).request.path_with_query

    def request_scheme(store: Any, self_: GuestHandle) -> Variant:
        scheme = table.get(store, self_, IncomingRequest).request.scheme.lower()
        return Variant(scheme.upper()) if scheme in ("http", "https") else Variant("other", scheme)

    def request_authority(store: Any, self_: GuestHandle) -> str | None:
        return table.get(store, self_, IncomingRequest).request.authority or None

    def request_headers(store: Any, self_: GuestHandle) -> Any:
        request = table.get(store, self_, IncomingRequest).request
        return table.own(Fields(request.headers, immutable=True))

    def request_consume(store: Any, self_: GuestHandle) -> Any:
        incoming = table.get(store, self_, IncomingRequest)
        if incoming.consumed:
            return None  # err(): the body was already taken
        incoming.consumed = True
        try:
            body = incoming.request.read_body()
        except RunInWorker:
            raise  # the call is run again in a worker thread, which can wait for it
        except Exception as error:  # the caller went away before sending the whole body
            log.warning("the request body did not arrive: %s", error)
            return None  # err(): the guest answers without a body to read
        return table.own(IncomingBody(body))

    def body_stream(store: Any, self_: GuestHandle) -> Any:
        body = table.get(store, self_, IncomingBody)
        if body.stream_taken:
            return None
        body.stream_taken = True
        return table.own(InputStream(body.data))

    def body_finish(store: Any, this: GuestHandle) -> Any:
        table.take(store, this, IncomingBody)
        return table.own(FutureTrailers())

    def trailers_subscribe(store: Any, self_: GuestHandle) -> Any:
        table.get(store, self_, FutureTrailers)
        return table.own(Pollable())

    def trailers_get(store: Any, self_: GuestHandle) -> Any:
        table.get(store, self_, FutureTrailers)
        return Variant("ok", None)  # some(ok(ok(none))): ready, no trailers

    def response_new(store: Any, headers: GuestHandle) -> Any:
        fields = table.take(store, headers, Fields)
        return table.own(OutgoingResponse(fields))

    def response_status(store: Any, self_: GuestHandle) -> int:
        return table.get(store, self_, OutgoingResponse).status

    def response_set_status(store: Any, self_: GuestHandle, status: int) -> Variant:
        response = table.get(store, self_, OutgoingResponse)
        if not 100 <= status <= 999:
            return RESULT_ERR
        response.status = status
        return RESULT_OK

    def response_headers(store: Any, self_: GuestHandle) -> Any:
        response = table.get(store, self_, OutgoingResponse)
        # The child handle shares the response's entries, so writes through it count.
        view = Fields([])
        view.entries = response.headers.entries
        return table.own(view)

    def response_body(store: Any, self_: GuestHandle) -> Any:
        response = table.get(store, self_, OutgoingResponse)
        if response.body_taken:
            return None
        response.body_taken = True
        return table.own(response.body)

    def outgoing_body_write(store: Any, self_: GuestHandle) -> Any:
        body = table.get(store, self_, OutgoingBody)
        if body.stream_taken:
            return None
        body.stream_taken = True
        return table.own(body.stream)

    def outgoing_body_finish(store: Any, this: GuestHandle, trailers: GuestHandle | None) -> None:
        body = table.take(store, this, OutgoingBody)
        if trailers is not None:
            table.take(store, trailers, Fields)
        body.finished = True

    def outparam_set(store: Any, param: GuestHandle, response: Any) -> None:
        slot = table.take(store, param, ResponseOutparam).slot
        if isinstance(response, Variant):
            # In lower case, as the native host names it (it reads wasmtime's type names).
            slot.error = f"the component answered with error {response.tag.lower()}"
        else:
            slot.response = table.take(store, response, OutgoingResponse)

    def http_error_code(store: Any, err: GuestHandle) -> None:
        table.get(store, err, object)
        return None

    types = HostInterface(
        "wasi:http/types",
        "0.2.",
        resources={
            "fields": Fields,
            "incoming-request": IncomingRequest,
            "incoming-body": IncomingBody,
            "future-trailers": FutureTrailers,
            "outgoing-response": OutgoingResponse,
            "outgoing-body": OutgoingBody,
            "response-outparam": ResponseOutparam,
        },
        functions={
            "[constructor]fields": fields_new,
            "[static]fields.from-list": fields_from_list,
            "[method]fields.get": fields_get,
            "[method]fields.has": fields_has,
            "[method]fields.set": fields_set,
            "[method]fields.delete": fields_delete,
            "[method]fields.append": fields_append,
            "[method]fields.entries": fields_entries,
            "[method]fields.clone": fields_clone,
            "[method]incoming-request.method": request_method,
            "[method]incoming-request.path-with-query": request_path,
            "[method]incoming-request.scheme": request_scheme,
            "[method]incoming-request.authority": request_authority,
            "[method]incoming-request.headers": request_headers,
            "[method]incoming-request.consume": request_consume,
            "[method]incoming-body.stream": body_stream,
            "[static]incoming-body.finish": body_finish,
            "[method]future-trailers.subscribe": trailers_subscribe,
            "[method]future-trailers.get": trailers_get,
            "[constructor]outgoing-response": response_new,
            "[method]outgoing-response.status-code": response_status,
            "[method]outgoing-response.set-status-code": response_set_status,
            "[method]outgoing-response.headers": response_headers,
            "[method]outgoing-response.body": response_body,
            "[method]outgoing-body.write": outgoing_body_write,
            "[static]outgoing-body.finish": outgoing_body_finish,
            "[static]response-outparam.set": outparam_set,
            "http-error-code": http_error_code,
        },
    )
    return [types]
