"""The security of a lattice on machines (pure but for the clock and the randomness the
key makers draw): what a Lattice resource keeps as secret state, what it rotates, and
which files each machine gets.

A lattice is its own authority (``host_agent.security.authority``: one operator, one
system account, one account for the lattice) and its own CA (``host_agent.security.tls``).
From them, made once at create and kept in Pulumi state as secrets only:

- every node (a core cluster node or a leaf node): a server certificate whose SANs are
  the machine's address (its client, route and leaf listeners, and the client side of
  its routes and leaf remote), and on a core node every other core node's address too
  (clients failing over keep verifying the name they first dialled); a leaf node also a
  NATS user of the lattice account, the credentials its leaf remote connects with;
- every core node's controller: its own controller-role user and client certificate;
- the NATS KV secrets backend (application secrets), one instance per core node: the
  lattice's encryption key (values at rest) and transit key (requests; every instance of
  the queue group shares it, so any one answers), xkey seeds made once; its own NATS
  user (``backend_access``, the only user that reaches its bucket); per core node a
  client certificate;
- the lattice's tooling user and client certificate (the Pulumi provider itself, and
  what ``clientTls``/``credentials`` give Applications and the CLI).

``converge`` keeps what is still good and makes only what is missing or due: a
certificate within ``ROTATION_WINDOW`` of its expiry (or whose SANs no longer match the
machine's address) is reissued, and the sentence that says so (never a value) goes to
the preview. Files on machines are written 0600 (root, who runs the services) over the
SSH channel's stdin, never in a command line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from host_agent.lattice.connection import CredentialsError, NatsCredentials
from host_agent.lattice.subjects import kv_stream_name
from host_agent.secrets.access import backend_access
from host_agent.secrets.protocol import DEFAULT_BACKEND
from host_agent.secrets.xkeys import XKey, XKeyError
from host_agent.security.authority import LatticeAuthority, UserIssuer
from host_agent.security.jwt import JwtError, Permissions
from host_agent.security.permissions import Role, lattice_buckets, role_permissions
from host_agent.security.tls import (
    CertificateAuthority,
    KeyPairPem,
    TlsError,
    due_for_rotation,
    expires_at,
    subject_alt_names,
)
from pulumi_wasmcloud.provision.secret_files import (
    CA_SUFFIX,
    CERT_SUFFIX,
    CREDS_SUFFIX,
    ISSUER_SUFFIX,
    KEY_SUFFIX,
    LEAF_CREDS_FILE,
    NATS_CA_FILE,
    NATS_CERT_FILE,
    NATS_KEY_FILE,
)

ROTATION_WINDOW = timedelta(days=30)
SERVER_CERT_DAYS = 365
CLIENT_CERT_DAYS = 365
CA_DAYS = 3650


class SecurityStateError(ValueError):
    """Secret state that cannot be used; the message names the field."""


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class NodeSecrets:
    """One node's secret material: its server certificate; a leaf node's leaf user; a
    core node's controller user and client certificate, and its secrets backend's client
    certificate."""

    server: KeyPairPem
    leaf: NatsCredentials | None = None
    controller: NatsCredentials | None = None
    controller_tls: KeyPairPem | None = None
    secrets_tls: KeyPairPem | None = None

    def to_state(self) -> dict[str, Any]:
        return {
            "server": self.server.to_state(),
            "leaf": self.leaf.creds() if self.leaf else None,
            "controller": self.controller.creds() if self.controller else None,
            "controllerTls": self.controller_tls.to_state() if self.controller_tls else None,
            "secretsTls": self.secrets_tls.to_state() if self.secrets_tls else None,
        }

    @classmethod
    def from_state(cls, state: object, field: str) -> NodeSecrets:
        # ``secretsTls`` is absent from a lattice's state from before the secrets backend
        # ran on machines: None, made by the next converge.
        values = _mapping(
            state, field, ("server", "leaf", "controller", "controllerTls", "secretsTls")
        )
        return cls(
            server=KeyPairPem.from_state(values.get("server"), f"{field}.server"),
            leaf=_optional_creds(values.get("leaf"), f"{field}.leaf"),
            controller=_optional_creds(values.get("controller"), f"{field}.controller"),
            controller_tls=_optional_pair(values.get("controllerTls"), f"{field}.controllerTls"),
            secrets_tls=_optional_pair(values.get("secretsTls"), f"{field}.secretsTls"),
        )


@dataclass(frozen=True)
class BackendSecrets:
    """The lattice's secrets backend: the seed of the xkey its values are sealed with at
    rest (``ENCRYPTION_XKEY_SEED``: the same for the life of the bucket, so never
    rotated), the seed of its transit xkey (``TRANSIT_XKEY_SEED``: hosts and tooling seal
    requests to it; every instance shares it) and its own NATS user."""

    encryption_seed: str = field(repr=False)
    transit_seed: str = field(repr=False)
    user: NatsCredentials = field(repr=False)

    @classmethod
    def create(cls, issuer: UserIssuer, js_domain: str | None, now: datetime) -> BackendSecrets:
        return cls(
            encryption_seed=XKey.generate().seed,
            transit_seed=XKey.generate().seed,
            user=issuer.issue_with(
                backend_access(DEFAULT_BACKEND, js_domain),
                "secrets-backend",
                now=int(now.timestamp()),
            ),
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "encryptionKey": self.encryption_seed,
            "transitKey": self.transit_seed,
            "user": self.user.creds(),
        }

    @classmethod
    def from_state(cls, state: object, field: str) -> BackendSecrets:
        values = _mapping(state, field, ("encryptionKey", "transitKey", "user"))
        seeds = []
        for name in ("encryptionKey", "transitKey"):
            seed = values.get(name)
            if not isinstance(seed, str):
                raise SecurityStateError(f"{field}.{name} must be an xkey seed (text)")
            try:
                XKey.from_seed(seed, f"{field}.{name}")
            except XKeyError as e:
                raise SecurityStateError(str(e)) from None
            seeds.append(seed)
        user = _optional_creds(values.get("user"), f"{field}.user")
        if user is None:
            raise SecurityStateError(f"{field}.user must be the secrets backend's .creds")
        return cls(encryption_seed=seeds[0], transit_seed=seeds[1], user=user)


@dataclass(frozen=True)
class NodeRole:
    """What converge needs to know of a machine: its address (the SAN) and whether it is
    a core node (controller) or a leaf node (leaf user)."""

    address: str
    core: bool


@dataclass(frozen=True)
class LatticeSecurity:
    """Everything secret of a lattice on machines."""

    authority: LatticeAuthority
    ca: CertificateAuthority = field(repr=False)
    tooling: NatsCredentials = field(repr=False)
    tooling_tls: KeyPairPem = field(repr=False)
    nodes: Mapping[str, NodeSecrets] = field(default_factory=dict, repr=False)
    # None in a lattice's state from before the secrets backend ran on machines: made by
    # the next converge (which says so).
    backend: BackendSecrets | None = field(default=None, repr=False)

    @classmethod
    def create(cls, lattice: str, js_domain: str | None, now: datetime) -> LatticeSecurity:
        authority = LatticeAuthority.create(lattice, now=int(now.timestamp()))
        ca = CertificateAuthority.create(f"wasmCloud lattice {lattice} CA", now=now, days=CA_DAYS)
        return cls(
            authority=authority,
            ca=ca,
            tooling=_tooling_user(authority.user_issuer(), lattice, js_domain, now),
            tooling_tls=ca.issue_client("tooling", now=now, days=CLIENT_CERT_DAYS),
        )

    @property
    def lattice(self) -> str:
        return self.authority.lattice

    def user_issuer(self) -> UserIssuer:
        return self.authority.user_issuer()

    # --- state -------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "authority": self.authority.to_state(),
            "ca": self.ca.to_state(),
            "tooling": self.tooling.creds(),
            "toolingTls": self.tooling_tls.to_state(),
            "nodes": {name: node.to_state() for name, node in sorted(self.nodes.items())},
            "secretsBackend": self.backend.to_state() if self.backend else None,
        }

    @classmethod
    def from_state(cls, state: object, field: str) -> LatticeSecurity:
        values = _mapping(
            state, field, ("authority", "ca", "tooling", "toolingTls", "nodes", "secretsBackend")
        )
        try:
            authority = LatticeAuthority.from_state(values.get("authority"), f"{field}.authority")
        except JwtError as e:
            raise SecurityStateError(str(e)) from None
        nodes = values.get("nodes")
        if not isinstance(nodes, Mapping):
            raise SecurityStateError(f"{field}.nodes must be a map of machine name to secrets")
        tooling = _optional_creds(values.get("tooling"), f"{field}.tooling")
        if tooling is None:
            raise SecurityStateError(f"{field}.tooling must be the tooling user's .creds")
        try:
            return cls(
                authority=authority,
                ca=CertificateAuthority.from_state(values.get("ca"), f"{field}.ca"),
                tooling=tooling,
                tooling_tls=KeyPairPem.from_state(values.get("toolingTls"), f"{field}.toolingTls"),
                nodes={
                    str(name): NodeSecrets.from_state(node, f"{field}.nodes.{name}")
                    for name, node in nodes.items()
                },
                backend=(
                    None
                    if values.get("secretsBackend") is None
                    else BackendSecrets.from_state(
                        values["secretsBackend"], f"{field}.secretsBackend"
                    )
                ),
            )
        except TlsError as e:
            raise SecurityStateError(str(e)) from None

    # --- converge ----------------------------------------------------------------------
    def converge(
        self,
        nodes: Mapping[str, NodeRole],
        js_domain: str | None,
        now: datetime,
        server_days: int = SERVER_CERT_DAYS,
        window: timedelta = ROTATION_WINDOW,
    ) -> tuple[LatticeSecurity, dict[str, list[str]]]:
        """This security for ``nodes`` (machine name -> role): what each lacks made, each
        certificate due within ``window`` (or for another address) reissued, the nodes
        left out forgotten. Returns it with, per machine, the sentences saying what was
        made anew (for previews; values never appear)."""
        said: dict[str, list[str]] = {}
        made: dict[str, NodeSecrets] = {}
        cluster = sorted(role.address for role in nodes.values() if role.core)
        for name, role in nodes.items():
            sentences: list[str] = []
            node = self.nodes.get(name)
            server = node.server if node is not None else None
            # A core node's certificate names every core node's address: NATS clients
            # that fail over to a server the cluster told them of by IP check it against
            # the name they first connected with (nats-py and nats.go reuse it), so each
            # node must answer for the others' addresses too.
            addresses = [role.address, *(a for a in cluster if a != role.address)]
            if not role.core:
                addresses = [role.address]
            why = _reissue_reason(server, addresses, now, window)
            if why is not None:
                server = self.ca.issue_server(
                    name, dns_names=[], ip_addresses=addresses, now=now, days=server_days
                )
                verb = "issue" if why == "new" else f"reissue ({why})"
                sentences.append(f"nats-server TLS certificate: {verb} for {name}")
            assert server is not None
            leaf = node.leaf if node is not None else None
            controller = node.controller if node is not None else None
            controller_tls = node.controller_tls if node is not None else None
            secrets_tls = node.secrets_tls if node is not None else None
            if role.core:
                leaf = None
                if controller is None:
                    controller = self.user_issuer().issue_with(
                        role_in_domain(Role.CONTROLLER, self.lattice, js_domain),
                        f"controller-{name}",
                        now=int(now.timestamp()),
                    )
                    sentences.append(f"controller NATS user: issue for {name}")
                why = _reissue_reason(controller_tls, None, now, window)
                if why is not None:
                    controller_tls = self.ca.issue_client(
                        f"controller-{name}", now=now, days=server_days
                    )
                    verb = "issue" if why == "new" else f"reissue ({why})"
                    sentences.append(f"controller TLS certificate: {verb} for {name}")
                why = _reissue_reason(secrets_tls, None, now, window)
                if why is not None:
                    secrets_tls = self.ca.issue_client(
                        f"secrets-backend-{name}", now=now, days=server_days
                    )
                    verb = "issue" if why == "new" else f"reissue ({why})"
                    sentences.append(f"secrets backend TLS certificate: {verb} for {name}")
            else:
                controller = controller_tls = secrets_tls = None
                if leaf is None:
                    leaf = leaf_user(self.user_issuer(), name, now)
                    sentences.append(f"leaf node NATS user: issue for {name}")
            made[name] = NodeSecrets(server, leaf, controller, controller_tls, secrets_tls)
            if sentences:
                said[name] = sentences
        tooling_tls = self.tooling_tls
        if due_for_rotation(tooling_tls.cert_pem, now, window):
            tooling_tls = self.ca.issue_client("tooling", now=now, days=CLIENT_CERT_DAYS)
        backend = self.backend
        if backend is None:
            # Once per lattice (its encryption key must outlive every node); said with
            # the first core node, where the preview lists the lattice's own sentences.
            backend = BackendSecrets.create(self.user_issuer(), js_domain, now)
            first = next((n for n, role in nodes.items() if role.core), None)
            if first is not None:
                said.setdefault(first, []).append(
                    "secrets backend keys (encryption, transit) and NATS user: make for "
                    f"lattice {self.lattice}"
                )
        return replace(self, nodes=made, tooling_tls=tooling_tls, backend=backend), said

    # --- files on machines ----------------------------------------------------------------
    def nats_files(self, name: str) -> dict[str, bytes]:
        """nats-server's files on machine ``name``: the CA, its certificate and key, and
        on a leaf node the leaf remote's credentials."""
        node = self.nodes[name]
        files = {
            NATS_CA_FILE: self.ca.cert_pem.encode(),
            NATS_CERT_FILE: node.server.cert_pem.encode(),
            NATS_KEY_FILE: node.server.key_pem.encode(),
        }
        if node.leaf is not None:
            files[LEAF_CREDS_FILE] = node.leaf.creds().encode()
        return files

    def controller_files(self, name: str, service: str) -> dict[str, bytes]:
        """The controller's files on core node ``name`` (by suffix): its user, its client
        certificate and key, the CA, and the lattice's user issuer (it signs link grants)."""
        node = self.nodes[name]
        assert node.controller is not None and node.controller_tls is not None
        return {
            CREDS_SUFFIX: node.controller.creds().encode(),
            CA_SUFFIX: self.ca.cert_pem.encode(),
            CERT_SUFFIX: node.controller_tls.cert_pem.encode(),
            KEY_SUFFIX: node.controller_tls.key_pem.encode(),
            ISSUER_SUFFIX: json.dumps(self.user_issuer().to_state()).encode(),
        }

    def secrets_backend_files(self, name: str) -> dict[str, bytes]:
        """The secrets backend's files on core node ``name`` (by suffix): its user, its
        client certificate and key, the CA. Its seeds go in its environment file."""
        node = self.nodes[name]
        assert node.secrets_tls is not None and self.backend is not None
        return {
            CREDS_SUFFIX: self.backend.user.creds().encode(),
            CA_SUFFIX: self.ca.cert_pem.encode(),
            CERT_SUFFIX: node.secrets_tls.cert_pem.encode(),
            KEY_SUFFIX: node.secrets_tls.key_pem.encode(),
        }

    def secrets_backend_seeds(self) -> dict[str, str]:
        """The backend's keys, as the variables it reads (its 0600 environment file)."""
        assert self.backend is not None
        return {
            "ENCRYPTION_XKEY_SEED": self.backend.encryption_seed,
            "TRANSIT_XKEY_SEED": self.backend.transit_seed,
        }

    def client_tls_state(self) -> dict[str, str]:
        """The tooling user's TLS (``clientTls``: H2's ClientTls fields, camelCase)."""
        return {
            "caPem": self.ca.cert_pem,
            "certPem": self.tooling_tls.cert_pem,
            "keyPem": self.tooling_tls.key_pem,
        }

    def expiries(self) -> dict[str, str]:
        """Machine name -> when its server certificate expires (not secret; for outputs)."""
        return {
            name: _utc(expires_at(node.server.cert_pem))
            for name, node in sorted(self.nodes.items())
        }


def leaf_user(issuer: UserIssuer, name: str, now: datetime) -> NatsCredentials:
    """The user a leaf node's remote connects to the core as. A leaf connection carries
    the whole lattice account's traffic between the edge and the core (hosts, providers,
    the controller's requests and JetStream through the domain), so within the account
    it may publish and subscribe to anything; the account holds one lattice only."""
    everything = Permissions(
        pub_allow=(">",), pub_deny=(), sub_allow=(">",), sub_deny=(), allow_responses=False
    )
    return issuer.issue_with(everything, f"leaf-{name}", now=int(now.timestamp()))


def role_in_domain(role: Role, lattice: str, js_domain: str | None) -> Permissions:
    """``role``'s permissions for a client of a lattice whose JetStream is in
    ``js_domain`` (role_permissions allows the API subjects with and without the domain:
    a node of the domain maps the former to the latter before checking). A HOST also
    gets what its capability providers need, since they connect as the host's user
    (HostData): keyvalue-nats keeps application buckets (any name but the controller's
    and the secrets backend's, which stay denied)."""
    permissions = role_permissions(role, lattice, js_domain=js_domain)
    if role is not Role.HOST:
        return permissions
    providers = role_permissions(
        Role.PROVIDER, lattice, js_domain=js_domain, application_buckets=True
    )
    # The provider role is denied the lattice's own buckets, which the host keeps.
    own = [kv_stream_name(bucket) for bucket in lattice_buckets(lattice)] + [
        f"$KV.{bucket}." for bucket in lattice_buckets(lattice)
    ]
    denied = tuple(d for d in providers.pub_deny if not any(name in d for name in own))
    return permissions.merged(
        Permissions(pub_allow=providers.pub_allow, pub_deny=denied, sub_allow=providers.sub_allow)
    )


def _tooling_user(
    issuer: UserIssuer, lattice: str, js_domain: str | None, now: datetime
) -> NatsCredentials:
    return issuer.issue_with(
        role_in_domain(Role.TOOLING, lattice, js_domain), "tooling", now=int(now.timestamp())
    )


def _reissue_reason(
    pair: KeyPairPem | None, addresses: Sequence[str] | None, now: datetime, window: timedelta
) -> str | None:
    """Why a certificate must be (re)issued, or None: ``new``, ``expires <when>``, or
    that the addresses it must name changed (the machine's, or the cluster's)."""
    if pair is None:
        return "new"
    if due_for_rotation(pair.cert_pem, now, window):
        return f"expires {_utc(expires_at(pair.cert_pem))}"
    if addresses is not None:
        _, named = subject_alt_names(pair.cert_pem)
        if addresses[0] not in named:
            return f"the machine's address is now {addresses[0]}"
        if set(named) != set(addresses):
            return f"the cluster's addresses are now {', '.join(sorted(addresses))}"
    return None


def _mapping(state: object, field: str, keys: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(state, Mapping):
        raise SecurityStateError(f"{field} must be a map, got {type(state).__name__}")
    unknown = sorted(set(state) - set(keys))
    if unknown:
        raise SecurityStateError(f"{field} has unknown fields {', '.join(map(str, unknown))}")
    return state


def _optional_pair(value: object, field: str) -> KeyPairPem | None:
    return None if value is None else KeyPairPem.from_state(value, field)


def _optional_creds(value: object, field: str) -> NatsCredentials | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SecurityStateError(f"{field} must be the text of a .creds file")
    try:
        return NatsCredentials.from_creds(value, field)
    except CredentialsError as e:
        raise SecurityStateError(str(e)) from None
