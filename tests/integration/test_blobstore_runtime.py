"""The blobby component in wasmtime with the host's wasi:blobstore (no lattice): an object
over the host's size limit is refused with the limit named, and a component whose
blobstore import has no link hears which link to put."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from host_agent.host.linked_blobstore import LinkedBlobstore
from host_agent.host.links import LinkIndex
from host_agent.interfaces.blobstore import BlobstoreError, ObjectId, ObjectInfo
from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.runtime import wasi_blobstore
from host_agent.runtime.engine import component_engine
from host_agent.runtime.image import ComponentImage, load_component
from host_agent.runtime.instance import ComponentInstance, NoKeyValue
from tests.blobstore import BLOBBY_WASM


class MemoryBlobstore:
    """The calls blobby makes, kept in a dict (the providers have their own tests)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.containers: set[str] = set()

    def create_container(self, name: str) -> None:
        self.containers.add(name)

    def container_exists(self, name: str) -> bool:
        return name in self.containers

    def has_object(self, id_: ObjectId) -> bool:
        return (id_.container, id_.object) in self.objects

    def object_info(self, id_: ObjectId) -> ObjectInfo:
        return ObjectInfo(0, len(self.objects[(id_.container, id_.object)]))

    def get_data(self, id_: ObjectId, start: int, end: int) -> bytes:
        return self.objects[(id_.container, id_.object)][start : end + 1]

    def write_data(self, id_: ObjectId, data: bytes) -> None:
        self.objects[(id_.container, id_.object)] = data


@pytest.fixture(scope="module")
def blobby() -> ComponentImage:
    # The hosts' cache and engine: compiled once for these tests and the end-to-end ones.
    return load_component(Path(BLOBBY_WASM).read_bytes(), component_engine())


def put(instance: ComponentInstance, path: str, body: bytes) -> HttpResponse:
    headers = [("content-length", str(len(body)).encode())]
    return instance.handle_http(HttpRequest("PUT", path, "http", "x", headers, body))


def test_an_object_over_the_limit_is_refused_naming_it(
    blobby: ComponentImage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wasi_blobstore, "MAX_OBJECT_BYTES", 10_000)
    store = MemoryBlobstore()
    instance = ComponentInstance(blobby, NoKeyValue(), "blobby", blobstore=store)
    assert put(instance, "/small", b"x" * 10_000).status == 201
    response = put(instance, "/big", b"x" * 10_001)
    assert (response.status, response.body) == (
        502,
        b"blobstore error: the object is larger than the host's limit of 10000 bytes\n",
    )
    assert set(store.objects) == {("blobby", "small")}  # nothing half-written


def test_a_component_without_a_blobstore_link_hears_which_to_put(blobby: ComponentImage) -> None:
    unlinked = LinkedBlobstore("blobby", LinkIndex, None, asyncio.new_event_loop())  # type: ignore[arg-type]
    instance = ComponentInstance(blobby, NoKeyValue(), "blobby", blobstore=unlinked)
    response = instance.handle_http(HttpRequest("GET", "/", "http", "x", [], b""))
    assert (response.status, response.body) == (
        502,
        b"blobstore error: blobby has no link for wasi:blobstore/blobstore; put a link to a "
        b"blobstore provider (interfaces: [blobstore])\n",
    )
    with pytest.raises(BlobstoreError):
        unlinked.container_exists("c")
