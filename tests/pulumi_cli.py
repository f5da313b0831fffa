"""The real Pulumi CLI on a throwaway project: shared by the end-to-end tests and
benchmarks/preview.py, so both run programs exactly the way `make up` does; and the e2e
program's stack, shared by the e2e modules."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from host_agent.local.supervisor import ManagedProcess
from tests.lattice import ROOT, free_port, http_get

VENV = ROOT / ".tools" / "venv"
PULUMI_BIN = ROOT / ".tools" / "pulumi" / "v3.259.0" / "bin"


def write_project(folder: Path, name: str, program: str) -> Path:
    """A Python project whose language host and wasmcloud provider come from the venv."""
    folder.mkdir(parents=True)
    (folder / "__main__.py").write_text(program)
    (folder / "Pulumi.yaml").write_text(
        f"""name: {name}
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: {VENV}
plugins:
  languages:
    - name: python
      path: {VENV / "bin"}
  providers:
    - name: wasmcloud
      path: {VENV / "bin"}
"""
    )
    return folder


def cli_environment(workdir: Path, passphrase: str) -> dict[str, str]:
    """A file backend and PULUMI_HOME under ``workdir``: nothing touches ~/.pulumi."""
    (workdir / "backend").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "PATH": f"{PULUMI_BIN}:{VENV / 'bin'}:{os.environ['PATH']}",
        "PULUMI_BACKEND_URL": f"file://{workdir / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE": passphrase,
        "PULUMI_HOME": str(workdir / "pulumi-home"),
        "PULUMI_SKIP_UPDATE_CHECK": "1",
    }


E2E_PROGRAM = Path(__file__).parent / "e2e" / "program.py"


class Stack:
    """The e2e program (tests/e2e/program.py) as a Pulumi project + stack in a temporary
    folder (file backend), on free ports, with its state folder under ``workdir``."""

    command_timeout = 600  # seconds one pulumi command may take

    def __init__(
        self,
        workdir: Path,
        name: str,
        program: str | None = None,
        extra_ports: tuple[str, ...] = (),
        settings: dict[str, object] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``program`` replaces the e2e program; ``extra_ports`` are more free ports it is
        configured with, ``settings`` more config, ``env`` more environment for the CLI
        (the lattice's processes inherit it)."""
        text = E2E_PROGRAM.read_text() if program is None else program
        self.dir = write_project(workdir / "project", f"wasmcloud-{name}", text)
        self.state = workdir / "state"
        port_names = ("natsPort", "redisPort", "httpPort", *extra_ports)
        self.ports = {key: free_port() for key in port_names}
        self.env = {**cli_environment(workdir, name), **(env or {})}
        self.varied: set[str] = set()  # config keys a test set (reset_config undoes them)
        self.run("stack", "init", name)
        stack_settings = {**self.ports, "root": ROOT, "stateDir": self.state, **(settings or {})}
        for key, value in stack_settings.items():
            self.config(key, str(value))
        self.varied.clear()  # the settings above are the stack's, not a test's

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports['natsPort']}"

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["pulumi", "--non-interactive", *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=self.command_timeout,
        )
        if ok and done.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def config(self, key: str, value: str | None) -> None:
        if value is None:
            self.run("config", "rm", key)
            self.varied.discard(key)
        else:
            self.run("config", "set", "--", key, value)
            self.varied.add(key)

    def reset_config(self) -> None:
        """Back to the program's defaults (ports and paths stay)."""
        for key in sorted(self.varied):
            self.config(key, None)

    def up(
        self, *args: str, ok: bool = True, preview: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """``pulumi up``; with ``preview``, its preview first, as `make up` runs it."""
        skip = () if preview else ("--skip-preview",)
        return self.run("up", "--yes", *skip, *args, ok=ok)

    def outputs(self) -> dict[str, Any]:
        return dict(json.loads(self.run("stack", "output", "--json").stdout))

    def get(self, path: str) -> str:
        """One GET, as `curl` right after `up`: no retry and no wait for the listener (an
        Application's `up` on a local lattice returns once its http-server listens)."""
        status, body = http_get(f"http://127.0.0.1:{self.ports['httpPort']}/{path}")
        assert status == 200, body
        return body.decode()

    def count(self, key: str) -> int:
        """One request to the counter: the count it answers for ``key``."""
        body = self.get(key)
        match = re.fullmatch(rf"{re.escape(key)} -> (\d+)", body)
        assert match, body
        return int(match.group(1))

    def pid(self, name: str) -> int:
        return int((self.state / f"{name}.pid").read_text().split()[0])


@contextmanager
def e2e_stack(workdir: Path, name: str, make: Callable[[], Stack] | None = None) -> Iterator[Stack]:
    """A ``Stack`` for a test module; destroyed after, and whatever destroy could not
    stop (a process it no longer knew of) stopped by its pidfile."""
    if not (PULUMI_BIN / "pulumi").exists():
        pytest.fail("the Pulumi CLI is missing: run scripts/bootstrap.sh (it builds it)")
    stack = make() if make is not None else Stack(workdir, name)
    try:
        yield stack
    finally:
        stack.run("destroy", "--yes", ok=False)
        for pidfile in stack.state.glob("*.pid"):
            ManagedProcess(pidfile.stem, stack.state).stop()
