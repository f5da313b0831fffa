"""examples/edge-core end to end on five namespace machines (tests/machines.py), driven
with the real Pulumi CLI the way its README says: config from the machines' addresses
and host keys, preview, up, curl, a second up, a cluster node down, destroy.

The topology (examples/edge-core/README.md): core-1..3 run the NATS cluster and a core
host each; edge-1 (region west) and edge-2 (region east) a leaf node and an edge host
each. The counter runs 4 instances in the west and 1 in the core; the east runs only an
http-server, so its requests are answered across its leaf node. Which host answered a
request is read from the NATS servers themselves (/connz: messages delivered on each
host's subscription to the counter's wRPC queue group), not from anything we wrote.

The lattice runs secured (operator mode, mutual TLS everywhere): the tests reach its NATS
as its tooling user with the stack's `credentials` and `clientTls` outputs, check that
every node refuses anyone else, and that no seed or private key shows in `pulumi stack
export`, the CLI's output, or any machine's process list and logs.

The tests share one deployed stack (an `up` on five machines costs minutes) and run in
file order; the last one destroys it.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import RawCredentials

from host_agent.lattice.client import CtlClient
from host_agent.lattice.wadm import WadmClient
from host_agent.lattice.wadm_types import StatusType
from host_agent.security.authority import UserIssuer
from host_agent.security.permissions import Role
from pulumi_wasmcloud.provision.agent import host_service
from pulumi_wasmcloud.provision.security import role_in_domain
from pulumi_wasmcloud.provision.service import log_path
from tests.example_projects import LoggedProject, example_project, keyscan_line, with_nats
from tests.lattice import ROOT, http_get
from tests.machines import Machine, Machines, booted
from tests.pulumi_cli import PULUMI_BIN, cli_environment
from tests.secured_nats import client_options, leaks, machine_leaks, refusals

# The whole scenario (five machines installed, six `up`/`preview` rounds, a destroy) takes
# minutes; the first test also pays for the module's fixtures.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

EXAMPLE = ROOT / "examples" / "edge-core"
CORE = ("core-1", "core-2", "core-3")
EDGE_REGIONS = {"edge-1": "west", "edge-2": "east"}
WEST, EAST = "edge-1", "edge-2"
HTTP_PORT = 8080  # the http-server's listen address in wadm.yaml (0.0.0.0:8080)
MONITORING_PORT = 8222  # every nats-server's monitoring endpoint (/connz, /routez)
APP = "counter"
# The counter's wRPC queue group: {lattice}.{component id}, the id being <app>-<component>.
COUNTER_QUEUE = f"default.{APP}-counter"
# The JetStream stream behind the counter's wasi:keyvalue bucket (keyvalue-nats names
# the bucket after the component's, "default"; a KV bucket's stream is KV_<bucket>).
COUNTER_STREAM = "KV_default"
# Which cluster node goes down in test_a_cluster_node_down: not cluster[0], whose address
# is the lattice's natsUrl (the provider's and tools' way in) and which runs the registry.
VICTIM = "core-2"
# How the tests connect to the lattice: its tooling user over mutual TLS (from the
# stack's outputs, set by the `deployed` fixture); AS_HOST as a host of it (a user minted
# from the lattice's userIssuer, as each Host does: it may read the app's bucket).
SECURED: dict[str, Any] = {}
AS_HOST: dict[str, Any] = {}


def host_name(machine: str) -> str:
    return f"{machine}-host"


def host_log(machine: Machine, lines: int = 60) -> str:
    """The end of the host's log on ``machine`` (its providers' output goes there too)."""
    path = log_path(host_service(host_name(machine.name)))
    return machine.inside(["tail", f"-{lines}", path]).stdout


class EdgeCoreStack(LoggedProject):
    """The example as a stack on a file backend under ``workdir``, configured for
    ``machines`` with the commands the README gives."""

    def __init__(self, workdir: Path, machines: Machines) -> None:
        super().__init__(
            example_project(EXAMPLE, workdir / "project"),
            cli_environment(workdir, "edge-core"),
            workdir / "logs",
        )
        self.run("stack", "init", "edge-core")
        entries: list[tuple[str, str, dict[str, object]]] = [
            ("core", name, {}) for name in CORE
        ] + [("edge", name, {"region": region}) for name, region in EDGE_REGIONS.items()]
        index = {"core": 0, "edge": 0}
        for group, name, extra in entries:
            machine = machines[name]
            i = index[group]
            index[group] += 1
            values = {
                "name": name,
                "host": machine.address,
                "user": "root",
                "port": "22",
                "hostKey": keyscan_line(machine.host_key),
                **extra,
            }
            for key, value in values.items():
                self.run("config", "set", "--path", f"{group}[{i}].{key}", "--", str(value))
        # As `pulumi config set --secret sshPrivateKey < ~/.ssh/id_ed25519`.
        self.run(
            "config", "set", "--secret", "sshPrivateKey", stdin=machines.client_key.private_openssh
        )

    def up(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("up", "--yes", "--skip-preview", *args, ok=ok)

    def outputs(self) -> dict[str, Any]:
        return dict(json.loads(self.run("stack", "output", "--json", "--show-secrets").stdout))


def lattice_output(stack: EdgeCoreStack, key: str) -> Any:
    """One output of the stack's Lattice resource, secrets shown (as `pulumi stack export
    --show-secrets` prints them: a secret's plaintext is JSON)."""
    state = json.loads(stack.run("stack", "export", "--show-secrets").stdout)
    [lattice] = [
        r for r in state["deployment"]["resources"] if r["type"] == "wasmcloud:index:Lattice"
    ]
    value = lattice["outputs"][key]
    if isinstance(value, dict) and "plaintext" in value:
        return json.loads(value["plaintext"])
    return value


def command_counts(output: str) -> list[tuple[str, int]]:
    """The provider's per-machine progress lines ``<machine>: N commands``."""
    return [
        (machine, int(count))
        for machine, count in re.findall(r"\b([a-z0-9][a-z0-9-]*): (\d+) commands?\b", output)
    ]


# -- what the lattice and the NATS servers say ------------------------------------------


def running_placement(nats_url: str, names: dict[str, str]) -> dict[str, dict[str, int]]:
    """Component name -> {host name: instances}, from each host's inventory."""

    async def ask(nc: Any) -> dict[str, dict[str, int]]:
        ctl = CtlClient(nc, "default")
        placement: dict[str, dict[str, int]] = {}
        for host in await ctl.ping_hosts(wait=2.0):
            name = names.get(str(host["id"]), str(host["id"]))
            inventory = await ctl.get_inventory(str(host["id"]))
            for component in inventory["components"]:
                short = component["id"].removeprefix(f"{APP}-")
                placement.setdefault(short, {})[name] = component["max_instances"]
            for provider in inventory["providers"]:
                placement.setdefault(provider["id"].removeprefix(f"{APP}-"), {})[name] = 1
        return placement

    result: dict[str, dict[str, int]] = with_nats(nats_url, ask, **SECURED)
    return result


def app_status(nats_url: str, within: float = 60.0) -> tuple[StatusType, int]:
    """The app's status from the wadm API, and how many requests it took: a request that
    reached a controller whose NATS node just went down goes unanswered, and is asked
    again (every controller answers the API) until ``within`` seconds have passed."""

    async def ask(nc: Any) -> tuple[StatusType, int]:
        deadline = time.monotonic() + within
        for attempt in range(1, 1000):
            try:
                reply = await WadmClient(nc, "default").status(APP)
            except nats.errors.TimeoutError:
                if time.monotonic() > deadline:
                    raise
                continue
            assert reply.status is not None, reply
            return reply.status.status.type, attempt
        raise AssertionError("unreachable")

    answer: tuple[StatusType, int] = with_nats(nats_url, ask, **SECURED)
    return answer


def store_replicas(nats_url: str) -> tuple[int, str]:
    """The replicas of the stream behind the counter's KV bucket, and its leader."""

    async def ask(nc: Any) -> tuple[int, str]:
        info = await nc.jetstream(domain="core").stream_info(COUNTER_STREAM)
        leader = info.cluster.leader if info.cluster is not None else "?"
        return int(info.config.num_replicas or 1), str(leader)

    answer: tuple[int, str] = with_nats(nats_url, ask, **AS_HOST)
    return answer


def monitoring(machine: Machine, endpoint: str) -> dict[str, Any]:
    url = f"http://{machine.address}:{MONITORING_PORT}/{endpoint}"
    with urllib.request.urlopen(url, timeout=5) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


def counter_calls(machines: Machines, names: dict[str, str]) -> dict[str, int]:
    """Host name -> messages its NATS server delivered on the host's subscriptions to the
    counter's HTTP handler (one per request it answered); a host without the counter
    has no such subscription and is absent."""
    calls: dict[str, int] = {}
    for machine in machines:
        connz = monitoring(machine, "connz?subs=detail&limit=1024")
        for connection in connz.get("connections") or []:
            name = str(connection.get("name") or "")
            if not name.startswith("wasmcloud-host "):
                continue
            host = names.get(name.removeprefix("wasmcloud-host "), name)
            for sub in connection.get("subscriptions_list_detail") or []:
                if sub.get("qgroup") == COUNTER_QUEUE and "incoming-handler" in sub["subject"]:
                    calls[host] = calls.get(host, 0) + int(sub["msgs"])
    return calls


def count(machine: Machine, key: str) -> int:
    """One request to the http-server on ``machine``: the count the counter answers."""
    status, body = http_get(f"http://{machine.address}:{HTTP_PORT}/{key}")
    assert status == 200, (status, body)
    match = re.fullmatch(rf"{re.escape(key)} -> (\d+)", body.decode())
    assert match, body
    return int(match.group(1))


def eventually_count(machine: Machine, key: str, within: float = 90.0) -> int:
    """The first answer for ``key`` within ``within`` seconds (a failing request is
    retried: after a node went down, JetStream elects new leaders first)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return count(machine, key)
        except (AssertionError, OSError) as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"{machine.name} never answered {key}: {error}") from error
        time.sleep(0.5)


def ssh_sessions(machine: Machine) -> tuple[int, int]:
    """How many commands and SFTP sessions (uploads) the machine's sshd has started."""
    log = machine.sshd_log()
    return log.count("Starting session: command"), log.count("Starting session: subsystem")


# Where an install writes (binaries, the agent's venv, config, service definitions and
# pids); the rest of /var/lib and /var/log is what the services themselves keep writing
# (JetStream's store, logs), which changes in a converged lattice too.
INSTALLED = ("/opt/", "/etc/", "/var/lib/wasmcloud/services/")


def installed_files(machine: Machine) -> list[str]:
    return [line for line in machine.own_files() if line.split(" ", 2)[1].startswith(INSTALLED)]


def services_running(machine: Machine) -> dict[int, str]:
    """The machine's processes but SSH sessions (pid -> command line): a restarted
    service shows as a new pid."""
    return {pid: args for pid, args in machine.processes().items() if not args.startswith("sshd")}


def refuses_connections(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return False
    except OSError:
        return True


# -- fixtures ----------------------------------------------------------------------------


@dataclass
class Booted:
    machines: Machines
    files: dict[str, list[str]]  # machine -> own_files() right after boot


@dataclass
class Deployed:
    stack: EdgeCoreStack
    machines: Machines
    fresh_preview: str  # `pulumi preview` before anything existed
    first_up: str
    app_preview: str  # `pulumi preview --diff` with the hosts up, the app not yet
    previewed_placement: dict[str, dict[str, int]]
    names: dict[str, str]  # host id -> host name
    nats_url: str


@pytest.fixture(scope="module")
def booted_machines() -> Iterator[Booted]:
    for machines in booted(*CORE, *EDGE_REGIONS):
        yield Booted(machines, {m.name: m.own_files() for m in machines})


@pytest.fixture(scope="module")
def deployed(
    booted_machines: Booted, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    if not (PULUMI_BIN / "pulumi").exists():
        pytest.fail("the Pulumi CLI is missing: run scripts/bootstrap.sh (it builds it)")
    machines = booted_machines.machines
    stack = EdgeCoreStack(tmp_path_factory.mktemp("edge-core"), machines)
    try:
        fresh = stack.run("preview")
        # The README's order: machines first, then the app's placement previewed on the
        # hosts that now exist, then the app.
        stack.run("config", "set", "deployApp", "false")
        first = stack.up()
        stack.run("config", "rm", "deployApp")
        app_preview = stack.run("preview", "--diff")
        as_json = json.loads(stack.run("preview", "--json").stdout)
        steps = [s for s in as_json["steps"] if s["urn"].endswith("Application::counter")]
        assert len(steps) == 1, as_json["steps"]
        placement = steps[0]["newState"]["inputs"].get("placement")
        assert placement, f"preview shows no placement: {steps[0]}"
        stack.up()
        outputs = stack.outputs()
        SECURED.update(client_options(outputs))
        issuer = UserIssuer.from_state(lattice_output(stack, "userIssuer"), "userIssuer")
        host = issuer.issue_with(role_in_domain(Role.HOST, "default", "core"), "test-host")
        AS_HOST.update({**SECURED, "user_credentials": RawCredentials(host.creds())})
        names = {host_id: name for name, host_id in outputs["hosts"].items()}
        yield Deployed(
            stack,
            machines,
            fresh.stdout + fresh.stderr,
            first.stdout + first.stderr,
            app_preview.stdout,
            placement,
            names,
            str(outputs["natsUrl"]),
        )
    finally:
        stack.run("destroy", "--yes", ok=False)


# -- the tests, in order ----------------------------------------------------------------


def test_preview_names_what_changes_on_each_machine(deployed: Deployed) -> None:
    said = deployed.fresh_preview
    for machine in (*CORE, *EDGE_REGIONS):
        assert re.search(rf"nats-server [^\n]*: install on {machine}\b", said), said
        assert re.search(rf"host agent [^\n]*: install on {machine}\b", said), said
    counts = command_counts(deployed.first_up)  # per resource and machine (lattice, host)
    print(f"first up (the machines, not the app), commands per machine: {counts}")
    assert {machine for machine, _ in counts} == {*CORE, *EDGE_REGIONS}, counts
    assert all(n > 0 for _, n in counts), counts


def test_the_app_runs_where_preview_placed_it(deployed: Deployed) -> None:
    planned = deployed.previewed_placement
    print(f"preview's placement: {planned}")
    # The design (README.md): counter 4 in the west, 1 on one core host, none in the
    # east; keyvalue-nats on every core host; an http-server on every edge host.
    counter = planned["counter"]
    core_counters = {h: n for h, n in counter.items() if h != host_name(WEST)}
    assert counter[host_name(WEST)] == 4 and list(core_counters.values()) == [1], counter
    assert set(core_counters) <= {host_name(m) for m in CORE}, counter
    assert planned["kv"] == {host_name(m): 1 for m in CORE}
    assert planned["httpserver"] == {host_name(m): 1 for m in EDGE_REGIONS}
    # Shown per host in the preview a user reads.
    for component, hosts in planned.items():
        for host, instances in hosts.items():
            assert re.search(rf'"?{host}"?\s*:\s*{instances}\b', deployed.app_preview), (
                component,
                host,
                deployed.app_preview,
            )
    assert running_placement(deployed.nats_url, deployed.names) == planned
    assert deployed.stack.outputs()["placement"] == planned


def test_the_east_edge_is_answered_by_a_core_counter(deployed: Deployed) -> None:
    machines, names = deployed.machines, deployed.names
    east, west = machines[EAST], machines[WEST]
    before = counter_calls(machines, names)
    assert host_name(EAST) not in before, before  # no counter subscribed on the east host
    answered_by: list[str] = []
    for expected in range(1, 11):
        assert eventually_count(east, "from-east") == expected
        after = counter_calls(machines, names)
        grew = [host for host, n in after.items() if n > before.get(host, 0)]
        assert len(grew) == 1, (before, after)  # one request, one invocation, one host
        answered_by += grew
        before = after
    print(f"east's requests answered by: {answered_by}")
    # Every one by the core's counter: the east's leaf node has no member of the counter's
    # queue group, and the core node it reaches serves the group's members in its own
    # cluster before those behind another leaf node (the west's).
    assert set(answered_by) <= {host_name(m) for m in CORE}, answered_by
    # The west answers its own requests (its leaf node has local counter subscribers).
    before = counter_calls(machines, names)
    for expected in range(1, 6):
        assert count(west, "from-west") == expected
    after = counter_calls(machines, names)
    grown = {h: after[h] - before.get(h, 0) for h in after if after[h] != before.get(h, 0)}
    print(f"west's requests answered by: {grown}")
    assert grown == {host_name(WEST): 5}, grown
    # One store (JetStream KV in the core) behind both regions.
    assert count(west, "from-east") == 11


def test_the_lattice_is_secured_and_nothing_secret_shows(deployed: Deployed) -> None:
    machines, stack = deployed.machines, deployed.stack
    outputs = stack.outputs()
    for machine in machines:
        refused = asyncio.run(refusals(f"nats://{machine.address}:4222", outputs))
        print(f"{machine.name} refuses: {refused}")
        assert all(refused.values()), (machine.name, refused)
        assert "Authorization Violation" in refused["no user"], (machine.name, refused)
        assert machine_leaks(machine) == {}, machine.name
    # The stack's state keeps every private material encrypted; the CLI printed none.
    exported = stack.run("stack", "export").stdout
    assert leaks(exported) == [], leaks(exported)
    for said in (deployed.fresh_preview, deployed.first_up, deployed.app_preview):
        assert leaks(said) == []
    # Each host connects as its own user (its JWT named after it), not as the tooling user.
    state = json.loads(exported)
    hosts = [r for r in state["deployment"]["resources"] if r["type"] == "wasmcloud:index:Host"]
    assert len(hosts) == 5
    for host in hosts:
        assert host["outputs"]["hostCredentials"]["4dabf18193072939515e22adb298388d"]


def test_a_second_up_changes_nothing_and_runs_no_command(deployed: Deployed) -> None:
    machines, stack = deployed.machines, deployed.stack
    files = {m.name: installed_files(m) for m in machines}
    services = {m.name: services_running(m) for m in machines}
    sessions = {m.name: ssh_sessions(m) for m in machines}
    stack.run("preview", "--expect-no-changes")
    done = stack.up()
    said = done.stdout + done.stderr
    # Converged: the provider finds nothing to do on any machine, so the engine runs no
    # update (which is where `<machine>: N commands` would be logged).
    assert re.search(r"\b8 unchanged\b", said) and not re.search(r"\b(updated|created)\b", said)
    counts = command_counts(said)
    assert all(n == 0 for _, n in counts), counts
    # What the machines saw: read-only probes over SSH, no upload, no file changed, no
    # service restarted.
    probes = {}
    for machine in machines:
        commands, uploads = ssh_sessions(machine)
        commands -= sessions[machine.name][0]
        uploads -= sessions[machine.name][1]
        probes[machine.name] = commands
        assert uploads == 0, f"{machine.name}: {uploads} SFTP sessions in a converged up"
        assert installed_files(machine) == files[machine.name], machine.name
        assert services_running(machine) == services[machine.name], machine.name
    print(
        f"second up: provider's command counts {counts or 'none logged (no update ran)'}; "
        f"SSH commands per machine (preview + up, probes only): {probes}; 0 uploads"
    )


def test_a_cluster_node_down_keeps_serving_and_up_repairs_it(deployed: Deployed) -> None:
    machines, stack = deployed.machines, deployed.stack
    victim = machines[VICTIM]
    # The counts live in the app's JetStream KV bucket (keyvalue-nats makes it on first
    # use): they survive a node only with copies on the others, as the lattice's own
    # buckets have.
    before = count(machines[WEST], "node-down")
    replicas, leader = store_replicas(deployed.nats_url)
    print(f"the counter's bucket {COUNTER_STREAM}: {replicas} replicas, leader {leader}")
    assert replicas == len(CORE), f"{COUNTER_STREAM} has {replicas} replica(s), on {leader}"
    # The node's service is stopped the hard way: its supervisor's process group killed.
    pid = victim.inside(["cat", "/var/lib/wasmcloud/services/nats-server/pid"]).stdout.strip()
    assert pid.isdigit(), f"no nats-server service pid on {VICTIM}"
    killed = victim.inside(["sh", "-c", f"kill -KILL -{pid}"])  # sh's kill takes a group
    assert killed.returncode == 0, killed.stderr
    deadline = time.monotonic() + 30
    while not refuses_connections(victim.address, 4222):
        assert time.monotonic() < deadline, f"nats-server on {VICTIM} still accepts clients"
        time.sleep(0.2)

    # The first answer from each region may wait for the leaf node that was connected to
    # the dead node to reconnect to another one (and JetStream to elect new leaders).
    went_down = time.monotonic()
    assert eventually_count(machines[WEST], "node-down") == before + 1
    assert eventually_count(machines[EAST], "node-down") == before + 2
    waited = time.monotonic() - went_down
    print(f"with {VICTIM}'s node down: both regions answered within {waited:.1f}s")
    assert [count(machines[EAST], "node-down") for _ in range(3)] == [
        before + 3,
        before + 4,
        before + 5,
    ]
    status, asked = app_status(deployed.nats_url)
    print(f"with {VICTIM}'s node down: the app is {status.value} (asked {asked} times)")
    assert status == StatusType.DEPLOYED
    # Nothing moved: every host still runs what the plan gave it.
    running = running_placement(deployed.nats_url, deployed.names)
    assert running == deployed.previewed_placement, host_log(victim)

    preview = stack.run("preview", "--diff", ok=False)
    said = preview.stdout + preview.stderr
    assert re.search(rf"nats-server[^\n]*: (re)?start on {VICTIM}\b", said), said
    stack.up()
    routes = monitoring(victim, "routez")
    assert {r["remote_name"] for r in routes["routes"]} == set(CORE) - {VICTIM}, routes

    async def hosts_seen(nc: Any) -> int:
        return len(await CtlClient(nc, "default").ping_hosts(wait=2.0))

    # The repaired node serves clients again and reaches every host (routes and leaves).
    assert with_nats(f"nats://{victim.address}:4222", hosts_seen, **SECURED) == 5
    assert count(machines[EAST], "node-down") == before + 6
    stack.run("preview", "--expect-no-changes")


NETWORK_CUT_SECONDS = 5.0  # how long the west machine is off the network (the fault)


def test_an_edge_machine_off_the_network_and_back_loses_nothing(deployed: Deployed) -> None:
    machines = deployed.machines
    west, east = machines[WEST], machines[EAST]
    before = count(east, "cut")
    served = failed = 0
    west.namespace.set_cable(False)
    cut_at = time.monotonic()
    try:
        # The east region never depended on the west (a core counter answers it): it is
        # served the whole time the west is away. Bounded: the cut's length.
        while time.monotonic() - cut_at < NETWORK_CUT_SECONDS:
            try:
                assert count(east, "cut") == before + served + 1
                served += 1
            except (AssertionError, OSError):
                failed += 1
            time.sleep(0.2)
    finally:
        west.namespace.set_cable(True)
    back_at = time.monotonic()
    # The west answers again, from the same store: no increment lost or doubled.
    assert eventually_count(west, "cut", within=60) == before + served + 1
    answered_after = time.monotonic() - back_at
    status, _ = app_status(deployed.nats_url)
    running = running_placement(deployed.nats_url, deployed.names)
    converged = time.monotonic() - back_at
    print(
        f"FAULT the west edge machine off the network {NETWORK_CUT_SECONDS:.0f} s: east "
        f"requests served {served} / failed {failed}; the west answered {answered_after:.1f} s "
        f"after it was back, app {status.value} and placement as planned {converged:.1f} s after"
    )
    assert failed == 0, f"the east failed {failed} request(s) while only the west was away"
    assert served > 0
    assert status == StatusType.DEPLOYED
    # No host was dropped for the cut (it is shorter than the heartbeat timeout): nothing
    # moved.
    assert running == deployed.previewed_placement, host_log(west)


def test_destroy_leaves_the_machines_as_booted(deployed: Deployed, booted_machines: Booted) -> None:
    deployed.stack.run("destroy", "--yes")
    for machine in deployed.machines:
        deadline = time.monotonic() + 20
        while machine.processes():  # the provider's SSH sessions end as it exits
            assert time.monotonic() < deadline, f"{machine.name} still runs {machine.processes()}"
            time.sleep(0.2)
        assert machine.own_files() == booted_machines.files[machine.name], machine.name
