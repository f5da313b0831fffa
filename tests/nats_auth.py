"""A nats-server in operator (JWT) mode for tests of NATS credentials: an operator, one
account with JetStream, one user, and the user's `.creds` text, signed with nkeys.

Written here because no Python library issues NATS JWTs; the claim shapes follow
nats-io/jwt v2 (what nats-server 2.x checks).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import nkeys


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _keypair(prefix: int) -> tuple[nkeys.KeyPair, str]:
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    pair = nkeys.from_seed(seed)
    return pair, pair.public_key.decode()


def _jwt(signer: nkeys.KeyPair, issuer: str, subject: str, name: str, nats: dict[str, Any]) -> str:
    claims: dict[str, Any] = {
        "iat": int(time.time()),
        "iss": issuer,
        "name": name,
        "sub": subject,
        "nats": {**nats, "version": 2},
    }
    claims["jti"] = (
        base64.b32encode(hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest())
        .decode()
        .rstrip("=")
    )
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = _b64(signer.sign(f"{header}.{body}".encode()))
    return f"{header}.{body}.{signature}"


UNLIMITED = {"subs": -1, "data": -1, "payload": -1}


@dataclass
class OperatorAuth:
    config: str  # nats-server configuration (operator mode, in-memory resolver)
    creds: str  # the user's .creds file content


def operator_auth(port: int, store: str, host: str = "127.0.0.1") -> OperatorAuth:
    operator, operator_pub = _keypair(nkeys.PREFIX_BYTE_OPERATOR)
    account, account_pub = _keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    _, system_pub = _keypair(nkeys.PREFIX_BYTE_ACCOUNT)  # nats-server needs one for JetStream
    user, user_pub = _keypair(nkeys.PREFIX_BYTE_USER)
    operator_jwt = _jwt(operator, operator_pub, operator_pub, "test", {"type": "operator"})
    limits = {
        **UNLIMITED,
        "imports": -1, "exports": -1, "wildcards": True, "conn": -1, "leaf": -1,
        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
    }  # fmt: skip
    account_jwt = _jwt(
        operator, operator_pub, account_pub, "lattice", {"type": "account", "limits": limits}
    )
    system_jwt = _jwt(
        operator, operator_pub, system_pub, "SYS", {"type": "account", "limits": UNLIMITED}
    )
    user_jwt = _jwt(
        account, account_pub, user_pub, "client",
        {"type": "user", "pub": {}, "sub": {}, **UNLIMITED},
    )  # fmt: skip
    config = f"""
listen: "{host}:{port}"
jetstream {{ store_dir: "{store}" }}
operator: {operator_jwt}
system_account: {system_pub}
resolver: MEMORY
resolver_preload: {{
  {account_pub}: {account_jwt}
  {system_pub}: {system_jwt}
}}
"""
    creds = f"""-----BEGIN NATS USER JWT-----
{user_jwt}
------END NATS USER JWT------

-----BEGIN USER NKEY SEED-----
{user.seed.decode()}
------END USER NKEY SEED------
"""
    return OperatorAuth(config, creds)
