"""Pulumi preview and up time for stacks of N wasmcloud Applications vs N resources of a
no-op dynamic provider (the cheapest thing the Pulumi Python SDK can run), in the same
run, with the same CLI, backend and machine.

Each Application is a real wadm manifest that check plans on the live lattice and up
puts + deploys through the controller and waits for "deployed" (a `hello` component with
`instances: 0`, so the lattice does not need 300 running components). The lattice is
nats-server with JetStream, the controller and one host. Target: our per-resource time
at most 1.5x the dynamic no-op's, growing near-linearly with N.

    python benchmarks/preview.py [--sizes 10 100 300]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.lattice import ControllerProcess, HostProcess, NatsServer
from tests.pulumi_cli import PULUMI_BIN, cli_environment, write_project

ROOT = Path(__file__).resolve().parent.parent

OURS = """
import pulumi
import pulumi_wasmcloud as wasmcloud

config = pulumi.Config()
for i in range(config.require_int("count")):
    name = f"app{i}"
    wasmcloud.Application(name, manifest={
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": name, "annotations": {"version": "v1"}},
        "spec": {"components": [{
            "name": "hello", "type": "component",
            "properties": {"image": "file://%(hello)s"},
            "traits": [{"type": "spreadscaler", "properties": {"instances": 0}}],
        }]},
    })
"""

DYNAMIC = """
import pulumi
from pulumi.dynamic import CreateResult, Resource, ResourceProvider


class Noop(ResourceProvider):
    def create(self, props):
        return CreateResult(id_=props["name"], outs=props)


class NoopResource(Resource):
    def __init__(self, name, props):
        super().__init__(Noop(), name, props)


for i in range(pulumi.Config().require_int("count")):
    NoopResource(f"app{i}", {"name": f"app{i}", "manifest": {"version": "v1"}})
"""


def project(workdir: Path, name: str, program: str) -> Path:
    return write_project(workdir / name, f"bench-{name}", program)


class Cli:
    def __init__(self, workdir: Path, nats_url: str) -> None:
        self.env = cli_environment(workdir, "bench")
        self.nats_url = nats_url

    def run(self, folder: Path, *args: str) -> float:
        started = time.perf_counter()
        done = subprocess.run(
            ["pulumi", "--non-interactive", *args],
            cwd=folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            raise SystemExit(f"pulumi {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return time.perf_counter() - started

    def measure(self, folder: Path, stack: str, count: int) -> tuple[float, float]:
        self.run(folder, "stack", "init", stack)
        self.run(folder, "config", "set", "count", str(count))
        self.run(folder, "config", "set", "wasmcloud:natsUrl", self.nats_url)
        preview = self.run(folder, "preview")
        up = self.run(folder, "up", "--yes", "--skip-preview")
        self.run(folder, "destroy", "--yes", "--skip-preview")
        return preview, up


def report_growth(rows: list[tuple[int, tuple[float, float], tuple[float, float]]]) -> None:
    """Per-resource cost as the slope between the smallest and largest stack (fixed
    start-up costs, such as plugin start and the first lattice read, cancel out)."""
    (n0, ours0, dyn0), (n1, ours1, dyn1) = rows[0], rows[-1]
    for phase, index in (("preview", 0), ("up", 1)):
        ours = (ours1[index] - ours0[index]) / (n1 - n0) * 1000
        dynamic = (dyn1[index] - dyn0[index]) / (n1 - n0) * 1000
        ratio = ours / dynamic if dynamic > 0 else float("inf")
        print(
            f"{phase}: per resource {ours:.1f} ms vs dynamic no-op {dynamic:.1f} ms "
            f"= {ratio:.2f}x (target <= 1.5x); growth {n0} -> {n1} ({n1 / n0:.0f}x): "
            f"{ours1[index] / ours0[index]:.1f}x total time"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 300])
    args = parser.parse_args()
    if not (PULUMI_BIN / "pulumi").exists():
        raise SystemExit("the Pulumi CLI is missing: run scripts/bootstrap.sh")
    hello = ROOT / "examples" / "hello" / "build" / "hello.wasm"
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as tmp:
        workdir = Path(tmp)
        nats_server = NatsServer(workdir / "jetstream").start()
        host = HostProcess(nats_server, {"tier": "core"}, log=workdir / "host.log")
        controller = ControllerProcess(nats_server, log=workdir / "controller.log")
        try:
            cli = Cli(workdir, nats_server.url)
            ours = project(workdir, "ours", OURS % {"hello": hello})
            dynamic = project(workdir, "dynamic", DYNAMIC)
            print(f"{'N':>5} {'':10} {'preview s':>10} {'up s':>8} {'per res. ms':>12}")
            rows: list[tuple[int, tuple[float, float], tuple[float, float]]] = []
            for count in args.sizes:
                ours_times = cli.measure(ours, f"n{count}", count)
                dyn_times = cli.measure(dynamic, f"n{count}", count)
                for label, (preview, up) in (("wasmcloud", ours_times), ("dynamic", dyn_times)):
                    per = (preview + up) / count * 1000
                    print(f"{count:>5} {label:10} {preview:>10.2f} {up:>8.2f} {per:>12.1f}")
                ratio_preview = ours_times[0] / dyn_times[0]
                ratio_up = ours_times[1] / dyn_times[1]
                print(f"{'':>5} {'ratio':10} {ratio_preview:>9.2f}x {ratio_up:>7.2f}x")
                rows.append((count, ours_times, dyn_times))
            if len(rows) > 1:
                report_growth(rows)
        finally:
            controller.stop()
            host.stop()
            nats_server.stop()


if __name__ == "__main__":
    main()
