"""Control-interface latency: our host's inventory reply vs a bare NATS echo.

Starts a real nats-server (JetStream, temporary store) and one host process, then sends
2,000 ``host.get`` requests to the host and 2,000 requests to a bare nats-py echo
responder on the same server, in the same run. Target: host p50 under 2x the echo p50.

    python benchmarks/ctl.py [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from host_agent.lattice.subjects import CtlSubjects
from tests.lattice import HostProcess, NatsServer, first_host_id

TARGET_RATIO = 2.0


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


async def measure(nc: NatsClient, subject: str, count: int) -> list[float]:
    for _ in range(50):  # warm-up
        await nc.request(subject, b"", timeout=5)
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await nc.request(subject, b"", timeout=5)
        samples.append(time.perf_counter() - start)
    return samples


async def run(server: NatsServer, count: int) -> tuple[list[float], list[float]]:
    nc = await nats.connect(server.url)
    echo_nc = await nats.connect(server.url)

    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    await echo_nc.subscribe("bench.echo", cb=echo)
    subjects = CtlSubjects()
    host_id = await first_host_id(nc)
    host = await measure(nc, subjects.host_get(host_id), count)
    bare = await measure(nc, "bench.echo", count)
    await nc.close()
    await echo_nc.close()
    return host, bare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per peer")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "js").start()
        host = HostProcess(server, {"bench": "ctl"}, log=Path(tmp) / "host.log")
        try:
            host_samples, bare_samples = asyncio.run(run(server, args.requests))
        finally:
            host.stop()
            server.stop()
    rows = [("host inventory", host_samples), ("bare NATS echo", bare_samples)]
    for label, samples in rows:
        print(
            f"{label:15s} p50 {percentile(samples, 50) * 1e6:8.0f} us   "
            f"p99 {percentile(samples, 99) * 1e6:8.0f} us   ({len(samples)} requests)"
        )
    ratio = percentile(host_samples, 50) / percentile(bare_samples, 50)
    verdict = "ok" if ratio <= TARGET_RATIO else "OVER TARGET"
    print(f"host/bare at p50: {ratio:.2f}x (target < {TARGET_RATIO:g}x: {verdict})")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
