"""Push and pull components against a real registry (Debian's docker-registry on loopback):
the artifact layout wasmCloud uses, digests, credentials, and the refusals a user sees."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from host_agent.oci import (
    ArtifactNotFound,
    ArtifactTooLarge,
    Credentials,
    DigestMismatch,
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
from host_agent.oci.client import (
    Descriptor,
    RegistrySession,
    component_layer,
    component_manifest,
    wasm_config,
)
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


class SilentServer:
    """Fault injection: a TCP server that accepts connections, reads what it is sent and
    never answers (a registry host that hangs)."""

    def __init__(self) -> None:
        self.accepted = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.set()
        await reader.read()  # until the client gives up and closes
        writer.close()


class RegistryRelay:
    """Fault injection in front of a real registry: relays every connection and records the
    head of each one's first request; blob downloads can be cut off after `stall_after`
    bytes of the response (a registry that stops sending halfway through a layer), or
    answered with a 307 to the same path under `redirect_blobs_to` (as registries send
    blob downloads to their storage)."""

    def __init__(
        self,
        registry: RegistryProcess,
        *,
        stall_after: int | None = None,
        redirect_blobs_to: str | None = None,
    ) -> None:
        self.registry = registry
        self.stall_after = stall_after
        self.redirect_blobs_to = redirect_blobs_to
        self.heads: list[bytes] = []
        self.stalled = asyncio.Event()  # a blob response was cut off
        self.client_gone = asyncio.Event()  # ...and its client then closed the connection
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        request_line = head.split(b"\r\n", 1)[0]
        is_blob = b"/blobs/" in request_line
        if is_blob and self.redirect_blobs_to is not None:
            path = request_line.split(b" ")[1].decode()
            writer.write(
                b"HTTP/1.1 307 Temporary Redirect\r\n"
                + f"Location: {self.redirect_blobs_to}{path}\r\n".encode()
                + b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.registry.port)
        up_writer.write(head)
        try:
            if not is_blob or self.stall_after is None:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                return
            sent = 0
            while sent < self.stall_after:
                chunk = await up_reader.read(min(65536, self.stall_after - sent))
                if not chunk:
                    break
                writer.write(chunk)
                sent += len(chunk)
            await writer.drain()
            self.stalled.set()
            await reader.read()  # nothing more is sent; wait for the client to close
            self.client_gone.set()
        finally:
            up_writer.close()
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
    writer.close()


@run_async
async def test_a_registry_that_accepts_and_never_answers_is_reported_within_the_timeout() -> None:
    silent = SilentServer()
    async with silent as address:
        started = time.monotonic()
        with pytest.raises(RegistryUnreachable) as refused:
            await pull_component(f"{address}/components/counter:0.1.0", insecure=True, timeout=1)
        waited = time.monotonic() - started
    assert silent.accepted.is_set()
    assert f"registry {address} (http) did not answer within 1 s" in str(refused.value)
    assert "check that the registry is up" in str(refused.value)
    assert waited < 10, f"the pull gave up after {waited:.1f} s, not about 1 s"


@run_async
async def test_a_blob_download_that_stalls_halfway_is_reported_within_the_timeout(
    registry: RegistryProcess,
) -> None:
    await push_component(COUNTER, f"{registry.address}/components/counter:0.1.0", insecure=True)
    proxy = RegistryRelay(registry, stall_after=2 * 1024 * 1024)
    async with proxy as address:
        started = time.monotonic()
        with pytest.raises(RegistryUnreachable) as refused:
            await pull_component(f"{address}/components/counter:0.1.0", insecure=True, timeout=1)
        waited = time.monotonic() - started
        await asyncio.wait_for(proxy.client_gone.wait(), 10)
    assert proxy.stalled.is_set()
    message = str(refused.value)
    assert f"registry {address} (http) did not answer within 1 s (blob sha256:" in message
    assert waited < 10, f"the pull gave up after {waited:.1f} s, not about 1 s"


@run_async
async def test_a_cancelled_pull_closes_its_blob_download(registry: RegistryProcess) -> None:
    """The blob is read in a worker thread, which a cancelled task cannot stop; the pull
    closes the download's socket instead of leaving it to the timeout."""
    await push_component(COUNTER, f"{registry.address}/components/counter:0.1.0", insecure=True)
    proxy = RegistryRelay(registry, stall_after=2 * 1024 * 1024)
    async with proxy as address:
        pull = asyncio.create_task(
            pull_component(f"{address}/components/counter:0.1.0", insecure=True, timeout=60)
        )
        await asyncio.wait_for(proxy.stalled.wait(), 30)
        pull.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pull
        await asyncio.wait_for(proxy.client_gone.wait(), 5)  # not after the 60 s timeout


async def push_with_declared_size(
    registry: RegistryProcess, ref: str, data: bytes, declared_size: int
) -> None:
    """Push `data` as the one wasm layer of a manifest that says it has `declared_size`
    bytes (the registry does not check sizes against its blobs)."""
    image = parse_reference(ref)
    async with RegistrySession(image, insecure=True, credentials=None) as session:
        layer = await session.put_blob(data, None)
        config_bytes = wasm_config(layer.digest)
        config = await session.put_blob(config_bytes, None)
        manifest = component_manifest(
            Descriptor(layout.WASM_CONFIG, config.digest, config.size),
            Descriptor(layout.WASM_LAYER, layer.digest, declared_size),
        )
        await session.put_manifest(manifest, layout.OCI_MANIFEST)


@run_async
async def test_a_blob_of_another_size_or_digest_than_its_manifest_says_is_refused(
    registry: RegistryProcess,
) -> None:
    wasm = COUNTER.read_bytes()
    understated = f"{registry.address}/components/understated:1.0.0"
    await push_with_declared_size(registry, understated, wasm, len(wasm) - 1)
    with pytest.raises(DigestMismatch, match=f"longer than the {len(wasm) - 1} bytes"):
        await pull_component(understated, insecure=True)
    overstated = f"{registry.address}/components/overstated:1.0.0"
    await push_with_declared_size(registry, overstated, wasm, len(wasm) + 1)
    with pytest.raises(DigestMismatch, match=rf"\({len(wasm)} bytes\), not sha256:\w+ \("):
        await pull_component(overstated, insecure=True)
    # the registry serves stored bytes unverified: one flipped byte must be caught by us
    tampered = f"{registry.address}/components/tampered:1.0.0"
    await push_component(COUNTER, tampered, insecure=True)
    [blob] = registry.storage.rglob(f"blobs/sha256/*/{sha256_digest(wasm)[7:]}/data")
    blob.write_bytes(wasm[:-1] + bytes([wasm[-1] ^ 0xFF]))
    with pytest.raises(DigestMismatch, match=f"not {sha256_digest(wasm)} .* refusing it"):
        await pull_component(tampered, insecure=True)


@run_async
async def test_a_component_over_the_size_limit_is_refused_before_its_download(
    registry: RegistryProcess,
) -> None:
    ref = f"{registry.address}/components/counter:0.1.0"
    await push_component(COUNTER, ref, insecure=True)
    size = COUNTER.stat().st_size
    with pytest.raises(ArtifactTooLarge, match=f"is {size} bytes, over this host's {size - 1}"):
        await pull_component(ref, insecure=True, max_size=size - 1)
    data, _ = await pull_component(ref, insecure=True, max_size=size)
    assert len(data) == size


@run_async
async def test_blob_downloads_follow_redirects_without_the_registry_credentials(
    registry: RegistryProcess, tmp_path: Path
) -> None:
    """Registries hand blobs out from storage elsewhere (a 307 to a signed URL): the pull
    follows it, and does not send the registry's credentials to that other origin."""
    private = RegistryProcess(tmp_path / "auth", users={"ci": "s3cret"}).start()
    try:
        good = Credentials("ci", "s3cret")
        path = "components/counter:0.1.0"
        digest = await push_component(
            COUNTER, f"{private.address}/{path}", insecure=True, credentials=good
        )
        await push_component(COUNTER, f"{registry.address}/{path}", insecure=True)
        storage = RegistryRelay(registry)  # anonymous, like a signed storage URL
        async with storage as storage_address:
            front = RegistryRelay(private, redirect_blobs_to=f"http://{storage_address}")
            async with front as front_address:
                data, pulled = await pull_component(
                    f"{front_address}/{path}", insecure=True, credentials=good
                )
        assert (data, pulled) == (COUNTER.read_bytes(), digest)
        [asked] = [head for head in front.heads if b"/blobs/" in head]
        assert b"authorization: basic" in asked.lower()
        [redirected] = storage.heads
        assert b"/blobs/sha256:" in redirected
        assert b"authorization" not in redirected.lower()
    finally:
        private.stop()
