"""GET /<name>: the sha256 (hex) of the secret named <name> that the manifest gave this
component, so a test can check the value arrived without the value being echoed."""

import hashlib

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import reveal, store
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        name = (request.path_with_query() or "/").split("?", 1)[0].strip("/")
        try:
            secret = store.get(name)
        except Err as error:
            respond(response_out, 404, f"no secret {name}: {type(error.value).__name__}")
            return
        with secret:
            value = reveal.reveal(secret)
        data = value.value.encode() if isinstance(value.value, str) else bytes(value.value)
        respond(response_out, 200, hashlib.sha256(data).hexdigest())


def respond(response_out: ResponseOutparam, status: int, text: str) -> None:
    headers = Fields.from_list([("content-type", b"text/plain; charset=utf-8")])
    response = OutgoingResponse(headers)
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    with body.write() as stream:
        stream.blocking_write_and_flush(text.encode())
    OutgoingBody.finish(body, None)
