"""Provider references: what our hosts run, refused up front (manifest validation) with the
same sentence the host's provider.start would give."""

from __future__ import annotations

import pytest

from host_agent.model import parse_manifest
from host_agent.model.issues import ManifestError
from host_agent.providers.builtin import UnknownProvider, resolve_provider


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("ghcr.io/wasmcloud/http-server:0.20.0", "http-server"),
        ("ghcr.io/wasmcloud/http-server:0.23.0", "http-server"),
        ("ghcr.io/wasmcloud/keyvalue-redis:0.24.0", "keyvalue-redis"),
        ("ghcr.io/wasmcloud/keyvalue-redis:0.28.1@sha256:" + "ab" * 32, "keyvalue-redis"),
        ("wasmcloud.azurecr.io/keyvalue-nats:0.3.1", "keyvalue-nats"),
        ("ghcr.io/wasmcloud/http-server:v0.23.0-rc.1", "http-server"),
        ("builtin:keyvalue-inmemory", "keyvalue-inmemory"),
    ],
)
def test_supported_references(ref: str, name: str) -> None:
    assert resolve_provider(ref).name == name


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        # wasmCloud 0.x releases speak the smithy contracts, not the WIT our components import.
        (
            "ghcr.io/wasmcloud/keyvalue-redis:0.23.0",
            "releases before 0.24.0 serve wasmCloud 0.x's wasmcloud:",
        ),
        (
            "ghcr.io/wasmcloud/http-server:0.19.1",
            "releases before 0.20.0 serve wasmCloud 0.x's wasmcloud:",
        ),
        # A major version we have not checked.
        ("ghcr.io/wasmcloud/http-server:1.0.0", "only releases 0.20.0 <= tag < 1.0.0"),
        # No way to know what it serves.
        ("ghcr.io/wasmcloud/http-server:latest", "has tag 'latest'"),
        ("ghcr.io/wasmcloud/http-server", "has no tag"),
        ("ghcr.io/wasmcloud/http-server@sha256:" + "ab" * 32, "has no tag"),
        # Names we do not serve.
        ("ghcr.io/wasmcloud/blobstore-azure:0.6.0", "supported: builtin:http-server"),
        ("ghcr.io/wasmcloud/keyvalue-inmemory:0.1.0", "write builtin:keyvalue-inmemory"),
        ("builtin:keyvalue-inmemory:0.2.0", "a built-in provider has no tags"),
        ("builtin:nope", "supported: builtin:http-server"),
    ],
)
def test_refused_references_say_what_is_supported(ref: str, says: str) -> None:
    with pytest.raises(UnknownProvider) as refused:
        resolve_provider(ref)
    message = str(refused.value)
    assert says in message and repr(ref) in message
    assert "builtin:" in message  # the fix names what runs


def _manifest(provider_image: str) -> dict[str, object]:
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "kv", "annotations": {"version": "v1"}},
        "spec": {
            "components": [
                {
                    "name": "kv",
                    "type": "capability",
                    "properties": {"image": provider_image},
                }
            ]
        },
    }


def test_manifest_with_a_refused_provider_is_invalid_at_its_image() -> None:
    with pytest.raises(ManifestError) as refused:
        parse_manifest(_manifest("ghcr.io/wasmcloud/keyvalue-redis:0.23.0"))
    [issue] = refused.value.issues
    assert issue.path == "spec.components[0].properties.image"
    assert "wasi:keyvalue/store@0.2.0-draft" in issue.message
    assert "ghcr.io/wasmcloud/keyvalue-redis:0.28.1" in issue.message


def test_manifest_with_a_supported_provider_is_valid() -> None:
    parse_manifest(_manifest("ghcr.io/wasmcloud/keyvalue-redis:0.28.1"))
