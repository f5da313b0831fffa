"""Components from a registry: start-to-running of the counter from a digest reference
(first pull vs cached) and our pull throughput vs a plain HTTP GET of the same blob.

Starts a real docker-registry (loopback, temporary storage), pushes the counter, then:
- pulls it N times with host_agent.oci (manifest + layer, digests verified, no cache) and
  GETs the same layer blob N times with urllib in the same run; prints MB/s and the ratio
  (target: ours >= 0.8x the plain GET);
- times fetch_component with a cold cache vs a cache hit;
- starts a host (nats-server, host process) and times component.scale -> component_scaled
  from the digest reference: the first with empty caches, the second (another component
  id on the same host) served from the blob and compiled caches.

    python benchmarks/pull.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import nats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from host_agent.lattice.client import CtlClient
from host_agent.lattice.subjects import event_subject
from host_agent.oci import BlobCache, fetch_component, pull_component, push_component
from host_agent.oci.client import component_layer
from host_agent.oci.reference import parse_reference
from tests.lattice import HostProcess, NatsServer, first_host_id
from tests.registry import RegistryProcess

TARGET_RATIO = 0.8
COUNTER = Path(__file__).resolve().parent.parent / "examples" / "counter" / "build" / "counter.wasm"


def plain_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return bytes(response.read())


async def throughput(registry: RegistryProcess, ref: str, rounds: int) -> tuple[float, float]:
    size = COUNTER.stat().st_size
    manifest = plain_get_manifest(registry, ref)
    layer = component_layer(manifest, parse_reference(ref), "")
    blob_url = f"{registry.url}/v2/components/counter/blobs/{layer.digest}"
    ours: list[float] = []
    plain: list[float] = []
    await pull_component(ref, insecure=True)  # warm both paths (registry's file cache)
    await asyncio.to_thread(plain_get, blob_url)
    for _ in range(rounds):  # interleaved, so both see the same machine load
        start = time.perf_counter()
        data, _ = await pull_component(ref, insecure=True)
        ours.append(time.perf_counter() - start)
        assert len(data) == size
        start = time.perf_counter()
        body = await asyncio.to_thread(plain_get, blob_url)
        plain.append(time.perf_counter() - start)
        assert len(body) == size
    mb = size / 1e6
    return mb / statistics.median(ours), mb / statistics.median(plain)


def plain_get_manifest(registry: RegistryProcess, ref: str) -> bytes:
    tag = parse_reference(ref).target
    request = urllib.request.Request(
        f"{registry.url}/v2/components/counter/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


async def cache_times(ref: str, cache_dir: Path) -> tuple[float, float]:
    cache = BlobCache(cache_dir)
    start = time.perf_counter()
    cold = await fetch_component(ref, insecure=True, cache=cache)
    cold_s = time.perf_counter() - start
    start = time.perf_counter()
    warm = await fetch_component(ref, insecure=True, cache=cache)
    warm_s = time.perf_counter() - start
    assert not cold.cache_hit and warm.cache_hit
    return cold_s, warm_s


async def start_to_running(
    nats_server: NatsServer, registry: RegistryProcess, ref: str, tmp: Path
) -> list[float]:
    import os

    os.environ["WASMCLOUD_OCI_ALLOWED_INSECURE"] = registry.address
    os.environ["WASMCLOUD_CACHE_DIR"] = str(tmp / "host-cache")
    host = HostProcess(nats_server, {}, log=tmp / "host.log")
    try:
        nc = await nats.connect(nats_server.url)
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def record(msg: Any) -> None:
            await events.put(json.loads(msg.data))

        await nc.subscribe(event_subject("default", "*"), cb=record)
        host_id = await first_host_id(nc)
        ctl = CtlClient(nc)
        times = []
        for component in ("counter-first", "counter-cached"):
            start = time.perf_counter()
            await ctl.scale_component(host_id, component, ref, 1)
            while True:
                event = await asyncio.wait_for(events.get(), 120)
                data = event["data"]
                if data.get("component_id") != component:
                    continue
                if event["type"].endswith("component_scale_failed"):
                    raise SystemExit(f"scale failed: {data['error']}")
                if event["type"].endswith("component_scaled"):
                    break
            times.append(time.perf_counter() - start)
        await nc.close()
        return times
    finally:
        host.stop()


async def main(rounds: int) -> int:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        registry = RegistryProcess(tmp / "registry").start()
        nats_server = NatsServer(tmp / "jetstream").start()
        try:
            tag_ref = f"{registry.address}/components/counter:0.1.0"
            digest = await push_component(COUNTER, tag_ref, insecure=True)
            ref = f"{registry.address}/components/counter@{digest}"
            ours, plain = await throughput(registry, ref, rounds)
            cold, warm = await cache_times(ref, tmp / "bench-cache")
            first, cached = await start_to_running(nats_server, registry, ref, tmp)
        finally:
            nats_server.stop()
            registry.stop()
    size = COUNTER.stat().st_size / 1e6
    ratio = ours / plain
    print(f"counter component: {size:.1f} MB, {rounds} interleaved rounds")
    print(
        f"pull throughput: ours {ours:.0f} MB/s, plain GET {plain:.0f} MB/s, ratio {ratio:.2f}x "
        f"(target >= {TARGET_RATIO}x)"
    )
    print(
        f"fetch_component: cold {cold * 1000:.0f} ms, cache hit {warm * 1000:.0f} ms "
        f"({cold / warm:.1f}x)"
    )
    print(
        f"scale -> component_scaled by digest: first {first:.2f} s, cached {cached:.2f} s "
        f"({first / cached:.1f}x)"
    )
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="pulls of each kind (default 10)")
    sys.exit(asyncio.run(main(parser.parse_args().rounds)))
