"""wasi:blobstore pieces without a lattice: the wrpc:blobstore wire both ways, blobstore-fs's
link config and names, upstream references, and the draft version check at link time."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from host_agent.interfaces.blobstore import BlobstoreError, ObjectId, ObjectInfo
from host_agent.lattice.protocol import Link
from host_agent.providers.blobstore_fs import FsBackend, root_from_config
from host_agent.providers.blobstore_server import LinkConfigError
from host_agent.providers.builtin import UnknownProvider, resolve_provider
from host_agent.runtime.provider_versions import runtime_version_mismatch as version_mismatch
from host_agent.wrpc import blobstore as wire
from host_agent.wrpc.codec import DecodeError
from host_agent.wrpc.transport import Payload

ID = ObjectId("photos", "cat.png")


def test_parameters_cross_the_wire_unchanged() -> None:
    assert wire.read_name(wire.name("photos")) == "photos"
    assert wire.read_object_id(wire.object_id(ID)) == ID
    assert wire.read_src_dest(wire.src_dest(ID, ObjectId("b", "c"))) == (ID, ObjectId("b", "c"))
    assert wire.read_list_objects(wire.list_objects("p", None, 5)) == ("p", None, 5)
    assert wire.read_delete_objects(wire.delete_objects("p", ["a", "b"])) == ("p", ["a", "b"])
    assert wire.read_get_data(wire.get_data(ID, 3, 9)) == (ID, 3, 9)
    data = bytes(range(256)) * 1000  # several stream chunks
    params = wire.write_data(ID, data)
    assert wire.pending_write_paths(params.data) == ["1"]
    assert wire.read_write_data(params) == (ID, data)


def test_results_cross_the_wire_unchanged() -> None:
    assert wire.decode_bool(wire.encode_bool(True)) is True
    assert wire.decode_container_info(wire.encode_container_info(1700000000)) == 1700000000
    info = ObjectInfo(1700000000, 42)
    assert wire.decode_object_info(wire.encode_object_info(info)) == info
    for names in ([], ["a", "b/c"]):
        encoded = wire.encode_names(names)
        assert wire.decode_names(encoded) == names
        assert wire.pending_stream_paths(encoded.data) == (["0.0"] if not names else [])
    for data in (b"", b"x" * 200_000):
        encoded = wire.encode_data(data)
        assert wire.pending_stream_paths(encoded.data) == ["0.0"]
        assert wire.decode_data(encoded) == data
    wire.decode_written(wire.encode_written(None))


def test_a_provider_error_reaches_the_caller_as_its_sentence() -> None:
    with pytest.raises(BlobstoreError, match=r"^container .x. does not exist$"):
        wire.decode_unit(wire.encode_error("container 'x' does not exist"))


def test_malformed_values_are_refused() -> None:
    with pytest.raises(DecodeError, match="1 unexpected bytes"):
        wire.read_name(Payload(wire.name("a").data + b"\x00"))
    with pytest.raises(DecodeError, match="pending"):
        wire.decode_written(Payload(b"\x00\x00"))


def test_fs_root_config_is_checked_and_named(tmp_path: Path) -> None:
    assert root_from_config({"ROOT": str(tmp_path)}, "c1") == tmp_path
    assert root_from_config({}, "c1").name == "c1"  # upstream's default /tmp/<component>
    with pytest.raises(LinkConfigError, match="ROOT 'rel' is not an absolute path; set ROOT"):
        root_from_config({"ROOT": "rel"}, "c1")
    (tmp_path / "file").write_text("")
    with pytest.raises(LinkConfigError, match="is a file, not a directory"):
        root_from_config({"ROOT": str(tmp_path / "file")}, "c1")
    with pytest.raises(LinkConfigError, match=r"'ROOOT'.*its only setting is ROOT"):
        root_from_config({"ROOOT": str(tmp_path)}, "c1")


def test_fs_names_cannot_leave_the_root(tmp_path: Path) -> None:
    backend = FsBackend(tmp_path / "root")

    async def attempts() -> None:
        await backend.create_container("c")
        for bad in ("../../etc/passwd", "/etc/passwd", ""):
            with pytest.raises(BlobstoreError, match="is not a usable name"):
                await backend.write_data(ObjectId("c", bad), b"x")
        with pytest.raises(BlobstoreError, match="is not a usable name"):
            await backend.create_container("..")
        await backend.write_data(ObjectId("c", "a/b"), b"0123456789")
        assert await backend.get_data(ObjectId("c", "a/b"), 2, 4) == b"234"  # inclusive
        assert await backend.list_objects("c", None, None) == ["a/b"]

    asyncio.run(attempts())
    assert not (tmp_path / "etc").exists()


def test_upstream_references_before_wrpc_blobstore_0_2_are_refused() -> None:
    assert resolve_provider("ghcr.io/wasmcloud/blobstore-fs:0.10.1").name == "blobstore-fs"
    assert resolve_provider("ghcr.io/wasmcloud/blobstore-s3:0.11.1").name == "blobstore-s3"
    with pytest.raises(UnknownProvider, match=r"serve wrpc:blobstore@0\.1\.0"):
        resolve_provider("ghcr.io/wasmcloud/blobstore-fs:0.8.0")
    with pytest.raises(UnknownProvider, match=r"serve wrpc:blobstore@0\.1\.0"):
        resolve_provider("ghcr.io/wasmcloud/blobstore-s3:0.9.0")


def test_a_component_on_another_blobstore_draft_is_refused_at_link_time() -> None:
    link = Link(
        source_id="blobby",
        target="store",
        wit_namespace="wasi",
        wit_package="blobstore",
        interfaces=["blobstore"],
    )
    problem = version_mismatch({"wasi:blobstore/blobstore": "0.2.0-draft2"}, link)
    assert problem == (
        "blobby imports wasi:blobstore/blobstore@0.2.0-draft2 but this lattice's hosts and "
        "providers serve wasi:blobstore/blobstore@0.2.0-draft; rebuild blobby against "
        "wasi:blobstore/blobstore@0.2.0-draft"
    )
    assert version_mismatch({"wasi:blobstore/blobstore": "0.2.0-draft"}, link) is None


def test_s3_storage_config_is_read_as_upstream_and_refused_by_field() -> None:
    from host_agent.providers.blobstore_s3 import storage_config

    settings = storage_config(
        {"alias_photos": "bucket-1", "BUCKET_REGION": "eu-west-1"},
        {"config_json": '{"endpoint": "http://127.0.0.1:9", "aliases": {"a": "b"}}'},
    )
    assert settings.endpoint == "http://127.0.0.1:9"
    assert settings.aliases == {"a": "b", "photos": "bucket-1"}
    assert settings.bucket_region == "eu-west-1"
    encoded = base64.b64encode(b'{"region": "us-west-2"}').decode()
    assert storage_config({"config_b64": encoded}, {}).region == "us-west-2"
    refusals = [
        ({"config_json": '{"max_attempts": "3"}'}, "field 'max_attempts'"),
        ({"config_json": '{"endpont": "x"}'}, "unknown field 'endpont'; its fields are"),
        ({"config_json": '{"sts_config": {}}'}, "sts_config (assume-role) is not supported"),
        ({"config_json": "{nope"}, "target_config config_json is not JSON"),
        ({"config_b64": "!!"}, "is not base64 of UTF-8 JSON"),
        ({"endpoint": "x"}, "'endpoint', which blobstore-s3 does not read"),
        ({"alias_": "b"}, "an alias needs a name after alias_"),
    ]
    for config, says in refusals:
        with pytest.raises(LinkConfigError) as refused:
            storage_config(config, {})
        assert says in str(refused.value), (config, str(refused.value))
