"""Components from a registry: start-to-running of the counter from a digest reference
(first pull vs cached) and our pull throughput vs a plain HTTP GET of the same blob.

Starts a real docker-registry (loopback, temporary storage), pushes the counter, then:
- pulls it N times with host_agent.oci (manifest + layer, digests verified, no cache) and
  GETs the same manifest and layer blob N times with urllib in the same run: the same
  requests and bytes, only ours verifies; prints MB/s and the ratio (target: ours >= 0.8x
  the plain GETs); and the same for the blob alone (RegistrySession.get_blob vs one GET);
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from host_agent.lattice.client import CtlClient
from host_agent.lattice.subjects import event_subject
from host_agent.oci import BlobCache, fetch_component, layout, pull_component, push_component
from host_agent.oci.client import RegistrySession, component_layer
from host_agent.oci.reference import parse_reference
from tests.lattice import HostProcess, NatsServer, first_host_id
from tests.registry import RegistryProcess

TARGET_RATIO = 0.8
COUNTER = Path(__file__).resolve().parent.parent / "examples" / "counter" / "build" / "counter.wasm"


def plain_get(url: str, accept: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        return bytes(response.read())


@dataclass(frozen=True)
class Throughput:
    """MB/s (component bytes over the median time) of each way to fetch the same blob."""

    pull: float  # pull_component: manifest + blob, both digests verified
    plain_pull: float  # urllib GETs of the same manifest and blob, nothing verified
    blob: float  # RegistrySession.get_blob alone: download + sha256 of the blob
    plain_blob: float  # one urllib GET of the blob


async def throughput(registry: RegistryProcess, ref: str, rounds: int) -> Throughput:
    """Each round runs the four ways once, the order rotating from round to round so that
    none always runs first (or right after the same other) under the machine's load."""
    size = COUNTER.stat().st_size
    image = parse_reference(ref)
    manifest_url = f"{registry.url}/v2/{image.repository}/manifests/{image.target}"
    manifest = plain_get(manifest_url, layout.OCI_MANIFEST)
    layer = component_layer(manifest, image, "")
    blob_url = f"{registry.url}/v2/{image.repository}/blobs/{layer.digest}"

    async def pull() -> int:
        data, _ = await pull_component(ref, insecure=True)
        return len(data)

    async def plain_pull() -> int:
        def both() -> int:
            component_layer(plain_get(manifest_url, layout.OCI_MANIFEST), image, "")
            return len(plain_get(blob_url))

        return await asyncio.to_thread(both)

    async def blob() -> int:
        async with RegistrySession(image, insecure=True, credentials=None) as session:
            return len(await session.get_blob(layer, None))

    async def plain_blob() -> int:
        return len(await asyncio.to_thread(plain_get, blob_url))

    ways = [pull, plain_pull, blob, plain_blob]
    seconds: dict[str, list[float]] = {way.__name__: [] for way in ways}
    for way in ways:  # warm every path (the registry's file cache, imports, thread pool)
        await way()
    for round_ in range(rounds):
        for way in ways[round_ % len(ways) :] + ways[: round_ % len(ways)]:
            start = time.perf_counter()
            received = await way()
            seconds[way.__name__].append(time.perf_counter() - start)
            assert received == size, (way.__name__, received)
    mb = size / 1e6
    rates = {name: mb / statistics.median(times) for name, times in seconds.items()}
    return Throughput(**rates)


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
            rates = await throughput(registry, ref, rounds)
            cold, warm = await cache_times(ref, tmp / "bench-cache")
            first, cached = await start_to_running(nats_server, registry, ref, tmp)
        finally:
            nats_server.stop()
            registry.stop()
    size = COUNTER.stat().st_size / 1e6
    ratio = rates.pull / rates.plain_pull
    print(f"counter component: {size:.1f} MB, {rounds} rounds, medians")
    print(
        f"pull (manifest + blob, digests verified): ours {rates.pull:.0f} MB/s, plain GETs of "
        f"the same manifest and blob {rates.plain_pull:.0f} MB/s, ratio {ratio:.2f}x "
        f"(target >= {TARGET_RATIO}x)"
    )
    print(
        f"blob alone (download + sha256): ours {rates.blob:.0f} MB/s, plain GET "
        f"{rates.plain_blob:.0f} MB/s, ratio {rates.blob / rates.plain_blob:.2f}x"
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
