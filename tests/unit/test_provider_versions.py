"""The draft-vs-final pitfall, for every built-in provider and every interface it serves:
a component built against another version is refused naming both versions and the fix,
and which provider another host runs is learnt from its events."""

from __future__ import annotations

import dataclasses
import re

import pytest

from host_agent.host.lattice_providers import LatticeProviders
from host_agent.lattice.protocol import Link
from host_agent.providers.builtin import BUILTINS, BuiltinProvider
from host_agent.runtime.provider_versions import (
    OFFERS,
    linked_version_problems,
    provider_offers,
    provider_version_problem,
)

# Issue 20's list; keyvalue-vault is left out there (no Vault-compatible server installs).
ISSUE_PROVIDERS = {
    "http-server",
    "http-client",
    "keyvalue-redis",
    "keyvalue-nats",
    "keyvalue-inmemory",
    "messaging-nats",
    "messaging-kafka",
    "sqldb-postgres",
    "blobstore-fs",
    "blobstore-s3",
}


def test_every_provider_of_the_issue_is_built_in() -> None:
    assert set(BUILTINS) >= ISSUE_PROVIDERS


def another_version(version: str) -> str:
    """The draft-vs-final kind of neighbour: 0.2.0-draft -> 0.2.0-draft2, 0.2.0 -> 0.3.0."""
    if "-" in version:
        return f"{version}2"
    major, minor, _ = version.split(".")
    return f"{major}.{int(minor) + 1}.0"


def split(entry: str) -> tuple[str, str, str, str]:
    """``wasi:keyvalue/store@0.2.0-draft (how)`` -> (wasi, keyvalue, store, 0.2.0-draft)."""
    base, _, version = entry.split(" ", 1)[0].partition("@")
    namespace, _, rest = base.partition(":")
    package, _, interface = rest.partition("/")
    return namespace, package, interface, version


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_a_component_of_another_version_is_refused_naming_both(name: str) -> None:
    provider = BUILTINS[name]
    assert provider.interfaces, f"{name} declares no interface, so no link to it is judged"
    for entry in provider.interfaces:
        namespace, package, interface, version = split(entry)
        base = f"{namespace}:{package}/{interface}"
        assert version, f"{name}: {entry} has no version"
        other = another_version(version)
        offer = OFFERS[name][base]
        # The provider calls what components export; components import what it exports.
        calls = entry in provider.calls
        source, target = ("prov", "app") if calls else ("app", "prov")
        link = Link(
            source_id=source,
            target=target,
            wit_namespace=namespace,
            wit_package=package,
            interfaces=[interface],
        )
        problem = provider_version_problem({base: other}, link, provider, not calls)
        assert problem is not None, f"{name}: {base}@{other} was not refused"
        verb = "exports" if calls else "imports"
        assert problem.startswith(f"app {verb} {base}@{other} but "), problem
        assert f"({name}) {'calls' if calls else 'serves'} {offer.wanted}" in problem
        assert f"rebuild app against {offer.wanted}" in problem
        # The provider's own version, and the check when the component starts.
        assert provider_version_problem({base: version}, link, provider, not calls) is None
        imports, exports = ({}, {base: other}) if calls else ({base: other}, {})
        started = linked_version_problems(
            imports, exports, "app", [link], lambda pid: provider if pid == "prov" else None
        )
        assert started == [problem]


def test_what_the_messages_name_for_the_tutorials_pitfalls() -> None:
    kv = Link(
        source_id="counter",
        target="kv",
        wit_namespace="wasi",
        wit_package="keyvalue",
        interfaces=["store", "atomics"],
    )
    problem = provider_version_problem(
        {"wasi:keyvalue/store": "0.2.0-draft2"}, kv, BUILTINS["keyvalue-redis"], True
    )
    assert problem == (
        "counter imports wasi:keyvalue/store@0.2.0-draft2 but kv (keyvalue-redis) serves "
        "wasi:keyvalue/store@0.2.0-draft; rebuild counter against wasi:keyvalue/store@"
        "0.2.0-draft (its WIT dependencies), or link it to a provider that serves "
        "wasi:keyvalue/store@0.2.0-draft2"
    )
    http = Link(
        source_id="http",
        target="hello",
        wit_namespace="wasi",
        wit_package="http",
        interfaces=["incoming-handler"],
    )
    server = BUILTINS["http-server"]
    rc = {"wasi:http/incoming-handler": "0.3.0-rc-2025-08-15"}
    assert provider_version_problem(rc, http, server, False) == (
        "hello exports wasi:http/incoming-handler@0.3.0-rc-2025-08-15 but http (http-server) "
        "calls wasi:http/incoming-handler@0.2.x; rebuild hello against "
        "wasi:http/incoming-handler@0.2.x (its WIT dependencies)"
    )
    # The runtime speaks every wasi:http 0.2.x to components.
    later = {"wasi:http/incoming-handler": "0.2.3"}
    assert provider_version_problem(later, http, server, False) is None
    # ... but not the 0.2 release candidates: another API, which wasmtime does not link.
    candidate = {"wasi:http/incoming-handler": "0.2.0-rc-2023-11-10"}
    assert provider_version_problem(candidate, http, server, False) == (
        "hello exports wasi:http/incoming-handler@0.2.0-rc-2023-11-10 but http (http-server) "
        "calls wasi:http/incoming-handler@0.2.x; rebuild hello against "
        "wasi:http/incoming-handler@0.2.x (its WIT dependencies)"
    )


def test_a_provider_added_without_a_version_is_refused() -> None:
    unversioned = dataclasses.replace(BUILTINS["keyvalue-nats"], exports=("wasi:keyvalue/store",))
    with pytest.raises(ValueError, match="has no version; write wasi:keyvalue/store@<version>"):
        provider_offers(unversioned)
    unserved = dataclasses.replace(unversioned, exports=("wasi:keyvalue/store@0.2.0-draft2",))
    with pytest.raises(
        ValueError, match=re.escape("runtime speaks wasi:keyvalue/store@0.2.0-draft")
    ):
        provider_offers(unserved)


def heartbeat(*providers: tuple[str, str]) -> dict[str, object]:
    return {"providers": [{"id": pid, "image_ref": ref} for pid, ref in providers]}


def test_the_providers_of_other_hosts_are_known_from_their_events() -> None:
    view = LatticeProviders("NSELF")
    view.apply(
        "provider_started",
        "NB",
        {
            "host_id": "NB",
            "provider_id": "pg",
            "image_ref": ("ghcr.io/wasmcloud/sqldb-postgres:0.7.2"),
        },
    )
    assert view.provider("pg") is BUILTINS["sqldb-postgres"]
    view.apply("provider_stopped", "NB", {"host_id": "NB", "provider_id": "pg"})
    assert view.provider("pg") is None
    # A heartbeat is the host's whole inventory: a host that joined late learns it.
    view.apply("host_heartbeat", "NC", heartbeat(("kv", "builtin:keyvalue-nats")))
    assert view.provider("kv") is BUILTINS["keyvalue-nats"]
    view.apply("host_heartbeat", "NC", heartbeat())
    assert view.provider("kv") is None
    view.apply("host_heartbeat", "NC", heartbeat(("kv", "builtin:keyvalue-nats")))
    view.apply("host_stopped", "NC", {"labels": {}})
    assert view.provider("kv") is None
    # Its own providers are in the host's state, not here.
    view.apply("host_heartbeat", "NSELF", heartbeat(("own", "builtin:http-server")))
    assert view.provider("own") is None


def test_a_provider_whose_wit_cannot_be_told_is_not_judged() -> None:
    view = LatticeProviders("NSELF")
    view.apply("host_heartbeat", "NB", heartbeat(("x", "ghcr.io/acme/custom:1.0.0")))
    assert view.provider("x") is None
    view.apply("host_heartbeat", "NB", heartbeat(("kv", "builtin:keyvalue-redis")))
    view.apply("host_heartbeat", "NC", heartbeat(("kv", "builtin:keyvalue-nats")))
    both: set[BuiltinProvider | None] = {view.provider("kv")}
    assert both == {None}  # two built-ins under one id
    view.apply("host_heartbeat", "NC", heartbeat(("kv", "ghcr.io/wasmcloud/keyvalue-redis:0.28.1")))
    assert view.provider("kv") is BUILTINS["keyvalue-redis"]
    # Malformed data from another host changes nothing.
    view.apply("host_heartbeat", "NC", {"providers": "nope"})
    view.apply("provider_started", "NC", {"host_id": "NC", "provider_id": 7})
    assert view.provider("kv") is BUILTINS["keyvalue-redis"]
