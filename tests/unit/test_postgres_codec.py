"""wasmcloud:postgres@0.1.1-draft: the wire codec, the provider's link settings and the
version check at link time (no server: tests/integration/test_provider_sqldb_postgres.py
runs the real one)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from host_agent.lattice.protocol import Link
from host_agent.providers.builtin import BUILTINS, BuiltinProvider
from host_agent.providers.sqldb_postgres import LinkConfigError, connection_settings
from host_agent.runtime.provider_versions import link_problem, linked_version_problems
from host_agent.wrpc import postgres as pg
from host_agent.wrpc.codec import Reader, Writer

TYPES_WIT = (
    Path(__file__).parents[2] / "examples/sqldb-postgres/wit/deps/postgres/types.wit"
).read_text()


def test_case_order_is_the_packages() -> None:
    """The wire sends a case's index: the codec's list must be the WIT's, in order."""
    body = TYPES_WIT.split("variant pg-value {", 1)[1].split("}", 1)[0]
    body = "\n".join(line.split("//")[0] for line in body.splitlines())
    names, depth = [], 0
    for token in re.findall(r"%?[a-z][a-z0-9-]*|[()<>]", body):
        if token in "(<":
            depth += 1
        elif token in ")>":
            depth -= 1
        elif depth == 0:  # a case's name; its payload's types are inside brackets
            names.append(token.lstrip("%"))
    assert tuple(names) == pg.CASES
    assert len(pg.CASES) == 97


def test_floats_travel_as_mantissa_exponent_sign() -> None:
    # 1.5 = 0x18000000000000 * 2^-52, as num's integer_decode gives it.
    writer = Writer().u(pg.CASES.index("float8"))
    writer.u(0x18000000000000).s(-52).s8(1)
    assert pg.read_value(Reader(writer.finish())) == pg.PgValue("float8", 1.5)
    for value in (0.0, -2.25, 1e-310, 3.0e38):
        out = Writer()
        pg.write_value(out, pg.PgValue("float8", value))
        assert pg.read_value(Reader(out.finish())).value == value
    out = Writer()
    pg.write_value(out, pg.PgValue("float4", 0.5))
    assert pg.read_value(Reader(out.finish())).value == 0.5


PARAMS: list[pg.PgValue] = [
    pg.PgValue("null"),
    pg.PgValue("int8", -(2**63)),
    pg.PgValue("int4", 7),
    pg.PgValue("int2", -3),
    pg.PgValue("bool", True),
    pg.PgValue("numeric", Decimal("12.50")),
    pg.PgValue("text", "héllo"),
    pg.PgValue("jsonb", '{"a": 1}'),
    pg.PgValue("uuid", "6f1b4c8e-0000-4000-8000-000000000001"),
    pg.PgValue("bytea", b"\x00\xff"),
    pg.PgValue("varchar", "abc"),
    pg.PgValue("char", "xy"),
    pg.PgValue("date", dt.date(2026, 12, 1)),
    pg.PgValue("date", dt.date.max),
    pg.PgValue("time", dt.time(5, 6, 7, 890)),
    pg.PgValue("timestamp", dt.datetime(2026, 12, 1, 5, 6, 7)),
    pg.PgValue(
        "timestamp-tz",
        dt.datetime(2026, 12, 1, 5, 6, 7, tzinfo=dt.timezone(dt.timedelta(hours=-4))),
    ),
    pg.PgValue("int8-array", [1, 2, 3]),
    pg.PgValue("text-array", ["a", "b"]),
]


def test_parameters_round_trip() -> None:
    sql, params = pg.read_query(pg.query_params("SELECT $1", PARAMS))
    assert sql == "SELECT $1" and params == PARAMS
    token, params = pg.read_exec(pg.exec_params("prepared-statement-x", PARAMS[:3]))
    assert token == "prepared-statement-x" and params == PARAMS[:3]


def test_a_case_the_provider_does_not_convert_is_named_with_the_fix() -> None:
    data = Writer().string("SELECT $1").u(1).u(pg.CASES.index("point")).finish()
    with pytest.raises(pg.UnsupportedValue, match=r"case point .*send the value as text"):
        pg.read_query(data)


def test_results_and_errors_decode_as_sent() -> None:
    rows = [[("id", pg.PgValue("int8", 1)), ("body", pg.PgValue("text", "hi"))]]
    assert pg.decode_rows(pg.encode_rows(rows)) == rows
    assert pg.decode_affected(pg.encode_affected(3)) == 3
    assert pg.decode_token(pg.encode_token("t")) == "t"
    with pytest.raises(pg.CallFailed) as failed:
        pg.decode_rows(pg.encode_query_error(pg.QueryError("invalid-query", "no table")))
    assert (failed.value.kind, failed.value.message) == ("invalid-query", "no table")
    with pytest.raises(pg.CallFailed, match="unknown-prepared-query"):
        pg.decode_affected(pg.encode_exec_error(None))
    with pytest.raises(pg.CallFailed, match=r"^unexpected: boom$"):
        pg.decode_affected(pg.encode_exec_error(None, "boom"))
    with pytest.raises(pg.CallFailed, match=r"^unexpected: no server$"):
        pg.decode_token(pg.encode_prepare_error("no server"))
    with pytest.raises(pg.CallFailed, match="invalid-params: bad"):
        pg.decode_affected(pg.encode_exec_error(pg.QueryError("invalid-params", "bad")))


GOOD = {
    "POSTGRES_HOST": "127.0.0.1",
    "POSTGRES_PORT": "5432",
    "POSTGRES_USERNAME": "app",
    "POSTGRES_DATABASE": "notes",
    "POSTGRES_TLS_REQUIRED": "false",
}


def test_the_password_comes_from_the_secret_before_plain_config() -> None:
    settings = connection_settings(
        GOOD | {"POSTGRES_PASSWORD": "plain"}, {"POSTGRES_PASSWORD": "sealed"}, "notes"
    )
    assert settings.password == "sealed" and settings.port == 5432
    assert not settings.tls_required


@pytest.mark.parametrize(
    ("config", "secrets", "named"),
    [
        ({**GOOD, "POSTGRES_PORT": "54x"}, {"POSTGRES_PASSWORD": "p"}, "POSTGRES_PORT '54x'"),
        ({**GOOD, "POSTGRES_PORT": "70000"}, {"POSTGRES_PASSWORD": "p"}, "e.g. 5432"),
        (
            {**GOOD, "POSTGRES_TLS_REQUIRED": "maybe"},
            {"POSTGRES_PASSWORD": "p"},
            "set it to true or false",
        ),
        ({k: v for k, v in GOOD.items() if k != "POSTGRES_HOST"}, {}, "no POSTGRES_HOST"),
        (GOOD, {}, "target_secrets as POSTGRES_PASSWORD"),
    ],
)
def test_bad_link_settings_are_named_with_the_fix(
    config: dict[str, str], secrets: dict[str, str], named: str
) -> None:
    with pytest.raises(LinkConfigError, match=re.escape(named)):
        connection_settings(config, secrets, "notes")


def postgres_link(interfaces: list[str]) -> Link:
    return Link.model_validate(
        {
            "source_id": "notes",
            "target": "pg",
            "wit_namespace": "wasmcloud",
            "wit_package": "postgres",
            "interfaces": interfaces,
        }
    )


def provider_of(provider_id: str) -> BuiltinProvider | None:
    return BUILTINS["sqldb-postgres"] if provider_id == "pg" else None


def test_another_postgres_version_is_refused_at_link_time_naming_both() -> None:
    old: Any = SimpleNamespace(imports={"wasmcloud:postgres/query": "0.1.0-draft"})
    problem = link_problem(old, None, postgres_link(["query"]), provider_of)
    assert problem is not None
    assert "wasmcloud:postgres/query@0.1.0-draft" in problem
    assert "wasmcloud:postgres/query@0.1.1-draft" in problem
    same: Any = SimpleNamespace(imports={"wasmcloud:postgres/query": "0.1.1-draft"})
    link = postgres_link(["query", "prepared"])
    assert link_problem(same, None, link, provider_of) is None


def test_a_component_starting_after_its_links_is_checked_against_them() -> None:
    imports = {"wasmcloud:postgres/query": "0.1.0-draft"}
    to_provider = postgres_link(["query"])
    [problem] = linked_version_problems(imports, {}, "notes", [to_provider], provider_of)
    assert "query@0.1.0-draft" in problem and "query@0.1.1-draft" in problem
    # A target that is not a provider running here may be a component on another host.
    assert linked_version_problems(imports, {}, "notes", [to_provider], lambda _: None) == []
