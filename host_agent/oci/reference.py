"""OCI image references (`registry/repository:tag`, `registry/repository@sha256:...`).

Parsed strictly, the way the distribution reference grammar reads them: a refusal names the
part that is wrong. As in the 1.4.2 host (oci-client's `Reference`), a first path part that
is not a host name (no `.` or `:` and not `localhost`) means Docker Hub, and a reference
without tag or digest means the tag `latest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)


class InvalidReference(ValueError):
    """An image reference that cannot be read; the message names the part and the fix."""


@dataclass(frozen=True)
class ImageReference:
    registry: str  # host[:port], as written (docker.io when none was)
    repository: str  # path inside the registry, e.g. "components/counter"
    tag: str | None
    digest: str | None  # "sha256:<64 hex>"; when set it is what is fetched

    @property
    def target(self) -> str:
        """What the manifest is asked for by: the digest when pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def effective_tag(self) -> str | None:
        return self.tag if self.tag is not None or self.digest else DEFAULT_TAG

    def with_digest(self, digest: str) -> ImageReference:
        return ImageReference(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def looks_like_oci(ref: str) -> bool:
    """Whether a component reference is meant for a registry rather than a file."""
    return "://" not in ref and not ref.startswith(("/", ".", "~"))


def parse_reference(ref: str) -> ImageReference:
    if not isinstance(ref, str) or not ref:
        raise InvalidReference("an image reference must be a non-empty string")
    if ref != ref.strip() or any(c.isspace() for c in ref):
        raise InvalidReference(f"image reference {ref!r} contains whitespace")
    if "://" in ref:
        raise InvalidReference(
            f"image reference {ref!r} has a URL scheme; write it as registry/repository:tag "
            "or registry/repository@sha256:<digest>"
        )
    rest, digest = ref, None
    if "@" in ref:
        rest, digest = ref.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise InvalidReference(
                f"image reference {ref!r} has digest {digest!r}; a digest is sha256: followed "
                "by 64 lowercase hex digits"
            )
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidReference(
                f"image reference {ref!r} has tag {tag!r}; a tag is up to 128 letters, digits, "
                "'_', '.' or '-', not starting with '.' or '-'"
            )
    parts = rest.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, path = parts[0], parts[1:]
        if not _HOST.fullmatch(registry):
            raise InvalidReference(
                f"image reference {ref!r} has registry {registry!r}, not a host[:port]"
            )
    else:
        registry, path = DEFAULT_REGISTRY, parts
        if len(path) == 1:
            path = ["library", *path]
    for part in path:
        if not _COMPONENT.fullmatch(part):
            raise InvalidReference(
                f"image reference {ref!r} has repository part {part!r}; repository parts are "
                "lowercase letters and digits separated by '.', '_', '__' or '-'"
            )
    return ImageReference(registry, "/".join(path), tag, digest)
