"""sqldb-postgres: wasmcloud:postgres@0.1.1-draft (query, prepared) against PostgreSQL.

Each link from a component gets its own connection pool (asyncpg), made from the link's
target_config and target secrets under the names wasmCloud's provider reads:

    POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USERNAME, POSTGRES_DATABASE,
    POSTGRES_TLS_REQUIRED (true/false)      plain config (a named config of the link)
    POSTGRES_PASSWORD                       a secret (target_secrets); plain config is
                                            read too, as upstream does, with a warning

Unlike upstream, which logs a bad or missing setting and leaves the component without a
pool (or silently uses port 5432 for a bad port), a bad link config is refused by name:
every call of that component answers `unexpected` with the setting and its fix, and
the provider's health message lists it. Pools connect lazily (min size 0), so a link made
while the database is down works once it is back; a call made while it is down answers
`unexpected` naming the server, and no pooled connection outlives a server restart
(asyncpg drops a connection that failed). Prepared statements belong to the component
that prepared them: the token names the SQL, and each execution prepares it on whichever
pooled connection it gets (asyncpg caches it per connection).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from nats.aio.client import Client as NatsClient

from host_agent.providers.contract import HostData, InterfaceLinkDefinition
from host_agent.providers.sdk import run_provider
from host_agent.secrets.provider import host_secrets, link_secrets
from host_agent.wrpc import postgres as pg
from host_agent.wrpc.codec import DecodeError
from host_agent.wrpc.transport import Payload, WrpcServer

log = logging.getLogger("host_agent.provider.sqldb_postgres")

PREFIX = "POSTGRES_"
REQUIRED = ("HOST", "PORT", "USERNAME", "DATABASE", "TLS_REQUIRED")
POOL_SIZE = 8  # connections per linked component at most
CONNECT_TIMEOUT = 5.0  # s: a call to a database that is down fails well inside a wRPC timeout
COMMAND_TIMEOUT = 20.0  # s


class LinkConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ConnectionSettings:
    host: str
    port: int
    username: str
    password: str
    database: str
    tls_required: bool

    @property
    def where(self) -> str:
        return f"{self.username}@{self.host}:{self.port}/{self.database}"


def connection_settings(
    config: dict[str, str], secrets: dict[str, str], source_id: str
) -> ConnectionSettings:
    """The link's settings, strictly: a missing or malformed one is named with its fix."""
    missing = [PREFIX + key for key in REQUIRED if not config.get(PREFIX + key)]
    if missing:
        raise LinkConfigError(
            f"the link from {source_id} has no {', '.join(missing)} in its target_config; "
            f"give the link a named config with {', '.join(PREFIX + k for k in REQUIRED)} "
            f"and a target secret {PREFIX}PASSWORD"
        )
    port_text = config[PREFIX + "PORT"]
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise LinkConfigError(
            f"the link from {source_id} has {PREFIX}PORT {port_text!r}, which is not a port "
            f"number; set it to the server's TCP port, e.g. 5432"
        )
    tls_text = config[PREFIX + "TLS_REQUIRED"].lower()
    if tls_text not in ("true", "false", "yes", "no"):
        raise LinkConfigError(
            f"the link from {source_id} has {PREFIX}TLS_REQUIRED "
            f"{config[PREFIX + 'TLS_REQUIRED']!r}; set it to true or false"
        )
    password = secrets.get(PREFIX + "PASSWORD")
    if password is None:
        password = config.get(PREFIX + "PASSWORD")
        if password is None:
            raise LinkConfigError(
                f"the link from {source_id} has no {PREFIX}PASSWORD; put the password in "
                f"the secrets backend and name it in the link's target_secrets as "
                f"{PREFIX}PASSWORD"
            )
        log.warning(
            "link from %s: %sPASSWORD comes from plain config; put it in a secret instead",
            source_id,
            PREFIX,
        )
    return ConnectionSettings(
        host=config[PREFIX + "HOST"],
        port=int(port_text),
        username=config[PREFIX + "USERNAME"],
        password=password,
        database=config[PREFIX + "DATABASE"],
        tls_required=tls_text in ("true", "yes"),
    )


@dataclass
class Linked:
    """One component's side of the provider: its pool, or why it has none."""

    settings: ConnectionSettings | None
    problem: str
    pool: asyncpg.Pool | None = None


Handler = Callable[[bytes, str], Awaitable[bytes]]

# Errors of a statement itself (class 42: syntax error or access rule violation, e.g. an
# unknown table or column) versus of its parameters: the server's class 22 (data
# exception, e.g. invalid input syntax) and asyncpg's own refusal to encode a value for a
# parameter's type (its client-side DataError, an InterfaceError and ValueError).
_QUERY_ERRORS: tuple[type[Exception], ...] = (asyncpg.SyntaxOrAccessError,)
_PARAM_ERRORS: tuple[type[Exception], ...] = (asyncpg.DataError, ValueError)


class PostgresProvider:
    def __init__(self) -> None:
        self.provider_id = ""
        self._host: HostData | None = None
        self._linked: dict[str, Linked] = {}  # by source component id
        self._statements: dict[str, tuple[str, str]] = {}  # token -> (source id, SQL)

    async def start(self, host: HostData, nc: NatsClient) -> None:
        self._host = host
        self.provider_id = host.provider_key
        server = WrpcServer(nc, host.lattice_rpc_prefix)
        handlers: dict[tuple[str, str], Handler] = {
            (pg.QUERY_INSTANCE, "query"): self._query,
            (pg.QUERY_INSTANCE, "query-batch"): self._query_batch,
            (pg.PREPARED_INSTANCE, "prepare"): self._prepare,
            (pg.PREPARED_INSTANCE, "exec"): self._exec,
        }
        for (instance, function), handler in handlers.items():
            await server.serve(host.provider_key, instance, function, _on_payload(handler))

    # links --------------------------------------------------------------------------
    async def link_put(self, link: InterfaceLinkDefinition) -> None:
        if link.target != self.provider_id or (link.wit_namespace, link.wit_package) != (
            "wasmcloud",
            "postgres",
        ):
            return
        assert self._host is not None
        await self._forget(link.source_id)
        secrets = host_secrets(self._host) | link_secrets(link, self._host, "target")
        try:
            settings = connection_settings(link.target_config, secrets, link.source_id)
        except LinkConfigError as error:
            log.warning("%s", error)
            self._linked[link.source_id] = Linked(None, str(error))
            return
        pool = asyncpg.create_pool(
            host=settings.host,
            port=settings.port,
            user=settings.username,
            password=settings.password,
            database=settings.database,
            ssl=ssl.create_default_context() if settings.tls_required else False,
            min_size=0,  # connect on the first call: the database may come up later
            max_size=POOL_SIZE,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
        )
        await pool  # with min_size 0 this opens no connection
        self._linked[link.source_id] = Linked(settings, "", pool)
        log.info("link from %s ready (%s)", link.source_id, settings.where)

    async def link_del(self, link: InterfaceLinkDefinition) -> None:
        if link.target == self.provider_id:
            await self._forget(link.source_id)

    async def _forget(self, source_id: str) -> None:
        self._statements = {
            token: entry for token, entry in self._statements.items() if entry[0] != source_id
        }
        linked = self._linked.pop(source_id, None)
        if linked is not None and linked.pool is not None:
            await _close(linked.pool)

    # calls --------------------------------------------------------------------------
    def _pool(self, source_id: str) -> tuple[asyncpg.Pool, ConnectionSettings]:
        linked = self._linked.get(source_id)
        if linked is None:
            raise pg.QueryError(
                "unexpected",
                f"no link from {source_id or 'this caller'} to {self.provider_id} has reached "
                f"the provider; link the component to it with namespace wasmcloud, package "
                f"postgres",
            )
        if linked.pool is None or linked.settings is None:
            raise pg.QueryError("unexpected", linked.problem)
        return linked.pool, linked.settings

    async def _query(self, data: bytes, source_id: str) -> bytes:
        try:
            sql, params = pg.read_query(data)
        except pg.UnsupportedValue as error:
            return pg.encode_query_error(pg.QueryError("invalid-params", str(error)))
        try:
            rows = await self._run(source_id, lambda conn: _fetch(conn, sql, params))
        except pg.QueryError as error:
            return pg.encode_query_error(error)
        return pg.encode_rows(rows)

    async def _query_batch(self, data: bytes, source_id: str) -> bytes:
        sql = pg.read_statement(data)
        try:
            await self._run(source_id, lambda conn: conn.execute(sql))
        except pg.QueryError as error:
            return pg.encode_query_error(error)
        return pg.encode_unit()

    async def _prepare(self, data: bytes, source_id: str) -> bytes:
        sql = pg.read_statement(data)
        try:
            await self._run(source_id, lambda conn: conn.prepare(sql))
        except pg.QueryError as error:
            return pg.encode_prepare_error(str(error))
        token = f"prepared-statement-{uuid.uuid4().hex}"
        self._statements[token] = (source_id, sql)
        return pg.encode_token(token)

    async def _exec(self, data: bytes, source_id: str) -> bytes:
        try:
            token, params = pg.read_exec(data)
        except pg.UnsupportedValue as error:
            return pg.encode_exec_error(pg.QueryError("invalid-params", str(error)))
        entry = self._statements.get(token)
        if entry is None or entry[0] != source_id:
            # Another component's token is as unknown to this one as a made-up one.
            return pg.encode_exec_error(None)
        sql = entry[1]
        try:
            status = await self._run(
                source_id, lambda conn: conn.execute(sql, *(p.value for p in params))
            )
        except pg.QueryError as error:
            return pg.encode_exec_error(error)
        return pg.encode_affected(_affected(status))

    async def _run(
        self, source_id: str, work: Callable[[asyncpg.Connection], Awaitable[Any]]
    ) -> Any:
        pool, settings = self._pool(source_id)
        try:
            async with pool.acquire() as conn:
                return await work(conn)
        except asyncpg.InvalidAuthorizationSpecificationError as error:  # wrong user/password
            raise pg.QueryError(
                "unexpected",
                f"the database {settings.where} refused the login ({_message(error)}); check "
                f"the link's {PREFIX}USERNAME and its {PREFIX}PASSWORD secret",
            ) from None
        except asyncpg.InvalidCatalogNameError as error:  # no such database
            raise pg.QueryError(
                "unexpected",
                f"{_message(error)} on {settings.host}:{settings.port}; set the link's "
                f"{PREFIX}DATABASE to a database that exists there (or create it)",
            ) from None
        except _QUERY_ERRORS as error:
            raise pg.QueryError("invalid-query", _message(error)) from None
        except _PARAM_ERRORS as error:
            raise pg.QueryError("invalid-params", _message(error)) from None
        except pg.QueryError:
            raise
        except (
            OSError,
            TimeoutError,
            asyncpg.InterfaceError,
            asyncpg.PostgresConnectionError,
        ) as error:
            raise pg.QueryError(
                "unexpected",
                f"the database {settings.where} is not reachable ({_message(error)}); "
                f"the provider reconnects on the next call once it is up",
            ) from None
        except asyncpg.PostgresError as error:
            raise pg.QueryError("unexpected", _message(error)) from None

    async def health(self) -> tuple[bool, str]:
        problems = [linked.problem for linked in self._linked.values() if linked.problem]
        summary = f"{len(self._linked)} linked component(s)"
        return True, "; ".join([summary, *problems])

    async def stop(self) -> None:
        for source_id in list(self._linked):
            await self._forget(source_id)


async def _fetch(conn: asyncpg.Connection, sql: str, params: list[pg.PgValue]) -> list[pg.Row]:
    statement = await conn.prepare(sql)
    columns = []
    for attribute in statement.get_attributes():
        case = pg.column_case(attribute.type.name)
        if case is None:
            raise pg.QueryError(
                "unexpected",
                f"column {attribute.name} has type {attribute.type.name}, which this provider "
                f"does not return; cast it in the query, e.g. {attribute.name}::text",
            )
        columns.append((attribute.name, case))
    records = await statement.fetch(*(p.value for p in params))
    return [
        [
            (name, pg.PgValue("null") if value is None else pg.PgValue(case, value))
            for (name, case), value in zip(columns, record, strict=True)
        ]
        for record in records
    ]


def _affected(status: str) -> int:
    """`INSERT 0 3`, `UPDATE 2`, `SELECT 5` -> the row count; 0 for `CREATE TABLE`."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def _message(error: BaseException) -> str:
    return str(error) or type(error).__name__


async def _close(pool: asyncpg.Pool) -> None:
    try:
        await asyncio.wait_for(pool.close(), 5)
    except (TimeoutError, OSError):
        pool.terminate()


def _on_payload(handler: Handler) -> Callable[[Payload, dict[str, str]], Awaitable[Payload]]:
    async def call(params: Payload, headers: dict[str, str]) -> Payload:
        try:
            return Payload(await handler(params.data, headers.get("source-id", "")))
        except pg.UnsupportedValue as error:
            raise DecodeError(str(error)) from None

    return call


if __name__ == "__main__":
    run_provider(PostgresProvider())
