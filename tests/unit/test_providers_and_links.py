"""Which provider references run, how links reach providers, and the draft-vs-final check."""

from __future__ import annotations

import pytest

from host_agent.host.links import LinkIndex, ResolvedLink, provider_link_changes
from host_agent.lattice.protocol import Link
from host_agent.providers.builtin import UnknownProvider, resolve_provider
from host_agent.providers.contract import HostData
from host_agent.runtime.provider_versions import runtime_version_mismatch as version_mismatch


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("ghcr.io/wasmcloud/http-server:0.23.0", "http-server"),
        ("ghcr.io/wasmcloud/keyvalue-redis:0.28.1", "keyvalue-redis"),
        ("builtin:keyvalue-inmemory", "keyvalue-inmemory"),
        ("builtin://keyvalue-nats", "keyvalue-nats"),
    ],
)
def test_well_known_refs_map_to_builtin_providers(ref: str, name: str) -> None:
    assert resolve_provider(ref).name == name


def test_unknown_provider_ref_names_what_this_host_can_run() -> None:
    with pytest.raises(UnknownProvider) as raised:
        resolve_provider("ghcr.io/acme/blobstore-s3:1.0.0")
    message = str(raised.value)
    assert "ghcr.io/acme/blobstore-s3:1.0.0" in message and "builtin:http-server" in message


def test_host_data_is_a_base64_json_line() -> None:
    data = HostData(
        host_id="NHOST",
        lattice_rpc_prefix="default",
        lattice_rpc_url="nats://127.0.0.1:4222",
        provider_key="kv",
        instance_id="i",
    )
    line = data.encode()
    assert line.endswith(b"\r\n") and b"{" not in line
    assert HostData.decode(line) == data


def link(source: str, target: str, package: str = "keyvalue", **extra: object) -> Link:
    return Link.model_validate(
        {
            "source_id": source,
            "target": target,
            "wit_namespace": "wasi",
            "wit_package": package,
            "interfaces": ["store", "atomics"],
            **extra,
        }
    )


def test_link_index_resolves_imports_by_interface_and_name() -> None:
    index = LinkIndex([link("counter", "kvredis"), link("counter", "kvmem", name="cache")])
    assert index.target_for("counter", "wasi", "keyvalue", "atomics") == "kvredis"
    assert index.target_for("counter", "wasi", "keyvalue", "store", "cache") == "kvmem"
    assert index.target_for("counter", "wasi", "keyvalue", "batch") is None
    assert index.target_for("other", "wasi", "keyvalue", "store") is None


def test_providers_hear_only_what_changed() -> None:
    a = ResolvedLink(link("counter", "kv"), {}, {"url": "redis://one"})
    moved = ResolvedLink(link("counter", "kv"), {}, {"url": "redis://two"})
    b = ResolvedLink(link("other", "kv"), {}, {})
    pushed = {a.key: a, b.key: b}
    assert provider_link_changes(pushed, [a, b]).put == []
    changes = provider_link_changes(pushed, [moved])
    assert changes.put == [moved] and changes.delete == [b]


def test_draft_version_mismatch_is_explained_at_link_time() -> None:
    imports = {"wasi:keyvalue/store": "0.2.0-draft2", "wasi:keyvalue/atomics": "0.2.0-draft2"}
    problem = version_mismatch(imports, link("counter", "kvredis"))
    assert problem is not None
    assert "wasi:keyvalue/store@0.2.0-draft2" in problem and "0.2.0-draft" in problem
    assert version_mismatch({"wasi:keyvalue/store": "0.2.0-draft"}, link("c", "kv")) is None
