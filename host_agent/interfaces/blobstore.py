"""wasi:blobstore's versions and values, shared by the runtime (guest side), the wRPC codec
and the blobstore providers.

Components import ``wasi:blobstore/{blobstore,container,types}@0.2.0-draft`` from the
host; the host turns each call into ``wrpc:blobstore/blobstore@0.2.0`` on the provider its
link names, as wasmCloud 1.x's runtime and its blobstore-fs / blobstore-s3 providers do.
"""

from __future__ import annotations

from dataclasses import dataclass

BLOBSTORE_VERSION = "0.2.0-draft"  # wasi:blobstore, what components import
WRPC_BLOBSTORE_VERSION = "0.2.0"  # wrpc:blobstore, what the providers export
WRPC_BLOBSTORE_INSTANCE = f"wrpc:blobstore/blobstore@{WRPC_BLOBSTORE_VERSION}"

# The host holds a whole object in memory between the guest's stream and the wire; a
# larger one is refused (the guest's output stream closes, a read answers an error).
MAX_OBJECT_BYTES = 64 * 1024 * 1024


class BlobstoreError(Exception):
    """A wasi:blobstore `error` (a string): what failed and, where we know it, the fix."""


@dataclass(frozen=True)
class ObjectId:
    container: str
    object: str

    def __str__(self) -> str:
        return f"{self.container}/{self.object}"


@dataclass(frozen=True)
class ObjectInfo:
    created_at: int  # seconds since the Unix epoch
    size: int
