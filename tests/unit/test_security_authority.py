"""A lattice's NATS authority: keys made once, kept as (secret) state and read back
strictly, users signed by a signing key, revocations, and nothing secret in a repr."""

from __future__ import annotations

import pytest

from host_agent.lattice.connection import NatsCredentials
from host_agent.security.authority import (
    LatticeAuthority,
    UserIssuer,
    check_user_credentials,
)
from host_agent.security.jwt import JwtError, decode_claims, public_key, verify_jwt
from host_agent.security.permissions import Role, role_permissions

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def authority() -> LatticeAuthority:
    return LatticeAuthority.create("blue", now=NOW)


def _user_key(credentials: NatsCredentials) -> str:
    return public_key(credentials.seed, "user seed")


def test_the_servers_get_the_operator_and_both_accounts(authority: LatticeAuthority) -> None:
    auth = authority.server_auth()
    operator = verify_jwt(auth.operator_jwt, authority.operator_public_key, "operator")
    assert operator["nats"]["system_account"] == auth.system_account
    assert set(auth.account_jwts) == {authority.account_public_key, auth.system_account}
    account = verify_jwt(
        auth.account_jwts[authority.account_public_key], authority.operator_public_key, "acct"
    )
    assert account["name"] == "blue" and account["nats"]["type"] == "account"
    assert account["nats"]["limits"]["disk_storage"] == -1  # JetStream on
    system = decode_claims(auth.account_jwts[auth.system_account], "system")
    assert system["nats"]["limits"]["disk_storage"] == 0  # no JetStream in SYS


def test_users_are_signed_by_the_signing_key_for_the_account(
    authority: LatticeAuthority,
) -> None:
    issuer = authority.user_issuer()
    assert issuer.signing_key != authority.account_public_key
    creds = issuer.issue(Role.HOST, "host-1", "blue", expires_at=NOW + 3600, now=NOW)
    claims = verify_jwt(creds.jwt, issuer.signing_key, "the host user JWT")
    assert claims["nats"]["issuer_account"] == authority.account_public_key
    assert claims["sub"] == _user_key(creds) and claims["exp"] == NOW + 3600
    expected = role_permissions(Role.HOST, "blue")
    assert claims["nats"]["pub"]["allow"] == list(expected.pub_allow)
    assert claims["nats"]["sub"]["allow"] == list(expected.sub_allow)
    assert claims["nats"]["resp"] == {"max": 1, "ttl": 0}
    signing_keys = decode_claims(authority.account_jwt, "acct")["nats"]["signing_keys"]
    assert issuer.signing_key in signing_keys
    # Each issue is a new user.
    assert _user_key(issuer.issue(Role.HOST, "host-1", "blue")) != _user_key(creds)


def test_state_round_trips_and_reprs_hold_no_seed(authority: LatticeAuthority) -> None:
    state = authority.to_state()
    assert LatticeAuthority.from_state(state, "authority") == authority
    issuer = authority.user_issuer()
    assert UserIssuer.from_state(issuer.to_state(), "userIssuer") == issuer
    for seed in (
        authority.operator_seed,
        authority.system_account_seed,
        authority.account_seed,
        authority.signing_seed,
    ):
        assert seed not in repr(authority) and seed not in repr(issuer)
        assert seed not in repr(authority.server_auth())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"operatorSeed": 5}, "authority.operatorSeed must be a non-empty string, got a int"),
        ({"accountSeed": None}, "authority.accountSeed must be a non-empty string, got missing"),
        ({"extra": "x"}, "authority has unknown fields extra"),
        ({"signingSeed": "SUAXXXX"}, "authority.signingSeed is not a valid nkey seed"),
    ],
)
def test_state_of_the_wrong_shape_is_refused_by_name(
    authority: LatticeAuthority, change: dict[str, object], message: str
) -> None:
    state: dict[str, object] = {**authority.to_state(), **change}
    with pytest.raises(JwtError, match=f"^{message}"):
        LatticeAuthority.from_state(state, "authority")


def test_state_mixing_two_authorities_is_refused(authority: LatticeAuthority) -> None:
    other = LatticeAuthority.create("green", now=NOW)
    mixed = {**authority.to_state(), "accountJwt": other.account_jwt}
    with pytest.raises(JwtError, match=r"^authority\.accountJwt was issued by O"):
        LatticeAuthority.from_state(mixed, "authority")
    foreign_signer = {**authority.to_state(), "signingSeed": other.signing_seed}
    with pytest.raises(JwtError, match="does not list the signing key"):
        LatticeAuthority.from_state(foreign_signer, "authority")
    with pytest.raises(JwtError, match=r"^authority must be an object, got str"):
        LatticeAuthority.from_state("secret", "authority")
    with pytest.raises(JwtError, match=r"^userIssuer lacks signingSeed"):
        UserIssuer.from_state({"accountPublicKey": authority.account_public_key}, "userIssuer")


def test_revoking_a_user_issues_a_newer_account_jwt_naming_it(
    authority: LatticeAuthority,
) -> None:
    creds = authority.user_issuer().issue(Role.TOOLING, "wash", "blue", now=NOW)
    revoked = authority.revoke(_user_key(creds), at=NOW + 5)
    assert revoked.revocations == {_user_key(creds): NOW + 5}
    old, new = (decode_claims(a.account_jwt, "acct") for a in (authority, revoked))
    assert new["iat"] > old["iat"]
    assert new["nats"]["signing_keys"] == old["nats"]["signing_keys"]
    assert revoked.server_auth().account_jwts[authority.account_public_key] == revoked.account_jwt
    again = revoked.revoke(_user_key(authority.user_issuer().issue(Role.HOST, "h", "blue")), at=1)
    assert len(again.revocations) == 2 and _user_key(creds) in again.revocations
    assert LatticeAuthority.from_state(again.to_state(), "authority") == again
    with pytest.raises(JwtError, match="must be an user public key"):
        authority.revoke(authority.account_public_key, at=NOW)


def test_system_credentials_are_a_user_of_the_system_account(
    authority: LatticeAuthority,
) -> None:
    creds = authority.system_credentials(now=NOW)
    claims = verify_jwt(creds.jwt, authority.system_account_public_key, "system user")
    assert claims["nats"]["type"] == "user" and "issuer_account" not in claims["nats"]


def test_expired_credentials_are_named_with_what_to_do(authority: LatticeAuthority) -> None:
    creds = authority.user_issuer().issue(Role.HOST, "host-1", "blue", expires_at=NOW + 60, now=NOW)
    check_user_credentials(creds, "host", now=NOW + 59, fix="run `pulumi up`")
    with pytest.raises(JwtError) as expired:
        check_user_credentials(
            creds, "host", now=NOW + 60, fix="run `pulumi up` to issue a new one"
        )
    assert str(expired.value) == (
        "the host user JWT expired at 2027-01-15 08:01:00 UTC; run `pulumi up` to issue a new one"
    )
