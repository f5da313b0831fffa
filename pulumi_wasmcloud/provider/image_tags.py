"""Component images named by tag, pinned to the digest the tag names now.

A tag is a name that can move: ``127.0.0.1:5000/counter:1.0`` pushed again names new
bytes, but the manifest's text stays the same, so a plan made on the text would see no
change and ``up`` would leave the old build running. ``check`` therefore asks the registry
(read-only: one manifest GET, verified against its digest) what each component tag names
now and writes it into the manifest as ``repo:tag@sha256:...``. Preview then shows a moved
tag as one image change, ``up`` deploys the digest, and hosts pull exactly what was planned.

Why ``repo:tag@digest`` rather than ``repo@digest``: the tag stays readable in the plan,
state and inventory, and every puller reads the digest first (oci-client's ``Reference``
in the 1.4.2 host and wash 0.39, and ``host_agent.oci``), so the tag is a label only.
1.4.2's ``latest`` guard looks at the reference's end, so a pinned ``:latest@...`` passes
it there and here alike.

The registry is reached the way the lattice's hosts reach it: plain HTTP for the Lattice's
own registry and for those in ``WASMCLOUD_OCI_ALLOWED_INSECURE``; credentials from
``WASMCLOUD_OCI_REGISTRY`` / ``_USER`` / ``_PASSWORD`` (the hosts inherit the provider's
environment).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_agent.host.artifacts import OciOptions
from host_agent.oci import (
    ArtifactNotFound,
    ImageReference,
    InvalidReference,
    RegistryAuthError,
    RegistryError,
    RegistryUnreachable,
    parse_reference,
)
from host_agent.oci.client import RegistrySession, component_layer
from pulumi_wasmcloud.provider.handlers import InputError

# Preview waits this long for a registry; loopback answers (or refuses) at once.
RESOLVE_TIMEOUT = 10.0


@dataclass(frozen=True)
class TaggedImage:
    """A component whose image names a tag and no digest."""

    index: int
    component: str
    image: str
    ref: ImageReference

    @property
    def where(self) -> str:
        return f"manifest.spec.components[{self.index}].properties.image"


def tagged_images(manifest: Mapping[str, Any]) -> list[TaggedImage]:
    """The components whose image is a registry reference by tag (not a local file, not
    already pinned to a digest). A reference that does not parse is left to the checks
    that refuse it."""
    found = []
    for index, component in enumerate(manifest.get("spec", {}).get("components", [])):
        image = (component.get("properties") or {}).get("image")
        if component.get("type") == "capability" or not isinstance(image, str):
            continue
        if "://" in image or image.startswith(("/", ".", "~")) or Path(image).is_file():
            continue  # a local file: pinned by pin_local_components, or read by the host
        try:
            ref = parse_reference(image)
        except InvalidReference:
            continue
        if ref.digest is None:
            found.append(TaggedImage(index, str(component.get("name")), image, ref))
    return found


def registry_options(
    lattice_registry: str | None, env: Mapping[str, str]
) -> tuple[OciOptions, frozenset[str]]:
    """The hosts' OCI settings read from ``env``, and the registries they reach over plain
    HTTP (the Lattice's own registry among them, as host_resource gives it to them)."""
    options = OciOptions.from_env(env)
    insecure = set(options.allowed_insecure)
    if lattice_registry:
        insecure.add(lattice_registry)
    return options, frozenset(insecure)


async def resolve_digest(
    tagged: TaggedImage, insecure: bool, options: OciOptions, timeout: float = RESOLVE_TIMEOUT
) -> str:
    """The digest ``tagged``'s tag names now; refuses an artifact that is not a component.
    Raises RegistryError with a sentence naming the registry."""
    credentials = options.credentials(tagged.ref.registry, lambda _: None)
    async with RegistrySession(
        tagged.ref, insecure=insecure, credentials=credentials, timeout=timeout
    ) as session:
        manifest, digest, media_type = await session.get_manifest()
    component_layer(manifest, tagged.ref, media_type)
    return digest


def refusal(tagged: TaggedImage, exc: RegistryError, insecure: bool) -> InputError:
    """Why ``tagged`` could not be pinned, naming the component, the registry and the fix."""
    ref = tagged.ref
    what = f"component {tagged.component}: cannot resolve tag {ref.effective_tag} of {tagged.image}"
    pin = (
        f"or pin the image by digest ({ref.registry}/{ref.repository}@sha256:...) to plan "
        "without asking the registry"
    )
    if isinstance(exc, RegistryUnreachable):
        http = (
            ""
            if insecure
            else f"; if {ref.registry} serves plain http, list it in "
            "WASMCLOUD_OCI_ALLOWED_INSECURE (the hosts read the same variable)"
        )
        text = (
            f"{what}: {exc}{http}. Start the registry {ref.registry} (the Lattice runs it when "
            f"registryPort is set) or fix the image's address, {pin}; nothing was deployed"
        )
    elif isinstance(exc, ArtifactNotFound):
        text = (
            f"{what}: {exc}. Push it first (`wasmcloud push FILE {tagged.image}`) or fix "
            "the tag; nothing was deployed"
        )
    elif isinstance(exc, RegistryAuthError):
        text = (
            f"{what}: {exc}. The provider resolves tags with WASMCLOUD_OCI_REGISTRY, "
            "WASMCLOUD_OCI_REGISTRY_USER and WASMCLOUD_OCI_REGISTRY_PASSWORD from its "
            "environment (which the lattice's hosts inherit); nothing was deployed"
        )
    else:
        text = f"{what}: {exc}; nothing was deployed"
    return InputError(tagged.where, text)


async def pin_tagged_images(
    manifest: dict[str, Any], lattice_registry: str | None, env: Mapping[str, str]
) -> tuple[dict[str, Any], list[InputError]]:
    """The manifest with each component tag pinned as ``repo:tag@sha256:...`` (asked of
    the registries at once), and refusals for the tags that could not be resolved."""
    tagged = tagged_images(manifest)
    if not tagged:
        return manifest, []
    try:
        options, insecure = registry_options(lattice_registry, env)
    except ValueError as exc:  # the hosts would refuse to start with these settings too
        return manifest, [InputError(tagged[0].where, f"cannot resolve image tags: {exc}")]
    results = await asyncio.gather(
        *(resolve_digest(t, t.ref.registry in insecure, options) for t in tagged),
        return_exceptions=True,
    )
    pinned: dict[str, Any] = json.loads(json.dumps(manifest))
    failures = []
    for item, result in zip(tagged, results, strict=True):
        if isinstance(result, RegistryError):
            failures.append(refusal(item, result, item.ref.registry in insecure))
        elif isinstance(result, BaseException):
            raise result
        else:
            pinned["spec"]["components"][item.index]["properties"]["image"] = (
                f"{item.image}@{result}"
            )
    return pinned, failures
