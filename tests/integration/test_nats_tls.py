"""TLS on the real nats-server 2.12.1, configured by what
pulumi_wasmcloud/provision/nats_config.py renders, with certificates from
host_agent/security/tls.py: a mutual-TLS client is let in; a client with no certificate,
one from another CA, an expired one, or one that does not trust the server is told why
(by connect_nats and by the host's CLI), at once instead of retrying forever; a server
certificate rotated by a config reload leaves connected clients connected; cluster routes
and leaf nodes connect over mutual TLS and an untrusted node or leaf is refused; and a real
host, controller and providers run an application over mutual TLS.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from host_agent.lattice.connection import ClientTls, NatsAddress, TlsRefused, connect_nats
from host_agent.lattice.wadm import WadmClient
from host_agent.security.tls import CertificateAuthority, KeyPairPem, due_for_rotation
from pulumi_wasmcloud.provision.nats_config import (
    ClusterSettings,
    JetStreamSettings,
    LeafNodeSettings,
    LeafRemote,
    NatsServerSettings,
    TlsFiles,
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

NOW = datetime.now(UTC)
FIX = "give the test client the lattice's CA and a client certificate"


def secret_file(path: Path, text: str) -> str:
    """Write ``text`` 0600 the way `up` writes key files: a new file renamed into place,
    so a reloading server never reads half a key."""
    fresh = path.with_name(path.name + ".new")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(fresh, path)
    return str(path)


def wait_for_line(log: Path, text: str, count: int = 1, timeout: float = 20.0) -> None:
    """Until ``log`` holds ``text`` ``count`` times (nats-server says what it did)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{log.name}: no {count}x {text!r} within {timeout:g}s")


@dataclass
class Pki:
    """The lattice's CA (and a stranger's), and the files a machine would hold."""

    folder: Path
    ca: CertificateAuthority = field(
        default_factory=lambda: CertificateAuthority.create("lattice CA", now=NOW)
    )
    other: CertificateAuthority = field(
        default_factory=lambda: CertificateAuthority.create("another CA", now=NOW)
    )

    def ca_file(self, ca: CertificateAuthority | None = None) -> str:
        ca = ca or self.ca
        name = "ca.pem" if ca is self.ca else "other-ca.pem"
        return secret_file(self.folder / name, ca.cert_pem)

    def pair_files(self, name: str, pair: KeyPairPem) -> tuple[str, str]:
        return (
            secret_file(self.folder / f"{name}.pem", pair.cert_pem),
            secret_file(self.folder / f"{name}.key", pair.key_pem),
        )

    def server(self, name: str, ca: CertificateAuthority | None = None) -> KeyPairPem:
        return (ca or self.ca).issue_server(
            name, dns_names=["localhost"], ip_addresses=["127.0.0.1"], now=NOW
        )

    def listener(
        self, name: str, pair: KeyPairPem, ca: CertificateAuthority | None = None
    ) -> TlsFiles:
        cert, key = self.pair_files(name, pair)
        return TlsFiles(cert_file=cert, key_file=key, ca_file=self.ca_file(ca))

    def client(self, name: str = "tooling") -> ClientTls:
        pair = self.ca.issue_client(name, now=NOW)
        return ClientTls(self.ca.cert_pem, pair.cert_pem, pair.key_pem)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    folder = tmp_path / "pki"
    folder.mkdir(mode=0o700)
    return Pki(folder)


@dataclass
class Node:
    """One nats-server run from the config nats_config renders."""

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

    def write(self, **fields: Any) -> None:
        settings = NatsServerSettings.model_validate(
            {
                "server_name": self.name,
                "host": "127.0.0.1",
                "client_port": self.port,
                "monitoring_port": None,
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
def nodes() -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        node.stop()


def tls_node(
    pki: Pki, workdir: Path, nodes: list[Node], name: str = "core-1", **fields: Any
) -> Node:
    node = Node(name, workdir)
    node.write(tls=pki.listener(name, pki.server(name)), **fields)
    nodes.append(node.start())
    return node


class Watched:
    """A client connection whose disconnects and errors are events."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.nc: NatsClient

    async def on_disconnect(self) -> None:
        self.events.append("disconnected")

    async def on_error(self, error: Exception) -> None:
        self.events.append(f"error: {error}")


@asynccontextmanager
async def watched(node: Node, tls: ClientTls) -> AsyncIterator[Watched]:
    client = Watched()
    client.nc = await connect_nats(
        node.address,
        None,
        who="test client",
        fix=FIX,
        tls=tls,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        disconnected_cb=client.on_disconnect,
        error_cb=client.on_error,
    )
    try:
        yield client
    finally:
        await client.nc.close()


async def round_trip(nc: NatsClient, subject: str) -> None:
    """A request to a responder on the same connection: the connection carries traffic."""

    async def echo(msg: Msg) -> None:
        await msg.respond(b"pong:" + msg.data)

    sub = await nc.subscribe(subject, cb=echo)
    try:
        assert (await nc.request(subject, b"ping", timeout=5)).data == b"pong:ping"
    finally:
        await sub.unsubscribe()


async def refusal(node: Node, tls: ClientTls | None, host: str = "127.0.0.1") -> str:
    """What connect_nats raises for ``tls``, with nats-py told to retry forever: a TLS
    refusal must end the connect at its first attempt, not become an endless retry."""
    retried: list[Exception] = []

    async def on_error(error: Exception) -> None:  # what connect_nats did not judge fatal
        retried.append(error)

    with pytest.raises(TlsRefused) as refused:
        await asyncio.wait_for(
            connect_nats(
                NatsAddress(host, node.port),
                None,
                who="host",
                fix=FIX,
                tls=tls,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.2,
                error_cb=on_error,
            ),
            15,
        )
    assert retried == [], f"{refused.value} came only after retrying: {retried}"
    return str(refused.value)


async def served_certificate(node: Node, tls: ClientTls) -> x509.Certificate:
    """The certificate a new connection to ``node`` is shown now."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    try:
        assert (await reader.readline()).startswith(b"INFO")
        await writer.start_tls(tls.context(), server_hostname="127.0.0.1")
        ssl_object = writer.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        der = ssl_object.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)
    finally:
        writer.close()


@run_async
async def test_a_client_with_a_certificate_from_the_lattice_ca_is_let_in(
    tmp_path: Path, pki: Pki, nodes: list[Node]
) -> None:
    node = tls_node(pki, tmp_path, nodes)
    async with watched(node, pki.client()) as client:
        await round_trip(client.nc, "tls.check")
        assert client.nc.is_connected and client.events == []


@run_async
async def test_refused_clients_are_told_why_at_once(
    tmp_path: Path, pki: Pki, nodes: list[Node]
) -> None:
    node = tls_node(pki, tmp_path, nodes)
    stranger = pki.other.issue_client("intruder", now=NOW)
    expired = pki.ca.issue_client("old-host", now=NOW - timedelta(days=400), days=30)
    trusted = pki.ca.issue_client("host-1", now=NOW)
    expected = {
        "no client certificate": (
            ClientTls(pki.ca.cert_pem),
            ["requires a client certificate", "WASMCLOUD_NATS_TLS_CERT"],
        ),
        "another CA's certificate": (
            ClientTls(pki.ca.cert_pem, stranger.cert_pem, stranger.key_pem),
            ["does not trust the CA that signed this client's certificate", "'CN=another CA'"],
        ),
        "an expired certificate": (
            ClientTls(pki.ca.cert_pem, expired.cert_pem, expired.key_pem),
            ["expired", f"expired at {(NOW - timedelta(days=370)).strftime('%Y-%m-%d')}"],
        ),
        "a client that trusts another CA": (
            ClientTls(pki.other.cert_pem, trusted.cert_pem, trusted.key_pem),
            ["does not trust the server's certificate", "--tls-ca-path"],
        ),
        "a client without TLS settings": (None, ["requires TLS", "--tls-ca-path"]),
    }
    for case, (tls, phrases) in expected.items():
        message = await refusal(node, tls)
        for phrase in phrases:
            assert phrase in message, f"{case}: {phrase!r} not in {message!r}"
        assert "PRIVATE KEY" not in message, case
    # The name dialled must be one of the server certificate's SANs.
    named = Node("named", tmp_path)
    named.write(
        tls=pki.listener(
            "named", pki.ca.issue_server("named", dns_names=[], ip_addresses=["127.0.0.1"], now=NOW)
        )
    )
    nodes.append(named.start())
    assert "Hostname mismatch" in await refusal(named, pki.client(), host="localhost")


@run_async
async def test_a_tls_client_refuses_a_server_without_tls(tmp_path: Path, nodes: list[Node]) -> None:
    plain = Node("plain", tmp_path)
    plain.write()
    nodes.append(plain.start())
    ca = CertificateAuthority.create("lattice CA", now=NOW)
    message = await refusal(plain, ClientTls(ca.cert_pem))
    assert "the server does not use TLS" in message


def test_the_host_cli_names_the_refused_certificate(
    tmp_path: Path, pki: Pki, nodes: list[Node]
) -> None:
    node = tls_node(
        pki, tmp_path, nodes, jetstream=JetStreamSettings(store_dir=str(tmp_path / "js"))
    )
    expired = pki.ca.issue_client("old-host", now=NOW - timedelta(days=400), days=30)
    cert, key = pki.pair_files("old-host", expired)
    cases = {
        "expired": (["--nats-tls-cert", cert, "--nats-tls-key", key], "expired at"),
        "no certificate": ([], "requires a client certificate"),
    }
    for case, (args, phrase) in cases.items():
        done = subprocess.run(
            [sys.executable, "-m", "host_agent", "--nats-port", str(node.port), *args],
            env={**os.environ, "WASMCLOUD_TLS_CA_PATH": pki.ca_file()},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, f"{case}: {done.stderr}"
        assert phrase in done.stderr, f"{case}: {done.stderr}"
        assert "Traceback" not in done.stderr, case


@run_async
async def test_a_rotated_server_certificate_keeps_connected_clients_connected(
    tmp_path: Path, pki: Pki, nodes: list[Node]
) -> None:
    old = pki.server("core-1")
    node = Node("core-1", tmp_path)
    node.write(tls=pki.listener("core-1", old))
    nodes.append(node.start())
    tls = pki.client()
    assert (await served_certificate(node, tls)).serial_number == x509.load_pem_x509_certificate(
        old.cert_pem.encode()
    ).serial_number
    async with watched(node, tls) as client:
        await round_trip(client.nc, "before.rotation")
        # Eleven months on, `up` finds the certificate due and issues a new one.
        assert due_for_rotation(old.cert_pem, NOW + timedelta(days=340))
        new = pki.server("core-1")
        pki.pair_files("core-1", new)  # the same paths, so the config text is unchanged
        node.reload()
        served = await served_certificate(node, tls)
        assert (
            served.serial_number
            == x509.load_pem_x509_certificate(new.cert_pem.encode()).serial_number
        )
        await round_trip(client.nc, "after.rotation")
        assert client.nc.is_connected and client.events == []
        async with watched(node, tls) as newcomer:
            await round_trip(newcomer.nc, "newcomer")


@run_async
async def test_leaf_nodes_connect_over_mutual_tls_and_an_untrusted_leaf_is_refused(
    tmp_path: Path, pki: Pki, nodes: list[Node]
) -> None:
    leaf_port = free_port()
    hub = Node("hub", tmp_path)
    hub_pair = pki.server("hub")
    monitoring = free_port()
    hub.write(
        monitoring_port=monitoring,
        tls=pki.listener("hub", hub_pair),
        leafnodes=LeafNodeSettings(listen_port=leaf_port, tls=pki.listener("hub-leaf", hub_pair)),
    )

    def leaf_names() -> list[str]:
        status, body = http_get(f"http://127.0.0.1:{monitoring}/leafz")
        assert status == 200
        return sorted(leaf["name"] for leaf in json.loads(body)["leafs"])

    nodes.append(hub.start())

    def leaf(name: str, ca: CertificateAuthority) -> Node:
        node = Node(name, tmp_path)
        pair = pki.server(name, ca)
        node.write(
            tls=pki.listener(name, pair),
            leafnodes=LeafNodeSettings(
                remotes=[
                    # The leaf trusts the hub (the lattice CA) and shows its own certificate.
                    LeafRemote(
                        urls=[f"127.0.0.1:{leaf_port}"],
                        tls=pki.listener(f"{name}-remote", pair, pki.ca),
                    )
                ]
            ),
        )
        nodes.append(node.start())
        return node

    edge = leaf("edge", pki.ca)
    tls = pki.client()
    async with watched(hub, tls) as core, watched(edge, tls) as far:
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def got(msg: Msg) -> None:
            await received.put(msg.data)

        await core.nc.subscribe("leaf.check", cb=got)
        await core.nc.flush()

        # The hub's interest reaches the leaf node asynchronously: publish until it arrives.
        async def until_delivered() -> bytes:
            while True:
                await far.nc.publish("leaf.check", b"from the edge")
                try:
                    return await asyncio.wait_for(received.get(), 0.5)
                except TimeoutError:
                    continue

        assert await asyncio.wait_for(until_delivered(), 15) == b"from the edge"

    assert leaf_names() == ["edge"]
    # A leaf whose certificate another CA signed: the hub refuses the handshake (Go's
    # client offers no certificate the hub's CA list does not name) and never adds it.
    leaf("stranger", pki.other)
    wait_for_line(hub.log, "TLS leafnode handshake error")
    assert leaf_names() == ["edge"]


@run_async
async def test_cluster_routes_run_over_mutual_tls_and_an_untrusted_node_is_refused(
    tmp_path: Path, pki: Pki, nodes: list[Node]
) -> None:
    ports = {name: free_port() for name in ("core-1", "core-2", "stranger")}
    monitoring = free_port()

    def core(name: str, ca: CertificateAuthority, **fields: Any) -> Node:
        node = Node(name, tmp_path)
        pair = pki.server(name, ca)
        others = [f"127.0.0.1:{port}" for other, port in ports.items() if other != name]
        node.write(
            tls=pki.listener(name, pair),
            cluster=ClusterSettings(
                name="lattice",
                port=ports[name],
                routes=others[:1],
                # Routes dial with the node's certificate and trust the lattice's CA.
                tls=pki.listener(f"{name}-route", pair, pki.ca),
            ),
            **fields,
        )
        nodes.append(node.start())
        return node

    first = core("core-1", pki.ca, monitoring_port=monitoring)
    second = core("core-2", pki.ca)

    def route_names() -> list[str]:
        status, body = http_get(f"http://127.0.0.1:{monitoring}/routez")
        assert status == 200
        return sorted({route["remote_name"] for route in json.loads(body)["routes"]})

    tls = pki.client()
    async with watched(first, tls) as one, watched(second, tls) as two:
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def got(msg: Msg) -> None:
            await received.put(msg.data)

        await one.nc.subscribe("route.check", cb=got)
        await one.nc.flush()

        async def until_delivered() -> bytes:
            while True:
                await two.nc.publish("route.check", b"across the route")
                try:
                    return await asyncio.wait_for(received.get(), 0.5)
                except TimeoutError:
                    continue

        assert await asyncio.wait_for(until_delivered(), 15) == b"across the route"
    assert route_names() == ["core-2"]
    # A node whose certificate another CA signed cannot join the cluster.
    core("stranger", pki.other)
    wait_for_line(first.log, "TLS route handshake error")
    assert route_names() == ["core-2"]


def test_a_host_controller_and_providers_run_an_app_over_mutual_tls(
    tmp_path: Path, pki: Pki, nodes: list[Node]
) -> None:
    node = tls_node(
        pki, tmp_path, nodes, jetstream=JetStreamSettings(store_dir=str(tmp_path / "js"))
    )
    ca_file = pki.ca_file()
    host_cert, host_key = pki.pair_files("host-1", pki.ca.issue_client("host-1", now=NOW))
    ctl_cert, ctl_key = pki.pair_files("controller", pki.ca.issue_client("controller", now=NOW))
    redis = RedisServer(tmp_path / "redis").start()
    controller = ControllerProcess(
        node,  # type: ignore[arg-type]
        *("--nats-tls-ca-file", ca_file, "--nats-tls-cert", ctl_cert, "--nats-tls-key", ctl_key),
        log=tmp_path / "controller.log",
    )
    host = HostProcess(
        node,  # type: ignore[arg-type]
        {"zone": "tls"},
        *("--allow-file-load", "--tls-ca-path", ca_file),
        *("--nats-tls-cert", host_cert, "--nats-tls-key", host_key),
        log=tmp_path / "host.log",
    )
    port = free_port()
    try:

        async def deploy() -> None:
            async with watched(node, pki.client()) as tooling:
                wadm = WadmClient(tooling.nc)
                await wadm.put(counter_manifest(redis.url, port))
                await wadm.deploy("counter")

        controller.controller_id()  # it logs this once connected (over mutual TLS)
        asyncio.run(deploy())
        url = f"http://127.0.0.1:{port}/tls"
        deadline = time.monotonic() + 90
        answer: object = None
        while time.monotonic() < deadline and answer != (200, b"tls -> 1"):
            try:
                answer = http_get(url)
            except OSError:  # the http-server provider is not listening yet
                time.sleep(0.2)
        assert answer == (200, b"tls -> 1"), f"{answer}; host log: {host.log.read_text()[-2000:]}"
        # The providers (started by the host, connected with the TLS in their HostData)
        # carry no key in their command lines.
        children = subprocess.run(
            ["ps", "-o", "args=", "--ppid", str(host.proc.pid)], capture_output=True, text=True
        ).stdout
        assert "provider" in children and "PRIVATE KEY" not in children
    finally:
        host.stop()
        controller.stop()
        redis.stop()
