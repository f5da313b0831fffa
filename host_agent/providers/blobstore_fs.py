"""blobstore-fs: wasi:blobstore in a directory of the provider's machine.

Link target_config ``ROOT`` (as upstream names it; ``root`` is read too): the directory
holding the linked component's containers, default ``/tmp/<source component id>``.
A container is a directory under it, an object a file in that directory (a name with
``/`` makes subdirectories). Names that would leave the container are refused.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TypeVar

from host_agent.interfaces.blobstore import BlobstoreError, ObjectId, ObjectInfo
from host_agent.providers.blobstore_server import BlobstoreProvider, LinkConfigError
from host_agent.providers.sdk import run_provider

T = TypeVar("T")


def root_from_config(config: dict[str, str], source_id: str) -> Path:
    """The link's ROOT, checked: absolute, and a directory (or creatable as one)."""
    unknown = sorted(k for k in config if k not in ("ROOT", "root"))
    if unknown:
        raise LinkConfigError(
            f"target_config has {', '.join(repr(k) for k in unknown)}, which blobstore-fs "
            "does not read; its only setting is ROOT (the directory for the containers)"
        )
    value = config.get("ROOT", config.get("root"))
    if value is None:
        return Path(tempfile.gettempdir()) / source_id
    if not value or not os.path.isabs(value):
        raise LinkConfigError(
            f"target_config ROOT {value!r} is not an absolute path; set ROOT to an absolute "
            "directory, e.g. /var/lib/blobs"
        )
    root = Path(value)
    if root.exists() and not root.is_dir():
        raise LinkConfigError(
            f"target_config ROOT {value!r} is a file, not a directory; point ROOT at a "
            "directory (it is made if missing)"
        )
    return root


def _part(value: str, what: str) -> PurePosixPath:
    path = PurePosixPath(value)
    if not value or "\0" in value or path.is_absolute() or ".." in path.parts or not path.parts:
        raise BlobstoreError(
            f"{what} {value!r} is not a usable name: it must be non-empty, relative, with no "
            "'..' part"
        )
    return path


class FsBackend:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _container(self, name: str) -> Path:
        return self.root / _part(name, "container name")

    def _existing(self, name: str) -> Path:
        path = self._container(name)
        if not path.is_dir():
            raise BlobstoreError(f"container {name!r} does not exist; create it first")
        return path

    def _object(self, id_: ObjectId) -> Path:
        return self._existing(id_.container) / _part(id_.object, "object name")

    async def _run(self, call: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(call)
        except OSError as error:
            raise BlobstoreError(
                f"blobstore-fs under {self.root}: {error.strerror or error}"
                f"{f' ({error.filename})' if error.filename else ''}"
            ) from None

    async def create_container(self, name: str) -> None:
        path = self._container(name)
        await self._run(lambda: path.mkdir(parents=True, exist_ok=True))

    async def container_exists(self, name: str) -> bool:
        path = self._container(name)
        return await self._run(path.is_dir)

    async def delete_container(self, name: str) -> None:
        path = self._existing(name)
        await self._run(lambda: shutil.rmtree(path))

    async def clear_container(self, name: str) -> None:
        path = self._existing(name)

        def clear() -> None:
            for entry in path.iterdir():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

        await self._run(clear)

    async def container_info(self, name: str) -> int:
        path = self._existing(name)
        return await self._run(lambda: int(path.stat().st_mtime))

    async def list_objects(self, name: str, limit: int | None, offset: int | None) -> list[str]:
        path = self._existing(name)

        def walk() -> list[str]:
            names = sorted(
                file.relative_to(path).as_posix() for file in path.rglob("*") if file.is_file()
            )
            start = offset or 0
            return names[start : None if limit is None else start + limit]

        return await self._run(walk)

    async def copy_object(self, src: ObjectId, dest: ObjectId) -> None:
        source, target = self._object(src), self._object(dest)

        def copy() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)

        await self._run(copy)

    async def move_object(self, src: ObjectId, dest: ObjectId) -> None:
        source, target = self._object(src), self._object(dest)

        def move() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)

        await self._run(move)

    async def delete_object(self, id_: ObjectId) -> None:
        path = self._object(id_)
        await self._run(lambda: path.unlink(missing_ok=True))

    async def delete_objects(self, container: str, names: list[str]) -> None:
        for name in names:
            await self.delete_object(ObjectId(container, name))

    async def has_object(self, id_: ObjectId) -> bool:
        path = self._object(id_)
        return await self._run(path.is_file)

    async def object_info(self, id_: ObjectId) -> ObjectInfo:
        path = self._object(id_)

        def info() -> ObjectInfo:
            if not path.is_file():
                raise BlobstoreError(f"object {id_} does not exist")
            stat = path.stat()
            return ObjectInfo(int(stat.st_mtime), stat.st_size)

        return await self._run(info)

    async def get_data(self, id_: ObjectId, start: int, end: int) -> bytes:
        path = self._object(id_)

        def read() -> bytes:
            if not path.is_file():
                raise BlobstoreError(f"object {id_} does not exist")
            if end < start:
                return b""
            with path.open("rb") as file:
                file.seek(start)
                return file.read(end - start + 1)  # the WIT's offsets are inclusive

        return await self._run(read)

    async def write_data(self, id_: ObjectId, data: bytes) -> None:
        path = self._object(id_)

        def write() -> None:
            # A reader sees the old object or the new one, never half of it.
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as file:
                file.write(data)
            os.replace(file.name, path)

        await self._run(write)

    async def close(self) -> None:
        return None


def backend(config: dict[str, str], secrets: dict[str, str], source_id: str) -> FsBackend:
    return FsBackend(root_from_config(config, source_id))


if __name__ == "__main__":
    run_provider(BlobstoreProvider(backend))
