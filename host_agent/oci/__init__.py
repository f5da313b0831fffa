"""Components as OCI artifacts: parse references, push and pull with wasmCloud's layout.

`push_component` writes what `wash push` writes (see layout.py); `pull_component` reads what
a wasmCloud 1.4.2 host reads, verifying the manifest digest (against the pinned digest, or
the registry's Docker-Content-Digest for a tag) and the layer digest and size.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from host_agent.oci import layout
from host_agent.oci.cache import BlobCache
from host_agent.oci.client import (
    ArtifactNotFound,
    ArtifactTooLarge,
    Credentials,
    Descriptor,
    DigestMismatch,
    NotAComponentArtifact,
    Progress,
    RegistryAuthError,
    RegistryError,
    RegistrySession,
    RegistryUnreachable,
    component_layer,
    component_manifest,
    sha256_digest,
    wasm_config,
)
from host_agent.oci.reference import (
    ImageReference,
    InvalidReference,
    looks_like_oci,
    parse_reference,
)

__all__ = [
    "ArtifactNotFound",
    "ArtifactTooLarge",
    "BlobCache",
    "Credentials",
    "DigestMismatch",
    "ImageReference",
    "InvalidReference",
    "NotAComponentArtifact",
    "PulledComponent",
    "RegistryAuthError",
    "RegistryError",
    "RegistryUnreachable",
    "fetch_component",
    "layout",
    "looks_like_oci",
    "parse_reference",
    "pull_component",
    "push_component",
    "sha256_digest",
]

DEFAULT_MAX_SIZE = 50 * 1024 * 1024
DEFAULT_TIMEOUT = 60.0  # seconds to connect, and for each wait for data


@dataclass(frozen=True)
class PulledComponent:
    data: bytes
    digest: str  # the manifest's digest: what `name@sha256:...` pins
    layer_digest: str
    cache_hit: bool  # the component's bytes came from the disk cache


def _as_ref(ref: str | ImageReference) -> ImageReference:
    return ref if isinstance(ref, ImageReference) else parse_reference(ref)


async def push_component(
    wasm_bytes_or_path: bytes | str | Path,
    ref: str | ImageReference,
    *,
    insecure: bool = False,
    credentials: Credentials | None = None,
    progress: Progress | None = None,
) -> str:
    """Push a component under a tag; returns the manifest digest (`sha256:...`)."""
    target = _as_ref(ref)
    if target.digest is not None or target.tag is None:
        raise InvalidReference(
            f"push needs a tag to write: {target} names none (write registry/repo:tag)"
        )
    if isinstance(wasm_bytes_or_path, bytes):
        data = wasm_bytes_or_path
    else:
        data = await asyncio.to_thread(Path(wasm_bytes_or_path).read_bytes)
    from host_agent.host.artifacts import check_component  # the same check the host makes

    check_component(
        data, str(wasm_bytes_or_path) if not isinstance(wasm_bytes_or_path, bytes) else "the file"
    )
    async with RegistrySession(target, insecure=insecure, credentials=credentials) as session:
        layer = await session.put_blob(data, progress)
        config_bytes = wasm_config(layer.digest)
        config = await session.put_blob(config_bytes, progress)
        manifest = component_manifest(
            Descriptor(layout.WASM_CONFIG, config.digest, config.size),
            Descriptor(layout.WASM_LAYER, layer.digest, layer.size),
        )
        digest = await session.put_manifest(manifest, layout.OCI_MANIFEST)
    if progress:
        progress(f"pushed {target} as {digest}")
    return digest


async def fetch_component(
    ref: str | ImageReference,
    *,
    insecure: bool = False,
    credentials: Credentials | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    cache: BlobCache | None = None,
    progress: Progress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> PulledComponent:
    """Pull a component, using and filling `cache` when given. A pinned reference whose
    manifest and layer are cached needs no registry at all. `timeout` bounds connecting
    and each wait for data, so a registry that stops answering is reported, not waited
    on forever."""
    target = _as_ref(ref)
    manifest: bytes | None = None
    if cache is not None and target.digest is not None:
        manifest = await asyncio.to_thread(cache.get, target.digest)
    session = RegistrySession(target, insecure=insecure, credentials=credentials, timeout=timeout)
    async with session:
        manifest_cached = manifest is not None
        if manifest is not None:
            digest, media_type = target.digest or "", layout.OCI_MANIFEST
        else:
            manifest, digest, media_type = await session.get_manifest()
        layer = component_layer(manifest, target, media_type)
        if layer.size > max_size:
            raise ArtifactTooLarge(
                f"{target} is {layer.size} bytes, over this host's {max_size}-byte component "
                "limit (max_component_size)"
            )
        data = await asyncio.to_thread(cache.get, layer.digest) if cache is not None else None
        hit = data is not None
        if data is None:
            data = await session.get_blob(layer, progress)
    if cache is not None:
        if not hit:
            await asyncio.to_thread(cache.put, layer.digest, data)
        if not manifest_cached:
            await asyncio.to_thread(cache.put, digest, manifest)
    return PulledComponent(data, digest, layer.digest, hit)


async def pull_component(
    ref: str | ImageReference,
    *,
    insecure: bool = False,
    credentials: Credentials | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    progress: Progress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[bytes, str]:
    """Pull a component; returns its bytes and the manifest digest."""
    pulled = await fetch_component(
        ref,
        insecure=insecure,
        credentials=credentials,
        max_size=max_size,
        progress=progress,
        timeout=timeout,
    )
    return pulled.data, pulled.digest
