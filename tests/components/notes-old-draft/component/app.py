"""A component built against wasmcloud:postgres@0.1.0-draft: it answers with one query's
row count. Providers serve 0.1.1-draft, so its link is refused before any call."""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import query
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        try:
            text, status = f"{len(query.query('SELECT 1', []))} row", 200
        except Err as error:
            text, status = f"database error: {error.value}", 503
        response = OutgoingResponse(Fields.from_list([]))
        response.set_status_code(status)
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            stream.blocking_write_and_flush(text.encode())
        OutgoingBody.finish(body, None)
