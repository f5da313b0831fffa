"""The sqldb-postgres provider's calls against Debian's PostgreSQL, without a lattice: the
wRPC payloads a component's host sends go straight to the provider's handlers, so the
column types, errors, prepared statements and the pool's recovery are checked on the
real server in a few seconds (test_provider_sqldb_postgres.py is the end-to-end one)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from host_agent.providers.contract import HostData, InterfaceLinkDefinition
from host_agent.providers.sqldb_postgres import POOL_SIZE, PostgresProvider
from host_agent.wrpc import postgres as pg
from tests.lattice import run_async
from tests.postgres import PostgresServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.remove()


def link(source: str, config: dict[str, str]) -> InterfaceLinkDefinition:
    return InterfaceLinkDefinition(
        source_id=source,
        target="pg",
        wit_namespace="wasmcloud",
        wit_package="postgres",
        interfaces=["query", "prepared"],
        target_config=config,
    )


async def linked_provider(postgres: PostgresServer, *sources: str) -> PostgresProvider:
    provider = PostgresProvider()
    provider.provider_id = "pg"
    provider._host = HostData(  # what start() keeps; no NATS is needed for the calls
        host_id="NHOST",
        lattice_rpc_prefix="default",
        lattice_rpc_url="nats://x:1",
        provider_key="pg",
        instance_id="i",
    )
    for source in sources:
        # A plain-config password here (the provider warns); the end-to-end test uses a secret.
        await provider.link_put(
            link(source, postgres.link_config() | {"POSTGRES_PASSWORD": postgres.password})
        )
    return provider


async def query(
    provider: PostgresProvider, source: str, sql: str, *params: pg.PgValue
) -> list[pg.Row]:
    return pg.decode_rows(await provider._query(pg.query_params(sql, params), source))


@run_async
async def test_column_types_come_back_as_their_cases(postgres: PostgresServer) -> None:
    provider = await linked_provider(postgres, "a")
    try:
        [row] = await query(
            provider,
            "a",
            "SELECT $1::int8 AS big, 2::int4 AS i, 3::int2 AS s, true AS b, 1.5::float8 AS f,"
            " 0.25::float4 AS r, 12.50::numeric AS n, 'x'::text AS t, 'ab'::char(3) AS c,"
            " 'v'::varchar AS v, '\\x00ff'::bytea AS by, '{\"a\": 1}'::jsonb AS j,"
            " $2::uuid AS u, DATE '2026-12-01' AS d, TIME '05:06:07.5' AS tm,"
            " TIMESTAMP '2026-12-01 05:06:07' AS ts,"
            " TIMESTAMPTZ '2026-12-01 05:06:07+00' AS tz, ARRAY[1,2]::int8[] AS arr,"
            " ARRAY['p','q'] AS ta, NULL::text AS nothing",
            pg.PgValue("int8", 2**40),
            pg.PgValue("uuid", "6f1b4c8e-0000-4000-8000-000000000001"),
        )
        got = {name: (value.case, value.value) for name, value in row}
        assert got == {
            "big": ("int8", 2**40),
            "i": ("int4", 2),
            "s": ("int2", 3),
            "b": ("bool", True),
            "f": ("float8", 1.5),
            "r": ("float4", 0.25),
            "n": ("numeric", Decimal("12.50")),
            "t": ("text", "x"),
            "c": ("char", "ab "),
            "v": ("varchar", "v"),
            "by": ("bytea", b"\x00\xff"),
            "j": ("jsonb", '{"a": 1}'),
            "u": ("uuid", "6f1b4c8e-0000-4000-8000-000000000001"),
            "d": ("date", dt.date(2026, 12, 1)),
            "tm": ("time", dt.time(5, 6, 7, 500000)),
            "ts": ("timestamp", dt.datetime(2026, 12, 1, 5, 6, 7)),
            "tz": ("timestamp-tz", dt.datetime(2026, 12, 1, 5, 6, 7, tzinfo=dt.UTC)),
            "arr": ("int8-array", [1, 2]),
            "ta": ("text-array", ["p", "q"]),
            "nothing": ("null", None),
        }
        assert isinstance(uuid.UUID(got["u"][1]), uuid.UUID)
    finally:
        await provider.stop()


@run_async
async def test_errors_name_their_kind_and_statements_stay_with_their_component(
    postgres: PostgresServer,
) -> None:
    provider = await linked_provider(postgres, "a", "b")
    try:
        with pytest.raises(pg.CallFailed) as failed:
            await query(provider, "a", "SELECT * FROM no_such_table")
        assert failed.value.kind == "invalid-query" and "no_such_table" in failed.value.message
        with pytest.raises(pg.CallFailed) as failed:
            await query(provider, "a", "SELECT $1::int4", pg.PgValue("text", "seven"))
        assert failed.value.kind == "invalid-params", failed.value
        with pytest.raises(pg.CallFailed) as failed:
            await query(provider, "a", "SELECT point(1, 2) AS p")
        assert "p::text" in failed.value.message  # the column and the cast that fixes it

        pg.decode_unit(
            await provider._query_batch(
                pg.statement_params("CREATE TABLE IF NOT EXISTS t (n int8); DELETE FROM t"), "a"
            )
        )
        token = pg.decode_token(
            await provider._prepare(pg.statement_params("INSERT INTO t VALUES ($1), ($1)"), "a")
        )
        params = [pg.PgValue("int8", 4)]
        assert pg.decode_affected(await provider._exec(pg.exec_params(token, params), "a")) == 2
        # Component b cannot run a's statement: to it the token is unknown.
        with pytest.raises(pg.CallFailed, match="unknown-prepared-query"):
            pg.decode_affected(await provider._exec(pg.exec_params(token, params), "b"))
        with pytest.raises(pg.CallFailed) as failed:
            pg.decode_token(await provider._prepare(pg.statement_params("SELEKT 1"), "a"))
        assert "syntax error" in failed.value.message
        # A caller with no link at all is told to link.
        with pytest.raises(pg.CallFailed, match="link the component to it"):
            await query(provider, "stranger", "SELECT 1")
    finally:
        await provider.stop()


@run_async
async def test_a_pool_outlives_a_server_restart(postgres: PostgresServer) -> None:
    provider = await linked_provider(postgres, "a")
    try:
        assert await query(provider, "a", "SELECT 1 AS one") == [[("one", pg.PgValue("int4", 1))]]
        postgres.stop()
        with pytest.raises(pg.CallFailed, match="is not reachable"):
            await query(provider, "a", "SELECT 1 AS one")
        postgres.start()
        # The pooled connection died with the server; the first call after it is answered.
        assert await query(provider, "a", "SELECT 1 AS one") == [[("one", pg.PgValue("int4", 1))]]
    finally:
        await provider.stop()


@run_async
async def test_a_wrong_password_or_database_names_the_setting(postgres: PostgresServer) -> None:
    provider = await linked_provider(postgres)
    try:
        settings = postgres.link_config()
        await provider.link_put(link("a", settings | {"POSTGRES_PASSWORD": "wrong"}))
        await provider.link_put(
            link(
                "b",
                settings | {"POSTGRES_PASSWORD": postgres.password, "POSTGRES_DATABASE": "nope"},
            )
        )
        with pytest.raises(
            pg.CallFailed,
            match="check the link's POSTGRES_USERNAME and its POSTGRES_PASSWORD secret",
        ):
            await query(provider, "a", "SELECT 1")
        with pytest.raises(pg.CallFailed, match="set the link's POSTGRES_DATABASE"):
            await query(provider, "b", "SELECT 1")
    finally:
        await provider.stop()


@run_async
async def test_concurrent_calls_share_a_bounded_pool(postgres: PostgresServer) -> None:
    provider = await linked_provider(postgres, "a")
    try:
        sql = "SELECT pg_backend_pid() AS pid FROM pg_sleep(0.3)"
        answers = await asyncio.gather(*(query(provider, "a", sql) for _ in range(3 * POOL_SIZE)))
        pids = {rows[0][0][1].value for rows in answers}
        # Several connections at once (not one after another), never more than the pool's.
        assert 1 < len(pids) <= POOL_SIZE, pids
        # They stay open for the next calls: the same backends answer.
        again = await asyncio.gather(*(query(provider, "a", sql) for _ in range(POOL_SIZE)))
        assert {rows[0][0][1].value for rows in again} <= pids
    finally:
        await provider.stop()
