"""gateway, the edge side of the edge + core example: HTTP in, example:logic/compute out.

`GET /sum/1,2,3` (or /product/..., /max/...) parses the path here and asks logic to
compute. gateway only imports the interface: the host forwards each call over wRPC to
whichever host runs the linked logic component. The body shows both sides' work, each
signed with the instance that did it:

    gateway 1a2b3c4d: sum of [1, 2, 3]
    logic 5e6f7a8b: 6 (even), computation 7, for gateway 1a2b3c4d

Each instance picks its random name the first time it runs and prints it once (the host
logs guest stdout with the component id), so the body can be traced to hosts.
"""

import os

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import compute
from wit_world.imports.compute import (
    Error_BadRequest,
    Error_Store,
    Operation,
    Request,
    Shape_Even,
    Shape_Odd,
    Shape_Overflow,
)
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

OPERATIONS = {"sum": Operation.SUM, "product": Operation.PRODUCT, "max": Operation.MAXIMUM}
USAGE = "GET /sum/1,2,3 (or /product/..., /max/...): logic computes, gateway answers"
CHUNK = 4096  # wasi:io output streams accept at most 4 KiB per blocking write

# Chosen on the first request, not at import: componentize-py runs the module's top level
# at build time, so a name picked there would be the same in every instance.
_instance: str | None = None


def instance_name() -> str:
    global _instance
    if _instance is None:
        _instance = os.urandom(4).hex()
        print(f"gateway instance {_instance} serving wasi:http/incoming-handler")
    return _instance


class BadPath(Exception):
    pass


def parse(path: str) -> Request:
    """`/sum/1,2,3` -> Request(SUM, [1, 2, 3]); anything else is refused with the reason."""
    operation, _, listed = path.strip("/").partition("/")
    if operation not in OPERATIONS or "/" in listed:
        raise BadPath(f"unknown path {path!r}; {USAGE}")
    numbers: list[int] = []
    for text in filter(None, listed.split(",")):
        try:
            numbers.append(int(text))
        except ValueError:
            raise BadPath(f"{text!r} is not an integer; {USAGE}") from None
    return Request(operation=OPERATIONS[operation], numbers=numbers, caller=None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        me = instance_name()
        path = (request.path_with_query() or "/").split("?", 1)[0]
        try:
            ask = parse(path)
        except BadPath as error:
            respond(response_out, 400, f"gateway {me}: {error}")
            return
        ask.caller = f"gateway {me}"
        asked = f"gateway {me}: {path.strip('/').split('/')[0]} of {ask.numbers}"
        try:
            reply = compute.compute(ask)
        except Err as error:
            if isinstance(error.value, Error_BadRequest):
                respond(response_out, 422, f"{asked}\nlogic refused: {error.value.value}")
            elif isinstance(error.value, Error_Store):
                respond(response_out, 502, f"{asked}\nlogic could not count: {error.value.value}")
            else:
                respond(response_out, 502, f"{asked}\nlogic failed: {error.value!r}")
            return
        if isinstance(reply.shape, Shape_Even):
            shape = "even"
        elif isinstance(reply.shape, Shape_Odd):
            shape = "odd"
        elif isinstance(reply.shape, Shape_Overflow):
            shape = f"overflow: {reply.shape.value}"
        else:
            shape = repr(reply.shape)
        respond(
            response_out,
            200,
            f"{asked}\nlogic {reply.instance}: {reply.value} ({shape}), "
            f"computation {reply.count}, for {reply.caller}",
        )


def respond(response_out: ResponseOutparam, status: int, text: str) -> None:
    headers = Fields.from_list([("content-type", b"text/plain; charset=utf-8")])
    response = OutgoingResponse(headers)
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    data = (text + "\n").encode()
    with body.write() as stream:
        for start in range(0, len(data), CHUNK):
            stream.blocking_write_and_flush(data[start : start + CHUNK])
    OutgoingBody.finish(body, None)
