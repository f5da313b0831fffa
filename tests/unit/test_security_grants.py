"""Link grants: what a caller may invoke follows the links of the sources it runs."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import nkeys
import pytest

from host_agent.controller.grants import LinkGrants
from host_agent.lattice.protocol import Link
from host_agent.security.authority import LatticeAuthority
from host_agent.security.grants import (
    GRANT_LIFETIME,
    GrantError,
    GrantReply,
    GrantRequest,
    caller_permissions,
    caller_public_key,
    granted_targets,
    invocation_subjects,
    link_targets,
)
from host_agent.security.jwt import decode_claims, verify_jwt
from host_agent.wrpc.transport import invocation_subject

NOW = 1_800_000_000


def host_seed() -> str:
    return str(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_SERVER).decode())


def user_seed() -> str:
    return str(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode())


def link(source: str, target: str, package: str = "keyvalue") -> Link:
    return Link(
        source_id=source,
        target=target,
        wit_namespace="wasi",
        wit_package=package,
        interfaces=["store"],
    )


LINKS = [
    link("counter", "kvredis"),
    link("counter", "greeter", "greet"),
    link("httpserver", "counter", "http"),
    link("other", "kvsecret"),
]


def test_a_caller_may_invoke_the_targets_of_its_sources_links_only() -> None:
    assert link_targets(LINKS, ["counter"]) == ("greeter", "kvredis")
    assert link_targets(LINKS, ["httpserver"]) == ("counter",)
    assert link_targets(LINKS, ["counter", "httpserver"]) == ("counter", "greeter", "kvredis")
    assert link_targets(LINKS, []) == ()
    assert link_targets(LINKS, ["kvredis"]) == ()  # a target is not a source


def test_caller_permissions_allow_exactly_the_targets_invocations_and_inboxes() -> None:
    permissions = caller_permissions("lat", ["kvredis"])
    assert permissions.pub_allow == ("lat.kvredis.wrpc.0.0.1.>", "_INBOX.>")
    assert permissions.sub_allow == ("_INBOX.>",)
    assert permissions.pub_deny == ()
    # The subject a real call uses is inside what is allowed, and another's is not.
    call = invocation_subject("lat", "kvredis", "wrpc:keyvalue/store@0.2.0-draft", "get")
    assert call.startswith(permissions.pub_allow[0][:-1])
    assert not invocation_subject("lat", "kvsecret", "x", "get").startswith("lat.kvredis.")
    # No targets: inboxes only (an empty allow list would mean "everything" to nats-server).
    assert caller_permissions("lat", []).pub_allow == ("_INBOX.>",)


@pytest.mark.parametrize("target", ["a.b", "*", ">", "kv redis", ""])
def test_an_id_that_is_not_one_subject_token_is_refused_not_widened(target: str) -> None:
    with pytest.raises(GrantError, match="cannot be part of a NATS subject"):
        invocation_subjects("lat", target)


def test_a_signed_request_verifies_and_any_change_breaks_the_signature() -> None:
    seed, caller = host_seed(), caller_public_key(user_seed())
    request = GrantRequest.signed(seed, caller, ["b", "a", "a"], NOW)
    parsed = GrantRequest.parse(request.model_dump_json().encode())
    parsed.verify(NOW + 5)
    assert parsed.sources == ["a", "b"]
    tampered = [
        parsed.model_copy(update={"sources": ["a", "b", "kvsecret"]}),
        parsed.model_copy(update={"caller_key": caller_public_key(user_seed())}),
        parsed.model_copy(
            update={"host_id": GrantRequest.signed(host_seed(), caller, [], NOW).host_id}
        ),
        parsed.model_copy(update={"signature": "not base64!"}),
    ]
    for request in tampered:
        with pytest.raises(GrantError, match="signature does not match host"):
            request.verify(NOW)


def test_a_stale_request_is_refused_naming_the_clocks() -> None:
    request = GrantRequest.signed(host_seed(), caller_public_key(user_seed()), [], NOW)
    with pytest.raises(GrantError, match=r"issued_at .* sync the clocks"):
        request.verify(NOW + 3600)


def test_a_request_is_parsed_strictly_naming_the_field() -> None:
    with pytest.raises(ValueError, match="issued_at: expected a whole number"):
        GrantRequest.parse(b'{"host_id": "N", "caller_key": "U", "sources": [], "issued_at": "1"}')
    with pytest.raises(GrantError, match="error: expected a string"):
        GrantReply.parse(b'{"error": 1}')


def test_a_request_naming_a_bad_caller_key_or_source_is_refused() -> None:
    seed = host_seed()
    with pytest.raises(ValueError, match="caller_key"):
        GrantRequest.signed(seed, "UNOTAKEY", [], NOW).verify(NOW)
    with pytest.raises(GrantError, match=r"source 'a\.>'"):
        GrantRequest.signed(seed, caller_public_key(user_seed()), ["a.>"], NOW).verify(NOW)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_controller_grants_a_jwt_the_account_signed_for_the_links_of_the_sources() -> None:
    authority = LatticeAuthority.create("lat", now=NOW)
    issuer = authority.user_issuer()

    async def read_links() -> list[dict[str, Any]]:
        return [item.model_dump() for item in LINKS]

    grants = LinkGrants("lat", issuer, read_links)
    caller = caller_public_key(user_seed())
    request = GrantRequest.signed(host_seed(), caller, ["counter"], NOW)
    reply = run(grants.grant(request.model_dump_json().encode(), now=NOW))
    assert reply.error == ""
    assert reply.targets == ["greeter", "kvredis"]
    claims = verify_jwt(reply.jwt, issuer.signing_key, "grant")
    assert claims["sub"] == caller
    assert claims["exp"] == NOW + GRANT_LIFETIME
    assert claims["nats"]["issuer_account"] == authority.account_public_key
    assert claims["nats"]["pub"]["allow"] == [
        "lat.greeter.wrpc.0.0.1.>",
        "lat.kvredis.wrpc.0.0.1.>",
        "_INBOX.>",
    ]
    assert granted_targets(reply.jwt, "lat", "grant") == {"greeter", "kvredis"}
    # Another lattice's subjects are never in a grant of this one.
    assert not any(
        s.startswith("other.") for s in decode_claims(reply.jwt, "g")["nats"]["pub"]["allow"]
    )


def test_the_controller_refuses_a_forged_request_and_a_link_to_a_bad_id() -> None:
    issuer = LatticeAuthority.create("lat", now=NOW).user_issuer()

    async def read_links() -> list[dict[str, Any]]:
        return [link("counter", "kv.>").model_dump()]

    grants = LinkGrants("lat", issuer, read_links)
    caller = caller_public_key(user_seed())
    forged = GrantRequest.signed(host_seed(), caller, ["other"], NOW).model_copy(
        update={"sources": ["counter"]}
    )
    reply = run(grants.grant(forged.model_dump_json().encode(), now=NOW))
    assert reply.jwt == "" and "signature does not match" in reply.error
    request = GrantRequest.signed(host_seed(), caller, ["counter"], NOW)
    reply = run(grants.grant(request.model_dump_json().encode(), now=NOW))
    assert reply.jwt == "" and "link target 'kv.>' cannot be part of a NATS subject" in reply.error
    reply = run(grants.grant(b"{}", now=NOW))
    assert "host_id: required but missing" in reply.error
