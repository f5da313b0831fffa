"""The host agent's planners, pure: from a machine's facts and a wheelhouse, the changes
still needed (install, upgrade, a host's config, the controller, removal), with the
sentences preview shows; a converged machine gets none. Also the facts' parsers, the
environment file as sh reads it, and what a wheelhouse needs of a machine."""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from pulumi_wasmcloud.provision.agent import (
    AGENT_DIR,
    CONTROLLER_SERVICE,
    AgentFacts,
    ControllerConfig,
    HostAgentConfig,
    InstalledAgent,
    host_service,
    parse_installed,
    parse_missing,
    parse_users,
    plan_controller,
    plan_host_agent,
    plan_remove_controller,
    plan_remove_host_agent,
    venv_path,
)
from pulumi_wasmcloud.provision.changes import Change, Shell, Upload
from pulumi_wasmcloud.provision.connector import ProvisionError
from pulumi_wasmcloud.provision.facts import MachineFacts, OsRelease
from pulumi_wasmcloud.provision.operations import Unsupported
from pulumi_wasmcloud.provision.service import (
    ServiceSpec,
    ServiceState,
    render_environment,
    render_supervisor,
    render_systemd_unit,
)
from pulumi_wasmcloud.provision.wheelhouse import (
    Wheelhouse,
    _applies_to_this_minor,
    dependency_pins,
    source_sha256,
    wheel_needs,
    wheels_sha256,
)

MACHINE = "edge-1"
WHEELS = (
    "pulumi_wasmcloud-{version}-py3-none-any.whl",
    "pydantic_core-2.41.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "pynacl-1.6.2-cp38-abi3-manylinux_2_34_x86_64.whl",
    "wasmtime-50.0.1-py3-none-manylinux1_x86_64.whl",
    "nats_py-2.11.0-py3-none-any.whl",
)
SEED = "SNAB2GHBDBQ5C2U5HLQSFWKJKUPHIMJIXCRC3IZNQJGB3U4X5BTG6DCBDM"


def wheelhouse(directory: Path, version: str = "0.1.0") -> Wheelhouse:
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for name in WHEELS:
        path = directory / name.format(version=version)
        path.write_bytes(f"wheel {path.name}".encode())
        files.append(path)
    site = directory / "site-packages.tar.gz"
    site.write_bytes(f"site-packages of {version}".encode())
    return Wheelhouse(version, wheels_sha256(tuple(files)), tuple(sorted(files)), site)


@pytest.fixture
def wheels(tmp_path: Path) -> Wheelhouse:
    return wheelhouse(tmp_path / "0.1.0")


@pytest.fixture
def newer(tmp_path: Path) -> Wheelhouse:
    return wheelhouse(tmp_path / "0.2.0", "0.2.0")


def machine(
    python: str | None = "3.11.2",
    arch: str = "x86_64",
    os_id: str = "debian",
    systemd: bool = False,
) -> MachineFacts:
    return MachineFacts(OsRelease(os_id, "12"), arch, python, systemd)


def fresh(services: tuple[str, ...] = ("host-edge-1-host",), **machine_fields: Any) -> AgentFacts:
    return AgentFacts(
        machine=machine(**machine_fields),
        missing=(),
        installed=None,
        agent_dir=False,
        services={name: ServiceState(None, False, None) for name in services},
        leftovers=frozenset(),
        users=frozenset(),
    )


def host(name: str = "edge-1-host", **labels: str) -> HostAgentConfig:
    return HostAgentConfig(
        name,
        {
            "WASMCLOUD_HOST_SEED": SEED,
            "WASMCLOUD_NATS_HOST": "198.18.0.2",
            "WASMCLOUD_LATTICE": "default",
            **{f"WASMCLOUD_LABEL_{k}": v for k, v in labels.items()},
        },
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def uploads(plan: list[Change]) -> dict[str, Upload]:
    return {c.path: c for change in plan for c in change.commands if isinstance(c, Upload)}


def applied(facts: AgentFacts, plan: list[Change], wheels: Wheelhouse) -> AgentFacts:
    """The facts of the machine after ``plan`` ran: what its uploads wrote (a `.new`
    file is moved in place at the start), the install, every service running."""
    written = {path.removesuffix(".new"): u.data for path, u in uploads(plan).items()}
    services = {}
    for name, state in facts.services.items():
        definition = written.get(f"/var/lib/wasmcloud/services/{name}/run") or written.get(
            f"/etc/systemd/system/wasmcloud-{name}.service"
        )
        environment = written.get(f"/etc/wasmcloud/{name}.env")
        started = any(c.description.startswith(f"{name} service: ") for c in plan)
        services[name] = ServiceState(
            sha256(definition) if definition else state.definition_sha256,
            state.running or started,
            sha256(environment) if environment else state.environment_sha256,
        )
    return AgentFacts(
        machine=facts.machine,
        missing=(),
        installed=InstalledAgent(wheels.version, wheels.sha256),
        agent_dir=True,
        services=services,
        leftovers=frozenset(n for n, state in services.items() if state.running),
        users=facts.users | {n for n, state in services.items() if state.running},
    )


def described(plan: list[Change]) -> list[str]:
    return [change.description for change in plan]


@pytest.mark.parametrize("systemd", [False, True])
def test_a_fresh_machine_gets_the_install_the_config_and_the_service(
    wheels: Wheelhouse, systemd: bool
) -> None:
    plan = plan_host_agent(MACHINE, fresh(systemd=systemd), wheels, host())
    assert described(plan) == [
        "host agent 0.1.0: install on edge-1",
        "host-edge-1-host service: define on edge-1",
        "host edge-1-host config: write on edge-1",
        "host-edge-1-host service: start on edge-1",
    ]
    install = plan[0].commands
    assert isinstance(install[0], Upload) and install[0].mode == 0o600
    assert isinstance(install[1], Shell)
    script = install[1].command
    # The machine runs no pip: it gets the wheels laid out once, here, as one archive,
    # checks it, and extracts it into a venv made without pip.
    assert install[0].data == wheels.site_packages.read_bytes()
    archive = install[0].path
    sha256 = hashlib.sha256(install[0].data).hexdigest()
    assert f"printf '%s  %s\\n' {sha256} {archive} | sha256sum -c --quiet" in script
    assert f"python3 -m venv --without-pip {venv_path(wheels.sha256)}" in script
    assert f'tar -xzf {archive} -C "$site"' in script
    assert "pip" not in script.replace("--without-pip", "")
    # The marker is the last thing the install writes, once the venv imports the agent.
    assert script.index("> installed.tmp") > script.index("-c 'import host_agent'")
    assert script.index("-c 'import host_agent'") > script.index("tar -xzf")
    environment = uploads(plan)["/etc/wasmcloud/host-edge-1-host.env.new"]
    assert environment.mode == 0o600
    assert f"WASMCLOUD_HOST_SEED='{SEED}'" in environment.data.decode()
    assert "XDG_CACHE_HOME='/var/lib/wasmcloud/host-edge-1-host'" in environment.data.decode()
    start = plan[-1].commands[-1]
    assert isinstance(start, Shell)
    # The config is moved in place and the host's own state directory made just before
    # it starts.
    assert start.command.startswith(
        "mv -f /etc/wasmcloud/host-edge-1-host.env.new /etc/wasmcloud/host-edge-1-host.env "
        "&& mkdir -p -m 0700 /var/lib/wasmcloud/host-edge-1-host || exit 1; "
    )
    # The service runs its install's own venv, never the seed on its command line.
    [definition] = [u.data.decode() for p, u in uploads(plan).items() if "service" in p]
    assert f"{venv_path(wheels.sha256)}/bin/python -m host_agent" in definition
    assert SEED not in definition


@pytest.mark.parametrize("systemd", [False, True])
def test_a_converged_machine_gets_no_change(wheels: Wheelhouse, systemd: bool) -> None:
    facts = fresh(systemd=systemd)
    done = applied(facts, plan_host_agent(MACHINE, facts, wheels, host()), wheels)
    assert plan_host_agent(MACHINE, done, wheels, host()) == []


def test_a_new_version_is_installed_and_the_host_moved_to_it(
    wheels: Wheelhouse, newer: Wheelhouse
) -> None:
    facts = fresh()
    done = applied(facts, plan_host_agent(MACHINE, facts, wheels, host()), wheels)
    plan = plan_host_agent(MACHINE, done, newer, host())
    assert described(plan) == [
        "host agent 0.1.0 => 0.2.0 on edge-1",
        "host-edge-1-host service: redefine on edge-1",
        "host-edge-1-host service: restart on edge-1",
    ]
    # Written beside the running one, moved in place between stop and start; then the
    # install it no longer uses goes.
    assert "/var/lib/wasmcloud/services/host-edge-1-host/run.new" in uploads(plan)
    _stop, start, collect = plan[-1].commands
    assert isinstance(start, Shell) and start.command.startswith(
        "mv -f /var/lib/wasmcloud/services/host-edge-1-host/run.new "
    )
    assert isinstance(collect, Shell) and f"for d in {AGENT_DIR}/venv-*" in collect.command
    assert plan_host_agent(MACHINE, applied(done, plan, newer), newer, host()) == []


def test_the_same_version_with_other_wheels_is_a_reinstall(
    wheels: Wheelhouse, tmp_path: Path
) -> None:
    facts = fresh()
    done = applied(facts, plan_host_agent(MACHINE, facts, wheels, host()), wheels)
    (tmp_path / "other").mkdir()
    changed = wheelhouse(tmp_path / "other")
    changed.files[0].write_bytes(b"rebuilt")
    changed = Wheelhouse(
        "0.1.0", wheels_sha256(changed.files), changed.files, changed.site_packages
    )
    assert described(plan_host_agent(MACHINE, done, changed, host()))[0] == (
        "host agent 0.1.0: reinstall on edge-1 (its wheels changed)"
    )


def test_a_config_change_restarts_only_that_host(wheels: Wheelhouse) -> None:
    facts = fresh(services=("host-edge-1-a", "host-edge-1-b"))
    plan = plan_host_agent(MACHINE, facts, wheels, host("edge-1-a"))
    facts = applied(facts, plan, wheels)
    facts = applied(facts, plan_host_agent(MACHINE, facts, wheels, host("edge-1-b")), wheels)
    relabelled = plan_host_agent(MACHINE, facts, wheels, host("edge-1-a", tier="web"))
    assert described(relabelled) == [
        "host edge-1-a config: update on edge-1",
        "host-edge-1-a service: restart on edge-1",
    ]
    assert plan_host_agent(MACHINE, facts, wheels, host("edge-1-b")) == []


def test_the_controller_runs_from_the_same_install(wheels: Wheelhouse) -> None:
    facts = fresh(services=(CONTROLLER_SERVICE, "host-edge-1-host"))
    facts = applied(facts, plan_host_agent(MACHINE, facts, wheels, host()), wheels)
    config = ControllerConfig({"WADM_NATS_SERVER": "198.18.0.2:4222"})
    plan = plan_controller(MACHINE, facts, wheels, config)
    assert described(plan) == [
        "controller service: define on edge-1",
        "controller config: write on edge-1",
        "controller service: start on edge-1",
    ]
    definition = uploads(plan)["/var/lib/wasmcloud/services/controller/run"].data.decode()
    assert f"{venv_path(wheels.sha256)}/bin/python -m host_agent.cli.controller" in definition
    assert plan_controller(MACHINE, applied(facts, plan, wheels), wheels, config) == []


def test_the_host_runs_under_its_resource_name(wheels: Wheelhouse) -> None:
    # The friendly name is what placement tables and `wash get hosts` show.
    facts = fresh()
    plan = plan_host_agent(MACHINE, facts, wheels, host())
    definition = uploads(plan)["/var/lib/wasmcloud/services/host-edge-1-host/run"].data.decode()
    assert "-m host_agent --friendly-name edge-1-host" in definition


@pytest.mark.parametrize(
    ("machine_fields", "said"),
    [
        ({"python": None}, "edge-1 (debian 12, x86_64) has no python3"),
        ({"python": "3.10.12"}, "edge-1 (debian 12, x86_64) has Python 3.10.12; the host agent "
         "needs 3.11 or newer"),
        ({"python": "3.12.3"}, "has Python 3.12.3, and the host agent's wheels are built for "
         "CPython 3.11"),
        ({"arch": "aarch64"}, "edge-1 (debian 12, aarch64): the host agent's wheels (wasmtime's "
         "among them) are built for x86_64"),
        ({"os_id": "alpine"}, "need glibc (manylinux), which Alpine does not have"),
    ],
)  # fmt: skip
def test_a_machine_the_wheels_cannot_serve_is_refused_by_name_before_any_change(
    wheels: Wheelhouse, machine_fields: dict[str, object], said: str
) -> None:
    facts = fresh(("host-edge-1-host", CONTROLLER_SERVICE), **machine_fields)
    with pytest.raises(Unsupported) as refused:
        plan_host_agent(MACHINE, facts, wheels, host())
    assert said in str(refused.value)
    with pytest.raises(Unsupported) as refused:
        plan_controller(MACHINE, facts, wheels, ControllerConfig({}))
    assert said in str(refused.value)


def test_a_machine_without_python3_venv_is_refused_naming_what_to_install(
    wheels: Wheelhouse,
) -> None:
    facts = fresh()
    facts = AgentFacts(**{**facts.__dict__, "missing": ("flock", "python3-venv")})
    with pytest.raises(Unsupported) as refused:
        plan_host_agent(MACHINE, facts, wheels, host())
    assert "edge-1 (debian 12, x86_64) lacks flock, python3-venv" in str(refused.value)


def test_removing_a_host_keeps_the_install_while_the_controller_uses_it(
    wheels: Wheelhouse,
) -> None:
    facts = fresh(services=(CONTROLLER_SERVICE, "host-edge-1-host"))
    facts = applied(facts, plan_host_agent(MACHINE, facts, wheels, host()), wheels)
    config = ControllerConfig({})
    facts = applied(facts, plan_controller(MACHINE, facts, wheels, config), wheels)
    plan = plan_remove_host_agent(MACHINE, facts, "edge-1-host")
    assert described(plan) == [
        "host-edge-1-host service: remove from edge-1",
        "host edge-1-host: remove from edge-1",
    ]
    commands = [str(c) for change in plan for c in change.commands]
    assert (
        "rm -rf /etc/wasmcloud/host-edge-1-host.env /etc/wasmcloud/host-edge-1-host.env.new "
        "/var/lib/wasmcloud/host-edge-1-host"
    ) in commands
    assert not any(f"rm -rf {AGENT_DIR}" in c for c in commands)

    # The last user takes the install with it, after checking again on the machine.
    gone = AgentFacts(
        **{
            **facts.__dict__,
            "services": {
                CONTROLLER_SERVICE: facts.services[CONTROLLER_SERVICE],
                "host-edge-1-host": ServiceState(None, False, None),
            },
            "leftovers": frozenset({CONTROLLER_SERVICE}),
            "users": frozenset({CONTROLLER_SERVICE}),
        }
    )
    plan = plan_remove_controller(MACHINE, gone)
    assert described(plan) == [
        "controller service: remove from edge-1",
        "controller: remove from edge-1",
    ]
    [agent] = [c for c in plan[-1].commands if f"rm -rf {AGENT_DIR}" in str(c)]
    assert isinstance(agent, Shell)
    assert 'if [ -z "$used" ]; then rm -rf /opt/wasmcloud/agent; fi' in agent.command
    assert "flock 9" in agent.command


def test_removal_converges(wheels: Wheelhouse) -> None:
    nothing = fresh()
    assert plan_remove_host_agent(MACHINE, nothing, "edge-1-host") == []
    assert plan_remove_controller(MACHINE, fresh(services=(CONTROLLER_SERVICE,))) == []
    # A removal cut short after the service went: the unused install still goes.
    left = AgentFacts(**{**nothing.__dict__, "agent_dir": True})
    [change] = plan_remove_host_agent(MACHINE, left, "edge-1-host")
    assert change.description == "host edge-1-host: remove from edge-1"
    with pytest.raises(ValueError, match="the facts have no service host-other"):
        plan_remove_host_agent(MACHINE, nothing, "other")


def test_host_names_that_cannot_name_a_service_are_refused() -> None:
    assert host_service("edge-1") == "host-edge-1"
    for bad in ("Edge", "edge_1", "x" * 60, ""):
        with pytest.raises(ValueError, match="host name"):
            HostAgentConfig(bad, {})


def test_the_facts_parsers_are_strict() -> None:
    sha = "a" * 64
    assert parse_installed(f"0.1.0 {sha}\ndir\n") == (InstalledAgent("0.1.0", sha), True)
    assert parse_installed("absent\nno-dir\n") == (None, False)
    for bad in (f"0.1.0 {sha}\n", "0.1.0\ndir\n", f"0.1.0 {sha[:-1]}\ndir\n", "absent\nyes\n"):
        with pytest.raises(ValueError):
            parse_installed(bad)
    assert parse_missing("ok\n") == ()
    assert parse_missing("missing: flock python3-venv\n") == ("flock", "python3-venv")
    with pytest.raises(ValueError):
        parse_missing("fine\n")
    assert parse_users(
        "/var/lib/wasmcloud/services/host-a/run\n/etc/wasmcloud/controller.env\n"
    ) == {"host-a", "controller"}
    with pytest.raises(ValueError, match="/etc/passwd"):
        parse_users("/etc/passwd\n")


VALUES: Mapping[str, str] = {
    "PLAIN": "edge",
    "SPACES": "a b  c",
    "QUOTE": 'it\'s "quoted"',
    "SHELL": "$HOME `id` $(id) \\n \\",
    "EMPTY": "",
}


def test_the_environment_file_is_read_by_sh_exactly(tmp_path: Path) -> None:
    path = tmp_path / "host.env"
    path.write_text(render_environment(VALUES))
    script = f"set -a; . {path}; set +a; " + "; ".join(
        f'printf "%s\\0" "${name}"' for name in VALUES
    )
    done = subprocess.run(["sh", "-c", script], capture_output=True, check=True)
    assert done.stdout.decode().split("\0")[:-1] == list(VALUES.values())


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        ({"1X": "a"}, "environment variable name '1X'"),
        ({"A-B": "a"}, "environment variable name 'A-B'"),
        ({"A": "two\nlines"}, "environment variable A: a value cannot hold a line break"),
    ],
)
def test_an_environment_that_cannot_be_a_file_is_refused(
    variables: dict[str, str], said: str
) -> None:
    with pytest.raises(ValueError, match=said):
        render_environment(variables)


def test_services_read_their_environment_file() -> None:
    spec = ServiceSpec(
        "host-a", ("/opt/x/bin/python", "-m", "host_agent"), "d", environment_file="/etc/w/a.env"
    )
    assert "EnvironmentFile=/etc/w/a.env\nExecStart=/opt/x/bin/python" in render_systemd_unit(spec)
    script = render_supervisor(spec)
    assert "( set -a; . /etc/w/a.env; exec /opt/x/bin/python -m host_agent ) &" in script
    assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0
    with pytest.raises(ValueError, match="environment_file of service host-a"):
        ServiceSpec("host-a", ("/bin/true",), "d", environment_file="relative.env")


def test_what_the_wheels_need_of_a_machine() -> None:
    names = [name.format(version="0.1.0") for name in WHEELS]
    needs = wheel_needs(names)
    assert (needs.python, needs.arch, needs.glibc) == ((3, 11), "x86_64", True)
    assert wheel_needs(["nats_py-2.11.0-py3-none-any.whl"]).arch is None
    with pytest.raises(ValueError, match="several architectures"):
        wheel_needs([*names, "wasmtime-50.0.1-py3-none-manylinux1_aarch64.whl"])
    with pytest.raises(ValueError, match="not a wheel file name"):
        wheel_needs(["wasmtime.tar.gz"])


def test_wheelhouse_hashes_follow_names_and_contents(tmp_path: Path) -> None:
    a = wheelhouse(tmp_path / "a")
    b = wheelhouse(tmp_path / "b")
    assert a.sha256 == b.sha256
    b.files[0].write_bytes(b"changed")
    assert wheels_sha256(b.files) != a.sha256
    source = tmp_path / "src"
    (source / "host_agent").mkdir(parents=True)
    (source / "pyproject.toml").write_text("[project]\n")
    (source / "host_agent" / "x.py").write_text("x = 1\n")
    before = source_sha256(source)
    (source / "host_agent" / "__pycache__").mkdir()
    (source / "host_agent" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert source_sha256(source) == before
    (source / "host_agent" / "x.py").write_text("x = 2\n")
    assert source_sha256(source) != before


def test_dependencies_of_another_patch_release_are_kept() -> None:
    # Debian 12's Python is 3.11.2: redis needs async-timeout there, not on 3.11.3+.
    minor = "{}.{}".format(*sys.version_info[:2])
    assert _applies_to_this_minor(
        Requirement(f'async-timeout>=4.0.3; python_full_version < "{minor}.3"')
    )
    assert not _applies_to_this_minor(Requirement(f'tomli; python_version < "{minor}"'))
    assert not _applies_to_this_minor(Requirement('x; extra == "dev"'))


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="redis's marker names 3.11.3")
def test_the_wheelhouse_pins_what_any_311_machine_needs(tmp_path: Path) -> None:
    redis = importlib.metadata.version("redis")
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "x"\nversion = "1"\ndependencies = ["redis=={redis}"]\n'
    )
    pins = dependency_pins(tmp_path)
    assert f"redis=={redis}" in pins
    # Installed here (3.11.3+) or not, Debian 12's 3.11.2 needs it.
    assert any(pin.startswith("async-timeout") for pin in pins)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "1"\ndependencies = ["redis>=5"]\n'
    )
    with pytest.raises(ProvisionError, match="redis>=5 is not pinned"):
        dependency_pins(tmp_path)
