"""The host agent and the controller installed on namespace machines over SSH (real sshd,
the machine's own python3 -m venv, the wheelhouse's site-packages archive extracted into
it, the real host
joining a real nats-server provisioned on the machine): seen over NATS from here,
converged on a second run, upgraded keeping the host id, a failing install and a
dropped connection leaving the old agent running and converging on a re-run, and
removal leaving nothing of ours."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shutil
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient

from host_agent.host.identity import HostIdentity
from host_agent.lattice.client import CtlClient
from pulumi_wasmcloud.provision.agent import (
    AGENT_DIR,
    CONTROLLER_SERVICE,
    ControllerConfig,
    HostAgentConfig,
    Wheelhouse,
    gather_agent_facts,
    host_service,
    host_wheelhouse,
    plan_controller,
    plan_host_agent,
    plan_remove_controller,
    plan_remove_host_agent,
    venv_path,
)
from pulumi_wasmcloud.provision.changes import Change, apply
from pulumi_wasmcloud.provision.connector import (
    CommandFailed,
    ConnectionLost,
    ProvisionError,
    SshConnection,
    SshTarget,
)
from pulumi_wasmcloud.provision.nats_config import JetStreamSettings, NatsServerSettings, render
from pulumi_wasmcloud.provision.operations import (
    NATS_SERVER_STORE,
    gather_nats_server_facts,
    packaged_nats_server,
    plan_nats_server,
)
from pulumi_wasmcloud.provision.wheelhouse import (
    _pip,
    build_wheelhouse,
    cache_root,
    source_files,
    source_tree,
    wheelhouse_in,
)
from tests.machines import Machine, Machines, booted

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

LATTICE = "edge-core"
MACHINE = "edge-1"
HEARTBEAT_SECONDS = 1


@pytest.fixture
def machines() -> Iterator[Machines]:
    yield from booted(MACHINE)


@pytest.fixture(scope="module")
def wheelhouse() -> Wheelhouse:
    return host_wheelhouse()


@pytest.fixture(scope="module")
def bumped(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    """The same project at version 0.1.0.post1: a copy of the source tree with its
    version bumped, built like the real one (in the same cache: its dependency wheels
    are the real wheelhouse's, so only the project's wheel is built)."""
    source = source_tree()
    copy = tmp_path_factory.mktemp("bumped-source")
    for relative in source_files(source):
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, copy / relative)
    pyproject = copy / "pyproject.toml"
    text, bumps = re.subn(r'(?m)^version = "(.*)"$', r'version = "\1.post1"', pyproject.read_text())
    assert bumps == 1
    pyproject.write_text(text)
    return build_wheelhouse(copy, cache_root())


def connect(machines: Machines) -> SshConnection:
    machine = machines[MACHINE]
    return SshConnection.connect(
        SshTarget(
            name=MACHINE,
            host=machine.address,
            private_key=machines.client_key.private_openssh,
            known_host_key=machine.host_key,
        )
    )


def with_nats(machines: Machines) -> str:
    """nats-server (JetStream on) on the machine, as plan_nats_server installs it."""
    machine = machines[MACHINE]
    settings = NatsServerSettings(
        server_name=MACHINE,
        host=machine.address,
        jetstream=JetStreamSettings(store_dir=NATS_SERVER_STORE, max_file_store=1 << 28),
    )
    with connect(machines) as connection:
        facts = gather_nats_server_facts(connection)
        apply(
            connection, plan_nats_server(MACHINE, facts, packaged_nats_server(), render(settings))
        )
    return f"nats://{machine.address}:4222"


def host_config(name: str, machine: Machine, seed: str, **extra: str) -> HostAgentConfig:
    return HostAgentConfig(
        name=name,
        environment={
            "WASMCLOUD_HOST_SEED": seed,
            "WASMCLOUD_NATS_HOST": machine.address,
            "WASMCLOUD_NATS_PORT": "4222",
            "WASMCLOUD_LATTICE": LATTICE,
            "WASMCLOUD_HEARTBEAT_INTERVAL": str(HEARTBEAT_SECONDS),
            "WASMCLOUD_LABEL_region": "edge",
            **extra,
        },
    )


def controller_config(machine: Machine) -> ControllerConfig:
    return ControllerConfig(
        environment={
            "WADM_NATS_SERVER": f"{machine.address}:4222",
            "WASMCLOUD_LATTICE": LATTICE,
        }
    )


def run(
    machines: Machines, planner: Any, wheelhouse: Wheelhouse | None, config: Any = None
) -> tuple[list[str], int]:
    """One run as `up` makes it: facts (one round trip), plan, apply. The plan's
    sentences and how many commands ran besides the probe."""
    services = [host_service(config.name)] if isinstance(config, HostAgentConfig) else []
    if isinstance(config, ControllerConfig):
        services = [CONTROLLER_SERVICE]
    with connect(machines) as connection:
        facts = gather_agent_facts(connection, services)
        plan: list[Change] = planner(MACHINE, facts, wheelhouse, config)
        ran = apply(connection, plan)
        assert connection.commands_run == 1 + ran
    return [change.description for change in plan], ran


def remove(machines: Machines, name: str | None) -> tuple[list[str], int]:
    service = host_service(name) if name is not None else CONTROLLER_SERVICE
    with connect(machines) as connection:
        facts = gather_agent_facts(connection, [service])
        plan = (
            plan_remove_host_agent(MACHINE, facts, name)
            if name is not None
            else plan_remove_controller(MACHINE, facts)
        )
        return [change.description for change in plan], apply(connection, plan)


def heartbeat_of(nats_url: str, host_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The first heartbeat of ``host_id`` seen on the lattice from here, and its
    inventory asked over the control interface."""

    async def wait() -> dict[str, Any]:
        nc: NatsClient = await nats.connect(nats_url, connect_timeout=5)
        try:
            sub = await nc.subscribe(f"wasmbus.evt.{LATTICE}.host_heartbeat")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                try:
                    msg = await sub.next_msg(timeout=max(deadline - loop.time(), 0.01))
                except TimeoutError:
                    raise AssertionError(
                        f"no heartbeat of {host_id} on {nats_url} within {timeout:g}s"
                    ) from None
                if json.loads(msg.data)["source"] == host_id:
                    break
            return await CtlClient(nc, LATTICE, timeout=5).get_inventory(host_id)
        finally:
            await nc.close()

    return asyncio.run(wait())


def pids_of(machine: Machine, service: str) -> list[int]:
    """The pids of processes running ``service``'s python (not its supervisor)."""
    listing = machine.inside(["ps", "-ww", "-eo", "pid=,args="]).stdout
    module = "host_agent.cli.controller" if service == CONTROLLER_SERVICE else "host_agent"
    found = []
    for line in listing.splitlines():
        pid, _, args = line.strip().partition(" ")
        argv = args.split()
        if len(argv) >= 3 and argv[0].endswith("/bin/python") and argv[1:3] == ["-m", module]:
            environ = machine.inside(["cat", f"/proc/{pid}/environ"]).stdout
            cache = f"XDG_CACHE_HOME=/var/lib/wasmcloud/{service}"
            if service == CONTROLLER_SERVICE or cache in environ.split("\0"):
                found.append(int(pid))
    return found


def running(machine: Machine, service: str, timeout: float = 30.0) -> int:
    """The pid of ``service``'s python once it runs (its supervisor forks it)."""
    deadline = time.monotonic() + timeout
    while not (found := pids_of(machine, service)):
        if time.monotonic() > deadline:
            log = machine.inside(["tail", "-n", "20", f"/var/log/wasmcloud/{service}.log"])
            raise AssertionError(f"{service} is not running: {log.stdout}")
        time.sleep(0.2)  # polling the machine's process list, not a synchronisation
    [pid] = found
    return pid


def argv_of(machine: Machine, pid: int) -> list[str]:
    cmdline: str = machine.inside(["cat", f"/proc/{pid}/cmdline"]).stdout
    return cmdline.split("\0")[:-1]


def test_hosts_are_installed_and_seen_a_second_run_runs_nothing_and_a_config_change_restarts_one(
    machines: Machines, wheelhouse: Wheelhouse
) -> None:
    machine = machines[MACHINE]
    nats_url = with_nats(machines)
    first, second = HostIdentity.generate(), HostIdentity.generate()
    a = host_config("edge-1-a", machine, first.seed)
    b = host_config("edge-1-b", machine, second.seed)
    described, ran = run(machines, plan_host_agent, wheelhouse, a)
    version = wheelhouse.version
    assert described == [
        f"host agent {version}: install on edge-1",
        "host-edge-1-a service: define on edge-1",
        "host edge-1-a config: write on edge-1",
        "host-edge-1-a service: start on edge-1",
    ]
    assert ran == 5  # wheelhouse; install; definition; environment; start
    # The second host shares the install: only its own service and config.
    assert run(machines, plan_host_agent, wheelhouse, b)[0] == [
        "host-edge-1-b service: define on edge-1",
        "host edge-1-b config: write on edge-1",
        "host-edge-1-b service: start on edge-1",
    ]
    for identity in (first, second):
        inventory = heartbeat_of(nats_url, identity.public_key)
        assert inventory["host_id"] == identity.public_key
        assert inventory["labels"]["region"] == "edge"
    # The seed is in a file only root reads, not on a command line.
    stat = machine.inside(["stat", "-c", "%a %U", "/etc/wasmcloud/host-edge-1-a.env"])
    assert stat.stdout.split() == ["600", "root"]
    stat = machine.inside(["stat", "-c", "%a %U", "/var/lib/wasmcloud/host-edge-1-a"])
    assert stat.stdout.split() == ["700", "root"]
    a_pid = running(machine, "host-edge-1-a")
    assert first.seed not in " ".join(argv_of(machine, a_pid))
    assert argv_of(machine, a_pid)[0] == f"{venv_path(wheelhouse.sha256)}/bin/python"
    # The native wasi:http host came with the install: proxy-world components run on it.
    python = f"{venv_path(wheelhouse.sha256)}/bin/python"
    native = machine.inside([python, "-c", "import wasmcloud_native as n; print(n.HttpGuest)"])
    assert native.stdout.strip() == "<class 'wasmcloud_native.HttpGuest'>"

    assert run(machines, plan_host_agent, wheelhouse, a) == ([], 0)
    assert run(machines, plan_host_agent, wheelhouse, b) == ([], 0)

    b_pid = running(machine, "host-edge-1-b")
    relabelled = host_config("edge-1-a", machine, first.seed, WASMCLOUD_LABEL_tier="web")
    assert run(machines, plan_host_agent, wheelhouse, relabelled)[0] == [
        "host edge-1-a config: update on edge-1",
        "host-edge-1-a service: restart on edge-1",
    ]
    assert heartbeat_of(nats_url, first.public_key)["labels"]["tier"] == "web"
    assert pids_of(machine, "host-edge-1-a") not in ([a_pid], [])
    assert pids_of(machine, "host-edge-1-b") == [b_pid]


def test_an_upgrade_keeps_the_host_id_and_removes_the_old_install(
    machines: Machines, wheelhouse: Wheelhouse, bumped: Wheelhouse
) -> None:
    machine = machines[MACHINE]
    nats_url = with_nats(machines)
    identity = HostIdentity.generate()
    config = host_config("edge-1-host", machine, identity.seed)
    run(machines, plan_host_agent, wheelhouse, config)
    heartbeat_of(nats_url, identity.public_key)
    before = running(machine, "host-edge-1-host")

    described, _ = run(machines, plan_host_agent, bumped, config)
    assert described == [
        f"host agent {wheelhouse.version} => {bumped.version} on edge-1",
        "host-edge-1-host service: redefine on edge-1",
        "host-edge-1-host service: restart on edge-1",
    ]
    assert heartbeat_of(nats_url, identity.public_key)["host_id"] == identity.public_key
    after = running(machine, "host-edge-1-host")
    assert after != before
    assert argv_of(machine, after)[0] == f"{venv_path(bumped.sha256)}/bin/python"
    installs = machine.inside(["sh", "-c", f"ls -d {AGENT_DIR}/venv-*"]).stdout.split()
    assert installs == [venv_path(bumped.sha256)]
    marker = machine.inside(["cat", f"{AGENT_DIR}/installed"]).stdout
    assert marker == f"{bumped.version} {bumped.sha256}\n"
    assert run(machines, plan_host_agent, bumped, config) == ([], 0)


def corrupted(good: Wheelhouse, directory: Path) -> Wheelhouse:
    """``good`` with one dependency wheel cut short, as a broken download would be."""
    for path in good.files:
        target = directory / path.name
        if path.name.startswith("pydantic_core-"):
            target.write_bytes(path.read_bytes()[:4096])
        else:
            shutil.copyfile(path, target)
    return wheelhouse_in(directory, good.version)


def test_a_corrupted_wheel_is_refused_here_before_any_machine_is_touched(
    wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    with pytest.raises(ProvisionError) as refused:
        corrupted(wheelhouse, tmp_path)
    said = str(refused.value)
    assert said.startswith(
        f"wheelhouse: installing the wheels of {tmp_path} into one site-packages tree failed"
    )
    assert re.search(r"pydantic_core-\S+\.whl is invalid", said)  # pip's words
    assert not (tmp_path / "site-packages.tar.gz").exists()


def cut_short(good: Wheelhouse, directory: Path) -> Wheelhouse:
    """``good`` whose site-packages archive was cut short when it was written (its
    checksum is of the short bytes, so only extracting it fails)."""
    archive = directory / "site-packages.tar.gz"
    archive.write_bytes(good.site_packages.read_bytes()[: 1 << 20])
    return dataclasses.replace(good, site_packages=archive)


def test_a_failing_install_shows_its_output_and_the_old_agent_keeps_running(
    machines: Machines, wheelhouse: Wheelhouse, bumped: Wheelhouse, tmp_path: Path
) -> None:
    machine = machines[MACHINE]
    nats_url = with_nats(machines)
    identity = HostIdentity.generate()
    config = host_config("edge-1-host", machine, identity.seed)
    run(machines, plan_host_agent, wheelhouse, config)
    serving = running(machine, "host-edge-1-host")

    broken = cut_short(bumped, tmp_path)
    with pytest.raises(CommandFailed) as failed:
        run(machines, plan_host_agent, broken, config)
    said = str(failed.value)
    assert "failed on edge-1 with exit code" in said
    assert "unexpected end of file" in said.lower()  # gzip's words, through tar
    assert pids_of(machine, "host-edge-1-host") == [serving]
    assert heartbeat_of(nats_url, identity.public_key)["host_id"] == identity.public_key
    marker = machine.inside(["cat", f"{AGENT_DIR}/installed"]).stdout
    assert marker == f"{wheelhouse.version} {wheelhouse.sha256}\n"
    assert machine.inside(["test", "-e", venv_path(broken.sha256)]).returncode == 1
    assert machine.inside(["sh", "-c", f"ls {AGENT_DIR}/*.tar.gz"]).returncode != 0

    # Given the good wheelhouse again there is nothing to do; a good new one upgrades.
    assert run(machines, plan_host_agent, wheelhouse, config) == ([], 0)
    run(machines, plan_host_agent, bumped, config)
    heartbeat_of(nats_url, identity.public_key)
    assert run(machines, plan_host_agent, bumped, config) == ([], 0)


def test_a_connection_dropped_mid_install_is_named_and_a_rerun_converges(
    machines: Machines, wheelhouse: Wheelhouse
) -> None:
    machine = machines[MACHINE]
    nats_url = with_nats(machines)
    identity = HostIdentity.generate()
    config = host_config("edge-1-host", machine, identity.seed)
    cut: list[int] = []
    done = threading.Event()

    def cut_when_installing() -> None:
        # Watch the machine until the install script runs, then kill sshd's session
        # processes there (not PID 1, the listener): our connection drops mid-command.
        while not done.is_set():
            listing = machine.inside(["ps", "-ww", "-eo", "pid=,args="]).stdout
            if "python3 -m venv --without-pip" in listing:
                for line in listing.splitlines():
                    pid, _, args = line.strip().partition(" ")
                    if args.startswith("sshd") and pid != "1":
                        machine.inside(["kill", "-9", pid])
                        cut.append(int(pid))
                return
            done.wait(0.05)  # a poll interval, not a synchronisation

    watcher = threading.Thread(target=cut_when_installing, daemon=True)
    watcher.start()
    try:
        with pytest.raises(ConnectionLost) as lost:
            run(machines, plan_host_agent, wheelhouse, config)
    finally:
        done.set()
        watcher.join(10)
    assert cut, "the install was never seen running"
    said = str(lost.value)
    assert said.startswith(f"the SSH connection to edge-1 ({machine.address}:22) dropped")
    assert "Re-run" in said

    described, _ = run(machines, plan_host_agent, wheelhouse, config)
    assert "host-edge-1-host service: start on edge-1" in described
    assert heartbeat_of(nats_url, identity.public_key)["host_id"] == identity.public_key
    assert run(machines, plan_host_agent, wheelhouse, config) == ([], 0)


def listing(machine: Machine) -> list[str]:
    """Every path under the trees we write to, but inside NATS's store (the controller
    makes its streams there: the lattice's data, removed with nats-server)."""
    found = machine.inside(["find", "/opt", "/etc", "/var/lib", "/var/log"])
    return sorted(p for p in found.stdout.splitlines() if not p.startswith(NATS_SERVER_STORE + "/"))


def test_removal_keeps_the_install_while_used_and_then_leaves_nothing(
    machines: Machines, wheelhouse: Wheelhouse
) -> None:
    machine = machines[MACHINE]
    nats_url = with_nats(machines)
    before = listing(machine)
    identity = HostIdentity.generate()
    config = host_config("edge-1-host", machine, identity.seed)
    run(machines, plan_host_agent, wheelhouse, config)
    assert run(machines, plan_controller, wheelhouse, controller_config(machine))[0] == [
        "controller service: define on edge-1",
        "controller config: write on edge-1",
        "controller service: start on edge-1",
    ]
    heartbeat_of(nats_url, identity.public_key)
    running(machine, CONTROLLER_SERVICE)

    described, _ = remove(machines, "edge-1-host")
    assert described == [
        "host-edge-1-host service: remove from edge-1",
        "host edge-1-host: remove from edge-1",
    ]
    assert pids_of(machine, "host-edge-1-host") == []
    # The controller still runs from the shared install.
    assert machine.inside(["test", "-d", AGENT_DIR]).returncode == 0
    running(machine, CONTROLLER_SERVICE)
    for path in ("/etc/wasmcloud/host-edge-1-host.env", "/var/lib/wasmcloud/host-edge-1-host"):
        assert machine.inside(["test", "-e", path]).returncode == 1, path
    assert remove(machines, "edge-1-host") == ([], 0)

    assert remove(machines, None)[0] == [
        "controller service: remove from edge-1",
        "controller: remove from edge-1",
    ]
    assert pids_of(machine, CONTROLLER_SERVICE) == []
    processes = machine.inside(["ps", "-ww", "-eo", "args="]).stdout
    assert "python" not in processes and AGENT_DIR not in processes
    assert listing(machine) == before
    assert remove(machines, None) == ([], 0)


def test_the_project_wheel_is_reproducible(tmp_path: Path) -> None:
    """Two builds of one source give the same bytes, so the wheelhouse's sha256 (the
    marker a machine is compared by) names what is in it, whichever cache built it."""
    source = source_tree()
    copy = tmp_path / "source"
    for relative in source_files(source):
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, copy / relative)
    builds = []
    for shift, build in enumerate(("one", "two")):
        (tmp_path / build).mkdir()
        shutil.copytree(copy, tmp_path / build / "source")
        # The same files written at another time (as a fresh clone would have them).
        for path in (tmp_path / build / "source").rglob("*"):
            os.utime(path, (1e9 + shift * 1e6, 1e9 + shift * 1e6))
        _pip(
            "wheel",
            "--no-deps",
            "--wheel-dir",
            str(tmp_path / build),
            str(tmp_path / build / "source"),
        )
        [wheel] = (tmp_path / build).glob("*.whl")
        builds.append(wheel.read_bytes())
    assert builds[0] == builds[1]


def test_the_site_packages_archive_holds_every_wheel_compiled(
    wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    """What a machine extracts: every wheel installed (one dist-info each), byte-compiled
    (no machine compiles on first import), no console scripts naming this Python, no
    path of this machine; laid out again from the same wheels elsewhere, the same files.
    (Not the same bytes: layouts made at different times by different processes differ,
    as fresh clones showed, and nothing relies on it: machines check the archive's own
    sha256.)"""
    with tarfile.open(wheelhouse.site_packages) as archive:
        names = archive.getnames()
        assert {m.uid for m in archive.getmembers()} == {0}
    dist_infos = {name.split("/")[0] for name in names if ".dist-info" in name}
    assert len(dist_infos) == len(wheelhouse.files)
    assert "host_agent/__pycache__/__main__.cpython-311.pyc" in names
    assert "wasmtime/__pycache__/__init__.cpython-311.pyc" in names
    assert "wasmcloud_native/wasmcloud_native.abi3.so" in names  # the native wasi:http host
    assert not any(name == "bin" or name.startswith("bin/") for name in names)
    assert not any(name.endswith("/direct_url.json") for name in names)
    for wheel in wheelhouse.files:
        shutil.copyfile(wheel, tmp_path / wheel.name)
    again = wheelhouse_in(tmp_path, wheelhouse.version)
    assert again.sha256 == wheelhouse.sha256
    with tarfile.open(again.site_packages) as archive:
        assert sorted(archive.getnames()) == sorted(names)
