"""Pulumi preview and up time for stacks of N wasmcloud Applications vs N resources of a
no-op dynamic provider (the cheapest thing the Pulumi Python SDK can run), in the same
run, with the same CLI, backend and machine.

Each Application is a real wadm manifest that check plans on the live lattice and up
puts + deploys through the controller and waits for "deployed" (a `hello` component with
`instances: 0`, so the lattice does not need 300 running components). The lattice is
nats-server with JetStream, the controller and one host. Target: our per-resource time
at most 1.5x the dynamic no-op's, growing near-linearly with N.

The multi-region part previews examples/multi-region's prod stack (Pulumi.prod.yaml as
shipped: EC2 machines in three regions, the lattice, a host per machine, the counter app
per region) before it exists, against moto's EC2 API on loopback (a VPC and subnet per
region, as tests/ec2.py makes them), beside the same number of dynamic no-op resources,
alternating, median of ``--runs``. Everything is to be created, so no machine is
contacted: their addresses are unknown until the instances exist. What it costs is the
program, each resource's check and preview create in the provider, and one AMI lookup
per machine. Target: at most 1.5x the no-op stack's preview.

    python benchmarks/preview.py [--sizes 10 100 300] [--runs 5] [--part all|scaling|multi-region]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.lattice import ControllerProcess, HostProcess, NatsServer
from tests.pulumi_cli import PULUMI_BIN, cli_environment, write_project

ROOT = Path(__file__).resolve().parent.parent
MULTI_REGION = ROOT / "examples" / "multi-region"

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
    def __init__(
        self, workdir: Path, nats_url: str = "", env: dict[str, str] | None = None
    ) -> None:
        self.env = {**cli_environment(workdir, "bench"), **(env or {})}
        # Bytecode cached as an installed package has it (pip compiles it at install):
        # without this, an environment with PYTHONDONTWRITEBYTECODE (CI, this machine's
        # sessions) makes every preview compile our ~60 modules from source in both the
        # program and the plugin process (0.3-0.6 s), which no user pays. The cache is
        # under workdir (PYTHONPYCACHEPREFIX), the warm-up runs fill it for both sides.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
        self.nats_url = nats_url
        self.last_stdout = ""
        self.last_cpu = 0.0  # CPU seconds of the last command and every process it ran

    def run(self, folder: Path, *args: str, stdin: str | None = None) -> float:
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            ["pulumi", "--non-interactive", *args],
            cwd=folder,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            raise SystemExit(f"pulumi {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        self.last_stdout = done.stdout
        elapsed = time.perf_counter() - started
        # The CLI waits for its plugins and language host, so their CPU time is here too.
        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.last_cpu = now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime
        return elapsed

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


def to_create(preview_json: str) -> list[str]:
    """``type name`` of each resource a preview's JSON would create (not the stack
    itself, not a provider)."""
    steps = json.loads(preview_json)["steps"]
    made = []
    for step in steps:
        urn = str(step["urn"])
        kind, name = urn.split("::")[2].rsplit("$", 1)[-1], urn.rsplit("::", 1)[1]
        if step["op"] == "create" and not kind.startswith("pulumi:"):
            made.append(f"{kind} {name}")
    return made


def import_seconds(code: str, env: dict[str, str]) -> float:
    """How long a fresh interpreter of the venv takes to run ``code`` (imports), in the
    CLI's environment (its bytecode cache, see Cli)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - started


def plugin_imports(types: list[str]) -> str:
    """What our plugin process imports before it answers for ``types``: its core, then
    each type's handler module (loaded on the type's first request)."""
    return (
        "from pulumi_wasmcloud.provider import main\n"
        "for name in main.DEFERRED_MODULES: main.defer_loading(name)\n"
        "from pulumi_wasmcloud.provider.provider import WasmcloudProvider\n"
        "provider = WasmcloudProvider(None)\n"
        f"for token in {types!r}: provider.handler(token)\n"
    )


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f}"


def ec2_harness() -> Any:
    """tests/ec2.py (moto's server, the regions' VPCs): imported by name, as mypy checks
    benchmarks/ but not the tests, whose boto3 has no type information."""
    return importlib.import_module("tests.ec2")


def configure_prod(cli: Cli, folder: Path, subnets: dict[str, Any]) -> None:
    """The shipped Pulumi.prod.yaml pointed at moto (the CLI reaches it through
    AWS_ENDPOINT_URL): each region's subnet and VPC CIDR, the operator's CIDR, an AMI
    parameter moto knows, a fresh SSH key (a secret)."""
    from tests.machines import KeyPair

    ec2 = ec2_harness()
    shipped = yaml.safe_load((MULTI_REGION / "Pulumi.prod.yaml").read_text())["config"]
    vpcs = {network.region: network.vpc_cidr for network in ec2.REGION_NETWORKS}
    for index, region in enumerate(shipped["wasmcloud-multi-region:regions"]):
        name = region["name"]
        cli.run(folder, "config", "set", "--path", f"regions[{index}].subnetId",
                subnets[name].subnet_id)  # fmt: skip
        cli.run(folder, "config", "set", "--path", f"regions[{index}].cidr", vpcs[name])
    cli.run(folder, "config", "set", "--path", "ec2.operatorCidrs[0]", str(ec2.NETWORK))
    cli.run(folder, "config", "set", "--path", "ec2.amiParameter", ec2.AMI_PARAMETER)
    cli.run(folder, "config", "set", "--path", "ec2.user", "root")
    key = KeyPair.generate("bench").private_openssh
    cli.run(folder, "config", "set", "--secret", "sshPrivateKey", stdin=key)


def measure_multi_region(workdir: Path, runs: int) -> None:
    from tests.example_projects import example_project

    ec2 = ec2_harness()
    with ec2.moto_server(workdir) as moto:
        subnets = ec2.create_networks(moto)
        cli = Cli(workdir, env=moto.environment())
        ours = example_project(MULTI_REGION, workdir / "multi-region", "prod")
        cli.run(ours, "stack", "init", "prod")
        configure_prod(cli, ours, subnets)
        cli.run(ours, "preview", "--json")  # warms the plugin and pip caches, counts
        resources = to_create(cli.last_stdout)
        noop = project(workdir, "noop-multi-region", DYNAMIC)
        cli.run(noop, "stack", "init", "peer")
        cli.run(noop, "config", "set", "count", str(len(resources)))
        cli.run(noop, "preview")
        print(
            f"multi-region: `pulumi preview` of examples/multi-region's prod stack before it "
            f"exists ({len(resources)} resources to create: "
            f"{', '.join(sorted({r.split()[0].rsplit(':', 1)[-1] for r in resources}))}), "
            f"EC2 API = moto on loopback, no machine contacted; vs {len(resources)} dynamic "
            f"no-op resources; same CLI and backend, alternating, {runs} runs each"
        )
        print(f"  {load()} (a shared machine: other work slows both sides)")
        times: dict[str, list[float]] = {"multi-region": [], "no-op": []}
        cpu: dict[str, list[float]] = {"multi-region": [], "no-op": []}
        for _ in range(runs):
            for label, folder in (("multi-region", ours), ("no-op", noop)):
                times[label].append(cli.run(folder, "preview"))
                cpu[label].append(cli.last_cpu)
        for label, seen in times.items():
            shown = " ".join(f"{t:.2f}" for t in seen)
            print(
                f"  {label:13} median {statistics.median(seen):6.2f} s   (runs: {shown}); "
                f"CPU {statistics.median(cpu[label]):.2f} s"
            )
        ratio = statistics.median(times["multi-region"]) / statistics.median(times["no-op"])
        print(f"  ratio {ratio:.2f}x (target <= 1.5x)")
        # CPU time (all of a preview's processes) moves less with the machine's load than
        # elapsed time, which grows toward this ratio when the cores are busy.
        cpu_ratio = statistics.median(cpu["multi-region"]) / statistics.median(cpu["no-op"])
        print(f"  CPU ratio {cpu_ratio:.2f}x")
        # Where the difference goes: each preview starts a provider process, ours with
        # the SDK, gRPC and the code of the types the stack uses (boto3, paramiko,
        # pydantic; what only an up or a known lattice needs is imported when used), the
        # no-op's with the SDK.
        types = sorted({r.split()[0] for r in resources})
        start = {
            label: statistics.median(import_seconds(code, cli.env) for _ in range(3))
            for label, code in (
                ("multi-region", plugin_imports(types)),
                ("no-op", "import pulumi.dynamic"),
            )
        }
        print(
            f"  provider process imports for these {len(types)} types: "
            f"{start['multi-region']:.2f} s vs the no-op's {start['no-op']:.2f} s "
            f"(medians of 3, in every preview); {load()}"
        )
        made = [
            instance
            for region in subnets
            for reservation in moto.client("ec2", region).describe_instances()["Reservations"]
            for instance in reservation["Instances"]
        ]
        if made:
            raise SystemExit(f"a preview launched instances: {made}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 300])
    parser.add_argument("--runs", type=int, default=5, help="multi-region previews per side")
    parser.add_argument("--part", choices=("all", "scaling", "multi-region"), default="all")
    args = parser.parse_args()
    if not (PULUMI_BIN / "pulumi").exists():
        raise SystemExit("the Pulumi CLI is missing: run scripts/bootstrap.sh")
    if args.part in ("all", "multi-region"):
        with tempfile.TemporaryDirectory(prefix="bench-preview-mr-") as tmp:
            measure_multi_region(Path(tmp), args.runs)
    if args.part in ("all", "scaling"):
        measure_scaling(args.sizes)


def measure_scaling(sizes: list[int]) -> None:
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
            for count in sizes:
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
