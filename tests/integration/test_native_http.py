"""The native wasi:http host (native/, runtime/native_http.py) with real components: which
components run there, that they answer as on the Python host, and that the pool's rules
hold for them (a body still arriving, a trap, the response body's limit, the cache).

The guests are hello-wat and WAT components built here with wasm-tools (GUEST_WORLD):
one echoes the request body, one traps on a body, one answers with the request's headers,
one writes its body before it sets the response, one drops its outparam unset, one
writes to stderr and traps, one answers with an error code."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import wasmcloud_native

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.runtime import native_http, wasi_http
from host_agent.runtime.engine import component_engine
from host_agent.runtime.image import (
    HTTP_HANDLER,
    UnsafeCacheError,
    default_cache_dir,
    load_component,
)
from host_agent.runtime.inline import INLINE_WARMUP
from host_agent.runtime.instance import ComponentInstance, ComponentTrap, NoKeyValue
from host_agent.runtime.native_http import (
    RUNS_NATIVELY,
    SWITCH,
    NativeHttpInstance,
    load_native,
    runs_natively,
    standard_method,
)
from host_agent.runtime.pool import InstancePool, PooledInstance
from tests.integration.test_counter_app import HTTP_SERVER, lattice
from tests.lattice import (
    ROOT,
    VENV_BIN,
    NatsServer,
    Processes,
    eventually_get,
    free_port,
    run_async,
)

HELLO_WAT = ROOT / "examples" / "hello-wat"
WIT_DEPS = ROOT / ".tools" / "wit" / "deps"
GUEST_WORLD = """package test:native-guests@0.1.0;

world guest {
  import wasi:cli/stderr@0.2.12;
  import wasi:filesystem/preopens@0.2.12;
  export wasi:http/incoming-handler@0.2.12;
}
"""

# The imports both guests below share with hello.wat, and cabi_realloc (a bump allocator:
# the host allocates the bytes blocking-read returns).
PRELUDE = """
  (import "wasi:http/types@0.2.12" "[constructor]fields" (func $fields_new (result i32)))
  (import "wasi:http/types@0.2.12" "[constructor]outgoing-response"
    (func $response_new (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.body"
    (func $response_body (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-body.write"
    (func $body_write (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]outgoing-body.finish"
    (func $body_finish (param i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]response-outparam.set"
    (func $outparam_set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-request.consume"
    (func $consume (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-body.stream"
    (func $in_stream (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-body"
    (func $drop_in_body (param i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-request"
    (func $drop_request (param i32)))
  (import "wasi:io/streams@0.2.12" "[method]input-stream.blocking-read"
    (func $blocking_read (param i32 i64 i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]input-stream"
    (func $drop_in (param i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush"
    (func $write_and_flush (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]output-stream"
    (func $drop_out (param i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]response-outparam"
    (func $drop_outparam (param i32)))
  (import "wasi:cli/stderr@0.2.12" "get-stderr" (func $get_stderr (result i32)))
  (memory (export "memory") 1)
  (global $ret i32 (i32.const 64))
  (global $heap (mut i32) (i32.const 1024))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (block $enough
      (loop $grow
        (br_if $enough (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
    (local.get $ptr))
  (func $expect_ok (if (i32.load8_u (global.get $ret)) (then unreachable)))
  ;; Sets ok(a 200 response with these headers) on the outparam; returns its body.
  (func $respond (param $out i32) (param $fields i32) (result i32)
    (local $response i32)
    (local.set $response (call $response_new (local.get $fields)))
    (call $response_body (local.get $response) (global.get $ret)) (call $expect_ok)
    (call $outparam_set (local.get $out) (i32.const 0) (local.get $response)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (i32.load offset=4 (global.get $ret)))
  (func $finish (param $body i32)
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (global.get $ret))
    (call $expect_ok))
  ;; Writes the LEN bytes at PTR to stderr.
  (func $log (param $ptr i32) (param $len i32)
    (local $err i32)
    (local.set $err (call $get_stderr))
    (call $write_and_flush (local.get $err) (local.get $ptr) (local.get $len) (global.get $ret))
    (call $drop_out (local.get $err)))
"""

# Answers 200 with the request body: reads it in chunks of up to 4 KiB until the stream
# closes, writing each back (until a write fails: the host closed the response body).
ECHO_WAT = f"""(module {PRELUDE}
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $out i32)
    (local $in_body i32) (local $in i32) (local $body i32) (local $stream i32)
    (call $consume (local.get $request) (global.get $ret)) (call $expect_ok)
    (local.set $in_body (i32.load offset=4 (global.get $ret)))
    (call $in_stream (local.get $in_body) (global.get $ret)) (call $expect_ok)
    (local.set $in (i32.load offset=4 (global.get $ret)))
    (local.set $body (call $respond (local.get $out) (call $fields_new)))
    (call $body_write (local.get $body) (global.get $ret)) (call $expect_ok)
    (local.set $stream (i32.load offset=4 (global.get $ret)))
    (block $done
      (loop $copy
        (call $blocking_read (local.get $in) (i64.const 4096) (global.get $ret))
        (br_if $done (i32.load8_u (global.get $ret)))
        (call $write_and_flush (local.get $stream)
          (i32.load offset=4 (global.get $ret)) (i32.load offset=8 (global.get $ret))
          (global.get $ret))
        (br_if $done (i32.load8_u (global.get $ret)))
        (br $copy)))
    (call $drop_in (local.get $in))
    (call $drop_in_body (local.get $in_body))
    (call $drop_request (local.get $request))
    (call $drop_out (local.get $stream))
    (call $finish (local.get $body))))
"""

# Traps on the first request that has a body, before answering; answers others empty.
TRAP_ON_BODY_WAT = f"""(module {PRELUDE}
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $out i32)
    (local $in_body i32) (local $in i32)
    (call $consume (local.get $request) (global.get $ret)) (call $expect_ok)
    (local.set $in_body (i32.load offset=4 (global.get $ret)))
    (call $in_stream (local.get $in_body) (global.get $ret)) (call $expect_ok)
    (local.set $in (i32.load offset=4 (global.get $ret)))
    (call $blocking_read (local.get $in) (i64.const 1) (global.get $ret))
    (if (i32.eqz (i32.load8_u (global.get $ret)))
      (then (if (i32.load offset=8 (global.get $ret)) (then unreachable))))
    (call $drop_in (local.get $in))
    (call $drop_in_body (local.get $in_body))
    (call $drop_request (local.get $request))
    (call $finish (call $respond (local.get $out) (call $fields_new)))))
"""

# Answers 200 with the request's headers as its own (every one; the native host groups
# the values of a name that repeats, wasmtime-wasi-http keeps them in a HeaderMap).
HEADERS_WAT = f"""(module
  (import "wasi:http/types@0.2.12" "[method]incoming-request.headers"
    (func $request_headers (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]fields.entries" (func $entries (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]fields.from-list"
    (func $from_list (param i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]fields" (func $drop_fields (param i32)))
  {PRELUDE}
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $out i32)
    (local $seen i32) (local $fields i32)
    (local.set $seen (call $request_headers (local.get $request)))
    (call $entries (local.get $seen) (global.get $ret))
    (call $from_list (i32.load (global.get $ret)) (i32.load offset=4 (global.get $ret))
      (i32.add (global.get $ret) (i32.const 8)))
    (if (i32.load8_u offset=8 (global.get $ret)) (then unreachable))
    (local.set $fields (i32.load offset=12 (global.get $ret)))
    (call $drop_fields (local.get $seen))
    (call $drop_request (local.get $request))
    (call $finish (call $respond (local.get $out) (local.get $fields)))))
"""

# Writes its body, "ab" eight times, before it sets the response; then finishes it.
WRITE_FIRST_WAT = f"""(module {PRELUDE}
  (data (i32.const 2048) "ab")
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $out i32)
    (local $response i32) (local $body i32) (local $stream i32) (local $i i32)
    (call $drop_request (local.get $request))
    (local.set $response (call $response_new (call $fields_new)))
    (call $response_body (local.get $response) (global.get $ret)) (call $expect_ok)
    (local.set $body (i32.load offset=4 (global.get $ret)))
    (call $body_write (local.get $body) (global.get $ret)) (call $expect_ok)
    (local.set $stream (i32.load offset=4 (global.get $ret)))
    (loop $write
      (call $write_and_flush (local.get $stream) (i32.const 2048) (i32.const 2) (global.get $ret))
      (call $expect_ok)
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $write (i32.lt_u (local.get $i) (i32.const 8))))
    (call $drop_out (local.get $stream))
    (call $outparam_set (local.get $out) (i32.const 0) (local.get $response)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $finish (local.get $body))))
"""

# Drops its outparam without setting it, then goes on: writes "after" to stderr.
DROP_UNSET_WAT = f"""(module {PRELUDE}
  (data (i32.const 2048) "after")
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $out i32)
    (call $drop_outparam (local.get $out))
    (call $log (i32.const 2048) (i32.const 5))
    (call $drop_request (local.get $request))))
"""

# Writes "dying" to stderr, then traps.
DIE_LOUDLY_WAT = f"""(module {PRELUDE}
  (data (i32.const 2048) "dying")
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $out i32)
    (call $log (i32.const 2048) (i32.const 5))
    unreachable))
"""

# Sets err(HTTP-request-denied) (error-code case 15, no payload) on the outparam.
DENIED_WAT = f"""(module {PRELUDE}
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $out i32)
    (call $drop_request (local.get $request))
    (call $outparam_set (local.get $out) (i32.const 1) (i32.const 15)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))))
"""
# Asks for its preopened directories, which no host here offers: the call traps.
PREOPENS_WAT = f"""(module
  (import "wasi:filesystem/preopens@0.2.12" "get-directories" (func $get_dirs (param i32)))
  {PRELUDE}
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $out i32)
    (call $get_dirs (global.get $ret))
    (call $drop_request (local.get $request))
    (call $finish (call $respond (local.get $out) (call $fields_new)))))
"""
GUESTS = {
    "echo": ECHO_WAT,
    "trap": TRAP_ON_BODY_WAT,
    "headers": HEADERS_WAT,
    "write-first": WRITE_FIRST_WAT,
    "drop-unset": DROP_UNSET_WAT,
    "die-loudly": DIE_LOUDLY_WAT,
    "denied": DENIED_WAT,
    "preopens": PREOPENS_WAT,
}


def wat_component(wat: str, where: Path) -> bytes:
    """A component of GUEST_WORLD (wasi:http/incoming-handler; stderr) from `wat`."""
    wit = where / "wit"
    (wit / "deps").mkdir(parents=True)
    (wit / "world.wit").write_text(GUEST_WORLD)
    for dep in WIT_DEPS.iterdir():
        (wit / "deps" / dep.name).symlink_to(dep)
    tools = str(VENV_BIN / "wasm-tools")
    core, embedded, component = where / "core.wasm", where / "embedded.wasm", where / "c.wasm"
    subprocess.run([tools, "parse", "-", "-o", str(core)], input=wat.encode(), check=True)
    subprocess.run(
        [tools, "component", "embed", str(wit), "-w", "guest", str(core), "-o", str(embedded)],
        check=True,
    )
    subprocess.run([tools, "component", "new", str(embedded), "-o", str(component)], check=True)
    return component.read_bytes()


@pytest.fixture(scope="module")
def guests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    built = {"hello": (HELLO_WAT / "build" / "hello-wat.wasm").read_bytes()}
    for name, wat in GUESTS.items():
        built[name] = wat_component(wat, tmp_path_factory.mktemp(name))
    return built


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "compiled"


def native(wasm: bytes, cache: Path) -> wasmcloud_native.HttpGuest:
    image = load_component(wasm, component_engine(), cache)
    guest = load_native(wasm, image.digest, image.imports, image.exports, cache)
    assert guest is not None, "a proxy-world component runs natively"
    return guest


def instance(host: str, wasm: bytes, cache: Path) -> PooledInstance:
    """An instance of ``wasm`` on the Python host or the native one."""
    if host == "native":
        return NativeHttpInstance(native(wasm, cache), "guest")
    return ComponentInstance(load_component(wasm, component_engine(), cache), NoKeyValue(), "guest")


BOTH = ("python", "native")
BOTH_HOSTS = pytest.mark.parametrize("host", BOTH)


def run_pool(
    make: Callable[[], PooledInstance], scenario: Callable[[InstancePool], Any], inline: bool
) -> Any:
    async def main() -> Any:
        pool = InstancePool(make, 2, inline=inline, name="guest")
        await pool.fill()
        try:
            return await scenario(pool)
        finally:
            pool.close()

    return asyncio.run(main())


def get(path: str = "/", **fields: Any) -> HttpRequest:
    return HttpRequest("GET", path, authority="localhost:8000", **fields)


def test_only_components_needing_nothing_from_the_lattice_run_natively() -> None:
    hello = ["wasi:http/types", "wasi:io/streams", "wasi:io/error"]
    assert runs_natively(hello, [HTTP_HANDLER])
    assert runs_natively([*hello, "wasi:cli/stdout", "wasi:clocks/monotonic-clock"], [HTTP_HANDLER])
    assert not runs_natively([*hello, "wasi:keyvalue/store"], [HTTP_HANDLER])  # a provider
    assert not runs_natively([*hello, "wasi:http/outgoing-handler"], [HTTP_HANDLER])
    trapped = ["wasi:filesystem/types", "wasi:sockets/tcp"]  # linked as traps, as in Python
    assert runs_natively([*hello, *trapped], [HTTP_HANDLER])
    assert not runs_natively([*hello, "example:api/greet"], [HTTP_HANDLER])  # a linked peer
    assert not runs_natively(hello, [HTTP_HANDLER, "example:api/greet"])  # served over wRPC


def test_a_standard_method_in_lower_case_is_read_as_the_python_host_reads_it() -> None:
    assert [standard_method(m) for m in ("get", "Post", "PATCH")] == ["GET", "POST", "PATCH"]
    assert standard_method("purge") == "purge"  # not a standard one: other("purge")


def test_hello_wat_answers_natively_as_it_does_on_the_python_host(
    guests: dict[str, bytes], cache: Path
) -> None:
    image = load_component(guests["hello"], component_engine(), cache)
    python = ComponentInstance(image, NoKeyValue(), "hello").handle_http(get())
    answer = NativeHttpInstance(native(guests["hello"], cache), "hello").handle_http(get())
    assert (answer.status, answer.headers, answer.body) == (200, [], b"hello\n")
    assert (answer.status, answer.headers, answer.body) == (
        python.status,
        python.headers,
        python.body,
    )


def test_every_header_passes_both_ways_as_on_the_python_host(
    guests: dict[str, bytes], cache: Path
) -> None:
    """wasmtime-wasi-http would hide `host` and hop-by-hop headers from the guest and
    refuse them from it; the Python host passes them, so the native host does too."""
    sent = [("host", b"example.com"), ("connection", b"keep-alive"), ("x-a", b"1")]
    image = load_component(guests["headers"], component_engine(), cache)
    python = ComponentInstance(image, NoKeyValue(), "headers").handle_http(get(headers=sent))
    instance = NativeHttpInstance(native(guests["headers"], cache), "headers")
    answer = instance.handle_http(get(headers=sent))
    assert (answer.status, answer.headers) == (200, sent)
    assert (answer.status, answer.headers) == (python.status, python.headers)


def test_the_native_host_is_off_with_the_switch_and_its_code_is_cached(
    guests: dict[str, bytes], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wasm = guests["hello"]
    image = load_component(wasm, component_engine(), cache)
    monkeypatch.setenv(SWITCH, "0")
    assert load_native(wasm, image.digest, image.imports, image.exports, cache) is None
    monkeypatch.delenv(SWITCH)
    native(wasm, cache)
    cached = list(cache.glob(f"{image.digest}-wasmtime{wasmcloud_native.WASMTIME_VERSION}-native*"))
    assert len(cached) == 1
    # Read back, not compiled again: these bytes would not compile.
    reloaded = load_native(b"not wasm", image.digest, image.imports, image.exports, cache)
    assert reloaded is not None
    assert reloaded.instantiate().handle("GET", "http", "h", "/", [], b"", 100)[2] == b"hello\n"


def test_a_body_still_arriving_is_read_when_the_guest_reads_it(
    guests: dict[str, bytes], cache: Path
) -> None:
    guest = native(guests["echo"], cache)
    readers: list[str] = []

    def arriving() -> bytes:  # what LaterParams.wait does, from the thread that calls
        readers.append(threading.current_thread().name)
        return b"posted " * 2000  # more than one 4 KiB read

    async def scenario(pool: InstancePool) -> HttpResponse:
        request = HttpRequest(
            "POST",
            "/",
            authority="h",
            headers=[("content-length", b"14000")],
            pending_body=arriving,
        )
        return await pool.handle_http(request)

    answer = run_pool(lambda: NativeHttpInstance(guest, "echo"), scenario, inline=False)
    assert (answer.status, answer.body) == (200, b"posted " * 2000)
    assert readers and readers[0].startswith("component_")  # read by the worker's call


def test_an_inline_native_call_reading_a_body_still_arriving_is_answered_from_a_worker(
    guests: dict[str, bytes], cache: Path
) -> None:
    guest = native(guests["echo"], cache)
    readers: list[str] = []

    def arriving() -> bytes:
        readers.append(threading.current_thread().name)
        return b"late body"

    async def scenario(pool: InstancePool) -> HttpResponse:
        for _ in range(INLINE_WARMUP):
            assert (await pool.handle_http(get(body=b"x"))).body == b"x"
        deadline = time.monotonic() + 10
        while not pool.runs_inline:
            assert time.monotonic() < deadline, "the pool never promoted the guest"
            await asyncio.sleep(0.01)
        # No content-length: the pool tries it inline, where the body cannot be waited for.
        return await pool.handle_http(get(pending_body=arriving))

    answer = run_pool(lambda: NativeHttpInstance(guest, "echo"), scenario, inline=True)
    assert (answer.status, answer.body) == (200, b"late body")
    assert len(readers) == 1 and readers[0].startswith("component_")  # read in a worker


def test_a_native_guest_that_traps_answers_500_and_its_instance_is_replaced(
    guests: dict[str, bytes], cache: Path
) -> None:
    guest = native(guests["trap"], cache)

    async def scenario(pool: InstancePool) -> list[HttpResponse]:
        return [
            await pool.handle_http(get(body=b"boom")),
            await pool.handle_http(get()),
            await pool.handle_http(get()),
        ]

    trapped, after, again = run_pool(
        lambda: NativeHttpInstance(guest, "trap"), scenario, inline=False
    )
    assert trapped.status == 500
    assert b"component trapped" in trapped.body and b"unreachable" in trapped.body
    assert (after.status, again.status) == (200, 200)


@BOTH_HOSTS
def test_a_response_body_over_the_limit_answers_500_naming_it(
    host: str, guests: dict[str, bytes], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not the part under the limit as if it were the whole body (the Python host did
    that, with the guest's status)."""
    monkeypatch.setattr(wasi_http, "MAX_RESPONSE_BODY", 4)
    monkeypatch.setattr(native_http, "MAX_RESPONSE_BODY", 4)
    echo = instance(host, guests["echo"], cache)
    answer = echo.handle_http(get(body=b"0123456789"))
    assert (answer.status, answer.body) == (500, b"the response body is over 4 bytes")
    answer = echo.handle_http(get(body=b"0123"))
    assert (answer.status, answer.body) == (200, b"0123")  # the instance still serves


def test_a_request_http_cannot_carry_answers_400_naming_the_header(
    guests: dict[str, bytes], cache: Path
) -> None:
    instance = NativeHttpInstance(native(guests["hello"], cache), "hello")
    answer = instance.handle_http(get(headers=[("bad header", b"x")]))
    assert answer.status == 400
    assert b'"bad header"' in answer.body
    assert instance.handle_http(get()).body == b"hello\n"


@pytest.mark.slow
@run_async
async def test_a_host_serves_a_proxy_world_component_natively_through_the_lattice(
    nats_server: NatsServer, processes: Processes
) -> None:
    """A real host process, http-server provider, wRPC and NATS: hello-wat answers, and
    the host says it runs on the native host."""
    host = processes.host()
    port = free_port()
    async with lattice(nats_server) as lat:
        [host_id] = await lat.host_ids(1)
        wasm = HELLO_WAT / "build" / "hello-wat.wasm"
        await lat.ctl.scale_component(host_id, "hello", f"file://{wasm}", 1)
        await lat.event("component_scaled", timeout=90, component_id="hello")
        await lat.ctl.put_config("listen", {"address": f"127.0.0.1:{port}"})
        await lat.ctl.start_provider(host_id, "httpserver", HTTP_SERVER)
        await lat.event("health_check_passed", timeout=30, provider_id="httpserver")
        await lat.link(
            "httpserver", "hello", "http", ["incoming-handler"], source_config=["listen"]
        )
        assert await eventually_get(f"http://127.0.0.1:{port}/") == b"hello\n"
    assert f"hello: {RUNS_NATIVELY}" in host.log.read_text()


@BOTH_HOSTS
def test_a_guest_writing_its_body_before_it_sets_the_response_is_answered_whole(
    host: str, guests: dict[str, bytes], cache: Path
) -> None:
    guest = instance(host, guests["write-first"], cache)
    answers: list[HttpResponse] = []
    # In a thread: a call that hangs in the native host holds no Python frame a timeout
    # could interrupt, so the test waits for it a bounded time instead.
    call = threading.Thread(target=lambda: answers.append(guest.handle_http(get())), daemon=True)
    call.start()
    call.join(30)
    assert answers, "the call did not return within 30 s"
    assert (answers[0].status, answers[0].body) == (200, b"ab" * 8)


@BOTH_HOSTS
def test_a_guest_that_drops_its_outparam_unset_answers_500_and_its_instance_serves_on(
    host: str, guests: dict[str, bytes], cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    guest = instance(host, guests["drop-unset"], cache)
    for _ in range(2):  # the second call enters the same instance again
        answer = guest.handle_http(get())
        assert answer.status == 500
        assert answer.body == b"the component returned without setting a response"
    assert caplog.text.count("guest stderr: after") == 2  # it ran on after the drop


@BOTH_HOSTS
def test_what_a_guest_wrote_before_it_trapped_is_logged(
    host: str, guests: dict[str, bytes], cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ComponentTrap, match="unreachable"):
        instance(host, guests["die-loudly"], cache).handle_http(get())
    assert "guest stderr: dying" in caplog.text


@BOTH_HOSTS
def test_a_call_to_wasi_filesystem_traps_naming_the_function(
    host: str, guests: dict[str, bytes], cache: Path
) -> None:
    guest = instance(host, guests["preopens"], cache)
    with pytest.raises(ComponentTrap) as trapped:
        guest.handle_http(get())
    assert str(trapped.value) == (
        "unknown import: `wasi:filesystem/preopens@0.2.12#get-directories` has not been defined"
    )


def test_a_componentize_py_guest_runs_natively_with_the_same_answer() -> None:
    """hello imports wasi:filesystem and wasi:sockets (CPython's libc): linked as traps.
    (The host's own compiled-code cache: hello takes seconds to compile.)"""
    wasm = (ROOT / "examples" / "hello" / "build" / "hello.wasm").read_bytes()
    cache = default_cache_dir()
    python, native = (instance(host, wasm, cache).handle_http(get()) for host in BOTH)
    assert (native.status, native.headers, native.body) == (
        python.status,
        python.headers,
        python.body,
    )
    assert native.body == b"hello from wasmCloud"


@BOTH_HOSTS
def test_an_error_code_the_guest_answers_with_is_named(
    host: str, guests: dict[str, bytes], cache: Path
) -> None:
    answer = instance(host, guests["denied"], cache).handle_http(get())
    assert (answer.status, answer.body) == (
        500,
        b"the component answered with error http-request-denied",
    )


def test_a_request_without_an_authority_takes_it_from_the_host_header(
    guests: dict[str, bytes], cache: Path
) -> None:
    hello = NativeHttpInstance(native(guests["hello"], cache), "hello")
    answer = hello.handle_http(HttpRequest("GET", "/", headers=[("host", b"example.com")]))
    assert (answer.status, answer.body) == (200, b"hello\n")
    answer = hello.handle_http(HttpRequest("GET", "/"))  # neither: wasi:http needs one
    assert answer.status == 400
    assert b"authority" in answer.body and b"host header" in answer.body


def test_a_native_artifact_others_could_write_is_refused_naming_it(
    guests: dict[str, bytes], cache: Path
) -> None:
    """Compiled code is run unchecked: the native cache follows image.py's rules."""
    wasm = guests["hello"]
    image = load_component(wasm, component_engine(), cache)
    native(wasm, cache)
    [artifact] = cache.glob("*-native.cwasm")
    artifact.chmod(0o666)
    with pytest.raises(UnsafeCacheError, match=str(artifact)):
        load_native(wasm, image.digest, image.imports, image.exports, cache)
