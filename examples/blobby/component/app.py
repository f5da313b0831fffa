"""blobby: objects over HTTP in the `blobby` container of whatever blobstore it is linked to.

    PUT /<name>     stores the request body as object <name>     -> 201 "stored <name> (N bytes)"
    GET /<name>     answers the object's bytes                    -> 200, or 404
    GET /           lists the object names, one per line
    DELETE /<name>  deletes the object                            -> 200 "deleted <name>"

Bodies cross wasi:io streams in 4 KiB chunks both ways (request -> object, object ->
response). A blobstore error answers 502 with its message. The component imports only
wasi:blobstore, so blobstore-fs or blobstore-s3 is a matter of the link.
"""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import blobstore
from wit_world.imports.container import Container
from wit_world.imports.streams import InputStream, OutputStream, StreamError_Closed
from wit_world.imports.wasi_blobstore_types import IncomingValue, OutgoingValue
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingRequest,
    Method_Delete,
    Method_Get,
    Method_Put,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

CONTAINER = "blobby"
CHUNK = 4096  # wasi:io output streams accept at most 4 KiB per blocking write


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = (request.path_with_query() or "/").split("?", 1)[0]
        name = path.strip("/")
        method = request.method()
        try:
            container = open_container()
            if isinstance(method, Method_Get) and not name:
                listing = "".join(f"{n}\n" for n in list_names(container))
                respond(response_out, 200, listing.encode())
            elif isinstance(method, Method_Get):
                if not container.has_object(name):
                    respond(response_out, 404, f"no object {name}\n".encode())
                    return
                respond_stream(response_out, read_object(container, name))
            elif isinstance(method, Method_Put) and name:
                size = write_object(container, name, request)
                respond(response_out, 201, f"stored {name} ({size} bytes)\n".encode())
            elif isinstance(method, Method_Delete) and name:
                container.delete_object(name)
                respond(response_out, 200, f"deleted {name}\n".encode())
            else:
                respond(response_out, 405, b"use GET /, GET|PUT|DELETE /<name>\n")
        except Err as error:
            respond(response_out, 502, f"blobstore error: {error.value}\n".encode())


def open_container() -> Container:
    if blobstore.container_exists(CONTAINER):
        return blobstore.get_container(CONTAINER)
    return blobstore.create_container(CONTAINER)


def list_names(container: Container) -> list[str]:
    names: list[str] = []
    with container.list_objects() as stream:
        while True:
            batch, ended = stream.read_stream_object_names(100)
            names.extend(batch)
            if ended:
                return names


def write_object(container: Container, name: str, request: IncomingRequest) -> int:
    """Copies the request body into the object chunk by chunk; returns its size."""
    value = OutgoingValue.new_outgoing_value()
    incoming = request.consume()
    with incoming.stream() as body, value.outgoing_value_write_body() as out:
        size = copy(body, out, content_length(request))
    container.write_data(name, value)
    return size


def content_length(request: IncomingRequest) -> int | None:
    values = request.headers().get("content-length")
    return int(values[0]) if values else None


def copy(source: InputStream, sink: OutputStream, length: int | None) -> int:
    """Copies chunks until `length` bytes (or the stream's end when it is unknown), or
    until the sink closes (an object over the host's limit: write-data then says so)."""
    copied = 0
    while length is None or copied < length:
        want = CHUNK if length is None else min(CHUNK, length - copied)
        try:
            chunk = source.blocking_read(want)
        except Err as error:
            if isinstance(error.value, StreamError_Closed):
                break
            raise
        try:
            sink.blocking_write_and_flush(chunk)
        except Err as error:
            if isinstance(error.value, StreamError_Closed):
                break
            raise
        copied += len(chunk)
    return copied


def read_object(container: Container, name: str) -> IncomingValue:
    size = container.object_info(name).size
    return container.get_data(name, 0, max(size, 1) - 1)


def respond(response_out: ResponseOutparam, status: int, data: bytes) -> None:
    headers = Fields.from_list([("content-type", b"text/plain; charset=utf-8")])
    response = OutgoingResponse(headers)
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    with body.write() as stream:
        for start in range(0, len(data), CHUNK):
            stream.blocking_write_and_flush(data[start : start + CHUNK])
    OutgoingBody.finish(body, None)


def respond_stream(response_out: ResponseOutparam, value: IncomingValue) -> None:
    """The object's bytes from its input stream into the response, chunk by chunk."""
    response = OutgoingResponse(Fields.from_list([("content-type", b"application/octet-stream")]))
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    size = value.size()
    with IncomingValue.incoming_value_consume_async(value) as source, body.write() as sink:
        copy(source, sink, size)
    OutgoingBody.finish(body, None)
