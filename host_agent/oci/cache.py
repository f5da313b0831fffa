"""Blobs (manifests and layers) cached on disk by digest, in a 0700 directory of the host's
user (checked like the compiled-component cache: nothing is read from a directory another
user could write). Every read is verified against its digest, so a corrupt file is a miss."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from host_agent.runtime.image import _cached_file_is_there, check_cache_dir, default_cache_dir


def default_blob_dir() -> Path:
    return default_cache_dir().parent / "oci"


class BlobCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = check_cache_dir(root or default_blob_dir())

    def path(self, digest: str) -> Path:
        algorithm, _, hexpart = digest.partition(":")
        return self.root / f"{algorithm}-{hexpart}"

    def get(self, digest: str) -> bytes | None:
        path = self.path(digest)
        if not _cached_file_is_there(path):
            return None
        data = path.read_bytes()
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            path.unlink(missing_ok=True)  # corrupt: fetched again
            return None
        return data

    def put(self, digest: str, data: bytes) -> None:
        path = self.path(digest)
        partial = path.with_name(f"{path.name}.{os.getpid()}.{id(data)}.tmp")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        partial.replace(path)  # atomic: a concurrent host never reads half a blob
