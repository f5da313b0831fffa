"""A secured lattice's NATS for the benchmarks that compare secured with plain in one run:
nats-server in operator mode (the lattice's own authority, host_agent/security/authority.py)
with mutual TLS on its client listener (a private CA, host_agent/security/tls.py), its
config rendered by pulumi_wasmcloud/provision/nats_config.py as a machine lattice runs it,
and every process on its own role user and client certificate: the host (with link
grants, as a secured lattice runs it), the controller (which signs the grants), and the
benchmark's own clients (tooling, or a host-role user allowed to call given link targets).
Private material goes into 0600 files in the run's temporary folder, never on a command
line.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from nats.aio.client import Client as NatsClient

from host_agent.lattice.connection import ClientTls, NatsAddress, connect_nats
from host_agent.security.authority import LatticeAuthority
from host_agent.security.jwt import Permissions
from host_agent.security.permissions import Role
from host_agent.security.tls import CertificateAuthority
from pulumi_wasmcloud.provision.nats_config import (
    JetStreamSettings,
    NatsServerSettings,
    OperatorModeSettings,
    TlsFiles,
    render,
)
from tests.lattice import VENV_BIN, free_port


def private_file(path: Path, text: str) -> str:
    """``text`` in a new file only its owner reads (0600); returns the path."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    return str(path)


@dataclass(frozen=True)
class RoleFiles:
    """One identity's .creds file and client certificate pair, as paths."""

    creds: str
    cert: str
    key: str


@dataclass
class SecuredNats:
    """nats-server in operator mode with mutual TLS and JetStream; ``port`` and ``stop``
    as tests.lattice.NatsServer has them, so HostProcess and ControllerProcess take it."""

    workdir: Path
    lattice: str = "default"
    tls: bool = True  # False: operator mode alone (what authentication costs without TLS)
    port: int = field(default_factory=free_port)
    authority: LatticeAuthority = field(init=False)
    ca: CertificateAuthority = field(init=False)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.authority = LatticeAuthority.create(self.lattice)
        self.ca = CertificateAuthority.create(f"lattice {self.lattice} CA", now=self.now())
        self.ca_file = private_file(self.workdir / "ca.pem", self.ca.cert_pem)

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    @property
    def address(self) -> NatsAddress:
        return NatsAddress("127.0.0.1", self.port, tls=self.tls)

    @property
    def url(self) -> str:
        return self.address.url

    def start(self) -> SecuredNats:
        server = self.ca.issue_server(
            "nats", dns_names=["localhost"], ip_addresses=["127.0.0.1"], now=self.now()
        )
        settings = NatsServerSettings(
            server_name=f"bench-{self.port}",
            host="127.0.0.1",
            client_port=self.port,
            monitoring_port=None,
            jetstream=JetStreamSettings(store_dir=str(self.workdir / "jetstream")),
            operator=OperatorModeSettings.from_auth(self.authority.server_auth()),
            tls=TlsFiles(
                cert_file=private_file(self.workdir / "server.pem", server.cert_pem),
                key_file=private_file(self.workdir / "server.key", server.key_pem),
                ca_file=self.ca_file,
                verify=True,  # mutual TLS, as on machines
            )
            if self.tls
            else None,
        )
        config = private_file(self.workdir / "nats.conf", render(settings))
        log = self.workdir / "nats.log"
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "nats-server"), "-c", config],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while "Server is ready" not in log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"secured nats-server did not start: {log.read_text()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def identity(
        self, role: Role, name: str, link_targets: Sequence[str] = ()
    ) -> tuple[RoleFiles, ClientTls]:
        """A user of ``role`` (allowed to invoke ``link_targets`` over wRPC) and its
        client certificate: as files, and as the ClientTls a client in this process uses."""
        user = self.authority.user_issuer().issue(
            role, name, self.lattice, link_targets=link_targets
        )
        pair = self.ca.issue_client(name, now=self.now())
        files = RoleFiles(
            creds=private_file(self.workdir / f"{name}.creds", user.creds()),
            cert=private_file(self.workdir / f"{name}.pem", pair.cert_pem),
            key=private_file(self.workdir / f"{name}.key", pair.key_pem),
        )
        return files, ClientTls(self.ca.cert_pem, pair.cert_pem, pair.key_pem)

    def host_args(self, name: str = "host") -> list[str]:
        """wasmcloud-host flags: its HOST user, the CA, its client pair, link grants."""
        files, _ = self.identity(Role.HOST, name)
        tls = ("--tls-ca-path", self.ca_file, "--nats-tls-cert", files.cert)
        return [
            *("--nats-creds", files.creds, "--link-grants"),
            *((*tls, "--nats-tls-key", files.key) if self.tls else ()),
        ]

    def controller_args(self) -> list[str]:
        """wasmcloud-controller flags: its CONTROLLER user, the CA, its client pair, and
        the user issuer it signs link grants with."""
        files, _ = self.identity(Role.CONTROLLER, "controller")
        issuer = json.dumps(self.authority.user_issuer().to_state())
        tls = ("--nats-tls-ca-file", self.ca_file, "--nats-tls-cert", files.cert)
        return [
            *("--nats-creds", files.creds),
            *((*tls, "--nats-tls-key", files.key) if self.tls else ()),
            *("--grant-issuer-file", private_file(self.workdir / "issuer.json", issuer)),
        ]

    async def connect(
        self,
        role: Role = Role.TOOLING,
        name: str = "bench",
        link_targets: Sequence[str] = (),
        permissions: Permissions | None = None,
    ) -> NatsClient:
        """A client of this process over mutual TLS, as a new ``role`` user (allowed to
        invoke ``link_targets``), or a user with exactly ``permissions``."""
        issuer = self.authority.user_issuer()
        user = (
            issuer.issue_with(permissions, name)
            if permissions is not None
            else issuer.issue(role, name, self.lattice, link_targets=link_targets)
        )
        pair = self.ca.issue_client(name, now=self.now())
        return await connect_nats(
            self.address,
            user,
            who=f"benchmark client {name}",
            fix="the benchmark's secured nats-server should let its own users in",
            tls=ClientTls(self.ca.cert_pem, pair.cert_pem, pair.key_pem) if self.tls else None,
        )
