"""wasmcloud:postgres@0.1.1-draft on the wire: parameters, rows and errors.

The package's `pg-value` variant has 97 cases; wRPC sends a value as its case index then
the payload, so `CASES` lists them in the package's order (tests/unit/test_postgres_codec.py
checks it against examples/sqldb-postgres/wit/deps/postgres/types.wit). The provider
converts values to and from the Python values asyncpg reads and writes:

    integers -> int, bool -> bool, hashable-f64/f32 (mantissa, exponent, sign) -> float,
    numeric/decimal -> Decimal, text-like (text, name, xml, json, jsonb, uuid, inet, cidr,
    money) -> str, bytea -> bytes, char/varchar -> str, date -> datetime.date (infinity ->
    date.max/min, as asyncpg does), time -> datetime.time, timestamp -> naive datetime,
    timestamp-tz -> aware datetime, and the arrays of these -> list.

The geometric, bit-string, network-address, interval, full-text and snapshot cases are
not converted: a parameter of one of them is refused (`invalid-params`, naming the case
and the fix: send it as text and cast in SQL), and a column of such a type is refused
naming the column (cast it to text in the query). Nothing here touches the network.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from host_agent.wrpc.codec import DecodeError, Reader, Writer

POSTGRES_VERSION = "0.1.1-draft"
QUERY_INSTANCE = f"wasmcloud:postgres/query@{POSTGRES_VERSION}"
PREPARED_INSTANCE = f"wasmcloud:postgres/prepared@{POSTGRES_VERSION}"

CASES: tuple[str, ...] = (
    "null",
    "big-int", "int8", "int8-array", "big-serial", "serial8",
    "bool", "boolean", "bool-array",
    "double", "float8", "float8-array", "real", "float4", "float4-array",
    "integer", "int", "int4", "int4-array",
    "numeric", "decimal", "numeric-array",
    "serial", "serial4",
    "small-int", "int2", "int2-array", "int2-vector", "int2-vector-array",
    "small-serial", "serial2",
    "bit", "bit-array", "bit-varying", "varbit", "varbit-array",
    "bytea", "bytea-array",
    "char", "char-array", "varchar", "varchar-array",
    "cidr", "cidr-array", "inet", "inet-array",
    "macaddr", "macaddr-array", "macaddr8", "macaddr8-array",
    "box", "box-array", "circle", "circle-array", "line", "line-array",
    "lseg", "lseg-array", "path", "path-array", "point", "point-array",
    "polygon", "polygon-array",
    "date", "date-array", "interval", "interval-array", "time", "time-array",
    "time-tz", "time-tz-array", "timestamp", "timestamp-array",
    "timestamp-tz", "timestamp-tz-array",
    "json", "json-array", "jsonb", "jsonb-array",
    "money", "money-array",
    "pg-lsn", "pg-lsn-array", "pg-snapshot", "txid-snapshot",
    "name", "name-array", "text", "text-array", "xml", "xml-array",
    "ts-query", "ts-vector",
    "uuid", "uuid-array",
    "hstore",
)  # fmt: skip
_INDEX = {name: index for index, name in enumerate(CASES)}

QUERY_ERRORS = ("invalid-params", "invalid-query", "unexpected")
EXEC_ERRORS = ("unknown-prepared-query", "query-error", "unexpected")


class UnsupportedValue(ValueError):
    """A pg-value case (parameter) or a column type (result) this provider does not convert."""


@dataclass(frozen=True)
class PgValue:
    """One `pg-value`: its case name and the Python value asyncpg reads or writes."""

    case: str
    value: Any = None


@dataclass(frozen=True)
class QueryError(Exception):
    """`query-error`: kind is one of QUERY_ERRORS."""

    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


# scalars --------------------------------------------------------------------------------
def _float_parts(value: float, single: bool) -> tuple[int, int, int]:
    """num's integer_decode: (mantissa, exponent, sign) with value = sign*mantissa*2^exponent."""
    if single:
        bits = struct.unpack("<I", struct.pack("<f", value))[0]
        sign = -1 if bits >> 31 else 1
        exponent = (bits >> 23) & 0xFF
        fraction = bits & 0x7FFFFF
        mantissa = fraction << 1 if exponent == 0 else fraction | 0x800000
        return mantissa, exponent - 150, sign
    bits = struct.unpack("<Q", struct.pack("<d", value))[0]
    sign = -1 if bits >> 63 else 1
    exponent = (bits >> 52) & 0x7FF
    fraction = bits & 0xFFFFFFFFFFFFF
    mantissa = fraction << 1 if exponent == 0 else fraction | 0x10000000000000
    return mantissa, exponent - 1075, sign


def _write_float(writer: Writer, value: float, single: bool = False) -> None:
    mantissa, exponent, sign = _float_parts(float(value), single)
    writer.u(mantissa).s(exponent).s8(sign)


def _read_float(reader: Reader) -> float:
    mantissa, exponent, sign = reader.u(64), reader.s(16), reader.s8()
    try:
        return math.copysign(math.ldexp(float(mantissa), exponent), sign)
    except OverflowError:
        return math.copysign(math.inf, sign)


def _read_date(reader: Reader) -> dt.date:
    case = reader.u(32)
    if case == 0:
        return dt.date.max  # asyncpg's positive infinity
    if case == 1:
        return dt.date.min
    if case != 2:
        raise DecodeError(f"unknown date case {case}")
    year, month, day = reader.s(32), reader.u(32), reader.u(32)
    try:
        return dt.date(year, month, day)
    except ValueError as error:
        raise UnsupportedValue(f"date {year}-{month}-{day}: {error}") from None


def _write_date(writer: Writer, value: dt.date) -> None:
    if value == dt.date.max:
        writer.u(0)
    elif value == dt.date.min:
        writer.u(1)
    else:
        writer.u(2).s(value.year).u(value.month).u(value.day)


def _read_time(reader: Reader) -> dt.time:
    hour, minute, second, micro = (reader.u(32) for _ in range(4))
    try:
        return dt.time(hour, minute, second, micro)
    except ValueError as error:
        raise UnsupportedValue(f"time {hour}:{minute}:{second}.{micro}: {error}") from None


def _write_time(writer: Writer, value: dt.time) -> None:
    writer.u(value.hour).u(value.minute).u(value.second).u(value.microsecond)


def _read_timestamp(reader: Reader) -> dt.datetime:
    date = _read_date(reader)
    time = _read_time(reader)
    if date in (dt.date.max, dt.date.min):
        return dt.datetime.max if date == dt.date.max else dt.datetime.min
    return dt.datetime.combine(date, time)


def _write_timestamp(writer: Writer, value: dt.datetime) -> None:
    if value.replace(tzinfo=None) == dt.datetime.max:
        writer.u(0)
        _write_time(writer, dt.time())
    elif value.replace(tzinfo=None) == dt.datetime.min:
        writer.u(1)
        _write_time(writer, dt.time())
    else:
        _write_date(writer, value.date())
        _write_time(writer, value.time())


def _read_timestamp_tz(reader: Reader) -> dt.datetime:
    naive = _read_timestamp(reader)
    case, seconds = reader.u(32), reader.s(32)
    if case not in (0, 1):
        raise DecodeError(f"unknown offset case {case}")
    east = seconds if case == 0 else -seconds
    try:
        return naive.replace(tzinfo=dt.timezone(dt.timedelta(seconds=east)))
    except ValueError as error:
        raise UnsupportedValue(f"timestamp-tz offset {east} s: {error}") from None


def _write_timestamp_tz(writer: Writer, value: dt.datetime) -> None:
    offset = value.utcoffset() or dt.timedelta()
    _write_timestamp(writer, value)
    seconds = int(offset.total_seconds())
    if seconds >= 0:
        writer.u(0).s(seconds)
    else:
        writer.u(1).s(-seconds)


def _read_numeric(reader: Reader) -> Decimal:
    text = reader.string()
    try:
        return Decimal(text)
    except InvalidOperation:
        raise UnsupportedValue(f"numeric {text!r} is not a decimal number") from None


def _read_sized_text(reader: Reader, optional_size: bool) -> str:
    if optional_size:
        if reader.option():
            reader.u(32)
    else:
        reader.u(32)
    try:
        return reader.list_u8().decode()
    except UnicodeDecodeError:
        raise UnsupportedValue("char/varchar bytes are not UTF-8") from None


def _write_sized_text(writer: Writer, value: str, optional_size: bool) -> None:
    data = str(value).encode()
    if optional_size:
        writer.u8(1).u(len(value))
    else:
        writer.u(len(value))
    writer.list_u8(data)


Read = Callable[[Reader], Any]
Write = Callable[[Writer, Any], object]


def _string_write(writer: Writer, value: Any) -> None:
    writer.string(str(value))


_SCALARS: dict[str, tuple[Read, Write]] = {
    "int8": (lambda r: r.s(64), lambda w, v: w.s(v)),
    "int4": (lambda r: r.s(32), lambda w, v: w.s(v)),
    "int2": (lambda r: r.s(16), lambda w, v: w.s(v)),
    "serial4": (lambda r: r.u(32), lambda w, v: w.u(v)),
    "bool": (lambda r: r.boolean(), lambda w, v: w.boolean(v)),
    "float8": (_read_float, lambda w, v: _write_float(w, v)),
    "float4": (_read_float, lambda w, v: _write_float(w, v, single=True)),
    "numeric": (_read_numeric, _string_write),
    "money": (lambda r: r.string(), _string_write),
    "text": (lambda r: r.string(), _string_write),
    "bytea": (lambda r: r.list_u8(), lambda w, v: w.list_u8(bytes(v))),
    "char": (
        lambda r: _read_sized_text(r, optional_size=False),
        lambda w, v: _write_sized_text(w, v, optional_size=False),
    ),
    "varchar": (
        lambda r: _read_sized_text(r, optional_size=True),
        lambda w, v: _write_sized_text(w, v, optional_size=True),
    ),
    "date": (_read_date, _write_date),
    "time": (_read_time, _write_time),
    "timestamp": (_read_timestamp, _write_timestamp),
    "timestamp-tz": (_read_timestamp_tz, _write_timestamp_tz),
}
# Each supported case and the scalar codec its payload (or each array item) uses.
_ALIASES = {
    "big-int": "int8", "int8": "int8", "big-serial": "int8", "serial8": "int8",
    "integer": "int4", "int": "int4", "int4": "int4",
    "serial": "serial4", "serial4": "serial4",
    "small-int": "int2", "int2": "int2", "small-serial": "int2", "serial2": "int2",
    "bool": "bool", "boolean": "bool",
    "double": "float8", "float8": "float8", "real": "float4", "float4": "float4",
    "numeric": "numeric", "decimal": "numeric", "money": "money",
    "text": "text", "name": "text", "xml": "text", "json": "text", "jsonb": "text",
    "uuid": "text", "cidr": "text", "inet": "text",
    "bytea": "bytea", "char": "char", "varchar": "varchar",
    "date": "date", "time": "time", "timestamp": "timestamp", "timestamp-tz": "timestamp-tz",
}  # fmt: skip
_ARRAYS = {
    "int8-array": "int8", "int4-array": "int4", "int2-array": "int2",
    "bool-array": "bool", "float8-array": "float8", "float4-array": "float4",
    "numeric-array": "numeric", "money-array": "money",
    "text-array": "text", "name-array": "text", "xml-array": "text", "json-array": "text",
    "jsonb-array": "text", "uuid-array": "text", "cidr-array": "text", "inet-array": "text",
    "bytea-array": "bytea", "char-array": "char", "varchar-array": "varchar",
    "date-array": "date", "time-array": "time", "timestamp-array": "timestamp",
    "timestamp-tz-array": "timestamp-tz",
}  # fmt: skip
SUPPORTED = frozenset(["null", *_ALIASES, *_ARRAYS])


# pg-value ----------------------------------------------------------------------------
def read_value(reader: Reader) -> PgValue:
    index = reader.u(32)
    if index >= len(CASES):
        raise DecodeError(f"unknown pg-value case {index} (there are {len(CASES)})")
    case = CASES[index]
    if case == "null":
        return PgValue("null")
    scalar = _ALIASES.get(case)
    if scalar is not None:
        return PgValue(case, _SCALARS[scalar][0](reader))
    item = _ARRAYS.get(case)
    if item is not None:
        read = _SCALARS[item][0]
        return PgValue(case, [read(reader) for _ in range(reader.u(32))])
    raise UnsupportedValue(
        f"pg-value case {case} is not supported by this provider; send the value as text "
        f"and cast it in SQL (for example $1::{case.removesuffix('-array').replace('-', '')})"
    )


def write_value(writer: Writer, value: PgValue) -> None:
    if value.case not in SUPPORTED:
        raise UnsupportedValue(f"pg-value case {value.case} is not supported by this provider")
    writer.u(_INDEX[value.case])
    if value.case == "null":
        return
    scalar = _ALIASES.get(value.case)
    if scalar is not None:
        _SCALARS[scalar][1](writer, value.value)
        return
    write = _SCALARS[_ARRAYS[value.case]][1]
    writer.u(len(value.value))
    for item in value.value:
        write(writer, item)


def _read_params(reader: Reader) -> list[PgValue]:
    return [read_value(reader) for _ in range(reader.u(32))]


def _write_params(writer: Writer, params: Sequence[PgValue]) -> None:
    writer.u(len(params))
    for param in params:
        write_value(writer, param)


# Postgres type names (pg_type.typname, as asyncpg reports them) -> the case a column of
# that type is returned as.
_COLUMN_CASES = {
    "int8": "int8", "int4": "int4", "int2": "int2", "bool": "bool",
    "float8": "float8", "float4": "float4", "numeric": "numeric", "money": "money",
    "text": "text", "name": "name", "xml": "xml", "json": "json", "jsonb": "jsonb",
    "uuid": "uuid", "inet": "inet", "cidr": "cidr", "bytea": "bytea",
    "bpchar": "char", "varchar": "varchar", "date": "date", "time": "time",
    "timestamp": "timestamp", "timestamptz": "timestamp-tz",
}  # fmt: skip


def column_case(type_name: str) -> str | None:
    """The pg-value case of a column of this Postgres type, or None when not converted."""
    # asyncpg names an array type by its element and "[]" (pg_type's own name is "_int8").
    element_name = type_name.removesuffix("[]") if type_name.endswith("[]") else None
    if element_name is None and type_name.startswith("_"):
        element_name = type_name[1:]
    if element_name is not None:
        element = _COLUMN_CASES.get(element_name)
        return f"{element}-array" if element is not None else None
    return _COLUMN_CASES.get(type_name)


# calls --------------------------------------------------------------------------------
def read_query(data: bytes) -> tuple[str, list[PgValue]]:
    """`query(query, params)` parameters."""
    reader = Reader(data)
    return reader.string(), _read_params(reader)


def read_statement(data: bytes) -> str:
    """`query-batch(query)` and `prepare(statement)` parameters."""
    return Reader(data).string()


def read_exec(data: bytes) -> tuple[str, list[PgValue]]:
    reader = Reader(data)
    return reader.string(), _read_params(reader)


def query_params(query: str, params: Sequence[PgValue]) -> bytes:
    writer = Writer().string(query)
    _write_params(writer, params)
    return writer.finish()


def statement_params(statement: str) -> bytes:
    return Writer().string(statement).finish()


def exec_params(token: str, params: Sequence[PgValue]) -> bytes:
    writer = Writer().string(token)
    _write_params(writer, params)
    return writer.finish()


Row = list[tuple[str, PgValue]]


def encode_rows(rows: Sequence[Row]) -> bytes:
    writer = Writer().u8(0).u(len(rows))
    for row in rows:
        writer.u(len(row))
        for column, value in row:
            writer.string(column)
            write_value(writer, value)
    return writer.finish()


def _write_query_error(writer: Writer, error: QueryError) -> None:
    writer.u(QUERY_ERRORS.index(error.kind)).string(error.message)


def encode_query_error(error: QueryError) -> bytes:
    writer = Writer().u8(1)
    _write_query_error(writer, error)
    return writer.finish()


def encode_unit() -> bytes:
    return Writer().u8(0).finish()


def encode_token(token: str) -> bytes:
    return Writer().u8(0).string(token).finish()


def encode_prepare_error(message: str) -> bytes:
    return Writer().u8(1).u(0).string(message).finish()


def encode_affected(count: int) -> bytes:
    return Writer().u8(0).u(count).finish()


def encode_exec_error(error: QueryError | None, message: str = "") -> bytes:
    """`prepared-statement-exec-error`: a QueryError, or with None `unknown-prepared-query`
    (no message) or, with a message, `unexpected`."""
    writer = Writer().u8(1)
    if error is not None:
        writer.u(1)
        _write_query_error(writer, error)
    elif message:
        writer.u(2).string(message)
    else:
        writer.u(0)
    return writer.finish()


# What a caller reads back (tests and any Python caller of a postgres provider).
class CallFailed(Exception):
    """The call's `err` result: kind names the error case, message its text."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind
        self.message = message


def _result(data: bytes) -> Reader:
    reader = Reader(data)
    if reader.u8() == 0:
        return reader
    case = reader.u(32)
    return _raise_query_error(reader, case)


def _raise_query_error(reader: Reader, case: int) -> Reader:
    if case >= len(QUERY_ERRORS):
        raise DecodeError(f"unknown query-error case {case}")
    raise CallFailed(QUERY_ERRORS[case], reader.string())


def decode_rows(data: bytes) -> list[Row]:
    reader = _result(data)
    rows = []
    for _ in range(reader.u(32)):
        rows.append([(reader.string(), read_value(reader)) for _ in range(reader.u(32))])
    return rows


def decode_unit(data: bytes) -> None:
    _result(data)


def decode_token(data: bytes) -> str:
    reader = Reader(data)
    if reader.u8() == 0:
        return reader.string()
    if reader.u(32) != 0:
        raise DecodeError("unknown statement-prepare-error case")
    raise CallFailed("unexpected", reader.string())


def decode_affected(data: bytes) -> int:
    reader = Reader(data)
    if reader.u8() == 0:
        return reader.u(64)
    case = reader.u(32)
    if case == 0:
        raise CallFailed("unknown-prepared-query", "")
    if case == 1:
        return _raise_query_error(reader, reader.u(32)).u(64)
    if case == 2:
        raise CallFailed("unexpected", reader.string())
    raise DecodeError(f"unknown prepared-statement-exec-error case {case}")
