"""Notes in Postgres over wasmcloud:postgres (query, query-batch, prepare, exec).

    POST /setup            creates the `notes` table (query-batch)
    POST /notes?text=...   adds a note with a prepared statement, answers `added 1`
    GET  /notes            lists them, one `<id> <text>` per line (query with a parameter)

A database error reaches the caller as HTTP 503 with the provider's message: the
component never learns which server (or password) its link points at.
"""

from urllib.parse import parse_qs

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import prepared, query
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingRequest,
    Method_Get,
    Method_Post,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from wit_world.imports.wasmcloud_postgres_types import (
    PgValue,
    PgValue_Int8,
    PgValue_Text,
    ResultRowEntry,
)

CHUNK = 4096  # wasi:io output streams accept at most 4 KiB per blocking write
SETUP = "CREATE TABLE IF NOT EXISTS notes (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)"


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path, _, query_string = (request.path_with_query() or "/").partition("?")
        method = request.method()
        try:
            if isinstance(method, Method_Post) and path == "/setup":
                query.query_batch(SETUP)
                respond(response_out, 200, "ready")
            elif isinstance(method, Method_Post) and path == "/notes":
                text = parse_qs(query_string).get("text", [""])[0]
                token = prepared.prepare("INSERT INTO notes (body) VALUES ($1)")
                added = prepared.exec(token, [PgValue_Text(text)])
                respond(response_out, 200, f"added {added}")
            elif isinstance(method, Method_Get) and path == "/notes":
                rows = query.query(
                    "SELECT id, body FROM notes WHERE id > $1 ORDER BY id", [PgValue_Int8(0)]
                )
                respond(response_out, 200, "".join(line(row) + "\n" for row in rows))
            else:
                respond(response_out, 404, "try POST /setup, POST /notes?text=..., GET /notes")
        except Err as error:
            respond(response_out, 503, f"database error: {describe(error.value)}")


def line(row: list[ResultRowEntry]) -> str:
    return " ".join(show(entry.value) for entry in row)


def show(value: PgValue) -> str:
    return str(getattr(value, "value", "null"))


def describe(error: object) -> str:
    # query-error / statement-prepare-error / prepared-statement-exec-error: a case name
    # and, for most, a message (exec's query-error case nests a query-error).
    inner = getattr(error, "value", None)
    if inner is not None and hasattr(inner, "value"):
        return f"{type(error).__name__}: {describe(inner)}"
    return f"{type(error).__name__}: {inner}" if inner is not None else type(error).__name__


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
