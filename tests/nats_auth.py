"""A nats-server in operator (JWT) mode for tests of NATS credentials: a lattice
authority (host_agent.security.authority), the config pulumi_wasmcloud renders for it,
one user allowed everything, and the user's `.creds` text. Tests of the per-role
permissions issue their own users instead (tests/integration/test_nats_security.py)."""

from __future__ import annotations

from dataclasses import dataclass

from host_agent.security.authority import LatticeAuthority
from host_agent.security.jwt import Permissions
from pulumi_wasmcloud.provision.nats_config import (
    JetStreamSettings,
    NatsServerSettings,
    OperatorModeSettings,
    render,
)

EVERYTHING = Permissions(pub_allow=(">",), sub_allow=(">",))


@dataclass
class OperatorAuth:
    config: str  # nats-server configuration (operator mode, in-memory resolver)
    creds: str  # the user's .creds file content


def operator_config(
    authority: LatticeAuthority, port: int, store: str, host: str = "127.0.0.1", **fields: object
) -> str:
    """The nats-server config of one node of ``authority``'s lattice (JetStream on)."""
    return render(
        NatsServerSettings.model_validate(
            {
                "server_name": f"test-{port}",
                "host": host,
                "client_port": port,
                "monitoring_port": None,
                "jetstream": JetStreamSettings(store_dir=store),
                "operator": OperatorModeSettings.from_auth(authority.server_auth()),
                **fields,
            }
        )
    )


def operator_auth(port: int, store: str, host: str = "127.0.0.1") -> OperatorAuth:
    authority = LatticeAuthority.create("default")
    creds = authority.user_issuer().issue_with(EVERYTHING, "client")
    return OperatorAuth(operator_config(authority, port, store, host), creds.creds())
