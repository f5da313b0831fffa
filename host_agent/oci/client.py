"""A small client for the OCI distribution HTTP API: push and pull one component.

Why not `oras` (PyPI): it is synchronous (requests) and would add requests and jsonschema
to every lattice machine, while aiohttp is already a host dependency; and pulling the way
the host must (verify the manifest digest against a pinned reference, refuse a layer over
the size limit before downloading it, stream the blob through sha256 into a 0700 cache)
needs control over each request that oras's file-oriented pull does not give. The API
used is the plain distribution spec: GET/PUT manifests, HEAD/GET blobs, POST+PUT uploads,
with Basic or Bearer-token auth from a 401's WWW-Authenticate challenge. Blob bodies are
read by download.py (blocking readinto in a worker thread, hashed as they arrive), every
other request by aiohttp.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import aiohttp

from host_agent.oci import layout
from host_agent.oci.download import BlobDownload, Downloaded, TooManyRedirects
from host_agent.oci.reference import ImageReference

Progress = Callable[[str], None]
CHUNK = 1024 * 1024


class RegistryError(Exception):
    """A registry operation failed; the message is a sentence naming the registry and why."""


class RegistryUnreachable(RegistryError):
    pass


class RegistryAuthError(RegistryError):
    pass


class ArtifactNotFound(RegistryError):
    pass


class DigestMismatch(RegistryError):
    pass


class NotAComponentArtifact(RegistryError):
    pass


class ArtifactTooLarge(RegistryError):
    pass


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


def _basic(credentials: Credentials) -> str:
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def _auth_fix(registry: str) -> str:
    return (
        f"give credentials for {registry} with the lattice's registry.put, with "
        "WASMCLOUD_OCI_REGISTRY_USER and WASMCLOUD_OCI_REGISTRY_PASSWORD on the host, or with "
        "--user/--password (WASMCLOUD_OCI_REGISTRY_USER/PASSWORD) on the command line"
    )


class RegistrySession:
    """One registry and repository, one aiohttp session; remembers the auth it needed."""

    def __init__(
        self,
        ref: ImageReference,
        *,
        insecure: bool,
        credentials: Credentials | None,
        timeout: float = 60.0,
    ) -> None:
        self.ref = ref
        self.credentials = credentials
        self.scheme = "http" if insecure else "https"
        self.base = f"{self.scheme}://{ref.registry}/v2/{ref.repository}"
        self._auth_header: str | None = None
        self._timeout_s = timeout
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RegistrySession:
        self._session = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def where(self) -> str:
        return f"registry {self.ref.registry} ({self.scheme})"

    async def _authorize(self, challenge: str, push: bool) -> None:
        scheme, _, params_text = challenge.partition(" ")
        if scheme.lower() == "basic":
            if self.credentials is None:
                raise RegistryAuthError(
                    f"{self.where} asks for a user name and password for {self.ref}; "
                    + _auth_fix(self.ref.registry)
                )
            self._auth_header = _basic(self.credentials)
            return
        if scheme.lower() != "bearer":
            raise RegistryAuthError(
                f"{self.where} asks for {scheme!r} auth, which is not supported"
            )
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        realm = params.get("realm")
        if not realm:
            raise RegistryAuthError(f"{self.where} sent a Bearer challenge without a realm")
        query = {"service": params.get("service", self.ref.registry)}
        query["scope"] = params.get(
            "scope", f"repository:{self.ref.repository}:{'pull,push' if push else 'pull'}"
        )
        headers = {"Authorization": _basic(self.credentials)} if self.credentials else {}
        assert self._session is not None
        try:
            async with self._session.get(realm, params=query, headers=headers) as resp:
                if resp.status in (401, 403):
                    raise RegistryAuthError(
                        f"{self.where} refused the credentials for {self.ref} "
                        f"(token service answered {resp.status}); " + _auth_fix(self.ref.registry)
                    )
                body = await resp.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise RegistryUnreachable(
                f"cannot reach the token service of {self.where}: {exc}"
            ) from None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise RegistryAuthError(f"the token service of {self.where} answered without a token")
        self._auth_header = f"Bearer {token}"

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        push: bool = False,
    ) -> aiohttp.ClientResponse:
        """Send one request, answering one auth challenge; the caller reads and releases."""
        assert self._session is not None, "use RegistrySession as an async context manager"
        for attempt in range(2):
            sent = dict(headers or {})
            if self._auth_header:
                sent["Authorization"] = self._auth_header
            try:
                resp = await self._session.request(
                    method, url, headers=sent, data=data, allow_redirects=True
                )
            except TimeoutError:  # before ClientError: aiohttp's timeouts are both
                raise RegistryUnreachable(self._no_answer(f"{method} {url}")) from None
            except aiohttp.ClientError as exc:
                raise RegistryUnreachable(f"cannot reach {self.where}: {exc}") from None
            if resp.status not in (401, 403):
                return resp
            challenge = resp.headers.get("WWW-Authenticate", "")
            resp.release()
            await self._answer_refusal(resp.status, challenge, attempt, push)
        raise AssertionError("unreachable")

    def _no_answer(self, what: str) -> str:
        return (
            f"{self.where} did not answer within {self._timeout_s:g} s ({what}); check that "
            "the registry is up and reachable from this machine"
        )

    async def _answer_refusal(self, status: int, challenge: str, attempt: int, push: bool) -> None:
        """After a 401/403: authorize for the challenge, or raise when there is nothing
        (more) to try."""
        if status == 403 or attempt == 1 or not challenge:
            given = "with the credentials given" if self.credentials else "without credentials"
            raise RegistryAuthError(
                f"{self.where} refused access to {self.ref} {given} "
                f"(HTTP {status}); " + _auth_fix(self.ref.registry)
            )
        await self._authorize(challenge, push)

    # pull ---------------------------------------------------------------------------
    async def get_manifest(self) -> tuple[bytes, str, str]:
        """The manifest bytes, their digest (verified), and their media type."""
        url = f"{self.base}/manifests/{self.ref.target}"
        resp = await self.request("GET", url, headers={"Accept": layout.MANIFEST_ACCEPT})
        async with resp:
            if resp.status == 404:
                raise ArtifactNotFound(
                    f"{self.where} has no {self.ref.target} in repository {self.ref.repository}"
                )
            if resp.status != 200:
                raise RegistryError(
                    f"{self.where} answered HTTP {resp.status} for the manifest of {self.ref}"
                )
            body = await _read_capped(resp, layout.MAX_MANIFEST_SIZE, f"the manifest of {self.ref}")
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            header_digest = resp.headers.get("Docker-Content-Digest", "")
        digest = sha256_digest(body)
        expected = self.ref.digest or (header_digest if header_digest.startswith("sha256:") else "")
        if expected and digest != expected:
            raise DigestMismatch(
                f"the manifest of {self.ref} from {self.where} has digest {digest}, "
                f"not {expected}; refusing it"
            )
        return body, digest, media_type

    async def get_blob(self, descriptor: Descriptor, progress: Progress | None) -> bytes:
        """The blob's bytes, checked against the descriptor's size and digest (raises on a
        mismatch). The body is read by download.BlobDownload in worker threads."""
        url = f"{self.base}/blobs/{descriptor.digest}"
        loop = asyncio.get_running_loop()

        def report(received: int) -> None:  # called from the download thread
            if progress is not None:
                text = f"{received}/{descriptor.size} bytes"
                loop.call_soon_threadsafe(progress, text)

        for attempt in range(2):
            headers = {"Authorization": self._auth_header} if self._auth_header else {}
            download = BlobDownload(
                url, headers, descriptor.size, timeout=self._timeout_s, progress=report
            )
            try:
                outcome = await asyncio.to_thread(download.run)
            except asyncio.CancelledError:
                download.abort()  # the thread cannot be cancelled; its socket can be closed
                raise
            except TimeoutError:
                raise RegistryUnreachable(self._no_answer(f"blob {descriptor.digest}")) from None
            except (OSError, http.client.HTTPException, TooManyRedirects) as exc:
                raise RegistryUnreachable(
                    f"cannot fetch blob {descriptor.digest} from {self.where}: "
                    f"{exc or type(exc).__name__}"
                ) from None
            if isinstance(outcome, Downloaded):
                break
            if outcome.status in (401, 403):
                await self._answer_refusal(outcome.status, outcome.challenge, attempt, push=False)
                continue
            if outcome.status == 404:
                raise ArtifactNotFound(
                    f"{self.where} has no blob {descriptor.digest} for {self.ref}"
                )
            raise RegistryError(
                f"{self.where} answered HTTP {outcome.status} for blob {descriptor.digest}"
            )
        else:
            raise AssertionError("unreachable")
        if outcome.longer:
            raise DigestMismatch(
                f"blob {descriptor.digest} of {self.ref} is longer than the "
                f"{descriptor.size} bytes its manifest says; refusing it"
            )
        if outcome.received != descriptor.size or outcome.digest != descriptor.digest:
            raise DigestMismatch(
                f"blob of {self.ref} from {self.where} has digest {outcome.digest} "
                f"({outcome.received} bytes), not {descriptor.digest} ({descriptor.size} "
                "bytes) as its manifest says; refusing it"
            )
        return outcome.data

    # push ---------------------------------------------------------------------------
    async def put_blob(self, data: bytes, progress: Progress | None) -> Descriptor:
        digest = sha256_digest(data)
        resp = await self.request("HEAD", f"{self.base}/blobs/{digest}", push=True)
        async with resp:
            exists = resp.status == 200
        if exists:
            if progress:
                progress(f"blob {digest} already in {self.ref.registry}")
            return Descriptor("", digest, len(data))
        resp = await self.request("POST", f"{self.base}/blobs/uploads/", push=True)
        async with resp:
            location = resp.headers.get("Location")
            if resp.status != 202 or not location:
                raise RegistryError(
                    f"{self.where} refused to start an upload to {self.ref.repository} "
                    f"(HTTP {resp.status})"
                )
        upload = urljoin(f"{self.scheme}://{self.ref.registry}/", location)
        upload += ("&" if "?" in upload else "?") + f"digest={digest}"
        headers = {"Content-Type": "application/octet-stream"}
        resp = await self.request("PUT", upload, headers=headers, data=data, push=True)
        async with resp:
            if resp.status != 201:
                text = (await resp.text())[:200]
                raise RegistryError(
                    f"{self.where} refused blob {digest} (HTTP {resp.status}): {text}"
                )
        if progress:
            progress(f"pushed blob {digest} ({len(data)} bytes)")
        return Descriptor("", digest, len(data))

    async def put_manifest(self, manifest: bytes, media_type: str) -> str:
        digest = sha256_digest(manifest)
        url = f"{self.base}/manifests/{self.ref.tag or digest}"
        resp = await self.request(
            "PUT", url, headers={"Content-Type": media_type}, data=manifest, push=True
        )
        async with resp:
            if resp.status != 201:
                text = (await resp.text())[:300]
                raise RegistryError(
                    f"{self.where} refused the manifest of {self.ref} (HTTP {resp.status}): {text}"
                )
            answered = resp.headers.get("Docker-Content-Digest", digest)
        if answered != digest:
            raise DigestMismatch(
                f"{self.where} stored the manifest of {self.ref} as {answered}, not {digest}"
            )
        return digest


async def _read_capped(resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    parts: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(CHUNK):
        total += len(chunk)
        if total > limit:
            raise ArtifactTooLarge(f"{what} is over {limit} bytes; refusing it")
        parts.append(chunk)
    return b"".join(parts)


def wasm_config(layer_digest: str) -> bytes:
    """The Wasm OCI config (`application/vnd.wasm.config.v0+json`) as oci-wasm writes it,
    without the optional `component` world summary (its imports/exports), which would need
    the component compiled; hosts do not read the config."""
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "created": created,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
    }
    return json.dumps(config, separators=(",", ":")).encode()


def component_manifest(config: Descriptor, layer: Descriptor) -> bytes:
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": layout.OCI_MANIFEST,
        "config": {"mediaType": layout.WASM_CONFIG, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": layout.WASM_LAYER, "digest": layer.digest, "size": layer.size}],
    }
    return json.dumps(manifest, separators=(",", ":")).encode()


def component_layer(manifest_bytes: bytes, ref: ImageReference, media_type: str) -> Descriptor:
    """The one component layer of a manifest; refuses anything that is not a component
    artifact (an index, a provider archive, several or no wasm layers), naming what it is."""
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError:
        raise NotAComponentArtifact(f"the manifest of {ref} is not JSON") from None
    if not isinstance(manifest, dict):
        raise NotAComponentArtifact(f"the manifest of {ref} is not a JSON object")
    kind = manifest.get("mediaType") or media_type
    if kind in (layout.OCI_INDEX, layout.DOCKER_MANIFEST_LIST) or "manifests" in manifest:
        raise NotAComponentArtifact(
            f"{ref} is an image index (several platforms), not a component artifact"
        )
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise NotAComponentArtifact(f"the manifest of {ref} has no layers list")
    found: list[Descriptor] = []
    seen: list[str] = []
    for index, entry in enumerate(layers):
        if not isinstance(entry, dict):
            raise NotAComponentArtifact(f"layer {index} of {ref} is not an object")
        mt, digest, size = entry.get("mediaType"), entry.get("digest"), entry.get("size")
        if not isinstance(mt, str):
            raise NotAComponentArtifact(f"layer {index} of {ref} has no mediaType string")
        seen.append(mt)
        if mt not in layout.COMPONENT_LAYER_TYPES:
            continue
        if not isinstance(digest, str) or not re.fullmatch(r"sha256:[a-f0-9]{64}", digest):
            raise NotAComponentArtifact(
                f"layer {index} of {ref} has digest {digest!r}, not sha256:<hex>"
            )
        if type(size) is not int or size < 0:
            raise NotAComponentArtifact(
                f"layer {index} of {ref} has size {size!r}, not a count of bytes"
            )
        found.append(Descriptor(mt, digest, size))
    if len(found) != 1:
        raise NotAComponentArtifact(
            f"{ref} is not a component artifact: a component has exactly one layer of type "
            f"{' or '.join(layout.COMPONENT_LAYER_TYPES)}, this one has layers of types "
            f"{seen or 'none'}"
        )
    return found[0]
