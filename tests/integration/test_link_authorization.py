"""Per-link authorization on a real nats-server in operator mode: a real host process and
controller process with their role credentials, the counter component calling a keyvalue
provider through a link, and a deliberately misbehaving client holding the host's NATS
credentials (and even its host seed) that tries another lattice and an unlinked provider.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import nkeys
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from host_agent.host.caller import new_caller_seed
from host_agent.lattice.client import CtlClient
from host_agent.lattice.connection import NatsCredentials
from host_agent.lattice.subjects import link_grant_subject
from host_agent.security.authority import LatticeAuthority
from host_agent.security.grants import GrantReply, GrantRequest, caller_public_key
from host_agent.security.jwt import Permissions
from host_agent.security.permissions import Role
from host_agent.wrpc.transport import invocation_subject
from tests.lattice import (
    VENV_BIN,
    ControllerProcess,
    HostProcess,
    NatsServer,
    free_port,
    http_get,
    run_async,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

LATTICE = "sec"
OTHER_LATTICE = "other"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COUNTER = f"file://{EXAMPLES / 'counter' / 'build' / 'counter.wasm'}"
EVERYTHING = Permissions(pub_allow=(">",), sub_allow=(">",))
KV_GET = ("wrpc:keyvalue/store@0.2.0-draft", "get")


def operator_mode(authority: LatticeAuthority) -> str:
    """nats-server's operator-mode settings: the in-memory resolver preloaded."""
    auth = authority.server_auth()
    preload = "\n".join(f"  {key}: {jwt}" for key, jwt in auth.account_jwts.items())
    return (
        f"operator: {auth.operator_jwt}\n"
        f"system_account: {auth.system_account}\n"
        f"resolver: MEMORY\nresolver_preload: {{\n{preload}\n}}\n"
    )


class OperatorNats(NatsServer):
    """nats-server with JetStream, trusting only the users of ``authority``."""

    def __init__(self, store: Path, authority: LatticeAuthority) -> None:
        super().__init__(store)
        self.config = store.parent / "nats.conf"
        self.config.write_text(
            f'listen: "127.0.0.1:{self.port}"\n'
            f'jetstream {{ store_dir: "{store}" }}\n' + operator_mode(authority)
        )

    def start(self) -> OperatorNats:
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "nats-server"), "-c", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "Server is ready" in line:
                return self
        raise RuntimeError("nats-server did not become ready")


def secret_file(path: Path, text: str) -> Path:
    path.touch(0o600)
    path.write_text(text)
    return path


class Violations:
    """What the server says to a client: permission violations arrive as async errors."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.changed = asyncio.Event()

    async def on_error(self, error: Exception) -> None:
        self.seen.append(str(error))
        self.changed.set()

    async def wait_for(self, subject: str, timeout: float = 10.0) -> None:
        async def seen() -> None:
            while not any(subject in text for text in self.seen):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(seen(), timeout)


class Observer:
    """A user allowed everything, watching what reaches subscribers: a barrier message
    published after an attempt by the same client proves the attempt was (or was not)
    delivered, since NATS keeps one connection's messages in order."""

    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc
        self.received: list[str] = []
        self.changed = asyncio.Event()

    async def start(self) -> None:
        async def record(msg: Msg) -> None:
            self.received.append(msg.subject)
            self.changed.set()

        await self.nc.subscribe(f"{LATTICE}.*.wrpc.>", cb=record)
        await self.nc.subscribe(f"{OTHER_LATTICE}.>", cb=record)
        await self.nc.subscribe("_INBOX.probe.>", cb=record)
        await self.nc.flush()

    async def delivered(
        self, attempt: str, barrier: str, start: int, timeout: float = 10.0
    ) -> bool:
        """Whether ``attempt`` arrived after ``received[start]``, before ``barrier``."""

        async def until_barrier() -> None:
            while barrier not in self.received[start:]:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until_barrier(), timeout)
        return attempt in self.received[start:]


@asynccontextmanager
async def connected(server: NatsServer, creds: NatsCredentials, **kw: Any) -> AsyncIterator[Any]:
    nc = await nats.connect(
        server.url, user_credentials=nats.aio.client.RawCredentials(creds.creds()), **kw
    )
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[dict[str, Any]]:
    authority = LatticeAuthority.create(LATTICE)
    issuer = authority.user_issuer()
    server = OperatorNats(tmp_path / "js", authority).start()
    host_seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_SERVER).decode()
    host_creds = issuer.issue(Role.HOST, "host", LATTICE)
    files = {
        "host": secret_file(tmp_path / "host.creds", host_creds.creds()),
        "controller": secret_file(
            tmp_path / "controller.creds", issuer.issue(Role.CONTROLLER, "ctl", LATTICE).creds()
        ),
        "issuer": secret_file(tmp_path / "issuer.json", json.dumps(issuer.to_state())),
    }
    controller = ControllerProcess(
        server,
        "--nats-creds",
        str(files["controller"]),
        "--grant-issuer-file",
        str(files["issuer"]),
        lattice=LATTICE,
        log=tmp_path / "controller.log",
    )
    os.environ["WASMCLOUD_HOST_SEED"] = host_seed
    try:
        host = HostProcess(
            server,
            {},
            "--allow-file-load",
            "--link-grants",
            "--nats-creds",
            str(files["host"]),
            lattice=LATTICE,
            log=tmp_path / "host.log",
        )
    finally:
        del os.environ["WASMCLOUD_HOST_SEED"]
    yield {
        "server": server,
        "issuer": issuer,
        "host_creds": host_creds,
        "host_seed": host_seed,
        "host_log": tmp_path / "host.log",
    }
    host.stop()
    controller.stop()
    server.stop()


async def get_within(url: str, seconds: float) -> bytes:
    """The first 200 body from ``url`` within ``seconds`` (the listener and the links
    arrive asynchronously); fails naming the last answer."""
    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, body = await asyncio.to_thread(http_get, url)
            if status == 200:
                return body
            last = (status, body)
        except OSError as error:  # the listener is not up yet
            last = error
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200 within {seconds:g} s: last {last!r}")


async def grant_as_host(nc: NatsClient, host_seed: str, sources: list[str]) -> NatsCredentials:
    """What a client holding the host's seed can get from the controller."""
    seed = new_caller_seed()
    request = GrantRequest.signed(host_seed, caller_public_key(seed), sources, int(time.time()))
    msg = await nc.request(link_grant_subject(LATTICE), request.model_dump_json().encode(), 10)
    reply = GrantReply.parse(msg.data)
    assert reply.jwt, reply.error
    return NatsCredentials(reply.jwt, seed)


async def attempt(
    client: NatsClient, violations: Violations, observer: Observer, subject: str, tag: str
) -> bool:
    """Publish on ``subject`` then a barrier; whether the attempt reached subscribers.
    A refused attempt is also reported to the client as a permissions violation."""
    barrier = f"_INBOX.probe.{tag}"  # every user here may publish in the inbox tree
    start = len(observer.received)
    await client.publish(subject, b"\x00", reply=client.new_inbox())
    await client.publish(barrier, b"")
    delivered = await observer.delivered(subject, barrier, start)
    if not delivered:
        await violations.wait_for(subject)
    return delivered


@run_async
async def test_host_credentials_cannot_invoke_unlinked_providers_or_other_lattices(
    secured: dict[str, Any],
) -> None:
    server, issuer = secured["server"], secured["issuer"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with (
        connected(server, issuer.issue(Role.TOOLING, "tooling", LATTICE)) as tooling,
        connected(server, issuer.issue_with(EVERYTHING, "observer")) as watching,
    ):
        ctl = CtlClient(tooling, LATTICE, timeout=10)
        observer = Observer(watching)
        await observer.start()
        for _ in range(300):  # the host process starts (imports) for a few seconds
            hosts = await ctl.ping_hosts(wait=0.3)
            if hosts:
                break
            await asyncio.sleep(0.1)  # no responders yet: the ping returned at once
        [host_id] = [h["id"] for h in hosts]
        await ctl.start_provider(host_id, "kvlinked", "builtin:keyvalue-inmemory")
        await ctl.start_provider(host_id, "kvunlinked", "builtin:keyvalue-inmemory")
        await ctl.start_provider(host_id, "httpserver", "builtin:http-server")
        await ctl.scale_component(host_id, "counter", COUNTER, 1)
        await ctl.put_config("listen", {"address": f"127.0.0.1:{port}"})
        kv = {"wit_namespace": "wasi", "wit_package": "keyvalue"}
        await ctl.put_link(
            {"source_id": "counter", "target": "kvlinked", **kv, "interfaces": ["atomics", "store"]}
        )
        await ctl.put_link(
            {
                "source_id": "httpserver",
                "target": "counter",
                "wit_namespace": "wasi",
                "wit_package": "http",
                "interfaces": ["incoming-handler"],
                "source_config": ["listen"],
            }
        )
        # kvunlinked is linked from a component of some other host, never from this
        # host's: a grant for this host's sources must not include it.
        await ctl.put_link(
            {"source_id": "elsewhere", "target": "kvunlinked", **kv, "interfaces": ["store"]}
        )
        # A linked call works: http-server -> counter (the provider's grant), counter ->
        # kvlinked (the host's grant).
        assert await get_within(f"{url}/hits", 90) == b"hits -> 1"

        # The misbehaving client: the host's own NATS user.
        violations = Violations()
        async with connected(server, secured["host_creds"], error_cb=violations.on_error) as bad:
            unlinked = invocation_subject(LATTICE, "kvunlinked", *KV_GET)
            linked = invocation_subject(LATTICE, "kvlinked", *KV_GET)
            elsewhere = invocation_subject(OTHER_LATTICE, "kvlinked", *KV_GET)
            assert not await attempt(bad, violations, observer, unlinked, "a")
            assert not await attempt(bad, violations, observer, elsewhere, "b")
            # The base user invokes nothing at all, linked or not: calls need a grant.
            assert not await attempt(bad, violations, observer, linked, "c")
            other_ctl = f"wasmbus.ctl.v1.{OTHER_LATTICE}.host.ping"
            assert not await attempt(bad, violations, observer, other_ctl, "d")

            # With the host's seed too, it can obtain what the host itself gets: the
            # targets of its sources' links, and nothing else.
            granted = await grant_as_host(bad, secured["host_seed"], ["counter"])
        violations = Violations()
        async with connected(server, granted, error_cb=violations.on_error) as caller:
            assert await attempt(caller, violations, observer, linked, "e")
            assert not await attempt(caller, violations, observer, unlinked, "f")
            assert not await attempt(caller, violations, observer, elsewhere, "g")

        # A link changed at run time: counter -> kvunlinked instead of kvlinked. The host
        # (not restarted) gets a new grant and the counter's calls go there.
        await ctl.delete_link("counter", "wasi", "keyvalue")
        await ctl.put_link(
            {
                "source_id": "counter",
                "target": "kvunlinked",
                **kv,
                "interfaces": ["atomics", "store"],
            }
        )
        assert await get_within(f"{url}/fresh", 60) == b"fresh -> 1"
        assert await asyncio.to_thread(http_get, f"{url}/hits") == (200, b"hits -> 1")
        # The deleted link is no longer granted.
        async with connected(server, secured["host_creds"]) as host_user:
            regranted = await grant_as_host(host_user, secured["host_seed"], ["counter"])
        violations = Violations()
        async with connected(server, regranted, error_cb=violations.on_error) as caller:
            assert await attempt(caller, violations, observer, unlinked, "h")
            assert not await attempt(caller, violations, observer, linked, "i")
