"""The compiled-component cache holds native code the host runs without verifying it:
it is created private (0700 directories, 0600 files) and a cache another user could
write to is refused with the path and the fix, before anything is loaded from it."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from wasmtime import Engine

from host_agent.runtime.image import UnsafeCacheError, load_component
from tests.lattice import ROOT, HostProcess, NatsServer, first_host_id, run_async

HELLO = ROOT / "examples" / "hello" / "build" / "hello.wasm"
NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture(scope="module")
def hello() -> bytes:
    if not HELLO.exists():
        pytest.fail(f"{HELLO} is missing: run scripts/build-components.sh (make test does)")
    return HELLO.read_bytes()


@pytest.fixture(scope="module")
def compiled(engine: Engine, hello: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real compile (~3 s); tests copy its artifact instead of compiling again."""
    cache = tmp_path_factory.mktemp("first") / "compiled"
    load_component(hello, engine, cache)
    [artifact] = cache.glob("*.cwasm")
    return artifact


def seeded(cache: Path, artifact: Path) -> Path:
    """`cache` holding a copy of a valid artifact (private, as the host writes it)."""
    cache.mkdir(mode=0o700, exist_ok=True)
    copy = cache / artifact.name
    shutil.copyfile(artifact, copy)
    copy.chmod(0o600)
    return copy


def test_a_new_cache_is_private(compiled: Path, tmp_path: Path) -> None:
    # The fixture's compile created `compiled` (and its missing parent) itself.
    assert mode(compiled.parent) == 0o700
    assert mode(compiled) == 0o600
    assert compiled.stat().st_uid == os.geteuid()


def test_missing_parents_are_created_private_and_the_cache_is_used(
    engine: Engine, hello: bytes, compiled: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "a" / "b" / "compiled"
    (tmp_path / "a").mkdir(mode=0o755)
    load_component(hello, engine, cache)  # nothing cached: compiles, then stores
    assert mode(tmp_path / "a") == 0o755  # an existing parent is left as it is
    assert mode(tmp_path / "a" / "b") == 0o700
    assert mode(cache) == 0o700
    [artifact] = cache.glob("*.cwasm")
    assert mode(artifact) == 0o600
    assert artifact.name == compiled.name


def test_an_existing_readable_cache_is_tightened(
    engine: Engine, hello: bytes, compiled: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "compiled"
    seeded(cache, compiled)
    cache.chmod(0o755)  # what hosts before this check created
    load_component(hello, engine, cache)
    assert mode(cache) == 0o700


@pytest.mark.parametrize("shared", [0o770, 0o707, 0o777], ids=oct)
def test_a_group_or_other_writable_cache_is_refused(
    engine: Engine, hello: bytes, compiled: Path, tmp_path: Path, shared: int
) -> None:
    cache = tmp_path / "compiled"
    artifact = seeded(cache, compiled)
    cache.chmod(shared)
    with pytest.raises(UnsafeCacheError) as refused:
        load_component(hello, engine, cache)
    message = str(refused.value)
    assert f"the cache directory {cache} is writable by group or others" in message
    assert f"(mode {shared:04o})" in message
    assert "fix: delete" in message and "WASMCLOUD_CACHE_DIR" in message
    assert mode(cache) == shared  # refused, not silently repaired
    assert artifact.exists()


def test_a_cache_owned_by_another_user_is_refused(
    engine: Engine, hello: bytes, compiled: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "compiled"
    seeded(cache, compiled)
    os.chown(cache, NOBODY, NOBODY)
    with pytest.raises(UnsafeCacheError) as refused:
        load_component(hello, engine, cache)
    message = str(refused.value)
    assert f"{cache} is owned by uid {NOBODY}, not by this host's user" in message


@pytest.mark.parametrize("problem", ["group-writable", "other-owner", "symlink"])
def test_an_unsafe_cached_file_is_refused(
    engine: Engine, hello: bytes, compiled: Path, tmp_path: Path, problem: str
) -> None:
    cache = tmp_path / "compiled"
    artifact = seeded(cache, compiled)
    if problem == "group-writable":
        artifact.chmod(0o660)
    elif problem == "other-owner":
        os.chown(artifact, NOBODY, NOBODY)
    else:
        elsewhere = tmp_path / "elsewhere.cwasm"
        artifact.rename(elsewhere)
        artifact.symlink_to(elsewhere)
    with pytest.raises(UnsafeCacheError) as refused:
        load_component(hello, engine, cache)
    message = str(refused.value)
    assert f"the cached file {artifact}" in message
    assert f"fix: delete {artifact}" in message


def test_a_directory_above_the_cache_others_can_write_is_refused_unless_sticky(
    engine: Engine, hello: bytes, compiled: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could rename `compiled` and put their own in its place
    cache = shared / "compiled"
    seeded(cache, compiled)
    with pytest.raises(UnsafeCacheError) as refused:
        load_component(hello, engine, cache)
    message = str(refused.value)
    assert f"the directory above the cache {cache}, {shared} is writable" in message
    assert f"fix: chmod go-w {shared}" in message
    shared.chmod(0o1777)  # like /tmp: others cannot rename what is ours
    image = load_component(hello, engine, cache)
    assert "wasi:http/incoming-handler" in image.exports


@pytest.fixture
def unsafe_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    base = tmp_path / "cache"
    base.mkdir(mode=0o700)
    monkeypatch.setenv("WASMCLOUD_CACHE_DIR", str(base))
    cache = base / "compiled"  # what the host uses under WASMCLOUD_CACHE_DIR
    cache.mkdir()
    cache.chmod(0o775)
    yield cache


@pytest.mark.timeout(120)
@run_async
async def test_a_host_with_an_unsafe_cache_refuses_to_run_components(
    nats_server: NatsServer, unsafe_cache: Path, tmp_path: Path
) -> None:
    host = HostProcess(nats_server, {}, "--allow-file-load", log=tmp_path / "host.log")
    nc = await nats.connect(nats_server.url)
    try:
        failures: list[dict[str, Any]] = []
        sub = await nc.subscribe("wasmbus.evt.default.component_scale_failed")
        host_id = await first_host_id(nc)
        body = {
            "host_id": host_id,
            "component_id": "hello",
            "component_ref": f"file://{HELLO}",
            "count": 1,
        }
        reply = await nc.request(
            f"wasmbus.ctl.v1.default.component.scale.{host_id}", json.dumps(body).encode(), 10
        )
        assert json.loads(reply.data)["success"] is True  # accepted; the work fails after
        msg = await sub.next_msg(timeout=30)
        failures.append(json.loads(msg.data)["data"])
    finally:
        await nc.close()
        host.stop()
    error = failures[0]["error"]
    assert f"the cache directory {unsafe_cache} is writable by group or others" in error
    assert "WASMCLOUD_CACHE_DIR" in error
    assert list(unsafe_cache.iterdir()) == []  # nothing was written there either
