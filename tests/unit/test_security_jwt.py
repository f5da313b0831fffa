"""NATS JWT v2 encoding: what nats-server reads, and strict refusals that name the field."""

from __future__ import annotations

import base64
import json
import os

import pytest

from host_agent.security.jwt import (
    ACCOUNT_PREFIX,
    OPERATOR_PREFIX,
    USER_PREFIX,
    JwtError,
    Permissions,
    check_public_key,
    check_times,
    decode_claims,
    encode_jwt,
    new_seed,
    public_key,
    user_claims,
    verify_jwt,
)

NOW = 1_800_000_000


def _seed(kind: str) -> str:
    return new_seed(kind, os.urandom(32))


def _user_jwt(issuer_seed: str, **kwargs: object) -> str:
    issuer = public_key(issuer_seed, "issuer")
    user = public_key(_seed(USER_PREFIX), "user")
    claims = user_claims(issuer, user, "u", permissions=None, now=NOW, **kwargs)  # type: ignore[arg-type]
    return encode_jwt(issuer_seed, claims)


def _with_claims(jwt: str, change: dict[str, object]) -> str:
    head, body, signature = jwt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims.update(change)
    new_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{new_body}.{signature}"


def test_a_signed_jwt_decodes_to_its_claims_and_verifies_against_its_issuer() -> None:
    account = _seed(ACCOUNT_PREFIX)
    jwt = _user_jwt(account, expires_at=NOW + 60)
    header = json.loads(base64.urlsafe_b64decode(jwt.split(".")[0] + "=="))
    assert header == {"typ": "JWT", "alg": "ed25519-nkey"}
    claims = verify_jwt(jwt, public_key(account, "account"), "the user JWT")
    assert claims["iss"] == public_key(account, "account")
    assert claims["sub"].startswith("U") and claims["iat"] == NOW and claims["exp"] == NOW + 60
    assert claims["nats"]["type"] == "user" and claims["nats"]["version"] == 2
    assert len(claims["jti"]) == 52  # base32 of a 32-byte hash, unpadded


def test_a_jwt_signed_by_another_key_or_altered_is_refused() -> None:
    account, other = _seed(ACCOUNT_PREFIX), _seed(ACCOUNT_PREFIX)
    jwt = _user_jwt(account)
    with pytest.raises(JwtError, match="the host user JWT was issued by A"):
        verify_jwt(jwt, public_key(other, "other"), "the host user JWT")
    forged = _with_claims(jwt, {"name": "admin"})
    with pytest.raises(JwtError, match="the host user JWT: the JWT's signature does not match"):
        verify_jwt(forged, public_key(account, "account"), "the host user JWT")


def test_encoding_refuses_claims_whose_issuer_is_not_the_signer() -> None:
    account, other = _seed(ACCOUNT_PREFIX), _seed(ACCOUNT_PREFIX)
    claims = user_claims(public_key(other, "o"), "U", "u", permissions=None, now=NOW)
    with pytest.raises(JwtError, match=r"claims\.iss"):
        encode_jwt(account, claims)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"iat": "1800000000"}, "claim iat must be an integer, got str"),
        ({"exp": True}, "claim exp must be an integer, got bool"),
        ({"iss": None}, "claim iss must be a non-empty string, got missing"),
        ({"sub": 5}, "claim sub must be a non-empty string, got a int"),
        ({"nats": {"type": "user", "version": 1}}, "claim nats.version must be 2"),
        ({"nats": {"version": 2}}, "claim nats.type must be a string"),
        ({"nats": []}, "claim nats must be an object"),
    ],
)
def test_claims_of_the_wrong_type_are_refused_with_their_name(
    change: dict[str, object], message: str
) -> None:
    jwt = _with_claims(_user_jwt(_seed(ACCOUNT_PREFIX)), change)
    with pytest.raises(JwtError, match=f"^the tooling user JWT: {message}"):
        decode_claims(jwt, "the tooling user JWT")


@pytest.mark.parametrize(
    ("jwt", "message"),
    [
        (7, "must be a JWT \\(a string\\), got int"),
        ("a.b", "is not a JWT"),
        ("!!!.e30.sig", "header is not base64url|not JSON"),
        ("e30.e30.c2ln", "typ must be JWT"),
    ],
)
def test_text_that_is_not_a_jwt_is_refused(jwt: object, message: str) -> None:
    with pytest.raises(JwtError, match=f"^credentials.jwt.*({message})"):
        decode_claims(jwt, "credentials.jwt")  # type: ignore[arg-type]


def test_expired_and_not_yet_valid_claims_say_when_and_what_to_do() -> None:
    fix = "run `pulumi up` to issue a new one"
    with pytest.raises(JwtError) as expired:
        check_times({"exp": NOW - 1}, "the host user JWT", NOW, fix)
    assert str(expired.value) == (
        "the host user JWT expired at 2027-01-15 07:59:59 UTC; run `pulumi up` to issue a new one"
    )
    with pytest.raises(JwtError, match="is not valid before 2027-01-15 08:00:10 UTC"):
        check_times({"nbf": NOW + 10}, "the host user JWT", NOW, fix)
    check_times({"exp": NOW + 1}, "the host user JWT", NOW, fix)


def test_seeds_and_public_keys_are_checked_by_kind_without_showing_the_seed() -> None:
    operator = _seed(OPERATOR_PREFIX)
    assert public_key(operator, "operatorSeed", OPERATOR_PREFIX).startswith("O")
    with pytest.raises(JwtError, match=r"^operatorSeed must be an account nkey seed") as wrong:
        public_key(operator, "operatorSeed", ACCOUNT_PREFIX)
    assert operator not in str(wrong.value)
    with pytest.raises(JwtError, match=r"^operatorSeed is not a valid nkey seed$"):
        public_key("SOAXXXX", "operatorSeed")
    account = public_key(_seed(ACCOUNT_PREFIX), "a")
    assert check_public_key(account, "key", ACCOUNT_PREFIX) == account
    broken = account[:-1] + ("A" if account[-1] != "A" else "B")
    with pytest.raises(JwtError, match="bad length or checksum"):
        check_public_key(broken, "key", ACCOUNT_PREFIX)
    with pytest.raises(JwtError, match="must be an user public key"):
        check_public_key(account, "key", USER_PREFIX)


def test_permissions_become_pub_sub_and_response_claims() -> None:
    perms = Permissions(
        pub_allow=("a.>",), pub_deny=("a.b",), sub_allow=("_INBOX.>",), allow_responses=True
    )
    assert perms.claims() == {
        "pub": {"allow": ["a.>"], "deny": ["a.b"]},
        "sub": {"allow": ["_INBOX.>"]},
        "resp": {"max": 1, "ttl": 0},
    }
    assert "resp" not in Permissions(pub_allow=("x",)).claims()
    merged = perms.merged(Permissions(pub_allow=("a.>", "c")))
    assert merged.pub_allow == ("a.>", "c") and merged.allow_responses
