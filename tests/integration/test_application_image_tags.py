"""An Application whose component image is a registry tag: ``check`` (the provider over
gRPC, as the CLI calls it) pins the tag to the digest it names now, in the registry's
answer, so a new push under the same tag is a new image; a registry that does not answer,
a tag nobody pushed, or an artifact that is not a component is a check failure naming the
component, the registry and the fix. Real docker-registry on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from host_agent.oci import push_component
from tests.integration.test_oci_host import push_raw
from tests.integration.test_provider_grpc import check, counter_manifest
from tests.lattice import COUNTER_WASM, run_async
from tests.provider_grpc import plain, provider
from tests.registry import RegistryProcess, registry_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not registry_available(), reason="docker-registry is not installed"),
]

HELLO_WASM = COUNTER_WASM.parents[2] / "hello" / "build" / "hello.wasm"


def image_of(inputs: Any) -> str:
    return str(plain(inputs)["manifest"]["spec"]["components"][0]["properties"]["image"])


def tagged(ref: str) -> dict[str, Any]:
    manifest = counter_manifest("redis://127.0.0.1:1", 1)
    manifest["spec"]["components"][0]["properties"]["image"] = ref
    return manifest


@run_async
async def test_a_tag_is_pinned_to_what_it_names_now(registry: RegistryProcess) -> None:
    ref = f"{registry.address}/counter:1.0"
    first = await push_component(COUNTER_WASM, ref, insecure=True)
    news = {"manifest": tagged(ref), "registryUrl": registry.url}
    async with provider("nats://127.0.0.1:1") as (stub, _):
        checked = await check(stub, news)
        assert list(checked.failures) == []
        assert image_of(checked.inputs) == f"{ref}@{first}"
        assert image_of((await check(stub, news)).inputs) == f"{ref}@{first}"  # stable

        # A new push under the same tag: the next check pins the new digest.
        second = await push_component(HELLO_WASM, ref, insecure=True)
        assert second != first
        assert image_of((await check(stub, news)).inputs) == f"{ref}@{second}"

        # Already pinned by digest: the registry is not asked (it is down below).
        pinned = f"{registry.address}/counter@{first}"
        registry.stop()
        checked = await check(stub, {**news, "manifest": tagged(pinned)})
        assert list(checked.failures) == [] and image_of(checked.inputs) == pinned

        # The registry down: refused, naming the component, the registry and the fix.
        [failure] = (await check(stub, news)).failures
        assert failure.property == "manifest.spec.components[0].properties.image"
        assert failure.reason.startswith(f"component counter: cannot resolve tag 1.0 of {ref}")
        assert f"Start the registry {registry.address}" in failure.reason
        assert "pin the image by digest" in failure.reason


@run_async
async def test_a_missing_tag_or_an_artifact_that_is_no_component_is_refused(
    registry: RegistryProcess,
) -> None:
    missing = f"{registry.address}/counter:9.9"
    await push_component(COUNTER_WASM, f"{registry.address}/counter:1.0", insecure=True)
    other = f"{registry.address}/notes:1.0"
    await push_raw(registry, other, "text/plain", b"not a component")
    async with provider("nats://127.0.0.1:1") as (stub, _):
        news = {"manifest": tagged(missing), "registryUrl": registry.url}
        [failure] = (await check(stub, news)).failures
        assert "has no 9.9 in repository counter" in failure.reason
        assert f"Push it first (`wasmcloud push FILE {missing}`)" in failure.reason

        [failure] = (await check(stub, {**news, "manifest": tagged(other)})).failures
        assert "is not a component artifact" in failure.reason

        # Not the Lattice's registry and not allowed insecure: https is tried, and the
        # refusal says how to allow plain http.
        [failure] = (await check(stub, {"manifest": tagged(missing)})).failures
        assert "list it in WASMCLOUD_OCI_ALLOWED_INSECURE" in failure.reason


@run_async
async def test_a_local_file_is_not_taken_for_a_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative path can also read as a registry reference (``127.0.0.1:1/counter.wasm``:
    registry 127.0.0.1:1); the file wins, as on the host, and no registry is asked."""
    (tmp_path / "127.0.0.1:1").mkdir()
    (tmp_path / "127.0.0.1:1" / "counter.wasm").write_bytes(COUNTER_WASM.read_bytes())
    monkeypatch.chdir(tmp_path)
    async with provider("nats://127.0.0.1:1") as (stub, _):
        checked = await check(stub, {"manifest": tagged("127.0.0.1:1/counter.wasm")})
        assert list(checked.failures) == []
        assert image_of(checked.inputs) == "127.0.0.1:1/counter.wasm"
