"""A lattice's NATS authority: its operator, system account and lattice account, and the
user JWTs it issues (one per host, controller, provider process and tooling user).

Each Lattice resource is its own authority: every nkey is made here (random bytes from
the OS), kept as Pulumi secret state, and never shown in a repr or an error. Users are
signed by a signing key of the lattice account (not by the account's own key), so the
key a Host resource gets to mint its own user (``UserIssuer``) cannot re-sign the account.

Revocation: ``revoke`` returns the authority with a new account JWT whose ``revocations``
name the user; every nats-server of the lattice must then load that account JWT (see
pulumi_wasmcloud/provision/nats_config.py for how: the resolver is chosen there).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from host_agent.lattice.connection import NatsCredentials
from host_agent.security.jwt import (
    ACCOUNT_PREFIX,
    OPERATOR_PREFIX,
    USER_PREFIX,
    JwtError,
    Permissions,
    account_claims,
    check_public_key,
    check_times,
    decode_claims,
    encode_jwt,
    new_seed,
    operator_claims,
    public_key,
    user_claims,
    verify_jwt,
    when,
)
from host_agent.security.permissions import Role, role_permissions

SYSTEM_ACCOUNT_NAME = "SYS"


def _now(now: int | None) -> int:
    return int(time.time()) if now is None else now


def _new_seed(kind: str) -> str:
    return new_seed(kind, os.urandom(32))


@dataclass(frozen=True)
class OperatorAuth:
    """What every nats-server of the lattice needs for operator mode: the operator JWT,
    the system account's public key, and every account JWT by public key (the lattice
    account and the system account). No secret: all of it is public (signed) material."""

    operator_jwt: str
    system_account: str
    account_jwts: Mapping[str, str]


def _state_str(state: Mapping[str, Any], key: str, field: str) -> str:
    value = state.get(key)
    if not isinstance(value, str) or not value:
        shown = "missing" if value is None else f"a {type(value).__name__}"
        raise JwtError(f"{field}.{key} must be a non-empty string, got {shown}")
    return value


def _state_mapping(state: object, field: str, keys: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(state, Mapping):
        raise JwtError(f"{field} must be an object, got {type(state).__name__}")
    unknown = sorted(set(state) - set(keys))
    if unknown:
        raise JwtError(f"{field} has unknown fields {', '.join(map(str, unknown))}")
    missing = [key for key in keys if key not in state]
    if missing:
        raise JwtError(f"{field} lacks {', '.join(missing)}")
    return state


def _issued_for(jwt: str, issuer: str, subject: str, kind: str, field: str) -> dict[str, Any]:
    claims = verify_jwt(jwt, issuer, field)
    if claims["sub"] != subject:
        raise JwtError(f"{field} is for {claims['sub']}, not for {subject} (its seed)")
    if claims["nats"]["type"] != kind:
        raise JwtError(f"{field} is a {claims['nats']['type']} JWT, not an {kind} JWT")
    return claims


@dataclass(frozen=True)
class UserIssuer:
    """Mints the lattice's users: the account's public key and one of its signing keys."""

    account_public_key: str
    signing_seed: str = field(repr=False)

    def __post_init__(self) -> None:
        check_public_key(self.account_public_key, "userIssuer.accountPublicKey", ACCOUNT_PREFIX)
        public_key(self.signing_seed, "userIssuer.signingSeed", ACCOUNT_PREFIX)

    @property
    def signing_key(self) -> str:
        return public_key(self.signing_seed, "userIssuer.signingSeed", ACCOUNT_PREFIX)

    def issue(
        self,
        role: Role,
        name: str,
        lattice: str,
        *,
        expires_at: int | None = None,
        js_domain: str | None = None,
        link_targets: Sequence[str] = (),
        identity: str | None = None,
        application_buckets: bool = False,
        now: int | None = None,
    ) -> NatsCredentials:
        """A new user (a fresh nkey) with ``role``'s permissions in ``lattice`` (see
        ``role_permissions`` for ``identity`` and ``application_buckets``)."""
        permissions = role_permissions(
            role,
            lattice,
            js_domain=js_domain,
            link_targets=link_targets,
            identity=identity,
            application_buckets=application_buckets,
        )
        return self.issue_with(permissions, name, expires_at=expires_at, now=now)

    def issue_with(
        self,
        permissions: Permissions,
        name: str,
        *,
        expires_at: int | None = None,
        now: int | None = None,
    ) -> NatsCredentials:
        """A new user with exactly ``permissions`` (e.g. a per-link grant)."""
        seed = _new_seed(USER_PREFIX)
        claims = user_claims(
            self.signing_key,
            public_key(seed, "user seed"),
            name,
            permissions=permissions,
            issuer_account=self.account_public_key,
            expires_at=expires_at,
            now=_now(now),
        )
        return NatsCredentials(encode_jwt(self.signing_seed, claims), seed)

    def to_state(self) -> dict[str, str]:
        return {"accountPublicKey": self.account_public_key, "signingSeed": self.signing_seed}

    @classmethod
    def from_state(cls, state: object, field: str) -> UserIssuer:
        values = _state_mapping(state, field, ("accountPublicKey", "signingSeed"))
        account = _state_str(values, "accountPublicKey", field)
        seed = _state_str(values, "signingSeed", field)
        check_public_key(account, f"{field}.accountPublicKey", ACCOUNT_PREFIX)
        public_key(seed, f"{field}.signingSeed", ACCOUNT_PREFIX)
        return cls(account, seed)


_STATE_KEYS = (
    "lattice",
    "operatorSeed",
    "operatorJwt",
    "systemAccountSeed",
    "systemAccountJwt",
    "accountSeed",
    "accountJwt",
    "signingSeed",
)


@dataclass(frozen=True)
class LatticeAuthority:
    """One lattice's operator, system account and account, with their seeds (secret)."""

    lattice: str
    operator_jwt: str
    system_account_jwt: str
    account_jwt: str
    operator_seed: str = field(repr=False)
    system_account_seed: str = field(repr=False)
    account_seed: str = field(repr=False)
    signing_seed: str = field(repr=False)

    @classmethod
    def create(cls, lattice: str, *, now: int | None = None) -> LatticeAuthority:
        issued = _now(now)
        operator_seed = _new_seed(OPERATOR_PREFIX)
        system_seed = _new_seed(ACCOUNT_PREFIX)
        account_seed = _new_seed(ACCOUNT_PREFIX)
        signing_seed = _new_seed(ACCOUNT_PREFIX)
        operator = public_key(operator_seed, "operator seed")
        system = public_key(system_seed, "system account seed")
        account = public_key(account_seed, "account seed")
        operator_jwt = encode_jwt(
            operator_seed,
            operator_claims(operator, f"lattice-{lattice}", system_account=system, now=issued),
        )
        system_jwt = encode_jwt(
            operator_seed,
            account_claims(operator, system, SYSTEM_ACCOUNT_NAME, jetstream=False, now=issued),
        )
        account_jwt = encode_jwt(
            operator_seed,
            account_claims(
                operator,
                account,
                lattice,
                jetstream=True,
                signing_keys=[public_key(signing_seed, "signing seed")],
                now=issued,
            ),
        )
        return cls(
            lattice,
            operator_jwt,
            system_jwt,
            account_jwt,
            operator_seed,
            system_seed,
            account_seed,
            signing_seed,
        )

    # Keys ---------------------------------------------------------------------------------
    @property
    def operator_public_key(self) -> str:
        return public_key(self.operator_seed, "operator seed")

    @property
    def system_account_public_key(self) -> str:
        return public_key(self.system_account_seed, "system account seed")

    @property
    def account_public_key(self) -> str:
        return public_key(self.account_seed, "account seed")

    @property
    def revocations(self) -> dict[str, int]:
        """Revoked users: public key -> the time before which their JWTs are refused."""
        claims = decode_claims(self.account_jwt, "accountJwt")
        revoked = claims["nats"].get("revocations") or {}
        return dict(revoked)

    # What servers and users get -------------------------------------------------------
    def server_auth(self) -> OperatorAuth:
        return OperatorAuth(
            self.operator_jwt,
            self.system_account_public_key,
            {
                self.account_public_key: self.account_jwt,
                self.system_account_public_key: self.system_account_jwt,
            },
        )

    def user_issuer(self) -> UserIssuer:
        return UserIssuer(self.account_public_key, self.signing_seed)

    def system_credentials(
        self, *, name: str = "system", expires_at: int | None = None, now: int | None = None
    ) -> NatsCredentials:
        """A user of the system account (pushes account updates, reads server state)."""
        seed = _new_seed(USER_PREFIX)
        claims = user_claims(
            self.system_account_public_key,
            public_key(seed, "user seed"),
            name,
            permissions=None,
            expires_at=expires_at,
            now=_now(now),
        )
        return NatsCredentials(encode_jwt(self.system_account_seed, claims), seed)

    def revoke(self, user_public_key: str, *, at: int) -> LatticeAuthority:
        """The authority with the user's JWTs issued at or before ``at`` revoked: a new
        account JWT, issued now (never older than the one it replaces: servers keep the
        newer of two)."""
        check_public_key(user_public_key, "the revoked user's public key", USER_PREFIX)
        old = decode_claims(self.account_jwt, "accountJwt")
        revocations = {**self.revocations, user_public_key: at}
        claims = account_claims(
            self.operator_public_key,
            self.account_public_key,
            str(old.get("name", self.lattice)),
            jetstream=True,
            signing_keys=list(old["nats"].get("signing_keys") or ()),
            revocations=revocations,
            now=max(int(time.time()), int(old["iat"]) + 1),
        )
        return replace(self, account_jwt=encode_jwt(self.operator_seed, claims))

    # State ----------------------------------------------------------------------------
    def to_state(self) -> dict[str, str]:
        return {
            "lattice": self.lattice,
            "operatorSeed": self.operator_seed,
            "operatorJwt": self.operator_jwt,
            "systemAccountSeed": self.system_account_seed,
            "systemAccountJwt": self.system_account_jwt,
            "accountSeed": self.account_seed,
            "accountJwt": self.account_jwt,
            "signingSeed": self.signing_seed,
        }

    @classmethod
    def from_state(cls, state: object, field: str) -> LatticeAuthority:
        """The authority kept in ``state`` (Pulumi secret state), each JWT checked against
        its seed and issuer; a wrong or missing field is named."""
        values = _state_mapping(state, field, _STATE_KEYS)
        text = {key: _state_str(values, key, field) for key in _STATE_KEYS}
        operator = public_key(text["operatorSeed"], f"{field}.operatorSeed", OPERATOR_PREFIX)
        system = public_key(text["systemAccountSeed"], f"{field}.systemAccountSeed", ACCOUNT_PREFIX)
        account = public_key(text["accountSeed"], f"{field}.accountSeed", ACCOUNT_PREFIX)
        signing = public_key(text["signingSeed"], f"{field}.signingSeed", ACCOUNT_PREFIX)
        operator_claims_ = _issued_for(
            text["operatorJwt"], operator, operator, "operator", f"{field}.operatorJwt"
        )
        if operator_claims_["nats"].get("system_account") != system:
            raise JwtError(f"{field}.operatorJwt names another system account than the seed's")
        _issued_for(
            text["systemAccountJwt"], operator, system, "account", f"{field}.systemAccountJwt"
        )
        account_claims_ = _issued_for(
            text["accountJwt"], operator, account, "account", f"{field}.accountJwt"
        )
        if signing not in (account_claims_["nats"].get("signing_keys") or ()):
            raise JwtError(f"{field}.accountJwt does not list the signing key of signingSeed")
        return cls(
            text["lattice"],
            text["operatorJwt"],
            text["systemAccountJwt"],
            text["accountJwt"],
            text["operatorSeed"],
            text["systemAccountSeed"],
            text["accountSeed"],
            text["signingSeed"],
        )


def check_user_credentials(
    credentials: NatsCredentials, who: str, *, now: int | None = None, fix: str
) -> dict[str, Any]:
    """The user JWT's claims, or a JwtError saying plainly that ``who``'s user JWT expired
    (or is not valid yet) and ``fix``: nats-server only answers "Authorization Violation"."""
    claims = decode_claims(credentials.jwt, f"the {who} user JWT")
    check_times(claims, f"the {who} user JWT", _now(now), fix)
    return claims


def expiry_text(claims: Mapping[str, Any]) -> str:
    """``expires at <time>`` or ``never expires`` for a user's claims."""
    expires = claims.get("exp")
    return f"expires at {when(expires)}" if isinstance(expires, int) else "never expires"
