"""OpenTelemetry end to end: one curl to the counter is one trace, received by a real
OTLP/HTTP endpoint this test runs on loopback (protobuf decoded with opentelemetry-proto).

The lattice: two host processes exporting to the receiver (WASMCLOUD_OBSERVABILITY_ENABLED
and OTEL_EXPORTER_OTLP_ENDPOINT, as a user sets them); the http-server and keyvalue-redis
providers on the edge host, the counter on the core host, so the request crosses four
processes and two hosts, its trace context travelling in NATS headers.

The controller: a local Lattice made by the provider with ``otlpEndpoint`` (nothing else
turns telemetry on) exports its commands, and a command's trace continues on the host
that carries it out; idle reconcile passes export nothing.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import nats
import pytest
from aiohttp import web
from nats.aio.client import Client as NatsClient
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from opentelemetry.proto.trace.v1.trace_pb2 import Status as StatusProto
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from host_agent.lattice.client import CtlClient
from host_agent.lattice.subjects import event_subject
from host_agent.lattice.wadm import WadmClient
from host_agent.local.supervisor import ManagedProcess
from tests.lattice import HostProcess, NatsServer, RedisServer, free_port, run_async
from tests.provider_grpc import plain, provider, struct

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
COUNTER = f"file://{ROOT / 'examples' / 'counter' / 'build' / 'counter.wasm'}"
HTTP_INSTANCE = "wrpc:http/incoming-handler@0.1.0"
ATOMICS_INSTANCE = "wrpc:keyvalue/atomics@0.2.0-draft"
# Spans leave a provider in batches every 5 s (the SDK's default; providers get a cleared
# environment), so the whole trace is there within a few batches.
EXPORT_WAIT = 60.0

T = TypeVar("T")


def _attributes(pairs: Any) -> dict[str, Any]:
    def value(kv: KeyValue) -> Any:
        which = kv.value.WhichOneof("value")
        return getattr(kv.value, which) if which else None

    return {kv.key: value(kv) for kv in pairs}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    resource: dict[str, Any]
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    status_code: int


class OtlpReceiver:
    """An OTLP/HTTP endpoint (POST /v1/traces, /v1/metrics, protobuf bodies) on loopback:
    every export is decoded and kept, and waiters are woken."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        # (service, metric name, data point attributes, value): sums and histogram counts
        self.points: list[tuple[str, str, dict[str, Any], float]] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1") -> str:
        """Listen on ``host`` (loopback, or a test network's address machines reach)."""
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append(
                        ReceivedSpan(
                            service=str(resource.get("service.name")),
                            resource=resource,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            attributes=_attributes(span.attributes),
                            status_code=span.status.code,
                        )
                    )
        await self._notify()
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        export = ExportMetricsServiceRequest.FromString(await request.read())
        for resource_metrics in export.resource_metrics:
            service = str(_attributes(resource_metrics.resource.attributes).get("service.name"))
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        value = point.count if kind == "histogram" else point.as_int
                        attributes = _attributes(point.attributes)
                        self.points.append((service, metric.name, attributes, value))
        await self._notify()
        return web.Response(
            body=ExportMetricsServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, found: Callable[[], T | None], what: str) -> T:
        """The first non-None ``found()``, checked after every export received."""
        async with self._changed:
            try:
                value: T | None = await asyncio.wait_for(self._changed.wait_for(found), EXPORT_WAIT)
            except TimeoutError:
                seen = "\n".join(
                    f"  {s.service} {s.name} trace={s.trace_id} parent={s.parent_id}"
                    for s in self.spans
                )
                raise AssertionError(
                    f"{what} within {EXPORT_WAIT} s; spans seen:\n{seen}"
                ) from None
        assert value is not None  # wait_for returned: found() gave a value
        return value


class Events:
    """The lattice's events, kept as they arrive; waits are woken by each new event."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []  # (name, source, data)
        self._changed = asyncio.Condition()

    async def subscribe(self, nc: NatsClient) -> None:
        async def record(msg: Any) -> None:
            event = json.loads(msg.data)
            name = event["type"].rsplit(".", 1)[-1]
            self.seen.append((name, event["source"], event["data"]))
            async with self._changed:
                self._changed.notify_all()

        await nc.subscribe(event_subject("default", "*"), cb=record)

    async def wait(
        self,
        name: str,
        where: Callable[[dict[str, Any]], bool] = lambda data: True,
        timeout: float = 90.0,
        **match: Any,
    ) -> str:
        """The source (host id) of the first ``name`` event whose data has ``match`` and
        passes ``where``."""

        def found() -> str | None:
            for seen, source, data in self.seen:
                if seen == name and where(data) and all(data.get(k) == v for k, v in match.items()):
                    return source
            return None

        async with self._changed:
            try:
                source: str | None = await asyncio.wait_for(self._changed.wait_for(found), timeout)
            except TimeoutError:
                raise AssertionError(f"no {name} event matching {match}: {self.seen}") from None
        assert source is not None
        return source

    async def wait_count(self, name: str, count: int, after: int, timeout: float = 30.0) -> None:
        """Until ``count`` ``name`` events arrived after the first ``after`` seen."""

        def enough() -> bool:
            return sum(1 for seen, _, _ in self.seen[after:] if seen == name) >= count

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(enough), timeout)
            except TimeoutError:
                raise AssertionError(f"not {count} {name} events: {self.seen[after:]}") from None


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def unsampled_traceparent() -> str:
    """A W3C traceparent whose sampled flag is off: the lattice must record nothing."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


async def wait_until_served(url: str) -> list[tuple[int, bytes]]:
    """GET until the listener is up and the counter answers, every request unsampled
    (links and listeners arrive asynchronously), so no readiness probe makes a trace.
    Returns the answers received."""
    last: object = None
    answers: list[tuple[int, bytes]] = []
    for _ in range(300):
        try:
            status, body = await asyncio.to_thread(
                get, url, {"traceparent": unsampled_traceparent()}
            )
            answers.append((status, body))
            if status == 200:
                return answers
            last = (status, body)
        except OSError as error:  # not listening yet
            last = error
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered 200: last {last!r}")


@asynccontextmanager
async def lattice_client(nats_server: NatsServer) -> AsyncIterator[tuple[CtlClient, Events]]:
    nc = await nats.connect(nats_server.url)
    events = Events()
    await events.subscribe(nc)
    try:
        yield CtlClient(nc), events
    finally:
        await nc.close()


# info (the default): the request, the invocation, the provider call; debug: each wRPC
# call's CLIENT span on its caller too.
SPANS_PER_REQUEST = {"info": 3, "debug": 5}


@pytest.mark.parametrize("trace_level", SPANS_PER_REQUEST)
@run_async
async def test_one_curl_is_one_trace_across_providers_component_and_hosts(
    nats_server: NatsServer,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    trace_level: str,
) -> None:
    expected = SPANS_PER_REQUEST[trace_level]
    client_spans = trace_level == "debug"
    receiver = OtlpReceiver()
    endpoint = await receiver.start()
    # What a user sets; the hosts pass it to the providers they start (HostData).
    monkeypatch.setenv("WASMCLOUD_OBSERVABILITY_ENABLED", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "1000")  # ms: metrics every second
    monkeypatch.setenv("WASMCLOUD_TRACE_LEVEL", trace_level)
    for name in ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    hosts: list[HostProcess] = []
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        async with lattice_client(nats_server) as (ctl, events):
            for tier in ("edge", "core"):
                log = tmp_path / f"{tier}.log"
                hosts.append(HostProcess(nats_server, {"tier": tier}, "--allow-file-load", log=log))
            edge = await events.wait("host_started", lambda d: d["labels"]["tier"] == "edge")
            core = await events.wait("host_started", lambda d: d["labels"]["tier"] == "core")

            await ctl.put_config("redis", {"url": redis_server.url})
            await ctl.put_config("listen", {"address": f"127.0.0.1:{port}"})
            await ctl.start_provider(edge, "kvredis", "ghcr.io/wasmcloud/keyvalue-redis:0.28.1")
            await ctl.start_provider(edge, "httpserver", "ghcr.io/wasmcloud/http-server:0.23.0")
            await ctl.scale_component(core, "counter", COUNTER, 1)
            await events.wait("component_scaled", component_id="counter")
            for provider in ("kvredis", "httpserver"):
                await events.wait("provider_started", provider_id=provider)
            link = {"wit_namespace": "wasi"}
            await ctl.put_link(
                link
                | {"source_id": "counter", "target": "kvredis", "wit_package": "keyvalue"}
                | {"interfaces": ["atomics", "store"], "target_config": ["redis"]}
            )
            await ctl.put_link(
                link
                | {"source_id": "httpserver", "target": "counter", "wit_package": "http"}
                | {"interfaces": ["incoming-handler"], "source_config": ["listen"]}
            )
            warmup = await wait_until_served(f"{url}/warmup")
            # The counter answered these itself (500: its keyvalue link had not reached the
            # host yet); other answers (503: no listener's component yet) never invoked it.
            counter_failed = sum(1 for _, body in warmup if body.startswith(b"keyvalue error"))
            invoked = counter_failed + 1 + 1  # the warmup's 200 and the traced request

            # The one request, sent as curl sends it: no trace context of its own.
            assert await asyncio.to_thread(get, f"{url}/traced") == (200, b"traced -> 1")

            def whole_trace() -> dict[str, ReceivedSpan] | None:
                roots = [
                    s for s in receiver.spans if s.service == "http-server" and not s.parent_id
                ]
                if not roots:
                    return None
                spans = {s.span_id: s for s in receiver.spans if s.trace_id == roots[0].trace_id}
                kv = [s for s in spans.values() if s.service == "keyvalue-redis"]
                return spans if len(spans) >= expected and kv else None

            spans = await receiver.wait_for(
                whole_trace, "no trace from http-server through counter to keyvalue-redis"
            )
            by_parent = {s.parent_id: s for s in spans.values()}

            # http-server: the request's span is the root of the trace ...
            [root] = [s for s in spans.values() if not s.parent_id]
            assert (root.service, root.kind) == ("http-server", SpanProto.SPAN_KIND_SERVER)
            assert root.attributes["http.request.method"] == "GET"
            assert root.attributes["url.path"] == "/traced"
            assert root.attributes["http.response.status_code"] == 200
            assert root.resource["wasmcloud.host.id"] == edge
            caller = root
            if client_spans:  # ... its child the wRPC call to the counter ...
                caller = by_parent[root.span_id]
                assert caller.service == "http-server"
                assert caller.kind == SpanProto.SPAN_KIND_CLIENT
                assert caller.attributes["rpc.service"] == HTTP_INSTANCE
                assert caller.attributes["wasmcloud.target.id"] == "counter"
            # ... served by the counter on the core host (the component invocation) ...
            invocation = by_parent[caller.span_id]
            assert invocation.service == "wasmcloud-host"
            assert invocation.kind == SpanProto.SPAN_KIND_SERVER
            assert invocation.resource["wasmcloud.host.id"] == core
            assert invocation.name == f"{HTTP_INSTANCE}/handle"
            assert invocation.attributes["wasmcloud.entity.id"] == "counter"
            # ... whose keyvalue call (made from the component's worker thread) ...
            caller = invocation
            if client_spans:
                caller = by_parent[invocation.span_id]
                assert caller.service == "wasmcloud-host"
                assert caller.kind == SpanProto.SPAN_KIND_CLIENT
                assert caller.attributes["rpc.service"] == ATOMICS_INSTANCE
                assert caller.attributes["wasmcloud.source.id"] == "counter"
            # ... is served by keyvalue-redis on the edge host.
            kv_serve = by_parent[caller.span_id]
            assert kv_serve.service == "keyvalue-redis"
            assert kv_serve.kind == SpanProto.SPAN_KIND_SERVER
            assert kv_serve.name == f"{ATOMICS_INSTANCE}/increment"
            assert kv_serve.resource["wasmcloud.provider.id"] == "kvredis"
            assert kv_serve.resource["wasmcloud.host.id"] == edge
            assert len(spans) == expected
            assert all(s.status_code != StatusProto.STATUS_CODE_ERROR for s in spans.values())

            # The readiness requests were unsampled, and nothing else made spans: every span
            # the lattice exported belongs to the one curl.
            assert {s.trace_id for s in receiver.spans} == {root.trace_id}

            # Metrics: every invocation of the counter, readiness requests too; its failures.
            def counted() -> dict[str, float] | None:
                latest: dict[str, float] = {}
                for service, name, attributes, value in receiver.points:
                    if service == "wasmcloud-host" and attributes.get("component.id") == "counter":
                        assert attributes["operation"] == f"{HTTP_INSTANCE}.handle"
                        latest[name] = value  # cumulative: the last export has the total
                wanted = (
                    "wasmcloud_host.component.invocations",
                    "wasmcloud_host.handle_rpc_message.duration",
                )
                return latest if all(latest.get(n) == invoked for n in wanted) else None

            totals = await receiver.wait_for(
                counted, f"no metrics of {invoked} invocations of the counter ({warmup})"
            )
            errors = totals.get("wasmcloud_host.component.invocation.errors", 0)
            assert errors == counter_failed, warmup
    finally:
        # Stopped from a thread: the receiver on this loop must answer their last exports.
        for host in hosts:
            await asyncio.to_thread(host.stop)
        await receiver.stop()
    # The hosts stopped gracefully, flushing what they still held: still the one trace.
    assert {s.trace_id for s in receiver.spans} == {root.trace_id}


# -- the controller's spans ------------------------------------------------------------

LATTICE_URN = "urn:pulumi:test::proj::wasmcloud:index:Lattice::traced"
HOST_URN = "urn:pulumi:test::proj::wasmcloud:index:Host::traced-core"
# Variables that would turn telemetry on (or off) besides the Lattice's otlpEndpoint.
TELEMETRY_VARIABLES = (
    "WASMCLOUD_OBSERVABILITY_ENABLED",
    "WASMCLOUD_TRACES_ENABLED",
    "WASMCLOUD_METRICS_ENABLED",
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "WASMCLOUD_TRACE_LEVEL",
)
IDLE_HEARTBEATS = 4


async def create(
    stub: provider_pb2_grpc.ResourceProviderStub, urn: str, news: dict[str, Any]
) -> dict[str, Any]:
    """A resource created through the provider as `pulumi up` does (check, then create)."""
    checked = await stub.Check(provider_pb2.CheckRequest(urn=urn, news=struct(news)))
    assert list(checked.failures) == [], checked.failures
    created = await stub.Create(
        provider_pb2.CreateRequest(urn=urn, properties=checked.inputs, timeout=120)
    )
    return plain(created.properties)


def component_app(name: str, image: str, instances: int, version: str = "v1") -> dict[str, Any]:
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": name, "annotations": {"version": version}},
        "spec": {
            "components": [
                {
                    "name": name,
                    "type": "component",
                    "properties": {"image": image},
                    "traits": [{"type": "spreadscaler", "properties": {"instances": instances}}],
                }
            ]
        },
    }


@run_async
async def test_the_local_controller_traces_commands_into_the_host_and_not_idle_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver, moved = OtlpReceiver(), OtlpReceiver()
    endpoint, moved_to = await receiver.start(), await moved.start()
    for name in TELEMETRY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # Inherited by the controller and the host: spans out every 0.2 s, metrics every 1 s.
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "1000")
    state_dir = tmp_path / "lattice"
    names = ("host-traced-core", "controller", "nats-server")
    try:
        async with provider() as (stub, _):
            lattice = await create(
                stub,
                LATTICE_URN,
                {
                    "natsPort": free_port(),
                    "stateDir": str(state_dir),
                    "heartbeatSeconds": 1,
                    "secure": False,
                    "otlpEndpoint": endpoint,
                },
            )
            url = str(lattice["natsUrl"])
            nc = await nats.connect(url)
            try:
                events = Events()
                await events.subscribe(nc)
                host = await create(
                    stub,
                    HOST_URN,
                    {
                        "name": "traced-core",
                        "natsUrl": url,
                        "labels": {"tier": "core"},
                        "stateDir": str(state_dir),
                        "heartbeatSeconds": 1,
                        "otlpEndpoint": lattice["otlpEndpoint"],  # as the SDK passes it
                    },
                )
                host_id = str(host["hostId"])
                wadm = WadmClient(nc, "default")
                await wadm.put(component_app("traced", COUNTER, 2))
                await wadm.deploy("traced")
                await events.wait("component_scaled", component_id="traced-traced", max_instances=2)

                # The app runs: from now on the lattice is idle. Each heartbeat is a
                # reconcile pass that sends nothing.
                await events.wait_count("host_heartbeat", IDLE_HEARTBEATS, after=len(events.seen))

                # A component that cannot be fetched: the host acknowledges the command,
                # then fails the work, in the same trace.
                await wadm.put(component_app("missing", f"file://{tmp_path}/missing.wasm", 1))
                await wadm.deploy("missing")
                await events.wait("component_scale_failed", component_id="missing-missing")

                def scale_trace(component: str) -> tuple[ReceivedSpan, ...] | None:
                    """The controller's ScaleComponent of ``component``, the host's span
                    of the request and of its work, once all three arrived."""
                    by_id = {s.span_id: s for s in receiver.spans}
                    for command in receiver.spans:
                        if (
                            command.name != "ScaleComponent"
                            or command.attributes.get("wasmcloud.component.id") != component
                        ):
                            continue
                        served = [s for s in receiver.spans if s.parent_id == command.span_id]
                        work = [
                            s for s in receiver.spans for r in served if s.parent_id == r.span_id
                        ]
                        app = by_id.get(command.parent_id)
                        pass_ = by_id.get(app.parent_id) if app else None
                        if served and work and app and pass_:
                            return command, served[0], work[0], app, pass_
                    return None

                command, served, work, app, pass_ = await receiver.wait_for(
                    lambda: scale_trace("traced-traced"), "no ScaleComponent trace into the host"
                )
                # The controller (its environment had only what the Lattice gave it) ...
                assert command.service == "wasmcloud-controller"
                assert command.resource["wasmcloud.lattice"] == "default"
                assert command.attributes["wasmcloud.host.id"] == host_id
                assert command.attributes["wasmcloud.component.max_instances"] == 2
                assert (app.name, pass_.name, pass_.parent_id) == (
                    "reconcile traced",
                    "reconcile",
                    "",
                )
                # ... sent the command; the host served it in the same trace ...
                assert {s.trace_id for s in (command, served, work, app)} == {pass_.trace_id}
                assert (served.service, served.kind) == (
                    "wasmcloud-host",
                    SpanProto.SPAN_KIND_SERVER,
                )
                assert served.name == "ctl component.scale"
                assert served.resource["wasmcloud.host.id"] == host_id
                # ... and did the work after answering: fetch, compile, start.
                assert (work.name, work.service) == ("scale component", "wasmcloud-host")
                assert work.attributes["wasmcloud.component.id"] == "traced-traced"
                assert work.status_code != StatusProto.STATUS_CODE_ERROR

                _, _, failed, _, _ = await receiver.wait_for(
                    lambda: scale_trace("missing-missing"),
                    "no ScaleComponent trace of the missing one",
                )
                assert failed.status_code == StatusProto.STATUS_CODE_ERROR

                # A new endpoint restarts the controller exporting there (the hosts keep
                # theirs until their own update): its next command arrives there.
                news = lattice | {"otlpEndpoint": moved_to}
                checked = await stub.Check(
                    provider_pb2.CheckRequest(
                        urn=LATTICE_URN, olds=struct(lattice), news=struct(news)
                    )
                )
                await stub.Update(
                    provider_pb2.UpdateRequest(
                        id="traced", urn=LATTICE_URN, olds=struct(lattice), news=checked.inputs
                    )
                )
                await wadm.put(component_app("traced", COUNTER, 3, version="v2"))
                await wadm.deploy("traced")
                await moved.wait_for(
                    lambda: next(
                        (
                            s
                            for s in moved.spans
                            if s.name == "ScaleComponent"
                            and s.attributes.get("wasmcloud.component.max_instances") == 3
                        ),
                        None,
                    ),
                    "no ScaleComponent at the Lattice's new otlpEndpoint",
                )
            finally:
                await nc.close()
            # A stopped controller and host export what they still hold: everything.
            for name in names[:2]:
                await asyncio.to_thread(ManagedProcess(name, state_dir).stop)
    finally:
        for name in names:
            await asyncio.to_thread(ManagedProcess(name, state_dir).stop)
        await receiver.stop()
        await moved.stop()

    for received in (receiver, moved):  # before and after the endpoint moved
        controller = [s for s in received.spans if s.service == "wasmcloud-controller"]
        passes = [s for s in controller if s.name == "reconcile"]
        parents = {s.parent_id for s in controller}
        idle = [s for s in passes if s.span_id not in parents]
        assert passes and not idle, f"{len(idle)} of {len(passes)} reconcile passes sent nothing"
    passes = [s for r in (receiver, moved) for s in r.spans if s.name == "reconcile"]
    # The host made spans only for the controller's commands, before and after it moved (no
    # ping, inventory or link read of an idle pass is a trace of its own).
    host_traces = {s.trace_id for s in receiver.spans if s.service == "wasmcloud-host"}
    assert host_traces <= {s.trace_id for s in passes}
    # The metrics are kept.
    commands = [
        value
        for service, name, attributes, value in receiver.points
        if (service, name) == ("wasmcloud-controller", "wadm.commands")
        and attributes.get("command") == "ScaleComponent"
    ]
    assert commands and commands[-1] >= 2
