"""The local lattice's security (target ``local``): its own NATS authority, the users it
issues at create, and the files its processes and tools read.

A secured local lattice runs nats-server in operator mode on loopback: the Lattice
resource makes one ``LatticeAuthority`` (operator, system account, lattice account) at
create and keeps it, with the users it issued, as Pulumi secret outputs. The controller
connects as its own CONTROLLER user; tooling (the Pulumi provider, the ``wasmcloud`` CLI,
wash) as the TOOLING user of ``credentials``; each Host mints its own HOST user from
``userIssuer`` (the lattice account's signing key, never the account's own key).

TLS (``LocalTls``): the client listener on loopback presents a certificate of the lattice's
private CA (``caCert``, public; ``ca.pem`` in the state folder); ``up`` makes again what
expires within 30 days and has nats-server reload it.

What processes and tools read is written into the state folder, every file 0600 (owner
only) and written whole before it replaces the last one: the server's config (which holds
only public JWTs but is the server's trust anchor), ``controller.creds``, the user issuer
the controller signs link grants with, and ``nats.creds`` (the tooling user, so
``wasmcloud`` commands and ``wash --ctl-credsfile`` work on their own), and the secrets
backend's user (its sealing key reaches it in its environment). Nothing secret goes
on a command line.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from host_agent.local.credentials import CA_FILE, CREDS_FILE
from host_agent.secrets.access import backend_access
from host_agent.secrets.xkeys import XKey, XKeyError
from host_agent.security.jwt import JwtError, decode_claims
from host_agent.security.permissions import Role

# The authority, TLS (cryptography's x509), NATS and the secrets protocol are imported
# where a local lattice's security is made or read: a Lattice on machines or a Host never
# does, and every preview's plugin process would pay for them
# (tests/unit/test_provider_startup.py keeps it so).
if TYPE_CHECKING:
    from host_agent.lattice.connection import ClientTls, NatsCredentials
    from host_agent.security.authority import LatticeAuthority, UserIssuer
    from host_agent.security.tls import CertificateAuthority, KeyPairPem

CONFIG_FILE = "nats-server.conf"
SERVER_CERT_FILE = "nats-server-cert.pem"
SERVER_KEY_FILE = "nats-server-key.pem"
# What the server's certificate names: what local clients dial.
SERVER_DNS_NAMES = ("localhost",)
SERVER_IP_ADDRESSES = ("127.0.0.1",)
CONTROLLER_CREDS_FILE = "controller.creds"
# The lattice's user issuer, for the controller to sign the link grants hosts ask for
# (the only way their components and providers may call anything on a secured lattice).
GRANT_ISSUER_FILE = "grant-issuer.json"
# The Lattice's state keys that hold private material (Pulumi secrets).
SECRETS_CREDS_FILE = "secrets.creds"
SECRET_OUTPUTS = frozenset(
    {
        "authority",
        "userIssuer",
        "credentials",
        "controllerCredentials",
        "tls",
        "secretsKey",
        "secretsCredentials",
    }
)


class SecurityStateError(ValueError):
    """The security part of a Lattice's state does not read; the message says what to do."""


@dataclass(frozen=True)
class LocalTls:
    """TLS on the lattice's client listener: a private CA and the server's certificate.

    The server does not ask clients for certificates (``verify: false``): on loopback every
    client is already known by its NATS user, and wash 0.39 can give a CA
    (``--ctl-tls-ca-file``) but no client certificate, so mutual TLS would lock it out."""

    ca: CertificateAuthority
    server: KeyPairPem

    @classmethod
    def create(cls, lattice: str, now: datetime) -> LocalTls:
        from host_agent.security.tls import CertificateAuthority  # see the note on imports above

        ca = CertificateAuthority.create(f"lattice {lattice} CA", now=now)
        return cls(ca, _server_pair(ca, lattice, now))

    def rotated(self, lattice: str, now: datetime) -> LocalTls:
        """This TLS with what expires within 30 days made again (the server's certificate,
        or the CA and with it the server's); itself when nothing is due."""
        from host_agent.security.tls import due_for_rotation  # see the note on imports above

        if due_for_rotation(self.ca.cert_pem, now, field="tls.ca"):
            return LocalTls.create(lattice, now)
        if due_for_rotation(self.server.cert_pem, now, field="tls.server"):
            return LocalTls(self.ca, _server_pair(self.ca, lattice, now))
        return self

    def due(self, now: datetime) -> bool:
        from host_agent.security.tls import due_for_rotation  # see the note on imports above

        return any(
            due_for_rotation(pair.cert_pem, now, field=f"tls.{name}")
            for name, pair in (("ca", self.ca), ("server", self.server))
        )

    def to_state(self) -> dict[str, Any]:
        return {"ca": self.ca.to_state(), "server": self.server.to_state()}

    @classmethod
    def from_state(cls, state: object) -> LocalTls:
        from host_agent.security.tls import (  # see the note on imports above
            CertificateAuthority,
            KeyPairPem,
            TlsError,
        )

        if not isinstance(state, Mapping) or set(state) != {"ca", "server"}:
            raise TlsError("tls must be an object with ca and server")
        return cls(
            CertificateAuthority.from_state(state["ca"], "tls.ca"),
            KeyPairPem.from_state(state["server"], "tls.server"),
        )

    def client(self) -> ClientTls:
        from host_agent.lattice.connection import ClientTls  # see the note on imports above

        return ClientTls(self.ca.cert_pem)


def _server_pair(ca: CertificateAuthority, lattice: str, now: datetime) -> KeyPairPem:
    return ca.issue_server(
        server_name(lattice),
        dns_names=SERVER_DNS_NAMES,
        ip_addresses=SERVER_IP_ADDRESSES,
        now=now,
    )


@dataclass(frozen=True)
class LocalSecurity:
    """A secured local lattice's authority, the users it issued for itself, and its TLS."""

    authority: LatticeAuthority
    tooling: NatsCredentials
    controller: NatsCredentials
    tls: LocalTls
    # The NATS KV secrets backend (application secrets): the curve key its values are
    # sealed with at rest (an xkey seed) and its own user.
    secrets_key: str = field(repr=False)
    secrets_user: NatsCredentials

    @classmethod
    def create(cls, lattice: str, now: datetime) -> LocalSecurity:
        from host_agent.security.authority import LatticeAuthority  # see the note on imports above

        authority = LatticeAuthority.create(lattice)
        issuer = authority.user_issuer()
        return cls(
            authority,
            issuer.issue(Role.TOOLING, f"{lattice}-tooling", lattice),
            issuer.issue(Role.CONTROLLER, f"{lattice}-controller", lattice),
            LocalTls.create(lattice, now),
            XKey.generate().seed,
            _secrets_user(issuer, lattice),
        )

    def rotated(self, now: datetime) -> LocalSecurity:
        tls = self.tls.rotated(self.authority.lattice, now)
        return self if tls is self.tls else replace(self, tls=tls)

    @classmethod
    def from_state(cls, state: Mapping[str, Any], now: datetime) -> LocalSecurity:
        """What an earlier ``up`` made, read strictly (a field of the wrong type is named);
        a lattice secured before TLS came gets its TLS now."""
        from host_agent.lattice.connection import CredentialsError  # see the note on imports above
        from host_agent.security.authority import LatticeAuthority
        from host_agent.security.tls import TlsError

        try:
            authority = LatticeAuthority.from_state(state.get("authority"), "authority")
            tooling = _credentials(state.get("credentials"), "credentials")
            controller = _credentials(state.get("controllerCredentials"), "controllerCredentials")
            for field, user in (("credentials", tooling), ("controllerCredentials", controller)):
                claims = decode_claims(user.jwt, field)
                if claims["nats"].get("issuer_account") != authority.account_public_key:
                    raise JwtError(f"{field} is a user of another account than the lattice's")
            given = state.get("tls")
            tls = (
                LocalTls.from_state(given)
                if given is not None
                else LocalTls.create(authority.lattice, now)
            )
            # A lattice secured before the secrets backend came gets its key and user now.
            key = state.get("secretsKey")
            if key is None:
                key = XKey.generate().seed
            elif not isinstance(key, str):
                raise XKeyError("secretsKey must be an xkey seed (text)")
            XKey.from_seed(key, "secretsKey")
            backend = state.get("secretsCredentials")
            secrets_user = (
                _credentials(backend, "secretsCredentials")
                if backend is not None
                else _secrets_user(authority.user_issuer(), authority.lattice)
            )
        except (JwtError, CredentialsError, TlsError, XKeyError) as exc:
            raise SecurityStateError(
                f"the lattice's security state does not read: {exc}. Run `pulumi refresh` "
                "if the state was edited by hand, or replace the lattice "
                "(`pulumi up --replace <its urn>`) to make a new authority"
            ) from None
        return cls(authority, tooling, controller, tls, key, secrets_user)

    def outputs(self) -> dict[str, Any]:
        """The Lattice's outputs that carry it (every one a secret but ``caCert``)."""
        return {
            "authority": self.authority.to_state(),
            "userIssuer": self.authority.user_issuer().to_state(),
            "credentials": self.tooling.creds(),
            "controllerCredentials": self.controller.creds(),
            "tls": self.tls.to_state(),
            "caCert": self.tls.ca.cert_pem,
            "secretsKey": self.secrets_key,
            "secretsCredentials": self.secrets_user.creds(),
        }


def _secrets_user(issuer: UserIssuer, lattice: str) -> NatsCredentials:
    from host_agent.secrets.protocol import DEFAULT_BACKEND  # see the note on imports above

    return issuer.issue_with(backend_access(DEFAULT_BACKEND), f"{lattice}-secrets")


def _credentials(value: object, field: str) -> NatsCredentials:
    from host_agent.lattice.connection import (  # see the note on imports above
        CredentialsError,
        NatsCredentials,
    )

    if not isinstance(value, str):
        raise CredentialsError(f"{field} must be the text of a .creds file")
    return NatsCredentials.from_creds(value, field)


def issuer_of(state: Mapping[str, Any]) -> UserIssuer | None:
    """The user issuer a Host was given (``userIssuer``), or None for a plain lattice."""
    from host_agent.security.authority import UserIssuer  # see the note on imports above

    given = state.get("userIssuer")
    if given in (None, {}):
        return None
    return UserIssuer.from_state(given, "userIssuer")


def issued_by(credentials: NatsCredentials, issuer: UserIssuer) -> bool:
    """Whether ``credentials`` is a user ``issuer`` signed (still good for its lattice)."""
    claims = decode_claims(credentials.jwt, "hostCredentials")
    return (
        claims.get("iss") == issuer.signing_key
        and claims["nats"].get("issuer_account") == issuer.account_public_key
    )


def write_private(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` readable by its owner only (0600), whole: a reader sees
    the old file or the new one, never part of it. True if the content changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        same = path.read_text() == text and stat.S_IMODE(path.stat().st_mode) == 0o600
    except (OSError, UnicodeDecodeError):
        same = False
    if same:
        return False
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # an older partial file may have had another mode
        os.write(descriptor, text.encode())
    finally:
        os.close(descriptor)
    partial.replace(path)
    return True


def server_name(lattice: str) -> str:
    """nats-server's name for this lattice's server (its name pattern allows less)."""
    return "local-" + (re.sub(r"[^A-Za-z0-9_.-]", "-", lattice)[:57] or "lattice")


def server_config(security: LocalSecurity, state_dir: Path, port: int, lattice: str) -> str:
    """nats-server's configuration: loopback, JetStream on disk, operator mode."""
    from pulumi_wasmcloud.provision.nats_config import (  # see the note on imports above
        JetStreamSettings,
        NatsServerSettings,
        OperatorModeSettings,
        TlsFiles,
        render,
    )

    settings = NatsServerSettings(
        server_name=server_name(lattice),
        host="127.0.0.1",
        client_port=port,
        monitoring_port=None,
        jetstream=JetStreamSettings(store_dir=str(state_dir / "jetstream")),
        operator=OperatorModeSettings.from_auth(security.authority.server_auth()),
        tls=TlsFiles(
            cert_file=str(state_dir / SERVER_CERT_FILE),
            key_file=str(state_dir / SERVER_KEY_FILE),
            ca_file=str(state_dir / CA_FILE),
            verify=False,  # clients are known by their NATS users (LocalTls says why)
        ),
    )
    return render(settings)


def write_files(security: LocalSecurity, state_dir: Path, port: int, lattice: str) -> bool:
    """Write what the lattice's processes and tools read (``CONFIG_FILE`` the server's
    config); True if what nats-server reads changed (a running one must reload)."""
    issuer = security.authority.user_issuer().to_state()
    write_private(state_dir / CONTROLLER_CREDS_FILE, security.controller.creds())
    write_private(state_dir / GRANT_ISSUER_FILE, json.dumps(issuer))
    write_private(state_dir / CREDS_FILE, security.tooling.creds())
    write_private(state_dir / SECRETS_CREDS_FILE, security.secrets_user.creds())
    server_files = [
        write_private(state_dir / CA_FILE, security.tls.ca.cert_pem),
        write_private(state_dir / SERVER_CERT_FILE, security.tls.server.cert_pem),
        write_private(state_dir / SERVER_KEY_FILE, security.tls.server.key_pem),
        write_private(state_dir / CONFIG_FILE, server_config(security, state_dir, port, lattice)),
    ]
    return any(server_files)


def remove_files(state_dir: Path) -> None:
    for name in (
        CONFIG_FILE,
        CONTROLLER_CREDS_FILE,
        GRANT_ISSUER_FILE,
        SECRETS_CREDS_FILE,
        CREDS_FILE,
        CA_FILE,
        SERVER_CERT_FILE,
        SERVER_KEY_FILE,
    ):
        (state_dir / name).unlink(missing_ok=True)
