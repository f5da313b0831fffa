"""examples/yaml (a `runtime: yaml` program) with the real Pulumi CLI and the Pulumi YAML
language host (scripts/build-pulumi-yaml.sh): preview, up, the counter answering over
HTTP, destroy; and a program with a misspelt property, a value of the wrong type and an
unknown resource type failing at preview, each named from the provider's schema.

The example runs unmodified from a copy in the test's folder (its relative paths, the
provider's venv and the counter component, reach the clone through symlinks); only the
ports change, with `pulumi config set`, as a user would.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from host_agent.local.supervisor import ManagedProcess
from tests.lattice import ROOT, free_port, http_get
from tests.pulumi_cli import PULUMI_BIN, cli_environment

pytestmark = pytest.mark.slow  # a real lattice: NATS, redis, a registry, two hosts

EXAMPLE = ROOT / "examples" / "yaml"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the YAML host colours its diagnostics regardless


class YamlProject:
    def __init__(self, workdir: Path, program: str | None = None) -> None:
        if not (PULUMI_BIN / "pulumi-language-yaml").exists():
            pytest.fail("pulumi-language-yaml is missing: run scripts/bootstrap.sh (it builds it)")
        (workdir / "examples").mkdir(parents=True)
        self.dir = workdir / "examples" / "yaml"
        shutil.copytree(EXAMPLE, self.dir, ignore=shutil.ignore_patterns(".state", "*.lock"))
        (workdir / "examples" / "counter").symlink_to(ROOT / "examples" / "counter")
        (workdir / ".tools").symlink_to(ROOT / ".tools")
        if program is not None:
            (self.dir / "Pulumi.yaml").write_text(program)
        self.env = cli_environment(workdir, "yaml")
        self.run("stack", "init", "dev")

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["pulumi", "--non-interactive", "--color", "never", *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if ok and done.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done


def count(port: int, key: str) -> int:
    status, body = http_get(f"http://127.0.0.1:{port}/{key}")
    assert status == 200, body
    match = re.fullmatch(rf"{key} -> (\d+)", body.decode())
    assert match, body
    return int(match.group(1))


def test_yaml_example_previews_deploys_the_counter_and_destroys(tmp_path: Path) -> None:
    project = YamlProject(tmp_path)
    ports = {key: free_port() for key in ("natsPort", "redisPort", "registryPort", "httpPort")}
    for key, port in ports.items():
        project.run("config", "set", key, str(port))

    preview = project.run("preview")
    planned = preview.stdout
    for line in (
        "+  wasmcloud:index:Lattice local create",
        "+  wasmcloud:index:Host core create",
        "+  wasmcloud:index:Host edge create",
        "+  wasmcloud:index:Application counter create",
    ):
        assert line in planned, planned
    assert "warning" not in planned + preview.stderr, planned + preview.stderr

    state = project.dir / ".state"
    try:
        project.run("up", "--yes", "--skip-preview")
        outputs = json.loads(project.run("stack", "output", "--json").stdout)
        assert sorted(outputs["hosts"]) == ["local-core", "local-edge"], outputs
        assert sum(outputs["placement"]["counter"].values()) == 3, outputs
        assert outputs["try"] == f"curl http://127.0.0.1:{ports['httpPort']}/hello"

        first = count(ports["httpPort"], "yaml")
        assert count(ports["httpPort"], "yaml") == first + 1
    finally:
        project.run("destroy", "--yes", ok=False)
        for pidfile in state.glob("*.pid"):
            ManagedProcess(pidfile.stem, state).stop()
    with pytest.raises(ConnectionRefusedError):  # destroy stopped the http-server
        socket.create_connection(("127.0.0.1", ports["httpPort"]), timeout=2).close()


def test_yaml_mistakes_fail_preview_naming_them(tmp_path: Path) -> None:
    program = (EXAMPLE / "Pulumi.yaml").read_text()
    for old, new in (
        ("      natsPort: ${natsPort}", "      natsPrt: ${natsPort}"),  # a misspelt name
        ("      heartbeatSeconds: ${local.heartbeatSeconds}", "      heartbeatSeconds: often"),
        ("  edge:\n    type: wasmcloud:index:Host", "  edge:\n    type: wasmcloud:index:Hots"),
    ):
        assert old in program, old
        program = program.replace(old, new, 1)
    project = YamlProject(tmp_path, program)

    preview = project.run("preview", ok=False)
    said = ANSI.sub("", preview.stdout + preview.stderr)
    assert preview.returncode != 0, said
    assert "Property natsPrt does not exist on 'wasmcloud:index:Lattice'" in said, said
    assert "Existing properties are: natsPort," in said, said  # the nearest one first
    assert "heartbeatSeconds: Cannot assign type 'string' to type 'integer'" in said, said
    assert 'unable to find resource type "wasmcloud:index:Hots"' in said, said
    assert not (project.dir / ".state").exists()  # nothing was started
