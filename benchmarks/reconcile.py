"""Controller speed: deploy -> "deployed" for 100 instances on 10 hosts, and host loss ->
healed (its work running elsewhere, status deployed again), then both at 2x (200 on 20).

Real processes: nats-server with JetStream, N host processes (heartbeat every second, so
a silent host is dropped ~3 s after its last heartbeat), the controller process. The
application is N components (the hello example, distinct ids) of 10 instances each, so
the planner puts one per host. For scale: wadm 0.20 drops a silent host after 70-105 s
and re-places at the next event.

    python benchmarks/reconcile.py [--hosts N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from host_agent.lattice.client import CtlClient
from host_agent.lattice.wadm import WadmClient
from host_agent.lattice.wadm_types import StatusType
from tests.lattice import ControllerProcess, HostProcess, NatsServer

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello" / "build" / "hello.wasm"
INSTANCES_PER_COMPONENT = 10


def manifest(components: int) -> dict[str, Any]:
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "bench", "annotations": {"version": "v1"}},
        "spec": {
            "components": [
                {
                    "name": f"hello{i}",
                    "type": "component",
                    "properties": {"image": f"file://{HELLO}"},
                    "traits": [
                        {
                            "type": "spreadscaler",
                            "properties": {"instances": INSTANCES_PER_COMPONENT},
                        }
                    ],
                }
                for i in range(components)
            ]
        },
    }


async def wait_hosts(ctl: CtlClient, count: int) -> list[dict[str, Any]]:
    for _ in range(600):
        hosts = await ctl.ping_hosts(wait=0.3)
        if len(hosts) >= count:
            return hosts
        await asyncio.sleep(0.1)
    raise RuntimeError(f"only {len(hosts)} of {count} hosts joined")


async def wait_deployed(wadm: WadmClient, since: float) -> float:
    while time.monotonic() - since < 300:
        reply = await wadm.status("bench")
        if reply.status and reply.status.status.type is StatusType.DEPLOYED:
            return time.monotonic() - since
        await asyncio.sleep(0.02)
    raise RuntimeError("never deployed")


async def measure(server: NatsServer, hosts: list[HostProcess], n: int) -> tuple[float, float]:
    nc = await nats.connect(server.url)
    try:
        ctl, wadm = CtlClient(nc), WadmClient(nc)
        await wait_hosts(ctl, n)
        for _ in range(100):
            try:
                await wadm.list()
                break
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.1)
        await wadm.put(manifest(n))
        start = time.monotonic()
        await wadm.deploy("bench")
        deploy = await wait_deployed(wadm, start)

        # Kill a host that runs a component; healed = every component placed on live hosts.
        victim = hosts[0]
        victim_id = host_id_of(victim)
        victim.kill()
        killed = time.monotonic()
        while time.monotonic() - killed < 120:
            placed = 0
            for host in await ctl.ping_hosts(wait=0.2):
                inventory = await ctl.get_inventory(host["id"])
                placed += sum(c["max_instances"] for c in inventory["components"])
            if placed == n * INSTANCES_PER_COMPONENT:
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError(f"work of {victim_id} was never re-placed")
        heal = time.monotonic() - killed
        return deploy, heal
    finally:
        await nc.close()


def host_id_of(proc: HostProcess) -> str:
    for line in proc.log.read_text().splitlines():
        if '"host started"' in line:
            return str(json.loads(line)["host_id"])
    raise RuntimeError("host id not in log")


def run(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "js").start()
        hosts = [
            HostProcess(server, {"n": str(i)}, "--allow-file-load", log=Path(tmp) / f"h{i}.log")
            for i in range(n)
        ]
        controller = ControllerProcess(server, log=Path(tmp) / "controller.log")
        try:
            return asyncio.run(measure(server, hosts, n))
        finally:
            controller.stop()
            for host in hosts:
                host.stop()
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10, help="hosts in the base run")
    args = parser.parse_args(argv)
    if not HELLO.exists():
        print(f"{HELLO} is missing: run scripts/build-components.sh", file=sys.stderr)
        return 2
    results = {}
    for n in (args.hosts, 2 * args.hosts):
        deploy, heal = run(n)
        results[n] = (deploy, heal)
        print(
            f"{n * INSTANCES_PER_COMPONENT:4d} instances on {n:3d} hosts: "
            f"deploy -> deployed {deploy:6.2f} s   host loss -> healed {heal:6.2f} s"
        )
    base, double = results[args.hosts], results[2 * args.hosts]
    print(
        f"growth at 2x: deploy {double[0] / base[0]:.2f}x, heal {double[1] / base[1]:.2f}x "
        "(heal is dominated by the 3-heartbeat timeout; wadm 0.20 needs 70-105 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
