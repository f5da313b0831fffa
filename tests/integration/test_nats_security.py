"""NATS operator mode on the real nats-server 2.12.1, configured by what
pulumi_wasmcloud/provision/nats_config.py renders for a LatticeAuthority: who is refused
(no credentials, another lattice's, a revoked or an expired user, each named in the
error), a revoked user dropped on every node of a cluster and its leaf node (and never
let back), a lattice's host unable to reach another lattice's subjects, and every role
doing its job with its own credentials: a real host, controller, providers and wash.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats.errors
import pytest
import yaml
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from host_agent.lattice.connection import (
    ConnectionRefused,
    NatsAddress,
    NatsCredentials,
    connect_nats,
)
from host_agent.lattice.jetstream import ensure_kv, follow, open_kv
from host_agent.lattice.subjects import (
    CtlSubjects,
    config_bucket,
    event_subject,
    links_bucket,
    provider_rpc_subject,
)
from host_agent.security.authority import LatticeAuthority
from host_agent.security.jwt import Permissions, public_key
from host_agent.security.permissions import Role
from pulumi_wasmcloud.provision.nats_config import (
    ClusterSettings,
    JetStreamSettings,
    LeafNodeSettings,
    LeafRemote,
    NatsServerSettings,
    OperatorModeSettings,
    render,
)
from tests.lattice import (
    VENV_BIN,
    ControllerProcess,
    HostProcess,
    RedisServer,
    counter_manifest,
    free_port,
    http_get,
    run_async,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

LATTICE = "blue"
OTHER = "green"
FIX = "give the tooling the lattice's credentials (the Lattice's `credentials` output)"
EVERYTHING = Permissions(pub_allow=(">",), sub_allow=(">",))
ROOT = Path(__file__).resolve().parents[2]
WASH = Path(os.environ.get("TOOLS", ROOT / ".tools")) / "wash" / "bin" / "wash"


def user_key(credentials: NatsCredentials) -> str:
    return public_key(credentials.seed, "user seed")


def secret_file(path: Path, text: str) -> Path:
    path.touch(0o600)
    path.write_text(text)
    return path


def wait_for_line(log: Path, text: str, count: int = 1, timeout: float = 20.0) -> None:
    """Until ``log`` holds ``text`` ``count`` times (nats-server says what it did)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{log.name}: no {count}x {text!r} within {timeout:g}s")


@dataclass
class Node:
    """One nats-server of a lattice, run from the config nats_config renders; changed
    settings are applied the way `up` applies them: rewrite the config, signal reload."""

    name: str
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    reloads: int = 0

    @property
    def config(self) -> Path:
        return self.workdir / f"{self.name}.conf"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def address(self) -> NatsAddress:
        return NatsAddress("127.0.0.1", self.port)

    def write(self, authority: LatticeAuthority, **fields: Any) -> None:
        settings = NatsServerSettings.model_validate(
            {
                "server_name": self.name,
                "host": "127.0.0.1",
                "client_port": self.port,
                "monitoring_port": None,
                "operator": OperatorModeSettings.from_auth(authority.server_auth()),
                **fields,
            }
        )
        self.config.write_text(render(settings))

    def start(self) -> Node:
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "nats-server"), "-c", str(self.config)],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        wait_for_line(self.log, "Server is ready")
        return self

    def reload(self) -> None:
        assert self.proc is not None
        subprocess.run(
            [str(VENV_BIN / "nats-server"), "--signal", f"reload={self.proc.pid}"], check=True
        )
        self.reloads += 1
        wait_for_line(self.log, "Reloaded server configuration", self.reloads)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        node.stop()


class Watched:
    """A client connection whose disconnects, closing and server errors are events."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.changed = asyncio.Event()
        self.nc: NatsClient

    def _note(self, what: str) -> None:
        self.events.append(what)
        self.changed.set()

    async def on_disconnect(self) -> None:
        self._note("disconnected")

    async def on_close(self) -> None:
        # nats-py keeps the server's last -ERR (why it closed) rather than reporting it.
        self._note(f"closed: {self.nc.last_error}")

    async def on_error(self, error: Exception) -> None:
        self._note(f"error: {error}")

    async def wait_for(self, wanted: str, timeout: float = 15.0) -> None:
        async def seen() -> None:
            while not any(wanted in event for event in self.events):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(seen(), timeout)


@asynccontextmanager
async def watched(
    node: Node, credentials: NatsCredentials, *, reconnect: bool = True
) -> AsyncIterator[Watched]:
    client = Watched()
    client.nc = await connect_nats(
        node.address,
        credentials,
        who="test client",
        fix=FIX,
        allow_reconnect=reconnect,
        max_reconnect_attempts=2,
        reconnect_time_wait=0.2,
        disconnected_cb=client.on_disconnect,
        closed_cb=client.on_close,
        error_cb=client.on_error,
    )
    try:
        yield client
    finally:
        with suppress(Exception):
            await client.nc.close()


async def refusal(node: Node, credentials: NatsCredentials | None, who: str = "tooling") -> str:
    with pytest.raises(ConnectionRefused) as refused:
        nc = await connect_nats(
            node.address, credentials, who=who, fix=FIX, max_reconnect_attempts=0
        )
        await nc.close()
    return str(refused.value)


@run_async
async def test_no_foreign_revoked_or_expired_credentials_are_refused_naming_them(
    tmp_path: Path, nodes: list[Node]
) -> None:
    authority = LatticeAuthority.create(LATTICE)
    issuer = authority.user_issuer()
    tooling = issuer.issue(Role.TOOLING, "wash", LATTICE)
    revoked = issuer.issue(Role.TOOLING, "former admin", LATTICE)
    authority = authority.revoke(user_key(revoked), at=int(time.time()))
    node = Node("core-1", tmp_path)
    node.write(authority)
    nodes.append(node.start())

    async with watched(node, tooling) as client:
        assert client.nc.is_connected
    # A host granted many link targets has a JWT over nats-server's default 4 KiB CONNECT
    # line; operator mode raises the limit so it still gets in.
    many = issuer.issue(Role.HOST, "h", LATTICE, link_targets=[f"c{i}" for i in range(150)])
    assert len(many.jwt) > 4096
    async with watched(node, many) as client:
        assert client.nc.is_connected

    url = node.address.url
    for credentials in (
        None,
        LatticeAuthority.create(OTHER).user_issuer().issue(Role.TOOLING, "wash", OTHER),
        revoked,
    ):
        message = await refusal(node, credentials)
        assert message.startswith(f"NATS at {url} refused the tooling's connection (")
        assert "authorization violation" in message.lower() and message.endswith(f"): {FIX}")
        if credentials is not None:
            assert credentials.seed not in message

    expired_at = int(time.time()) - 1
    expired = issuer.issue(Role.TOOLING, "wash", LATTICE, expires_at=expired_at)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expired_at))
    assert await refusal(node, expired) == (
        f"NATS at {url} refused the tooling's connection (its user JWT expired at {stamp}): "
        "give it a new user JWT (`pulumi up` issues new ones for the users it made)"
    )

    # A real host given expired credentials stops at once and says why.
    creds = secret_file(tmp_path / "host.creds", expired.creds())
    host = HostProcess(
        node,  # type: ignore[arg-type]
        {},
        *("--nats-creds", str(creds)),
        lattice=LATTICE,
        log=tmp_path / "host.log",
    )
    assert host.proc.wait(timeout=30) == 1
    host.stop()
    said = host.log.read_text()
    assert f"refused the host's connection (its user JWT expired at {stamp})" in said
    assert expired.seed not in said


@run_async
async def test_a_user_whose_jwt_expires_while_connected_is_dropped(
    tmp_path: Path, nodes: list[Node]
) -> None:
    authority = LatticeAuthority.create(LATTICE)
    node = Node("core-1", tmp_path)
    node.write(authority)
    nodes.append(node.start())
    short = authority.user_issuer().issue(
        Role.TOOLING, "wash", LATTICE, expires_at=int(time.time()) + 3
    )
    async with watched(node, short) as client:
        await client.wait_for("closed", timeout=20)  # dropped at expiry, not let back
    assert client.events[0] == "disconnected"
    assert client.events[-1] == "closed: nats: user authentication expired", client.events


@run_async
async def test_a_revoked_user_is_dropped_from_every_cluster_and_leaf_node_and_cannot_rejoin(
    tmp_path: Path, nodes: list[Node]
) -> None:
    authority = LatticeAuthority.create(LATTICE)
    issuer = authority.user_issuer()
    leaf_creds = secret_file(tmp_path / "leaf.creds", issuer.issue_with(EVERYTHING, "leaf").creds())
    core1, core2, edge = (Node(name, tmp_path) for name in ("core-1", "core-2", "edge-1"))
    route1, route2, leaf_port = free_port(), free_port(), free_port()

    def write_all(authority: LatticeAuthority) -> None:
        core1.write(
            authority,
            cluster=ClusterSettings(name="core", port=route1, routes=[f"127.0.0.1:{route2}"]),
            leafnodes=LeafNodeSettings(listen_port=leaf_port),
        )
        core2.write(
            authority,
            cluster=ClusterSettings(name="core", port=route2, routes=[f"127.0.0.1:{route1}"]),
        )
        edge.write(
            authority,
            leafnodes=LeafNodeSettings(
                remotes=[
                    LeafRemote(
                        urls=[f"127.0.0.1:{leaf_port}"],
                        account=authority.account_public_key,
                        credentials=str(leaf_creds),
                    )
                ]
            ),
        )

    write_all(authority)
    for node in (core1, core2, edge):
        nodes.append(node.start())
    wait_for_line(core1.log, "Route connection created")
    wait_for_line(core1.log, "Leafnode connection created")

    victim = issuer.issue(Role.TOOLING, "stolen laptop", LATTICE)
    bystander = issuer.issue_with(EVERYTHING, "bystander")
    async with (
        watched(core2, victim, reconnect=False) as victim_core,
        watched(edge, victim, reconnect=False) as victim_edge,
        watched(core1, bystander) as on_core1,
        watched(edge, bystander) as on_edge,
    ):
        # Traffic crosses the route and the leaf connection before and after.
        async def round_trip(tag: str) -> None:
            sub = await on_core1.nc.subscribe(f"check.{tag}")
            await on_core1.nc.flush()
            for _ in range(100):  # interest crosses the leaf connection asynchronously
                await on_edge.nc.publish(f"check.{tag}", tag.encode())
                with suppress(nats.errors.TimeoutError):
                    assert (await sub.next_msg(timeout=0.1)).data == tag.encode()
                    break
            else:
                raise AssertionError(f"check.{tag} never crossed from edge-1 to core-1")
            await sub.unsubscribe()

        await round_trip("before")
        authority = authority.revoke(user_key(victim), at=int(time.time()))
        write_all(authority)
        for node in (core1, core2, edge):
            node.reload()
        await victim_core.wait_for("closed")
        await victim_edge.wait_for("closed")
        assert victim_core.events[-1] == "closed: nats: user authentication revoked", (
            victim_core.events
        )
        assert victim_edge.events[-1] == "closed: nats: user authentication revoked", (
            victim_edge.events
        )
        await round_trip("after")
        assert on_core1.events == [] and on_edge.events == []  # never dropped
        for node in (core1, core2, edge):
            message = await refusal(node, victim)
            assert "authorization violation" in message.lower()
        # The same user, re-issued after the revocation, may come back (a new JWT).
        async with watched(core2, issuer.issue(Role.TOOLING, "new laptop", LATTICE)):
            pass


@run_async
async def test_a_running_host_and_controller_whose_users_are_revoked_stop_and_say_why(
    tmp_path: Path, nodes: list[Node]
) -> None:
    authority = LatticeAuthority.create(LATTICE)
    issuer = authority.user_issuer()
    node = Node("core-1", tmp_path)
    jetstream = JetStreamSettings(store_dir=str(tmp_path / "js"))
    node.write(authority, jetstream=jetstream)
    nodes.append(node.start())
    host_creds = issuer.issue(Role.HOST, "host-1", LATTICE)
    controller_creds = issuer.issue(Role.CONTROLLER, "wadm", LATTICE)
    host = HostProcess(
        node,  # type: ignore[arg-type]
        {},
        *("--nats-creds", str(secret_file(tmp_path / "host.creds", host_creds.creds()))),
        lattice=LATTICE,
        log=tmp_path / "host.log",
    )
    controller = ControllerProcess(
        node,  # type: ignore[arg-type]
        *("--nats-creds", str(secret_file(tmp_path / "wadm.creds", controller_creds.creds()))),
        lattice=LATTICE,
        log=tmp_path / "controller.log",
    )
    try:
        controller.controller_id()  # it logs its id once it serves
        async with watched(node, issuer.issue(Role.TOOLING, "wash", LATTICE)) as tooling:
            deadline = time.monotonic() + 60
            while True:  # until the host answers pings (bounded)
                with suppress(nats.errors.TimeoutError, nats.errors.NoRespondersError):
                    await tooling.nc.request(CtlSubjects(LATTICE).host_ping(), b"", timeout=0.5)
                    break
                assert time.monotonic() < deadline, "the host never answered a ping"
                assert host.proc.poll() is None, host.log.read_text()
                await asyncio.sleep(0.1)
        for creds in (host_creds, controller_creds):
            authority = authority.revoke(user_key(creds), at=int(time.time()))
        node.write(authority, jetstream=jetstream)
        node.reload()
        assert host.proc.wait(timeout=30) == 1
        assert controller.proc.wait(timeout=30) == 1
    finally:
        host.stop()
        controller.stop()
    url = node.address.url
    for process, who, creds in (
        (host, "host", host_creds),
        (controller, "controller", controller_creds),
    ):
        said = process.log.read_text()
        assert (
            f"NATS at {url} refused the {who}'s connection (nats: user authentication revoked): "
            f"the server does not accept th"
        ) in said, said[-2000:]
        assert creds.seed not in said


@run_async
async def test_roles_keep_their_buckets_through_a_jetstream_domain_from_a_leaf_node(
    tmp_path: Path, nodes: list[Node]
) -> None:
    """The edge-core shape: JetStream only on the hub (domain `core`); a host, the
    controller and tooling on the leaf reach it as `$JS.core.API`, each as its role."""
    authority = LatticeAuthority.create(LATTICE)
    issuer = authority.user_issuer()
    leaf_creds = secret_file(tmp_path / "leaf.creds", issuer.issue_with(EVERYTHING, "leaf").creds())
    hub, edge, leaf_port = Node("core-1", tmp_path), Node("edge-1", tmp_path), free_port()
    hub.write(
        authority,
        jetstream=JetStreamSettings(store_dir=str(tmp_path / "js"), domain="core"),
        leafnodes=LeafNodeSettings(listen_port=leaf_port),
    )
    edge.write(
        authority,
        leafnodes=LeafNodeSettings(
            remotes=[
                LeafRemote(
                    urls=[f"127.0.0.1:{leaf_port}"],
                    account=authority.account_public_key,
                    credentials=str(leaf_creds),
                )
            ]
        ),
    )
    nodes += [hub.start(), edge.start()]
    wait_for_line(hub.log, "Leafnode connection created")

    def user(role: Role) -> NatsCredentials:
        return issuer.issue(role, str(role), LATTICE, js_domain="core")

    async with (
        watched(edge, user(Role.TOOLING)) as tooling,
        watched(edge, user(Role.HOST)) as host,
        watched(edge, user(Role.CONTROLLER)) as controller,
    ):
        # Tooling makes the lattice's buckets, as `up` does on a cluster.
        tooling_js = tooling.nc.jetstream(domain="core", timeout=5)
        for _ in range(100):  # the leaf's interest in the hub's API crosses asynchronously
            with suppress(nats.errors.NoRespondersError, nats.errors.TimeoutError):
                await tooling_js.account_info()
                break
        else:
            raise AssertionError("$JS.core.API never answered through the leaf node")
        for bucket in (links_bucket(LATTICE), config_bucket(LATTICE)):
            await ensure_kv(tooling_js, bucket, 1)
        # The host writes and follows its links bucket.
        links = await open_kv(host.nc.jetstream(domain="core", timeout=5), links_bucket(LATTICE))
        changes = follow(links)
        first = asyncio.ensure_future(anext(changes))
        await links.put("link", b"v1")
        assert (await asyncio.wait_for(first, 10)).value == b"v1"
        assert (await links.get("link")).value == b"v1"
        await changes.aclose()  # type: ignore[attr-defined]  # an async generator
        # The controller keeps its manifests.
        manifests = await ensure_kv(
            controller.nc.jetstream(domain="core", timeout=5), "wadm_manifests", 1
        )
        await manifests.put("blue-app", b"{}")
        assert (await manifests.get("blue-app")).value == b"{}"
        # Tooling reads the host's bucket but may not write it.
        readonly = await open_kv(
            tooling.nc.jetstream(domain="core", timeout=1), links_bucket(LATTICE)
        )
        assert (await readonly.get("link")).value == b"v1"
        with pytest.raises(nats.errors.TimeoutError):  # the server drops it: no ack
            await readonly.put("link", b"forged")
        await tooling.wait_for("permissions violation for publish")
        assert (await links.get("link")).value == b"v1"
        for client in (host, controller):
            assert not any("violation" in event for event in client.events), client.events
    # The same users on a node of the domain itself: it maps `$JS.core.API` to `$JS.API`
    # before it checks their permissions.
    async with watched(hub, user(Role.HOST)) as host_on_hub:
        links = await open_kv(
            host_on_hub.nc.jetstream(domain="core", timeout=5), links_bucket(LATTICE)
        )
        await links.put("link", b"v2")
        assert (await links.get("link")).value == b"v2"
        assert not any("violation" in event for event in host_on_hub.events)


class Observer:
    """A user allowed everything in the lattice's account, recording what arrives; a
    barrier published by the same client after an attempt proves the attempt was (or
    was not) delivered: NATS keeps one connection's messages in order."""

    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc
        self.received: list[str] = []
        self.changed = asyncio.Event()

    async def start(self) -> None:
        async def record(msg: Msg) -> None:
            self.received.append(msg.subject)
            self.changed.set()

        await self.nc.subscribe(">", cb=record)
        await self.nc.flush()

    async def delivered(self, attempt: str, barrier: str) -> bool:
        async def until_barrier() -> None:
            while barrier not in self.received:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until_barrier(), 10)
        return attempt in self.received


@run_async
async def test_a_hosts_credentials_cannot_reach_another_lattice(
    tmp_path: Path, nodes: list[Node]
) -> None:
    blue, green = LatticeAuthority.create(LATTICE), LatticeAuthority.create(OTHER)
    blue_node, green_node = Node("blue-1", tmp_path), Node("green-1", tmp_path)
    blue_node.write(blue)
    green_node.write(green)
    nodes += [blue_node.start(), green_node.start()]
    host_creds = blue.user_issuer().issue(Role.HOST, "host-1", LATTICE)

    # Not on the other lattice's NATS at all: its operator never signed this account.
    assert "authorization violation" in (await refusal(green_node, host_creds, "host")).lower()

    # And on a NATS where both lattices' subjects meet (one account), only its own.
    everything = blue.user_issuer().issue_with(EVERYTHING, "observer")
    async with watched(blue_node, host_creds) as host, watched(blue_node, everything) as watcher:
        observer = Observer(watcher.nc)
        await observer.start()
        green_ctl = CtlSubjects(OTHER)
        for index, subject in enumerate(
            (
                green_ctl.host_ping(),
                event_subject(OTHER, "host_heartbeat"),
                f"{OTHER}.counter.wrpc.0.0.1.wasi:http/incoming-handler@0.2.0.handle",
                provider_rpc_subject(OTHER, "VKV", "linkdefs.put"),
                f"$KV.{links_bucket(OTHER)}.link",
                f"$JS.API.DIRECT.GET.KV_{links_bucket(OTHER)}.$KV.{links_bucket(OTHER)}.x",
            )
        ):
            await host.nc.publish(subject, b"x")
            barrier = event_subject(LATTICE, f"probe.{index}")
            await host.nc.publish(barrier, b"")
            assert not await observer.delivered(subject, barrier), subject
            await host.wait_for(f'permissions violation for publish to "{subject}"'.lower())
        for subject in (green_ctl.wildcard(), f"{OTHER}.*.wrpc.>", event_subject(OTHER, ">")):
            await host.nc.subscribe(subject)
            await host.wait_for(f'permissions violation for subscription to "{subject}"'.lower())
        # Its own lattice's subjects it does use.
        barrier = event_subject(LATTICE, "probe.own")
        await host.nc.publish(barrier, b"")
        assert await observer.delivered(barrier, barrier)
        assert host.nc.is_connected and "disconnected" not in host.events


@dataclass
class SecuredLattice:
    node: Node
    issuer_state: dict[str, str]
    tooling: Path
    processes: list[HostProcess | ControllerProcess]


@pytest.fixture
def secured(tmp_path: Path, nodes: list[Node]) -> Iterator[SecuredLattice]:
    """A lattice in operator mode with a real controller and host, each with its own
    role credentials (and link grants on, so components and providers may call out)."""
    authority = LatticeAuthority.create(LATTICE)
    issuer = authority.user_issuer()
    node = Node("core-1", tmp_path)
    node.write(authority, jetstream=JetStreamSettings(store_dir=str(tmp_path / "js")))
    nodes.append(node.start())
    files = {
        role: secret_file(tmp_path / f"{role}.creds", issuer.issue(role, role, LATTICE).creds())
        for role in (Role.HOST, Role.CONTROLLER, Role.TOOLING)
    }
    grant_issuer = secret_file(tmp_path / "issuer.json", json.dumps(issuer.to_state()))
    controller = ControllerProcess(
        node,  # type: ignore[arg-type]
        *("--nats-creds", str(files[Role.CONTROLLER])),
        *("--grant-issuer-file", str(grant_issuer)),
        lattice=LATTICE,
        log=tmp_path / "controller.log",
    )
    host = HostProcess(
        node,  # type: ignore[arg-type]
        {"zone": "secured"},
        *("--allow-file-load", "--link-grants", "--nats-creds", str(files[Role.HOST])),
        lattice=LATTICE,
        log=tmp_path / "host.log",
    )
    lattice = SecuredLattice(node, issuer.to_state(), files[Role.TOOLING], [controller, host])
    yield lattice
    for process in lattice.processes:
        process.stop()


def wash(lattice: SecuredLattice, home: Path, *args: str) -> Any:
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        [
            str(WASH),
            *args,
            *("--ctl-host", "127.0.0.1", "--ctl-port", str(lattice.node.port)),
            *("--ctl-credsfile", str(lattice.tooling), "-x", LATTICE, "-o", "json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HOME": str(home), "WASH_DISABLE_TELEMETRY": "1"},
    )
    assert done.returncode == 0, f"wash {' '.join(args)}: {done.stdout}{done.stderr}"
    return json.loads(done.stdout)


def until(check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:g}s; last: {last!r}")


def answer(url: str) -> tuple[int, bytes] | None:
    try:
        return http_get(url)
    except OSError:  # the http-server provider is not listening yet
        return None


@pytest.mark.skipif(not WASH.exists(), reason=f"real wash is not built ({WASH}): make test-tools")
def test_every_role_does_its_job_with_its_own_credentials(
    secured: SecuredLattice, tmp_path: Path
) -> None:
    """wash 0.39 with the tooling user deploys the counter; the controller (its user)
    places it on the host (its user), whose providers serve HTTP and Redis and call
    the component and back through link grants."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        home = tmp_path / "home"
        hosts = until(lambda: wash(secured, home, "get", "hosts")["hosts"], "the host answers")
        assert [h["labels"]["zone"] for h in hosts] == ["secured"]
        port = free_port()
        manifest = tmp_path / "wadm.yaml"
        manifest.write_text(yaml.safe_dump(counter_manifest(redis.url, port)))
        assert wash(secured, home, "app", "deploy", str(manifest))["deployed"] is True
        url = f"http://127.0.0.1:{port}/secured"
        until(lambda: answer(url) == (200, b"secured -> 1"), "the counter answers", 90)
        assert answer(url) == (200, b"secured -> 2")
        status = wash(secured, home, "app", "status", "counter")
        assert status["status"]["status"]["type"] == "deployed"
        [inventory] = wash(secured, home, "get", "inventory")["inventories"]
        assert {c["id"] for c in inventory["components"]} == {"counter-counter"}
        assert len(inventory["providers"]) == 2
    finally:
        redis.stop()
    for log in ("host.log", "controller.log"):
        assert "permissions violation" not in (tmp_path / log).read_text().lower(), log
