"""An example's Pulumi project in a throwaway folder, so a test (or a benchmark) runs it
with the real CLI while the stack's config and state stay out of examples/; the logged
CLI runner and the small helpers the examples' end-to-end tests share."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import nats
import yaml

T = TypeVar("T")


def example_project(example: Path, folder: Path, stack: str | None = None) -> Path:
    """``example``'s Pulumi.yaml in ``folder``, with its program (``main``) and the venv
    paths made absolute; with ``stack``, the example's ``Pulumi.<stack>.yaml`` next to it,
    so ``pulumi stack init <stack>`` starts from the config the example ships."""
    project = yaml.safe_load((example / "Pulumi.yaml").read_text())
    project["main"] = str(example)
    options = project["runtime"]["options"]
    options["virtualenv"] = str((example / options["virtualenv"]).resolve())
    for plugins in project["plugins"].values():
        for plugin in plugins:
            plugin["path"] = str((example / plugin["path"]).resolve())
    folder.mkdir(parents=True)
    (folder / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    if stack is not None:
        shutil.copyfile(example / f"Pulumi.{stack}.yaml", folder / f"Pulumi.{stack}.yaml")
    return folder


class LoggedProject:
    """The real Pulumi CLI run in a project folder ``dir`` with ``env``: every command's
    output is kept under ``logs`` (numbered, for a failure's reader), and the long ones
    print how many seconds they took."""

    command_timeout = 900.0  # one pulumi command on machines (a first up installs them)

    def __init__(self, dir: Path, env: dict[str, str], logs: Path) -> None:
        self.dir = dir
        self.env = env
        self.logs = logs
        self.logs.mkdir()
        self.commands_run = 0

    def run(
        self, *args: str, ok: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = subprocess.run(
            ["pulumi", "--non-interactive", *args],
            cwd=self.dir,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=self.command_timeout,
        )
        took = time.monotonic() - started
        self.commands_run += 1
        log = self.logs / f"{self.commands_run:02d}-{'-'.join(args[:2])}.log"
        log.write_text(f"pulumi {' '.join(args)}\n{done.stdout}\n--- stderr\n{done.stderr}")
        if args and args[0] in ("preview", "up", "destroy"):
            print(f"pulumi {' '.join(args)}: {took:.1f}s, exit {done.returncode} ({log})")
        if ok and done.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done


def keyscan_line(host_key: str) -> str:
    """What `ssh-keyscan` prints after the address: ``ssh-ed25519 AAAA...``."""
    return " ".join(host_key.split()[:2])


def with_nats(url: str, ask: Callable[[Any], Awaitable[T]], **options: Any) -> T:
    """``ask(connection)`` on a fresh NATS connection to ``url``, closed after;
    ``options`` for nats.connect (a secured lattice's user and TLS)."""

    async def run() -> T:
        nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False, **options)
        try:
            return await ask(nc)
        finally:
            await nc.close()

    return asyncio.run(run())
