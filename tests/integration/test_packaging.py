"""`make package` (scripts/package.sh) as a user installs its output: the plugin archive
with `pulumi plugin install resource wasmcloud <version> --file <archive>` into a fresh
PULUMI_HOME, the SDK wheel with pip into a fresh virtualenv, and a program in a folder
outside this repository previewed with the real CLI. Nothing of the clone is on that
program's way: no .tools/venv on PATH, no `plugins:` path for the provider, and the
CLI's ambient (PATH) plugins ignored, so the provider the engine starts is the installed
plugin's.

The fresh venv gets the wheel's dependencies without the network: pip resolves the
wheel's requirements (``[pulumi]`` extra included) against a folder of links to the
third-party packages of .tools/venv (never its pulumi_wasmcloud/host_agent), put on the
venv's path by a .pth file; a requirement the wheel states that is not there fails the
install.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import pulumi_wasmcloud
from tests.lattice import ROOT
from tests.pulumi_cli import PULUMI_BIN, VENV

pytestmark = pytest.mark.slow  # a wheel build, a venv and two previews

VERSION = pulumi_wasmcloud.__version__
# The archive is named for the machine it was built on, as Pulumi names plugin archives.
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
ARCHIVE = f"pulumi-resource-wasmcloud-v{VERSION}-{platform.system().lower()}-{ARCH}.tar.gz"
PROGRAM = """\
import pulumi
import pulumi_wasmcloud as wasmcloud

lattice = wasmcloud.Lattice("lattice", nats_port=14222, state_dir="state")
host = wasmcloud.Host("core", lattice=lattice, labels={"tier": "core"})
app = wasmcloud.Application(
    "hello",
    lattice=lattice,
    components=[
        wasmcloud.CapabilityProvider("httpserver", image="ghcr.io/wasmcloud/http-server:0.23.0")
    ],
    opts=pulumi.ResourceOptions(depends_on=[host]),
)
# Where the SDK was imported from, for the test (preview --json carries no outputs).
with open("sdk-path.txt", "w") as where:
    where.write(wasmcloud.__file__)
"""
PROJECT = """\
name: outside
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: venv
# The SDK wheel brings the language host (pulumi-language-python) with it.
plugins:
  languages:
    - name: python
      path: venv/bin
"""
YAML_PROGRAM = """\
name: yaml-outside
runtime: yaml
resources:
  lattice:
    type: wasmcloud:index:Lattice
    properties:
      natsPort: 14223
      stateDir: state
"""


@dataclass
class Installed:
    dist: Path
    project: Path
    env: dict[str, str]

    def pulumi(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["pulumi", "--non-interactive", *args],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if ok and done.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done


def link_dependencies(into: Path) -> None:
    """Links to every third-party package of .tools/venv (what the wheel's requirements
    resolve against), leaving out this project's own."""
    site = Path(sysconfig.get_paths(vars={"base": str(VENV), "platbase": str(VENV)})["purelib"])
    own = ("pulumi_wasmcloud", "host_agent", "__editable__", "_distutils_hack", "distutils-")
    into.mkdir()
    for entry in site.iterdir():
        if entry.name.startswith(own) or entry.suffix == ".pth" or entry.name == "__pycache__":
            continue
        (into / entry.name).symlink_to(entry)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("packaging")
    assert not work.resolve().is_relative_to(ROOT), "the program must live outside the repo"
    dist = work / "dist"
    made = subprocess.run(
        ["bash", str(ROOT / "scripts" / "package.sh"), str(dist)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, made.stderr

    project = work / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(PROJECT)
    (project / "__main__.py").write_text(PROGRAM)
    venv = project / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    link_dependencies(work / "dependencies")
    venv_site = sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"]
    (Path(venv_site) / "zz-dependencies.pth").write_text(f"{work / 'dependencies'}\n")
    wheel = dist / f"pulumi_wasmcloud-{VERSION}-py3-none-any.whl"
    pip = subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "pip", "--python", str(venv / "bin" / "python"),
         "install", "--no-index", f"{wheel}[pulumi]"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stdout + pip.stderr

    (work / "backend").mkdir()
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "PYTHONPATH") and not key.startswith("PULUMI_")
    }
    env = environment | {
        # The CLI (and the exec script its Python language host runs programs with), and
        # the system's tools; not the clone's venv.
        "PATH": f"{PULUMI_BIN}:/usr/local/bin:/usr/bin:/bin",
        "PULUMI_HOME": str(work / "pulumi-home"),
        "PULUMI_BACKEND_URL": f"file://{work / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE": "packaging",
        "PULUMI_SKIP_UPDATE_CHECK": "1",
        "PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
    }
    done = Installed(dist, project, env)
    archive = dist / ARCHIVE
    done.pulumi("plugin", "install", "resource", "wasmcloud", VERSION, "--file", str(archive))
    done.pulumi("stack", "init", "dev")
    yield done


def test_package_writes_the_plugin_archive_and_the_wheel(installed: Installed) -> None:
    names = sorted(path.name for path in installed.dist.iterdir())
    assert names == [
        ARCHIVE,
        f"pulumi_wasmcloud-{VERSION}-py3-none-any.whl",
    ]


def test_installed_plugin_and_wheel_preview_a_program_outside_the_repo(
    installed: Installed,
) -> None:
    plugins = json.loads(installed.pulumi("plugin", "ls", "--json").stdout)
    assert [(p["name"], p["kind"], p["version"]) for p in plugins] == [
        ("wasmcloud", "resource", VERSION)
    ]
    schema = json.loads(installed.pulumi("package", "get-schema", f"wasmcloud@{VERSION}").stdout)
    assert (schema["name"], schema["version"]) == ("wasmcloud", VERSION)
    assert "wasmcloud:index:Lattice" in schema["resources"]

    preview = installed.pulumi("preview", "--json")
    result = json.loads(preview.stdout)
    created = sorted(
        step["urn"].rsplit("::", 1)[1]
        for step in result["steps"]
        if step["op"] == "create" and step["urn"].split("::")[2].startswith("wasmcloud:")
    )
    assert created == ["core", "hello", "lattice"], preview.stdout
    sdk = Path((installed.project / "sdk-path.txt").read_text())
    assert sdk.is_relative_to(installed.project / "venv"), sdk  # the wheel's, not the clone's


def test_installed_plugin_previews_a_yaml_program(installed: Installed) -> None:
    """A Pulumi YAML program has no virtualenv of its own: the plugin runs on the one
    PULUMI_WASMCLOUD_PYTHON names, and the YAML host checks the program against the
    schema the installed plugin serves."""
    project = installed.project.parent / "yaml-project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(YAML_PROGRAM)
    env = installed.env | {"PULUMI_WASMCLOUD_PYTHON": str(installed.project / "venv/bin/python")}
    yaml = Installed(installed.dist, project, env)
    yaml.pulumi("stack", "init", "dev")
    preview = yaml.pulumi("preview", "--json")
    created = [step["urn"].rsplit("::", 1)[1] for step in json.loads(preview.stdout)["steps"]]
    assert created == ["yaml-outside-dev", "lattice"], preview.stdout


def test_plugin_names_the_python_it_cannot_run_on(installed: Installed) -> None:
    """The installed plugin starts the provider on a Python that has the SDK at its
    version; given one that has none, preview fails saying so and how to fix it."""
    env = installed.env | {"PULUMI_WASMCLOUD_PYTHON": sys.base_prefix + "/bin/python3"}
    done = subprocess.run(
        ["pulumi", "--non-interactive", "preview"],
        cwd=installed.project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = done.stdout + done.stderr
    assert done.returncode != 0, said
    assert f"pulumi-resource-wasmcloud {VERSION}: PULUMI_WASMCLOUD_PYTHON=" in said, said
    assert "has no pulumi-wasmcloud" in said, said
    assert f"pip install '{installed.env['PULUMI_HOME']}/plugins/" in said, said
