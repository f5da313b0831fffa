"""OpenTelemetry on a lattice on machines: the Lattice's ``otlpEndpoint`` reaches the
services on the machines, and a curl through an edge machine is one trace.

Two namespace machines (tests/machines.py): core-1 (the NATS cluster of one, JetStream,
the controller, the registry, a host labeled tier=core) and edge-1 (a leaf node, a host
labeled tier=edge). A real OTLP/HTTP receiver (test_tracing's) listens on the runner's
address on the machines' bridge (198.18.N.1), the collector the machines reach. The
handlers are driven as the engine drives them: Lattice, two Hosts and the counter
Application (its component pushed to the lattice's registry).

- A curl to edge-1's http-server is one trace: the http-server's span on edge-1, the
  counter's invocation on core-1's host, the keyvalue call served on core-1.
- The controller on core-1 exports spans: the commands that placed the app, each a child
  of its application's reconcile span, itself a child of a reconcile pass.
- A new ``otlpEndpoint`` (a second receiver) is an update that restarts the controller and
  the hosts with it: their last metrics (deploys, commands, invocations) reach the first
  receiver as they stop, the next curl's trace the second; then nothing differs (no diff).
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

from pulumi_wasmcloud.provider.application_resource import ApplicationResource
from pulumi_wasmcloud.provider.handlers import ProviderSettings
from pulumi_wasmcloud.provider.host_resource import HostResource
from pulumi_wasmcloud.provider.lattice_resource import LatticeResource
from tests.integration.test_machine_lattice import RecordingLog, machine_input, wire
from tests.integration.test_tracing import (
    HTTP_INSTANCE,
    OtlpReceiver,
    ReceivedSpan,
    get,
    unsampled_traceparent,
)
from tests.lattice import run_async
from tests.machines import Machines, booted

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
COUNTER_WASM = ROOT / "examples" / "counter" / "build" / "counter.wasm"
CORE, EDGE = "core-1", "edge-1"
TIERS = {CORE: "core", EDGE: "edge"}
HTTP_PORT = 8080
REGISTRY_PORT = 5000
APP = "counter"
ATOMICS = "wrpc:keyvalue/atomics@0.2.0-draft"
SERVED_WAIT = 120.0  # a restarted host rejoins and the controller places its work again


@pytest.fixture
def machines() -> Iterator[Machines]:
    yield from booted(CORE, EDGE)


def manifest() -> dict[str, Any]:
    """The counter with its keyvalue on the core host, the http-server on the edge one."""
    if not COUNTER_WASM.exists():
        pytest.fail(f"{COUNTER_WASM} is missing: run scripts/build-components.sh")

    def on(tier: str) -> list[dict[str, Any]]:
        return [{"name": tier, "requirements": {"tier": tier}}]

    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": APP, "annotations": {"version": "v0.1.0"}},
        "spec": {
            "components": [
                {
                    "name": "counter",
                    "type": "component",
                    "properties": {"image": str(COUNTER_WASM)},
                    "traits": [
                        {
                            "type": "spreadscaler",
                            "properties": {"instances": 1, "spread": on("core")},
                        },
                        {
                            "type": "link",
                            "properties": {
                                "target": {"name": "kv"},
                                "namespace": "wasi",
                                "package": "keyvalue",
                                "interfaces": ["atomics", "store"],
                            },
                        },
                    ],
                },
                {
                    "name": "kv",
                    "type": "capability",
                    "properties": {"image": "builtin:keyvalue-nats"},
                    "traits": [
                        {
                            "type": "daemonscaler",
                            "properties": {"instances": 1, "spread": on("core")},
                        }
                    ],
                },
                {
                    "name": "httpserver",
                    "type": "capability",
                    "properties": {"image": "ghcr.io/wasmcloud/http-server:0.23.0"},
                    "traits": [
                        {
                            "type": "daemonscaler",
                            "properties": {"instances": 1, "spread": on("edge")},
                        },
                        {
                            "type": "link",
                            "properties": {
                                "target": {"name": "counter"},
                                "namespace": "wasi",
                                "package": "http",
                                "interfaces": ["incoming-handler"],
                                "source": {
                                    "config": [
                                        {
                                            "name": "listen",
                                            "properties": {"address": f"0.0.0.0:{HTTP_PORT}"},
                                        }
                                    ]
                                },
                            },
                        },
                    ],
                },
            ]
        },
    }


def host_inputs(lattice: dict[str, Any], machines: Machines, machine: str) -> dict[str, Any]:
    """What Host(machine=..., lattice=lattice, nats_url=<its machine's node>) sends."""
    return {
        "name": f"{machine}-host",
        "natsUrl": lattice["natsUrl"],
        "hostNatsUrl": lattice["natsUrls"][machine],
        "lattice": lattice["lattice"],
        "heartbeatSeconds": lattice["heartbeatSeconds"],
        "registryUrl": lattice["registryUrl"],
        "jsDomain": lattice["jsDomain"],
        "labels": {"tier": TIERS[machine]},
        "machine": machine_input(machines, machine),
        **{k: lattice[k] for k in ("credentials", "userIssuer", "clientTls", "tlsIssuer")},
        "caCert": lattice["caCert"],
        "otlpEndpoint": lattice["otlpEndpoint"],
    }


async def served(url: str) -> None:
    """GET (unsampled, so no trace) until the counter answers through ``url``."""
    deadline = time.monotonic() + SERVED_WAIT
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, body = await asyncio.to_thread(
                get, url, {"traceparent": unsampled_traceparent()}
            )
            if status == 200:
                return
            last = (status, body)
        except (OSError, urllib.error.URLError) as error:  # not listening (yet, again)
            last = error
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url} never answered 200 within {SERVED_WAIT:.0f} s: last {last!r}")


def request_trace(
    receiver: OtlpReceiver, path: str, edge_host: str, core_host: str
) -> dict[str, ReceivedSpan] | None:
    """The trace of the request for ``path``: the http-server's span on the edge host, the
    counter's invocation on the core host, and the keyvalue call served on the core host."""
    roots = [
        s
        for s in receiver.spans
        if s.service == "http-server" and not s.parent_id and s.attributes.get("url.path") == path
    ]
    if not roots:
        return None
    [root] = roots
    spans = {s.span_id: s for s in receiver.spans if s.trace_id == root.trace_id}
    children = {s.parent_id: s for s in spans.values()}
    invocation = children.get(root.span_id)
    served_kv = children.get(invocation.span_id) if invocation else None
    if served_kv is None:
        return None
    assert root.resource["wasmcloud.host.id"] == edge_host
    assert root.kind == SpanProto.SPAN_KIND_SERVER
    assert root.attributes["http.response.status_code"] == 200
    assert invocation is not None
    assert (invocation.service, invocation.name) == ("wasmcloud-host", f"{HTTP_INSTANCE}/handle")
    assert invocation.resource["wasmcloud.host.id"] == core_host
    assert served_kv.name == f"{ATOMICS}/increment"
    assert served_kv.resource["wasmcloud.host.id"] == core_host
    assert "wasmcloud.provider.id" in served_kv.resource  # a provider's process
    return spans


def controller_placement(receiver: OtlpReceiver, core_host: str) -> list[ReceivedSpan] | None:
    """The controller's ScaleComponent span for the counter on the core host, with its
    application's and its pass's spans (innermost first)."""
    spans = {s.span_id: s for s in receiver.spans if s.service == "wasmcloud-controller"}
    for span in spans.values():
        if span.name == "ScaleComponent" and span.attributes.get("wasmcloud.host.id") == core_host:
            chain = [span]
            while chain[-1].parent_id in spans:
                chain.append(spans[chain[-1].parent_id])
            if len(chain) == 3:
                return chain
    return None


def metric_totals(receiver: OtlpReceiver, service: str) -> dict[tuple[str, str], float]:
    """(metric, its data point's attributes as text) -> the last value ``service`` sent."""
    latest: dict[tuple[str, str], float] = {}
    for sender, name, attributes, value in receiver.points:
        if sender == service:
            latest[(name, ",".join(f"{k}={v}" for k, v in sorted(attributes.items())))] = value
    return latest


@run_async
async def test_a_curl_through_an_edge_machine_is_one_trace_and_a_new_endpoint_moves_every_service(
    machines: Machines,
) -> None:
    first, second = OtlpReceiver(), OtlpReceiver()
    # The runner's address on the machines' bridge: the collector the machines reach.
    endpoint = await first.start(machines.bridge.gateway)
    new_endpoint = await second.start(machines.bridge.gateway)
    log = RecordingLog()
    settings = ProviderSettings()
    lattices, hosts = LatticeResource(log), HostResource(settings, log)
    try:
        news = {
            "lattice": "default",
            "cluster": [machine_input(machines, CORE)],
            "leafNodes": [{"region": "west", "machine": machine_input(machines, EDGE)}],
            "registryPort": REGISTRY_PORT,
            "heartbeatSeconds": 2,
            "otlpEndpoint": endpoint,
        }
        checked = await lattices.check({}, news)
        assert checked.failures == []
        created = await lattices.create(wire(checked.inputs), preview=False)
        lattice_id, lattice = created.id, wire(created.outputs)
        assert lattice["otlpEndpoint"] == endpoint  # what the Hosts take from it

        async def create_host(machine: str) -> tuple[str, dict[str, Any]]:
            checked = await hosts.check({}, host_inputs(lattice, machines, machine))
            assert checked.failures == [], checked.failures
            made = await hosts.create(wire(checked.inputs), preview=False)
            return made.id, {**wire(checked.inputs), **wire(made.outputs)}

        (core_host, core_state), (edge_host, edge_state) = await asyncio.gather(
            create_host(CORE), create_host(EDGE)
        )
        apps = ApplicationResource(log, settings)
        app_inputs = {
            k: lattice[k] for k in ("natsUrl", "lattice", "credentials", "clientTls", "registryUrl")
        }
        checked = await apps.check({}, app_inputs | {"manifest": manifest()})
        assert checked.failures == []
        await apps.create(wire(checked.inputs), preview=False)

        url = f"http://{machines[EDGE].address}:{HTTP_PORT}"
        await served(f"{url}/warmup")
        assert await asyncio.to_thread(get, f"{url}/traced") == (200, b"traced -> 1")
        trace = await first.wait_for(
            lambda: request_trace(first, "/traced", edge_host, core_host),
            "no trace from edge-1's http-server through the counter to keyvalue on core-1",
        )
        assert len(trace) == 3  # the request, the invocation, the keyvalue call
        command, reconciled, round_ = await first.wait_for(
            lambda: controller_placement(first, core_host), "no controller span placing the counter"
        )
        assert command.attributes["wasmcloud.component.id"] == f"{APP}-counter"
        assert (reconciled.name, round_.name) == (f"reconcile {APP}", "reconcile")
        assert command.resource["wasmcloud.lattice"] == "default"
        assert any(
            s.service == "wasmcloud-controller" and s.name == "wadm.api" for s in first.spans
        )

        # A new collector: the controller and both hosts restart with it (their last
        # metrics, flushed as they stop, still go to the first); the next curl's trace
        # reaches the second.
        news["otlpEndpoint"] = new_endpoint
        checked = await lattices.check(lattice, news)
        assert checked.failures == []
        diff = await lattices.diff(lattice_id, lattice, wire(checked.inputs))
        assert "otlpEndpoint" in diff.changed and not diff.replaces
        planned = log.take()
        # Only the controller's environment changes on the machines (NATS, the registry
        # and the secrets backend stay as they are).
        assert f"controller config: update on {CORE}" in planned, planned
        assert not [n for n in planned if "nats-server" in n or "registry" in n], planned
        lattice = wire(
            await lattices.update(lattice_id, lattice, wire(checked.inputs), preview=False)
        )
        said = log.take() + log.progress
        assert lattice["otlpEndpoint"] == new_endpoint

        for host_id, machine, state in (
            (core_host, CORE, core_state),
            (edge_host, EDGE, edge_state),
        ):
            checked = await hosts.check(state, host_inputs(lattice, machines, machine))
            assert checked.failures == []
            host_diff = await hosts.diff(host_id, state, wire(checked.inputs))
            assert "otlpEndpoint" in host_diff.changed and not host_diff.replaces
            updated = await hosts.update(host_id, state, wire(checked.inputs), preview=False)
            assert wire(updated)["otlpEndpoint"] == new_endpoint

        controller_metrics = metric_totals(first, "wasmcloud-controller")
        assert controller_metrics.get(("wadm.deploys", f"application={APP},result=acknowledged"))
        assert controller_metrics.get(("wadm.commands", "command=ScaleComponent")), said
        host_metrics = metric_totals(first, "wasmcloud-host")
        assert any(name == "wasmcloud_host.component.invocations" for name, _ in host_metrics)

        await served(f"{url}/warmup")
        assert await asyncio.to_thread(get, f"{url}/moved") == (200, b"moved -> 1")
        await second.wait_for(
            lambda: request_trace(second, "/moved", edge_host, core_host),
            "no trace at the new endpoint",
        )
        assert not any(s.attributes.get("url.path") == "/moved" for s in first.spans)

        # Converged: a second `up` has nothing to change. (The agent's wheels are built
        # from this checkout: a source edited while the test ran, other work in the same
        # tree, is drift too, and not this test's subject.)
        log.take()
        rechecked = await lattices.check(lattice, news)
        again = await lattices.diff(lattice_id, lattice, wire(rechecked.inputs))
        drift = [n for n in log.take() if "(its wheels changed)" not in n]
        assert drift == [], drift
        assert set(again.changed) <= {"running"} and again.replaces == [], again
    finally:
        await first.stop()
        await second.stop()
