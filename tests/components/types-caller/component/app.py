"""Caller of the component-to-component tests: an HTTP handler over test:types/zoo.

  /all          calls every zoo function with values of each WIT kind and writes one
                line per call: `<name> ok`, or `<name> MISMATCH sent ... got ...`
  /echo?s=TEXT  echo-string of the (percent-decoded) query value, answered as is
  /describe     describe(point): work only the callee does
  /crash        asks the callee to trap; the failed import call traps this caller too
  /counter/new?start=N  constructs a test:types/counter resource (remote) and keeps it
  /counter/add?n=N      calls add on the kept counter; answers the new value
  /counter/drop         drops the kept counter

The zoo calls go wherever the host's link for test:types/zoo points; the counter calls
wherever its link for test:types/counter points (a resource served by a provider).
"""

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import counter, zoo
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

CHUNK = 4096  # wasi:io output streams accept at most 4 KiB per blocking write

# The counter /counter/new made: it lives in this instance between requests.
kept: list[counter.Counter] = []

POINT = zoo.Point(x=-7, y=2147483647, label="π ünïcode ✓")


def checks() -> list[tuple[str, Callable[[], Any], Any]]:
    """(name, call, expected) for each kind of value."""
    points = [POINT, zoo.Point(x=0, y=-2147483648, label="")]
    numbers = (255, -128, 65535, -32768, 4294967295, -2147483648, 18446744073709551615, -(2**63))
    return [
        ("echo-point", lambda: zoo.echo_point(POINT), POINT),
        ("echo-shape circle", lambda: zoo.echo_shape(zoo.Shape_Circle(2.5)), zoo.Shape_Circle(2.5)),
        ("echo-shape rect", lambda: zoo.echo_shape(zoo.Shape_Rect(POINT)), zoo.Shape_Rect(POINT)),
        ("echo-shape empty", lambda: zoo.echo_shape(zoo.Shape_Empty()), zoo.Shape_Empty()),
        ("echo-color", lambda: zoo.echo_color(zoo.Color.BLUE), zoo.Color.BLUE),
        (
            "echo-perms",
            lambda: zoo.echo_perms(zoo.Perms.READ | zoo.Perms.EXEC),
            zoo.Perms.READ | zoo.Perms.EXEC,
        ),
        ("echo-perms none", lambda: zoo.echo_perms(zoo.Perms(0)), zoo.Perms(0)),
        ("echo-option some", lambda: zoo.echo_option("here"), "here"),
        ("echo-option none", lambda: zoo.echo_option(None), None),
        ("echo-result ok", lambda: zoo.echo_result(Ok(42)), 42),
        ("echo-result err", lambda: zoo.echo_result(Err("bad")), "err: bad"),
        ("echo-points", lambda: zoo.echo_points(points), points),
        ("echo-points empty", lambda: zoo.echo_points([]), []),
        (
            "echo-bytes",
            lambda: zoo.echo_bytes(bytes([0, 1, 127, 128, 255])),
            b"\x00\x01\x7f\x80\xff",
        ),
        ("echo-tuple", lambda: zoo.echo_tuple((7, -(2**40), "t")), (7, -(2**40), "t")),
        ("echo-string", lambda: zoo.echo_string("héllo\nwörld"), "héllo\nwörld"),
        ("echo-numbers", lambda: zoo.echo_numbers(*numbers), numbers),
        (
            "echo-floats",
            lambda: zoo.echo_floats(1.5, -0.1, "€", True),
            (1.5, -0.1, "€", True),
        ),
        ("describe", lambda: zoo.describe(POINT), "π ünïcode ✓ at (-7, 2147483647)"),
        ("divide", lambda: zoo.divide(7, 2), 3),
        ("divide by zero", lambda: zoo.divide(1, 0), "err: cannot divide 1 by zero"),
        ("note", lambda: zoo.note("from the caller"), None),
    ]


def run_checks() -> str:
    lines = []
    for name, call, expected in checks():
        try:
            got = call()
        except Err as error:
            got = f"err: {error.value}"
        if got == expected:
            lines.append(f"{name} ok")
        else:
            lines.append(f"{name} MISMATCH sent {expected!r} got {got!r}")
    return "\n".join(lines) + "\n"


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path, _, query = (request.path_with_query() or "/").partition("?")
        if path == "/all":
            respond(response_out, 200, run_checks())
        elif path == "/echo":
            text = unquote(query[2:] if query.startswith("s=") else "")
            respond(response_out, 200, zoo.echo_string(text))
        elif path == "/describe":
            respond(response_out, 200, zoo.describe(POINT))
        elif path == "/crash":
            respond(response_out, 200, zoo.crash("on purpose"))
        elif path.startswith("/counter/"):
            respond(response_out, 200, counter_route(path, query))
        else:
            respond(response_out, 404, f"no route {path}")


def counter_route(path: str, query: str) -> str:
    number = int(query.partition("=")[2] or "0")
    if path == "/counter/new":
        for old in kept:
            old.__exit__(None, None, None)  # drops the handle
        kept[:] = [counter.Counter(number)]
        return "created"
    if path == "/counter/add":
        return str(kept[0].add(number))
    if path == "/counter/drop":
        kept.pop().__exit__(None, None, None)
        return "dropped"
    return f"no route {path}"


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
