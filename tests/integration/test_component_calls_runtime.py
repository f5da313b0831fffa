"""The runtime side of component-to-component calls, in one process with the real test
components (tests/components): which links make sense, and how imports and exports
behave when a call fails. The lattice side is tests/integration/test_component_links.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from wasmtime import Engine

from host_agent.interfaces.http import HttpRequest
from host_agent.lattice.protocol import Link
from host_agent.runtime.custom import (
    ComponentCallError,
    custom_exports,
    custom_imports,
    wire_name,
)
from host_agent.runtime.image import ComponentImage, load_component
from host_agent.runtime.instance import (
    ComponentInstance,
    ComponentTrap,
    NoKeyValue,
    import_problems,
)
from host_agent.runtime.pool import InstancePool
from host_agent.runtime.provider_versions import link_problem
from host_agent.runtime.wrpc_values import HandleCodec, WitHandle

ROOT = Path(__file__).resolve().parents[2]
ZOO = "test:types/zoo"
COUNTER = "test:types/counter"


def wasm(path: Path) -> bytes:
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/build-components.sh (make test does)")
    return path.read_bytes()


@pytest.fixture(scope="module")
def images() -> dict[str, ComponentImage]:
    engine = Engine()
    paths = {
        name: ROOT / "tests" / "components" / name / "build" / f"{name}.wasm"
        for name in ("types-caller", "types-callee", "types-caller-v2", "types-counter")
    }
    paths["hello"] = ROOT / "examples" / "hello" / "build" / "hello.wasm"
    return {name: load_component(wasm(path), engine) for name, path in paths.items()}


def link(source: str, target: str, namespace: str, package: str, *interfaces: str) -> Link:
    return Link(
        source_id=source,
        target=target,
        wit_namespace=namespace,
        wit_package=package,
        interfaces=list(interfaces),
    )


def zoo_link(source: str, target: str) -> Link:
    return link(source, target, "test", "types", "zoo")


def test_a_custom_import_is_not_a_missing_import(images: dict[str, ComponentImage]) -> None:
    assert import_problems(images["types-caller"]) == []
    assert list(custom_imports(images["types-caller"])) == [ZOO, COUNTER]
    assert custom_imports(images["types-caller"])[COUNTER].resources == ("counter",)
    assert list(custom_exports(images["types-callee"])) == [ZOO]
    functions = custom_exports(images["types-callee"])[ZOO].functions
    assert {"echo-point", "echo-shape", "divide", "note", "crash"} <= set(functions)


def test_links_to_components_are_judged_by_their_exports(
    images: dict[str, ComponentImage],
) -> None:
    caller, callee = images["types-caller"], images["types-callee"]
    v2, hello = images["types-caller-v2"], images["hello"]
    assert link_problem(caller, callee, zoo_link("types-caller", "types-callee")) is None

    missing = link_problem(caller, hello, zoo_link("types-caller", "hello"))
    assert missing is not None
    assert missing.startswith("hello does not export test:types/zoo (it exports ")
    assert "wasi:http/incoming-handler@0.2.12" in missing

    mismatch = link_problem(v2, callee, zoo_link("types-caller-v2", "types-callee"))
    assert mismatch == (
        "types-caller-v2 imports test:types/zoo@0.2.0 but types-callee exports "
        "test:types/zoo@0.1.0; rebuild one of them against the other's version"
    )

    # Only one end known to this host: what can be judged is judged.
    assert link_problem(None, hello, zoo_link("elsewhere", "hello")) is not None
    assert link_problem(v2, None, zoo_link("types-caller-v2", "runs-elsewhere")) is None
    # A provider in front of a component: the component must export the handler.
    http = link("httpserver", "types-caller", "wasi", "http", "incoming-handler")
    assert link_problem(None, caller, http) is None
    to_callee = link("httpserver", "types-callee", "wasi", "http", "incoming-handler")
    assert "types-callee does not export wasi:http/incoming-handler" in (
        link_problem(None, callee, to_callee) or ""
    )


class FailingCalls:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[Any]]] = []

    def call(
        self, interface: str, function: str, args: list[Any], handles: HandleCodec | None = None
    ) -> Any:
        self.calls.append((interface, function, args))
        raise ComponentCallError(f"types-callee failed {interface}.{function}: it is down")


def test_a_failed_import_call_traps_the_caller_with_its_reason(
    images: dict[str, ComponentImage],
) -> None:
    calls = FailingCalls()
    instance = ComponentInstance(images["types-caller"], NoKeyValue(), "types-caller", calls)
    with pytest.raises(ComponentTrap) as trapped:
        instance.handle_http(HttpRequest("GET", "/echo?s=hi"))
    message = "types-callee failed test:types/zoo@0.1.0.echo-string: it is down"
    assert str(trapped.value) == message
    assert calls.calls == [("test:types/zoo@0.1.0", "echo-string", ["hi"])]
    with pytest.raises(ComponentTrap, match="dead"):
        instance.handle_http(HttpRequest("GET", "/echo?s=hi"))


def test_without_a_link_resolver_an_import_call_fails_naming_it(
    images: dict[str, ComponentImage],
) -> None:
    instance = ComponentInstance(images["types-caller"], NoKeyValue(), "types-caller")
    with pytest.raises(ComponentTrap, match=r"test:types/zoo@0\.1\.0\.describe"):
        instance.handle_http(HttpRequest("GET", "/describe"))


def test_an_export_that_traps_is_replaced_and_the_next_call_is_served(
    images: dict[str, ComponentImage],
) -> None:
    callee = images["types-callee"]

    async def scenario() -> tuple[str, Any, Any]:
        pool = InstancePool(lambda: ComponentInstance(callee, NoKeyValue(), "types-callee"), 1)
        await pool.fill()
        try:
            with pytest.raises(ComponentTrap) as trapped:
                await pool.call(ZOO, "crash", ["on purpose"])
            divided = await pool.call(ZOO, "divide", [7, 2])
            by_zero = await pool.call(ZOO, "divide", [1, 0])
        finally:
            pool.close()
        return str(trapped.value), divided, by_zero

    trap, divided, by_zero = asyncio.run(scenario())
    # The cause, not wasmtime's backtrace header: componentize-py's traceback printing
    # reaches for the (trapped) filesystem.
    assert "backtrace" not in trap and "wasi:filesystem" in trap, trap
    assert divided == 3
    assert by_zero == "cannot divide 1 by zero"  # result<s32, string>: untagged err


def test_an_export_the_component_lacks_is_refused(images: dict[str, ComponentImage]) -> None:
    instance = ComponentInstance(images["types-callee"], NoKeyValue(), "types-callee")
    with pytest.raises(ComponentTrap, match="does not export example:other/iface"):
        instance.call_export("example:other/iface", "run", [])
    with pytest.raises(ComponentTrap, match="without `missing`"):
        instance.call_export(ZOO, "missing", [])


def test_a_component_that_exports_a_resource_is_refused_naming_it(
    images: dict[str, ComponentImage],
) -> None:
    assert import_problems(images["types-counter"]) == [
        "exports test:types/counter@0.1.0 with resource counter: resources a component "
        "exports are not served across the lattice (a wasmCloud 1.4.2 host runs each wRPC "
        "call in a fresh instance, so a handle would not outlive the call that made it); "
        "serve counter from a provider, or pass records or ids instead"
    ]


class CounterCalls:
    """Answers test:types/counter as its provider would: the constructor returns handle
    bytes (through the instance's codec, as a wRPC reply is decoded), add sees them."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def call(
        self, interface: str, function: str, args: list[Any], handles: HandleCodec | None = None
    ) -> Any:
        assert handles is not None
        if function == "[constructor]counter":
            self.seen.append((function, args[0]))
            return handles.decode_handle(WitHandle("own", "counter"), b"handle-" + bytes(args))
        handle = handles.encode_handle(WitHandle("borrow", "counter"), args[0])
        self.seen.append((function, handle))
        return 100 + args[1]


def test_an_imported_resource_handle_carries_the_peers_bytes_until_the_guest_drops_it(
    images: dict[str, ComponentImage],
) -> None:
    calls = CounterCalls()
    instance = ComponentInstance(images["types-caller"], NoKeyValue(), "types-caller", calls)
    assert instance.handle_http(HttpRequest("GET", "/counter/new?start=5")).body == b"created"
    assert len(instance.table) == 1  # the handle, kept by the guest between requests
    assert instance.handle_http(HttpRequest("GET", "/counter/add?n=3")).body == b"103"
    assert calls.seen == [("[constructor]counter", 5), ("[method]counter.add", b"handle-\x05")]
    assert instance.handle_http(HttpRequest("GET", "/counter/drop")).body == b"dropped"
    assert len(instance.table) == 0


def test_resource_functions_travel_under_the_names_wrpc_gives_them() -> None:
    assert wire_name("[constructor]counter") == "counter"
    assert wire_name("[method]counter.add") == "counter.add"
    assert wire_name("[static]counter.zero") == "counter.zero"
    assert wire_name("echo-point") == "echo-point"
