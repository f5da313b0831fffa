"""The component runtime on the real example components, executed by wasmtime."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from wasmtime import Engine

from host_agent.interfaces.http import HttpRequest
from host_agent.interfaces.keyvalue import KeyValueError
from host_agent.runtime.image import ComponentImage, ComponentLoadError, load_component
from host_agent.runtime.instance import ComponentInstance, ComponentTrap, import_problems
from host_agent.runtime.pool import InstancePool

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def wasm(name: str) -> bytes:
    path = EXAMPLES / name / "build" / f"{name}.wasm"
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/build-components.sh (make test does)")
    return path.read_bytes()


class MemoryKeyValue:
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], bytes] = {}
        self.fail_with: Exception | None = None

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def get(self, bucket: str, key: str) -> bytes | None:
        self._check()
        return self.data.get((bucket, key))

    def set(self, bucket: str, key: str, value: bytes) -> None:
        self._check()
        self.data[(bucket, key)] = value

    def delete(self, bucket: str, key: str) -> None:
        self.data.pop((bucket, key), None)

    def exists(self, bucket: str, key: str) -> bool:
        return (bucket, key) in self.data

    def list_keys(self, bucket: str, cursor: int | None) -> tuple[list[str], int | None]:
        return [k for b, k in self.data if b == bucket], None

    def increment(self, bucket: str, key: str, delta: int) -> int:
        self._check()
        value = int(self.data.get((bucket, key), b"0")) + delta
        self.data[(bucket, key)] = str(value).encode()
        return value


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture(scope="module")
def counter(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> ComponentImage:
    return load_component(wasm("counter"), engine, tmp_path_factory.mktemp("cache"))


def get(path: str) -> HttpRequest:
    return HttpRequest("GET", path)


def test_counter_counts_per_path_in_the_linked_store(counter: ComponentImage) -> None:
    store = MemoryKeyValue()
    instance = ComponentInstance(counter, store, "counter")
    bodies = [instance.handle_http(get(p)).body for p in ("/hello", "/hello", "/world")]
    assert bodies == [b"hello -> 1", b"hello -> 2", b"world -> 1"]
    assert store.data[("default", "hello")] == b"2"
    assert len(instance.table) == 0  # every handle the guest got back was released


def test_counter_imports_exactly_what_the_lattice_serves(counter: ComponentImage) -> None:
    assert counter.imports["wasi:keyvalue/atomics"] == "0.2.0-draft"
    assert "wasi:http/incoming-handler" in counter.exports
    assert import_problems(counter) == []


def test_a_wasi_release_candidate_import_is_refused_naming_the_release(
    counter: ComponentImage,
) -> None:
    """A component built against a WASI 0.2 release candidate (an API before 0.2.0)."""
    candidate = dataclasses.replace(
        counter, imports={**counter.imports, "wasi:http/types": "0.2.0-rc-2023-11-10"}
    )
    assert import_problems(candidate) == [
        "imports wasi:http/types@0.2.0-rc-2023-11-10 but this lattice serves "
        "wasi:http/types@0.2.x; rebuild the component against wasi:http/types@0.2"
    ]


def test_compiled_code_is_cached_by_content(engine: Engine, tmp_path: Path) -> None:
    load_component(wasm("hello"), engine, tmp_path)
    cached = list(tmp_path.glob("*.cwasm"))
    assert len(cached) == 1
    again = load_component(wasm("hello"), engine, tmp_path)  # from the cache
    response = ComponentInstance(again, MemoryKeyValue(), "hello").handle_http(get("/"))
    assert response.body == b"hello from wasmCloud"


def test_keyvalue_error_reaches_the_component_as_a_wasi_error(counter: ComponentImage) -> None:
    store = MemoryKeyValue()
    store.fail_with = KeyValueError("other", "redis at redis://127.0.0.1:1 failed")
    instance = ComponentInstance(counter, store, "counter")
    response = instance.handle_http(get("/hello"))
    assert response.status == 500
    assert b"redis at redis://127.0.0.1:1 failed" in response.body
    store.fail_with = None  # the store came back: the same instance keeps working
    assert instance.handle_http(get("/hello")).body == b"hello -> 1"


def test_a_trap_kills_the_instance_and_the_pool_replaces_it(counter: ComponentImage) -> None:
    store = MemoryKeyValue()

    async def scenario() -> list[tuple[int, bytes]]:
        pool = InstancePool(lambda: ComponentInstance(counter, store, "counter"), 1)
        await pool.fill()
        store.fail_with = RuntimeError("host bug")  # not a wasi error: the guest traps
        first = await pool.handle_http(get("/a"))
        store.fail_with = None
        second = await pool.handle_http(get("/a"))
        pool.close()
        return [(first.status, first.body), (second.status, second.body)]

    (status1, body1), (status2, body2) = asyncio.run(scenario())
    assert status1 == 500 and b"component trapped" in body1
    assert (status2, body2) == (200, b"a -> 1")


def test_dead_instance_refuses_calls(counter: ComponentImage) -> None:
    store = MemoryKeyValue()
    instance = ComponentInstance(counter, store, "counter")
    store.fail_with = RuntimeError("boom")
    with pytest.raises(ComponentTrap):
        instance.handle_http(get("/x"))
    with pytest.raises(ComponentTrap, match="dead"):
        instance.handle_http(get("/x"))


def test_bytes_that_are_not_a_component_are_refused(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ComponentLoadError, match="not a runnable WebAssembly component"):
        load_component(b"\0asm\x0d\x00\x01\x00garbage", engine, tmp_path)


def test_import_problems_name_the_interface(counter: ComponentImage) -> None:
    image = ComponentImage(
        engine=counter.engine,
        component=counter.component,
        digest="x",
        imports={
            "wasi:io/streams": "0.2.3",
            "wasi:nn/inference": "0.2.0-rc-2024-10-28",
            "acme:greeter/greet": "0.1.0",  # served by a linked component: not a problem
            "wasi:keyvalue/store": "0.2.0-draft2",
            "wasi:filesystem/types": "0.2.9",  # trapped on use, not refused
        },
        exports={},
    )
    problems = import_problems(image)
    assert len(problems) == 2
    assert any("missing import wasi:nn/inference@0.2.0-rc-2024-10-28" in p for p in problems)
    assert any("wasi:keyvalue/store@0.2.0-draft2" in p and "rebuild" in p for p in problems)
