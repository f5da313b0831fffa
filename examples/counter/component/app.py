"""The tutorial's counter: `GET /hello` answers `hello -> 1`, then `hello -> 2`.

Each path segment is a key in the `default` bucket of whatever key-value provider the
component is linked to (Redis, NATS KV or in-memory): the component only knows
wasi:keyvalue, so switching the link needs no rebuild.
"""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import atomics, store
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

BUCKET = "default"
CHUNK = 4096  # wasi:io output streams accept at most 4 KiB per blocking write


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = (request.path_with_query() or "/").split("?", 1)[0]
        name = path.strip("/") or "root"
        try:
            with store.open(BUCKET) as bucket:
                count = atomics.increment(bucket, name, 1)
        except Err as error:
            respond(response_out, 500, f"keyvalue error: {error.value}")
            return
        respond(response_out, 200, f"{name} -> {count}")


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
