"""Push and pull components against a real registry (Debian's docker-registry on loopback):
the artifact layout wasmCloud uses, digests, credentials, and the refusals a user sees."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from host_agent.oci import (
    ArtifactNotFound,
    Credentials,
    RegistryAuthError,
    RegistryUnreachable,
    layout,
    pull_component,
    push_component,
    sha256_digest,
)
from tests.lattice import free_port, run_async
from tests.registry import RegistryProcess, registry_available

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not registry_available(), reason="docker-registry is not installed"),
]

COUNTER = Path(__file__).resolve().parents[2] / "examples" / "counter" / "build" / "counter.wasm"


def registry_manifest(registry: RegistryProcess, repo: str, tag: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"{registry.url}/v2/{repo}/manifests/{tag}", headers={"Accept": layout.OCI_MANIFEST}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return dict(json.loads(response.read()))


@run_async
async def test_push_then_pull_round_trip_in_wasmclouds_layout(registry: RegistryProcess) -> None:
    wasm = COUNTER.read_bytes()
    ref = f"{registry.address}/components/counter:0.1.0"
    digest = await push_component(COUNTER, ref, insecure=True)
    data, pulled_digest = await pull_component(ref, insecure=True)
    assert data == wasm
    assert pulled_digest == digest
    pinned, pinned_digest = await pull_component(
        f"{registry.address}/components/counter@{digest}", insecure=True
    )
    assert (pinned, pinned_digest) == (wasm, digest)
    # what `wash push` writes: an OCI manifest, a wasm config, one application/wasm layer
    manifest = registry_manifest(registry, "components/counter", "0.1.0")
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.wasm.config.v0+json"  # type: ignore[index]
    assert manifest["layers"] == [  # type: ignore[comparison-overlap]
        {"mediaType": "application/wasm", "digest": sha256_digest(wasm), "size": len(wasm)}
    ]


@run_async
async def test_missing_tag_and_unreachable_registry_are_named(registry: RegistryProcess) -> None:
    with pytest.raises(ArtifactNotFound, match=r"has no 9\.9\.9 in repository components/nothing"):
        await pull_component(f"{registry.address}/components/nothing:9.9.9", insecure=True)
    nobody = f"127.0.0.1:{free_port()}"
    with pytest.raises(RegistryUnreachable, match=f"cannot reach registry {nobody}"):
        await pull_component(f"{nobody}/components/counter:0.1.0", insecure=True)


@run_async
async def test_credentials_are_required_and_used(tmp_path: Path) -> None:
    registry = RegistryProcess(tmp_path / "auth", users={"ci": "s3cret"}).start()
    try:
        ref = f"{registry.address}/private/counter:1.0.0"
        with pytest.raises(RegistryAuthError, match=f"registry {registry.address}.*registry.put"):
            await push_component(COUNTER, ref, insecure=True)
        with pytest.raises(RegistryAuthError, match="with the credentials given"):
            await push_component(COUNTER, ref, insecure=True, credentials=Credentials("ci", "nope"))
        good = Credentials("ci", "s3cret")
        digest = await push_component(COUNTER, ref, insecure=True, credentials=good)
        with pytest.raises(RegistryAuthError, match="asks for a user name and password"):
            await pull_component(ref, insecure=True)
        data, pulled = await pull_component(ref, insecure=True, credentials=good)
        assert (data, pulled) == (COUNTER.read_bytes(), digest)
    finally:
        registry.stop()
