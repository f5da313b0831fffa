"""sqldb-postgres end to end: examples/sqldb-postgres/wadm.yaml deployed by the controller
on a local lattice (real nats-server, the NATS KV secrets backend, a host, Debian's
PostgreSQL in a temporary directory on loopback). The notes component creates its table,
adds notes through a prepared statement and lists them through a parameterised query,
with the database password taken from a secret. The server going down reaches the
component as an error (HTTP 503 naming the server), the host stays up and the next
request after the server is back succeeds; a link whose config is wrong gets its
setting named with the fix; a component built against wasmcloud:postgres@0.1.0-draft is
refused at link time with both versions named."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from host_agent.lattice.wadm_types import StatusType
from tests.integration.test_app_secrets import SecretsBackendProcess, put_secret
from tests.integration.test_controller import clients, wait_status
from tests.lattice import ROOT, NatsServer, Processes, free_port, http_get, run_async
from tests.postgres import PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

EXAMPLE = ROOT / "examples" / "sqldb-postgres"
WASM = EXAMPLE / "build" / "sqldb-postgres.wasm"
# The same kind of component built against wasmcloud:postgres@0.1.0-draft.
OLD_DRAFT_WASM = ROOT / "tests/components/notes-old-draft/build/notes-old-draft.wasm"


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.remove()


@pytest.fixture
def backend(nats_server: NatsServer, tmp_path: Path) -> Iterator[SecretsBackendProcess]:
    process = SecretsBackendProcess(nats_server, tmp_path / "secrets-backend.log")
    yield process
    process.stop()


def notes_manifest(
    postgres: PostgresServer, port: int, name: str = "notes", **config: str
) -> dict[str, Any]:
    """The example's manifest, pointed at this test's server and HTTP port; ``config``
    overrides the link's POSTGRES_* settings."""
    data: dict[str, Any] = yaml.safe_load((EXAMPLE / "wadm.yaml").read_text())
    data = copy.deepcopy(data)
    data["metadata"]["name"] = name
    notes, _, http = data["spec"]["components"]
    notes["properties"]["image"] = f"file://{WASM}"
    [link_config] = notes["traits"][1]["properties"]["target"]["config"]
    link_config["name"] = f"{name}-db"
    link_config["properties"] = postgres.link_config() | config
    [listen] = http["traits"][1]["properties"]["source"]["config"]
    listen["name"] = f"{name}-http"
    listen["properties"]["address"] = f"127.0.0.1:{port}"
    return data


async def request(url: str, post: bool = False) -> tuple[int, str]:
    status, body = await asyncio.to_thread(http_get, url, b"" if post else None)
    return status, body.decode()


async def until(
    url: str, want: int, post: bool = False, contains: str = "", tries: int = 300
) -> str:
    """Request until the answer has status ``want`` and a body with ``contains`` (links
    and listeners arrive async; a restarted server takes a moment); the body then."""
    last: object = None
    for _ in range(tries):
        try:
            status, body = await request(url, post)
            if status == want and contains in body:
                return body
            last = (status, body)
        except OSError as error:
            last = error
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered {want}: last {last!r}")


@run_async
async def test_notes_on_postgres_through_the_controller_down_and_back_and_bad_config(
    nats_server: NatsServer,
    processes: Processes,
    backend: SecretsBackendProcess,
    postgres: PostgresServer,
) -> None:
    for wasm in (WASM, OLD_DRAFT_WASM):
        assert wasm.exists(), f"build it: scripts/build-components.sh {wasm.parent.parent}"
    host = processes.host(region="local")
    processes.controller()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with clients(nats_server) as (wadm, _):
        await put_secret(wadm.nc, "notes-db-password", postgres.password)
        manifest = notes_manifest(postgres, port)
        assert postgres.password not in yaml.safe_dump(manifest)  # only the secret has it
        await wadm.put(yaml.safe_dump(manifest))
        await wadm.deploy("notes")
        await wait_status(wadm, "notes", StatusType.DEPLOYED)

        # query-batch, prepare + exec, query with a parameter; the rows are in the database.
        assert await until(f"{url}/setup", 200, post=True) == "ready"
        assert await request(f"{url}/notes?text=hello", post=True) == (200, "added 1")
        assert await request(f"{url}/notes?text=world", post=True) == (200, "added 1")
        assert await request(f"{url}/notes") == (200, "1 hello\n2 world\n")
        assert postgres.psql("SELECT string_agg(body, ',' ORDER BY id) FROM notes") == (
            "hello,world"
        )

        # The server goes down: the component hears it (503 naming the server), the host
        # does not crash; back up, the next requests succeed on fresh connections.
        postgres.stop()
        status, body = await request(f"{url}/notes?text=lost", post=True)
        assert status == 503, body
        assert f"127.0.0.1:{postgres.port}/notes is not reachable" in body
        status, body = await request(f"{url}/notes")
        assert status == 503 and "not reachable" in body, body
        assert host.proc.poll() is None
        postgres.start()
        assert await until(f"{url}/notes?text=back", 200, post=True) == "added 1"
        assert await request(f"{url}/notes") == (200, "1 hello\n2 world\n3 back\n")

        # A link whose port is not a number: its calls name the setting and the fix.
        bad_port = free_port()
        bad = notes_manifest(postgres, bad_port, name="badnotes", POSTGRES_PORT="five-four")
        await wadm.put(yaml.safe_dump(bad))
        await wadm.deploy("badnotes")
        # (Until its link reaches the provider, calls say there is no link yet.)
        body = await until(f"http://127.0.0.1:{bad_port}/notes", 503, contains="POSTGRES_PORT")
        assert "POSTGRES_PORT 'five-four'" in body and "e.g. 5432" in body, body
        # The good app is untouched.
        assert await request(f"{url}/notes") == (200, "1 hello\n2 world\n3 back\n")

        # A component built against the older draft: its link is refused, both versions named.
        old = notes_manifest(postgres, free_port(), name="oldnotes")
        old["spec"]["components"][0]["properties"]["image"] = f"file://{OLD_DRAFT_WASM}"
        await wadm.put(yaml.safe_dump(old))
        await wadm.deploy("oldnotes")
        await wait_status(wadm, "oldnotes", StatusType.FAILED, contains="0.1.0-draft")
        reply = await wadm.status("oldnotes")
        assert reply.status is not None
        message = reply.status.status.message
        assert "wasmcloud:postgres/query@0.1.0-draft" in message, message
        assert "wasmcloud:postgres/query@0.1.1-draft" in message, message
