"""Push and pull components against a real registry (Debian's docker-registry on loopback):
the artifact layout wasmCloud uses, digests, credentials, and the refusals a user sees."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from host_agent.oci import (
    ArtifactNotFound,
    Credentials,
    InvalidReference,
    NotAComponentArtifact,
    RegistryAuthError,
    RegistryUnreachable,
    layout,
    parse_reference,
    pull_component,
    push_component,
    sha256_digest,
)
from host_agent.oci.client import component_layer
from tests.lattice import free_port, run_async
from tests.registry import RegistryProcess, registry_available

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not registry_available(), reason="docker-registry is not installed"),
]

COUNTER = Path(__file__).resolve().parents[2] / "examples" / "counter" / "build" / "counter.wasm"


def registry_manifest_bytes(registry: RegistryProcess, repo: str, tag: str) -> bytes:
    headers = {"Accept": layout.OCI_MANIFEST}
    if registry.users:
        user, password = next(iter(registry.users.items()))
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(f"{registry.url}/v2/{repo}/manifests/{tag}", headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return bytes(response.read())


def registry_manifest(registry: RegistryProcess, repo: str, tag: str) -> dict[str, object]:
    return dict(json.loads(registry_manifest_bytes(registry, repo, tag)))


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


def wasmcloud(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "host_agent.cli.wasmcloud", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_wasmcloud_push_and_pull_commands(tmp_path: Path) -> None:
    registry = RegistryProcess(tmp_path / "auth", users={"ci": "s3cret"}).start()
    try:
        ref = f"{registry.address}/components/counter:0.2.0"
        refused = wasmcloud("push", str(COUNTER), ref, "--insecure")
        assert refused.returncode == 1
        assert "asks for a user name and password" in refused.stderr
        assert "Traceback" not in refused.stderr
        creds = {"WASMCLOUD_OCI_REGISTRY_USER": "ci", "WASMCLOUD_OCI_REGISTRY_PASSWORD": "s3cret"}
        pushed = wasmcloud("push", str(COUNTER), ref, "--insecure", env=creds)
        assert pushed.returncode == 0, pushed.stderr
        digest = pushed.stdout.strip()
        assert digest == sha256_digest(
            registry_manifest_bytes(registry, "components/counter", "0.2.0")
        )
        assert f"{registry.address}/components/counter@{digest}" in pushed.stderr
        out = tmp_path / "pulled.wasm"
        pinned = f"{registry.address}/components/counter@{digest}"
        pulled = wasmcloud(
            "pull", pinned, "-o", str(out), "--insecure", "--user", "ci", "--password", "s3cret"
        )
        assert pulled.returncode == 0, pulled.stderr
        assert pulled.stdout.strip() == digest
        assert out.read_bytes() == COUNTER.read_bytes()
        assert "100%" in pulled.stderr or f"{COUNTER.stat().st_size}/" in pulled.stderr
        bad = wasmcloud("pull", f"{registry.address}/Components/counter:0.2.0", "--insecure")
        assert bad.returncode == 1
        assert "repository part 'Components'" in bad.stderr
    finally:
        registry.stop()


def test_references_are_read_strictly() -> None:
    ref = parse_reference("127.0.0.1:5000/components/counter@sha256:" + "a" * 64)
    assert (ref.registry, ref.repository, ref.tag) == ("127.0.0.1:5000", "components/counter", None)
    hub = parse_reference("wasmcloud/counter:0.1.0")
    assert (hub.registry, hub.repository, hub.tag) == ("docker.io", "wasmcloud/counter", "0.1.0")
    assert parse_reference("localhost:5000/counter").effective_tag == "latest"
    refusals = {
        "ghcr.io/x/counter@sha256:abc": "a digest is sha256: followed by 64",
        "ghcr.io/x/Counter:1": "repository part 'Counter'",
        "ghcr.io/x/counter:-1": "has tag '-1'",
        "oci://ghcr.io/x/counter:1": "has a URL scheme",
        "ghcr.io/x/counter :1": "contains whitespace",
    }
    for text, reason in refusals.items():
        with pytest.raises(InvalidReference, match=re.escape(reason)):
            parse_reference(text)


def test_an_artifact_with_two_wasm_layers_is_not_a_component() -> None:
    layer = {"mediaType": "application/wasm", "digest": "sha256:" + "b" * 64, "size": 8}
    manifest = json.dumps({"schemaVersion": 2, "layers": [layer, layer]}).encode()
    ref = parse_reference("ghcr.io/x/counter:1.0.0")
    with pytest.raises(NotAComponentArtifact, match="exactly one layer"):
        component_layer(manifest, ref, layout.OCI_MANIFEST)
