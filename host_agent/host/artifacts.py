"""Resolving a component reference to bytes that are a WebAssembly component: a file
(``file://``, with --allow-file-load) or an OCI reference pulled from a registry the way the
1.4.2 host does (WASMCLOUD_OCI_ALLOW_LATEST, WASMCLOUD_OCI_ALLOWED_INSECURE, credentials from
registry.put first, then WASMCLOUD_OCI_REGISTRY/_USER/_PASSWORD), cached by digest."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from host_agent.cli.env import env_flag, env_number
from host_agent.lattice.protocol import RegistryCredential
from host_agent.oci import (
    BlobCache,
    Credentials,
    InvalidReference,
    RegistryError,
    RegistryUnreachable,
    fetch_component,
    parse_reference,
)

log = logging.getLogger("host_agent.artifacts")

WASM_MAGIC = b"\0asm"
# The component-model binary layer (core modules have version 1, layer 0).
COMPONENT_VERSION = b"\x0d\x00\x01\x00"
CORE_MODULE_VERSION = b"\x01\x00\x00\x00"


class ArtifactError(ValueError):
    pass


@dataclass(frozen=True)
class OciOptions:
    """The host's OCI settings, named and read as the 1.4.2 host reads them."""

    allow_latest: bool = False
    allowed_insecure: frozenset[str] = frozenset()
    registry: str | None = None  # the registry WASMCLOUD_OCI_REGISTRY_USER/PASSWORD are for
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    cache_dir: Path | None = None  # None: <WASMCLOUD_CACHE_DIR or ~/.cache/wasmcloud-host>/oci

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OciOptions:
        env = os.environ if env is None else env
        insecure = env.get("WASMCLOUD_OCI_ALLOWED_INSECURE", "")
        names = [name.strip() for name in insecure.split(",") if name.strip()]
        for name in names:
            if "/" in name or "://" in name:
                raise ValueError(
                    f"WASMCLOUD_OCI_ALLOWED_INSECURE has {name!r}: list registries as "
                    "host[:port], separated by commas"
                )
        user = env.get("WASMCLOUD_OCI_REGISTRY_USER") or None
        password = env.get("WASMCLOUD_OCI_REGISTRY_PASSWORD") or None
        if (user is None) != (password is None):
            raise ValueError(
                "WASMCLOUD_OCI_REGISTRY_USER and WASMCLOUD_OCI_REGISTRY_PASSWORD go together: "
                "set both or neither"
            )
        registry = env.get("WASMCLOUD_OCI_REGISTRY") or None
        if user is not None and registry is None:
            raise ValueError(
                "WASMCLOUD_OCI_REGISTRY_USER/PASSWORD are for the registry named by "
                "WASMCLOUD_OCI_REGISTRY; set it too (e.g. WASMCLOUD_OCI_REGISTRY=ghcr.io)"
            )
        return cls(
            allow_latest=env_flag(env, "WASMCLOUD_OCI_ALLOW_LATEST"),
            allowed_insecure=frozenset(names),
            registry=registry,
            user=user,
            password=password,
        )

    def credentials(
        self, registry: str, registry_credential: Callable[[str], RegistryCredential | None]
    ) -> Credentials | None:
        """registry.put's credentials for `registry` first (as upstream, they override the
        host's configuration), then the host's own for its configured registry."""
        given = registry_credential(registry)
        if given is not None:
            if given.username is not None and given.password is not None:
                return Credentials(given.username, given.password)
            if given.token is not None:  # a registry token is sent as the password
                return Credentials(given.username or "", given.token)
            return None
        if self.registry == registry and self.user is not None and self.password is not None:
            return Credentials(self.user, self.password)
        return None


DEFAULT_MAX_COMPONENT_SIZE = 50 * 1024 * 1024


def max_component_size_from_env(env: Mapping[str, str] | None = None) -> int:
    """WASMCLOUD_MAX_COMPONENT_SIZE in bytes (the 1.4.2 host's variable; 50 MiB unset)."""
    env = os.environ if env is None else env
    size = env_number(env, "WASMCLOUD_MAX_COMPONENT_SIZE", str(DEFAULT_MAX_COMPONENT_SIZE), int)
    if size <= 0:
        raise ValueError(f"WASMCLOUD_MAX_COMPONENT_SIZE={size}: expected a positive byte count")
    return size


def is_file_reference(ref: str) -> bool:
    """`file://...`, or a path to a file that exists; anything else is an OCI reference."""
    return "://" in ref or Path(ref).is_file()


async def fetch_component_bytes(
    ref: str,
    *,
    allow_file_load: bool,
    max_size: int,
    oci: OciOptions,
    registry_credential: Callable[[str], RegistryCredential | None],
) -> bytes:
    """The component's bytes, from a file or a registry; ArtifactError says why not."""
    if is_file_reference(ref):
        return await asyncio.to_thread(read_component, ref, allow_file_load, max_size)
    try:
        image = parse_reference(ref)
    except InvalidReference as exc:
        raise ArtifactError(str(exc)) from None
    if image.digest is None and image.effective_tag == "latest" and not oci.allow_latest:
        raise ArtifactError(
            f"fetching {ref} is refused: images tagged 'latest' may change under a running "
            "lattice; pin a version tag or a digest, or start the host with "
            "WASMCLOUD_OCI_ALLOW_LATEST=true"
        )
    insecure = image.registry in oci.allowed_insecure
    try:
        cache = await asyncio.to_thread(BlobCache, oci.cache_dir)
        pulled = await fetch_component(
            image,
            insecure=insecure,
            credentials=oci.credentials(image.registry, registry_credential),
            max_size=max_size,
            cache=cache,
        )
    except RegistryUnreachable as exc:
        hint = (
            ""
            if insecure
            else f"; if {image.registry} serves plain http, allow it with "
            f"WASMCLOUD_OCI_ALLOWED_INSECURE={image.registry}"
        )
        raise ArtifactError(f"cannot fetch {ref}: {exc}{hint}") from None
    except RegistryError as exc:
        raise ArtifactError(f"cannot fetch {ref}: {exc}") from None
    if pulled.cache_hit:
        log.info(
            "cache hit for %s: component %s (layer %s)", ref, pulled.digest, pulled.layer_digest
        )
    else:
        log.info("pulled %s: component %s (%d bytes)", ref, pulled.digest, len(pulled.data))
    check_component(pulled.data, ref)
    return pulled.data


def resolve_local_path(ref: str, allow_file_load: bool) -> Path:
    """``file://`` references (and plain paths) when file loading is allowed."""
    parsed = urlparse(ref)
    if parsed.scheme not in ("file", ""):
        raise ArtifactError(
            f"cannot fetch {ref!r}: a component is a file:// path or an OCI reference "
            "(registry/repository:tag or registry/repository@sha256:<digest>)"
        )
    if not allow_file_load:
        raise ArtifactError(
            f"file loading is disabled, so {ref!r} cannot be loaded; "
            "start the host with --allow-file-load (WASMCLOUD_ALLOW_FILE_LOAD=true)"
        )
    path = Path(parsed.netloc + parsed.path if parsed.scheme == "file" else ref)
    if not path.is_file():
        raise ArtifactError(f"component file {path} does not exist")
    return path


def read_component(ref: str, allow_file_load: bool, max_size: int) -> bytes:
    path = resolve_local_path(ref, allow_file_load)
    size = path.stat().st_size
    if size > max_size:
        raise ArtifactError(f"{path} is {size} bytes, over the {max_size}-byte component limit")
    data = path.read_bytes()
    check_component(data, str(path))
    return data


def check_component(data: bytes, name: str) -> None:
    if data[:4] != WASM_MAGIC:
        raise ArtifactError(f"{name} is not a WebAssembly file")
    if data[4:8] == CORE_MODULE_VERSION:
        raise ArtifactError(
            f"{name} is a core WebAssembly module, not a component; "
            "wrap it with `wasm-tools component new`"
        )
    if data[4:8] != COMPONENT_VERSION:
        raise ArtifactError(f"{name} has an unsupported WebAssembly binary version")
