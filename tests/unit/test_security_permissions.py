"""What each role may publish and subscribe to, checked with nats-server's own rules
(an allow list, then deny wins; `*` one token, `>` the rest) against subjects made by
host_agent.lattice.subjects, the same helpers the host, controller and CLI use."""

from __future__ import annotations

import pytest

from host_agent.lattice.subjects import (
    SECRETS_BUCKET,
    CtlSubjects,
    config_bucket,
    event_subject,
    link_grant_subject,
    links_bucket,
    provider_rpc_subject,
    secrets_subject,
    wadm_api_subject,
    wadm_status_subject,
)
from host_agent.security.jwt import Permissions
from host_agent.security.permissions import Role, role_permissions

LATTICE, OTHER = "blue", "green"
INBOX = "_INBOX.abc123.results"


def matches(pattern: str, subject: str) -> bool:
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def may_publish(perms: Permissions, subject: str) -> bool:
    return any(matches(p, subject) for p in perms.pub_allow) and not any(
        matches(p, subject) for p in perms.pub_deny
    )


def may_subscribe(perms: Permissions, subject: str) -> bool:
    return any(matches(p, subject) for p in perms.sub_allow) and not any(
        matches(p, subject) for p in perms.sub_deny
    )


def wrpc(lattice: str, target: str) -> str:
    return f"{lattice}.{target}.wrpc.0.0.1.wasi:http/incoming-handler@0.2.0.handle"


def kv_put(bucket: str, key: str = "k") -> str:
    return f"$KV.{bucket}.{key}"


def test_the_subject_matcher_follows_nats_rules() -> None:
    assert matches("a.*.c", "a.b.c") and not matches("a.*.c", "a.b.d")
    assert matches("a.>", "a.b.c") and not matches("a.>", "a")
    assert not matches("a.b", "a.b.c")


@pytest.mark.parametrize("role", list(Role))
def test_every_role_gets_replies_and_never_an_empty_allow_list(role: Role) -> None:
    perms = role_permissions(role, LATTICE)
    # nats-server reads an empty allow list as "everything".
    assert perms.pub_allow and perms.sub_allow
    assert may_subscribe(perms, INBOX) and may_publish(perms, INBOX)
    assert may_publish(perms, "$JS.API.INFO")
    assert may_publish(perms, "$JS.API.STREAM.NAMES")  # nats-py looks a bucket's stream up


@pytest.mark.parametrize("role", list(Role))
def test_no_role_reaches_another_lattice(role: Role) -> None:
    perms = role_permissions(role, LATTICE, identity="VPROVIDER")
    other = CtlSubjects(OTHER)
    for subject in (
        other.host_ping(),
        other.component_scale("NHOST"),
        event_subject(OTHER, "host_heartbeat"),
        wrpc(OTHER, "comp"),
        provider_rpc_subject(OTHER, "VPROVIDER", "health"),
        wadm_api_subject(OTHER, "deploy", "app"),
        link_grant_subject(OTHER),
        kv_put(links_bucket(OTHER)),
        kv_put(config_bucket(OTHER)),
        f"$JS.API.STREAM.INFO.KV_{links_bucket(OTHER)}",
        f"$JS.API.DIRECT.GET.KV_{config_bucket(OTHER)}.$KV.{config_bucket(OTHER)}.k",
    ):
        assert not may_publish(perms, subject), subject
        assert not may_subscribe(perms, subject), subject


def test_a_host_serves_its_lattice_and_keeps_its_buckets() -> None:
    perms = role_permissions(Role.HOST, LATTICE)
    ctl = CtlSubjects(LATTICE)
    for subject, _queue in ctl.host_subscriptions("NHOST"):
        assert may_subscribe(perms, subject), subject
    assert perms.allow_responses
    assert may_publish(perms, event_subject(LATTICE, "host_heartbeat"))
    assert may_publish(perms, provider_rpc_subject(LATTICE, "VP", "linkdefs.put"))
    assert may_subscribe(perms, wrpc(LATTICE, "comp"))
    # Outgoing calls go over link grants (a second user); the base user invokes nothing.
    assert not may_publish(perms, wrpc(LATTICE, "other-comp"))
    assert may_publish(perms, link_grant_subject(LATTICE))
    for bucket in (links_bucket(LATTICE), config_bucket(LATTICE)):
        assert may_publish(perms, kv_put(bucket))
        stream = f"KV_{bucket}"
        for api in ("STREAM.INFO", "STREAM.CREATE", "DIRECT.GET", "CONSUMER.CREATE"):
            assert may_publish(perms, f"$JS.API.{api}.{stream}"), api
        assert may_publish(perms, f"$JS.API.CONSUMER.CREATE.{stream}.watch.$KV.{bucket}.>")
        assert may_publish(perms, f"$JS.API.STREAM.MSG.GET.{stream}")
        assert may_publish(perms, f"$JS.ACK.{stream}.1.2.3.4.5")
    # A host does not drive other hosts, nor act as the controller.
    assert not may_publish(perms, ctl.component_scale("NOTHER"))
    assert not may_subscribe(perms, wadm_api_subject(LATTICE, "deploy", "app"))
    assert not may_publish(perms, kv_put("wadm_manifests"))


def test_a_host_invokes_only_its_link_targets_when_they_are_given() -> None:
    perms = role_permissions(Role.HOST, LATTICE, link_targets=("kvredis",))
    assert may_publish(perms, wrpc(LATTICE, "kvredis"))
    assert not may_publish(perms, wrpc(LATTICE, "httpserver"))
    assert may_subscribe(perms, wrpc(LATTICE, "comp"))  # it still serves what it runs


@pytest.mark.parametrize("role", [Role.HOST, Role.CONTROLLER, Role.TOOLING])
def test_in_a_jetstream_domain_both_api_forms_are_allowed(role: Role) -> None:
    # Through a leaf the client's `$JS.edge.API...` reaches the hub as is; on a node of
    # the domain the server maps it to `$JS.API...` before checking permissions.
    perms = role_permissions(role, LATTICE, js_domain="edge")
    stream = f"KV_{links_bucket(LATTICE)}"
    for api in ("$JS.edge.API", "$JS.API"):
        assert may_publish(perms, f"{api}.STREAM.INFO.{stream}"), api
        assert may_publish(perms, f"{api}.INFO") and may_publish(perms, f"{api}.STREAM.NAMES")
    assert not may_publish(perms, f"$JS.other.API.STREAM.INFO.{stream}")
    host = role_permissions(Role.HOST, LATTICE, js_domain="edge")
    for api in ("$JS.edge.API", "$JS.API"):
        assert may_publish(host, f"{api}.$KV.{links_bucket(LATTICE)}.k"), api


def test_hosts_read_secrets_tooling_writes_them_and_no_role_reads_their_bucket() -> None:
    host = role_permissions(Role.HOST, LATTICE)
    tooling = role_permissions(Role.TOOLING, LATTICE)
    assert may_publish(host, secrets_subject("nats-kv", "get"))
    assert may_publish(host, secrets_subject("nats-kv", "server_xkey"))
    assert not may_publish(host, secrets_subject("nats-kv", "put_secret"))
    for op in ("put_secret", "delete_secret", "server_xkey"):
        assert may_publish(tooling, secrets_subject("nats-kv", op)), op
    assert not may_publish(tooling, secrets_subject("nats-kv", "get"))  # never reads one
    stream = f"KV_{SECRETS_BUCKET}"
    for role in Role:
        for perms in (
            role_permissions(role, LATTICE, application_buckets=True),
            role_permissions(role, LATTICE, js_domain="edge", application_buckets=True),
        ):
            assert not may_publish(perms, f"$KV.{SECRETS_BUCKET}.app.db"), role
            assert not may_publish(perms, f"$JS.API.DIRECT.GET.{stream}.$KV.{SECRETS_BUCKET}.x")
            assert not may_publish(perms, f"$JS.edge.API.STREAM.MSG.GET.{stream}"), role
            assert not may_subscribe(perms, secrets_subject("nats-kv", "get")), role


def test_the_controller_serves_wadm_and_drives_hosts() -> None:
    perms = role_permissions(Role.CONTROLLER, LATTICE)
    ctl = CtlSubjects(LATTICE)
    assert may_subscribe(perms, wadm_api_subject(LATTICE, "deploy", "app"))
    assert may_subscribe(perms, link_grant_subject(LATTICE))
    assert may_subscribe(perms, event_subject(LATTICE, "component_scaled"))
    for subject in (ctl.component_scale("NHOST"), ctl.link_put(), ctl.host_ping()):
        assert may_publish(perms, subject), subject
    assert may_publish(perms, wadm_status_subject(LATTICE, "app"))
    assert may_publish(perms, kv_put("wadm_manifests"))
    assert may_publish(perms, kv_put("wadm_leader"))
    assert may_publish(perms, "$JS.API.STREAM.CREATE.wadm_status")
    assert may_publish(perms, f"$JS.API.STREAM.INFO.KV_{links_bucket(LATTICE)}")
    assert not may_publish(perms, kv_put(links_bucket(LATTICE)))  # hosts own links
    assert not may_subscribe(perms, ctl.host_ping())  # it does not pose as a host
    assert not may_subscribe(perms, wrpc(LATTICE, "comp"))


def test_a_provider_answers_its_host_and_keeps_app_buckets_but_not_the_lattices() -> None:
    perms = role_permissions(Role.PROVIDER, LATTICE, identity="VKV")
    assert may_subscribe(perms, provider_rpc_subject(LATTICE, "VKV", "linkdefs.put"))
    assert may_subscribe(perms, provider_rpc_subject(LATTICE, "VKV", "health"))
    assert not may_subscribe(perms, provider_rpc_subject(LATTICE, "VOTHER", "health"))
    assert may_subscribe(perms, wrpc(LATTICE, "VKV"))
    assert not may_subscribe(perms, wrpc(LATTICE, "comp"))
    assert not may_publish(perms, wrpc(LATTICE, "comp"))  # no links: invokes nothing
    assert may_publish(
        role_permissions(Role.PROVIDER, LATTICE, link_targets=("c",)), wrpc(LATTICE, "c")
    )
    assert not may_subscribe(perms, CtlSubjects(LATTICE).host_ping())
    assert not may_publish(perms, event_subject(LATTICE, "host_heartbeat"))
    assert not may_publish(perms, kv_put("app_bucket"))
    # keyvalue-nats: application buckets yes, the lattice's and wadm's buckets no.
    perms = role_permissions(Role.PROVIDER, LATTICE, identity="VKV", application_buckets=True)
    assert may_publish(perms, kv_put("app_bucket"))
    assert may_publish(perms, "$JS.API.STREAM.CREATE.KV_app_bucket")
    assert may_publish(perms, f"$JS.API.STREAM.INFO.KV_{links_bucket(LATTICE)}")
    for bucket in (links_bucket(LATTICE), config_bucket(LATTICE), "wadm_manifests"):
        stream = f"KV_{bucket}"
        assert not may_publish(perms, kv_put(bucket)), bucket
        assert not may_publish(perms, f"$JS.API.DIRECT.GET.{stream}.$KV.{bucket}.k")
        assert not may_publish(perms, f"$JS.API.STREAM.MSG.GET.{stream}")
        assert not may_publish(perms, f"$JS.API.STREAM.PURGE.{stream}")
        assert not may_publish(perms, f"$JS.API.CONSUMER.CREATE.{stream}")


def test_tooling_drives_the_lattice_like_wash_without_posing_as_a_host() -> None:
    perms = role_permissions(Role.TOOLING, LATTICE)
    ctl = CtlSubjects(LATTICE)
    for subject in (
        ctl.host_ping(),
        ctl.component_scale("NHOST"),
        ctl.link_put(),
        ctl.config_put("cfg"),
        ctl.claims_get(),
        wadm_api_subject(LATTICE, "put"),
        wadm_api_subject(LATTICE, "deploy", "app"),
        f"$JS.API.STREAM.CREATE.KV_{links_bucket(LATTICE)}",
        "$JS.API.DIRECT.GET.KV_wadm_manifests",
    ):
        assert may_publish(perms, subject), subject
    assert may_subscribe(perms, event_subject(LATTICE, "host_heartbeat"))
    assert may_subscribe(perms, wadm_status_subject(LATTICE, "app"))
    assert not may_subscribe(perms, ctl.host_ping())
    assert not may_subscribe(perms, wrpc(LATTICE, "comp"))
    assert not may_publish(perms, wrpc(LATTICE, "comp"))
    assert not may_publish(perms, event_subject(LATTICE, "host_heartbeat"))
    assert not may_publish(perms, kv_put(links_bucket(LATTICE)))
