"""Render a nats-server config file (pure): one node of a cluster, or a leaf node.

The settings are a strict pydantic model (a field of the wrong type is refused with its
name); ``render`` writes nats-server's config syntax with every string JSON-quoted, so
no value can break out of its field. tests/integration/test_provision_nats.py has
the real nats-server check what this renders.

Operator mode (``operator``): every node of a lattice (cluster nodes and leaf nodes) trusts
the lattice's operator and carries the same account JWTs in a MEMORY resolver
(``resolver_preload``). Why MEMORY rather than the full (directory) resolver: a revoked
user must be dropped on every node at once, and tests/integration/test_nats_security.py
shows on the real nats-server 2.12.1 that a config reload (``nats-server --signal
reload=<pid>``, or SIGHUP) with the new account JWT disconnects the revoked user's live
connections on that node, refuses its reconnects, and leaves every other connection up.
Rewriting each node's config is what ``up`` already does on every node, so revocation needs
no system-account connection between the nodes (a leaf node's ``$SYS`` would otherwise have
to reach the hub's through a second leaf remote), no JWT directory to keep in sync, and a
node that was down simply starts with the current accounts. The price: an account change
is a config change on every node, which only the Pulumi program makes anyway. (The full
resolver was tried on the same topology: an update pushed on ``$SYS.REQ.CLAIMS.UPDATE``
reached the routed nodes but not the leaf node, where the revoked user stayed connected.)

TLS (``tls`` on the node, its cluster, its leaf listener and its leaf remotes) takes file
paths only; the key files are written 0600 beside the config, never inlined in it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # the settings only read its fields; importing it pulls in nats-py
    from host_agent.security.authority import OperatorAuth

Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
Name = Annotated[str, Field(strict=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
# host:port, the host a name or an address (IPv6 in brackets).
HostPort = Annotated[
    str, Field(strict=True, pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$")
]
Bytes = Annotated[int, Field(strict=True, ge=0)]
# An absolute path without quotes or newlines (rendered JSON-quoted anyway).
FilePath = Annotated[str, Field(strict=True, pattern=r"^/[^\n\"]*$")]
Jwt = Annotated[
    str, Field(strict=True, pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
]
AccountKey = Annotated[str, Field(strict=True, pattern=r"^A[A-Z2-7]{55}$")]
# A user JWT (with its permissions) rides in the CONNECT line; nats-server's default limit
# (4 KiB) is too small for a host with many link grants.
MAX_CONTROL_LINE = 32 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TlsFiles(_Strict):
    """Where a listener's (or a remote's) certificate, key and CA are on the machine.
    ``verify``: a listener requires and checks a client certificate (mutual TLS)."""

    cert_file: FilePath
    key_file: FilePath
    ca_file: FilePath
    verify: bool = True


class OperatorModeSettings(_Strict):
    """Operator (JWT) mode: the operator JWT, the system account, and every account JWT
    by public key, loaded into a MEMORY resolver (see the module docstring for why)."""

    operator_jwt: Jwt
    system_account: AccountKey
    accounts: dict[AccountKey, Jwt] = Field(min_length=1)

    @model_validator(mode="after")
    def _system_account_listed(self) -> OperatorModeSettings:
        if self.system_account not in self.accounts:
            raise ValueError("accounts must hold the system account's JWT too")
        return self

    @classmethod
    def from_auth(cls, auth: OperatorAuth) -> OperatorModeSettings:
        """What ``LatticeAuthority.server_auth()`` gives, as settings."""
        return cls(
            operator_jwt=auth.operator_jwt,
            system_account=auth.system_account,
            accounts=dict(auth.account_jwts),
        )


class ClusterSettings(_Strict):
    """The routes between the core nodes: every node lists the others' cluster ports."""

    name: Name
    port: Port = 6222
    routes: list[HostPort] = []
    tls: TlsFiles | None = None


class JetStreamSettings(_Strict):
    store_dir: Annotated[str, Field(strict=True, pattern=r"^/[^\n\"]*$")]
    max_memory_store: Bytes = 256 * 1024 * 1024
    max_file_store: Bytes = 10 * 1024 * 1024 * 1024
    domain: Name | None = None


class LeafRemote(_Strict):
    """A hub this node connects to as a leaf (``nats-leaf://host:port``). In operator
    mode: ``credentials`` (the path of the leaf's .creds) says who it is on the hub and
    ``account`` which local account the leaf connection joins (the lattice's)."""

    urls: list[HostPort] = Field(min_length=1)
    credentials: FilePath | None = None
    account: AccountKey | None = None
    tls: TlsFiles | None = None


class LeafNodeSettings(_Strict):
    listen_port: Port | None = None  # accept leaf connections (a core node)
    remotes: list[LeafRemote] = []  # connect to hubs (an edge node)
    tls: TlsFiles | None = None  # of the leaf listener

    @model_validator(mode="after")
    def _something(self) -> LeafNodeSettings:
        if self.listen_port is None and not self.remotes:
            raise ValueError("leafnodes: give a listen_port, remotes, or both")
        if self.tls is not None and self.listen_port is None:
            raise ValueError("leafnodes.tls is the leaf listener's: give its listen_port")
        return self


class NatsServerSettings(_Strict):
    server_name: Name
    host: Annotated[str, Field(strict=True, pattern=r"^[0-9A-Fa-f.:]+$")]  # listen address
    client_port: Port = 4222
    monitoring_port: Port | None = 8222
    cluster: ClusterSettings | None = None
    jetstream: JetStreamSettings | None = None
    leafnodes: LeafNodeSettings | None = None
    operator: OperatorModeSettings | None = None
    tls: TlsFiles | None = None  # of the client listener

    @model_validator(mode="after")
    def _remotes_have_an_account(self) -> NatsServerSettings:
        # In operator mode a leaf connection without an account would join no account
        # the node knows; outside it, an account or credentials would mean nothing.
        remotes = self.leafnodes.remotes if self.leafnodes is not None else []
        for index, remote in enumerate(remotes):
            named = f"leafnodes.remotes.{index}"
            if self.operator is not None:
                if remote.account is None or remote.credentials is None:
                    raise ValueError(f"{named}: operator mode needs its account and credentials")
                if remote.account not in self.operator.accounts:
                    raise ValueError(f"{named}.account is not one of operator.accounts")
            elif remote.account is not None:
                raise ValueError(f"{named}.account needs operator mode (operator)")
        return self

    @model_validator(mode="after")
    def _ports_differ(self) -> NatsServerSettings:
        ports = {"client_port": self.client_port}
        if self.monitoring_port is not None:
            ports["monitoring_port"] = self.monitoring_port
        if self.cluster is not None:
            ports["cluster.port"] = self.cluster.port
        if self.leafnodes is not None and self.leafnodes.listen_port is not None:
            ports["leafnodes.listen_port"] = self.leafnodes.listen_port
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if port in seen:
                raise ValueError(f"{name} and {seen[port]} are both {port}; give each its own")
            seen[port] = name
        return self


def _q(value: str) -> str:
    return json.dumps(value)


def _listen(host: str, port: int) -> str:
    return _q(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


def _tls_block(tls: TlsFiles, indent: str, *, listener: bool = True) -> list[str]:
    lines = [
        f"{indent}tls {{",
        f"{indent}  cert_file: {_q(tls.cert_file)}",
        f"{indent}  key_file: {_q(tls.key_file)}",
        f"{indent}  ca_file: {_q(tls.ca_file)}",
    ]
    if listener:
        lines.append(f"{indent}  verify: {'true' if tls.verify else 'false'}")
    lines += [f"{indent}  timeout: 5", f"{indent}}}"]
    return lines


def _remote(remote: LeafRemote) -> list[str]:
    urls = ", ".join(_q(f"nats-leaf://{u}") for u in remote.urls)
    if remote.credentials is None and remote.account is None and remote.tls is None:
        return [f"    {{ urls: [{urls}] }}"]
    lines = ["    {", f"      urls: [{urls}]"]
    if remote.account is not None:
        lines.append(f"      account: {_q(remote.account)}")
    if remote.credentials is not None:
        lines.append(f"      credentials: {_q(remote.credentials)}")
    if remote.tls is not None:
        lines += _tls_block(remote.tls, "      ", listener=False)
    return [*lines, "    }"]


def _operator(operator: OperatorModeSettings) -> list[str]:
    return [
        f"operator: {_q(operator.operator_jwt)}",
        f"system_account: {_q(operator.system_account)}",
        "resolver: MEMORY",
        "resolver_preload: {",
        *(f"  {_q(key)}: {_q(jwt)}" for key, jwt in sorted(operator.accounts.items())),
        "}",
        f"max_control_line: {MAX_CONTROL_LINE}",
    ]


def render(settings: NatsServerSettings) -> str:
    s = settings
    lines = [
        "# Written by pulumi-wasmcloud; changes here are replaced on the next `up`.",
        f"server_name: {_q(s.server_name)}",
        f"listen: {_listen(s.host, s.client_port)}",
    ]
    if s.tls is not None:
        lines += _tls_block(s.tls, "")
    if s.monitoring_port is not None:
        lines.append(f"http: {_listen(s.host, s.monitoring_port)}")
    if s.operator is not None:
        lines += _operator(s.operator)
    if s.jetstream is not None:
        js = s.jetstream
        lines += [
            "jetstream {",
            f"  store_dir: {_q(js.store_dir)}",
            f"  max_memory_store: {js.max_memory_store}",
            f"  max_file_store: {js.max_file_store}",
        ]
        if js.domain is not None:
            lines.append(f"  domain: {_q(js.domain)}")
        lines.append("}")
    if s.cluster is not None:
        routes = ", ".join(_q(f"nats-route://{r}") for r in s.cluster.routes)
        lines += [
            "cluster {",
            f"  name: {_q(s.cluster.name)}",
            f"  listen: {_listen(s.host, s.cluster.port)}",
            f"  routes: [{routes}]",
            *(_tls_block(s.cluster.tls, "  ") if s.cluster.tls is not None else []),
            "}",
        ]
    if s.leafnodes is not None:
        leaf = s.leafnodes
        lines.append("leafnodes {")
        if leaf.listen_port is not None:
            lines.append(f"  listen: {_listen(s.host, leaf.listen_port)}")
            if leaf.tls is not None:
                lines += _tls_block(leaf.tls, "  ")
        if leaf.remotes:
            lines.append("  remotes: [")
            for remote in leaf.remotes:
                lines += _remote(remote)
            lines.append("  ]")
        lines.append("}")
    return "\n".join(lines) + "\n"
