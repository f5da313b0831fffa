"""A nats-server in operator (JWT) mode for tests of NATS credentials: a lattice
authority (host_agent.security.authority), one user allowed everything, and the user's
`.creds` text. Tests of the per-role permissions issue their own users instead."""

from __future__ import annotations

from dataclasses import dataclass

from host_agent.security.authority import LatticeAuthority
from host_agent.security.jwt import Permissions

EVERYTHING = Permissions(pub_allow=(">",), sub_allow=(">",))


@dataclass
class OperatorAuth:
    config: str  # nats-server configuration (operator mode, in-memory resolver)
    creds: str  # the user's .creds file content


def operator_mode_config(authority: LatticeAuthority) -> str:
    """The operator-mode part of a nats-server config for ``authority``."""
    auth = authority.server_auth()
    preload = "\n".join(f"  {key}: {jwt}" for key, jwt in auth.account_jwts.items())
    return (
        f"operator: {auth.operator_jwt}\n"
        f"system_account: {auth.system_account}\n"
        "resolver: MEMORY\n"
        f"resolver_preload: {{\n{preload}\n}}\n"
    )


def operator_auth(port: int, store: str, host: str = "127.0.0.1") -> OperatorAuth:
    authority = LatticeAuthority.create("default")
    creds = authority.user_issuer().issue_with(EVERYTHING, "client")
    config = (
        f'listen: "{host}:{port}"\n'
        f'jetstream {{ store_dir: "{store}" }}\n' + operator_mode_config(authority)
    )
    return OperatorAuth(config, creds.creds())
