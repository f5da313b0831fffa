"""A whole lattice on this machine: what ``wash up`` + ``wash app deploy`` do in the
tutorial. nats-server (JetStream on disk), redis-server, and one host running the
controller in-process, each a detached process with its pidfile and log under the
state folder; then the manifest is put and deployed through the wadm API.

Re-running ``up`` reuses whatever still runs and converges the rest; ``down`` stops every
process it started (and only those).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors

from host_agent.lattice.client import CtlClient
from host_agent.lattice.wadm import WadmClient, WadmError
from host_agent.lattice.wadm_types import StatusType
from host_agent.local.supervisor import (
    ManagedProcess,
    StartError,
    listening_async,
    run_blocking,
    start_server,
)
from host_agent.model import load_manifest

Progress = Callable[[str], None]


class LocalLatticeError(StartError):
    """Something a person has to fix; the message says what."""


@dataclass
class LocalLattice:
    state_dir: Path
    nats_port: int = 4222
    redis_port: int = 6379
    lattice: str = "default"
    labels: dict[str, str] = field(default_factory=lambda: {"region": "local"})
    progress: Progress = print

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    def processes(self) -> dict[str, ManagedProcess]:
        names = ("nats-server", "redis-server", "host")
        return {name: ManagedProcess(name, self.state_dir) for name in names}

    # ---------------------------------------------------------------------------------
    def up(self, manifest_path: Path, timeout: float = 120.0) -> None:
        asyncio.run(self._up(manifest_path, timeout))

    def down(self) -> list[str]:
        """Stop host, redis-server, nats-server (in that order); return what was stopped."""
        return run_blocking(self._down())

    # ---------------------------------------------------------------------------------
    async def _up(self, manifest_path: Path, timeout: float) -> None:
        procs = self.processes()
        await self._start(
            procs["nats-server"],
            [tool("nats-server"), "-a", "127.0.0.1", "-p", str(self.nats_port), "-js",
             "-sd", str(self.state_dir / "jetstream")],
            self.nats_port,
            "--nats-port",
        )  # fmt: skip
        await self._start(
            procs["redis-server"],
            [tool("redis-server"), "--bind", "127.0.0.1", "--port", str(self.redis_port),
             "--dir", str(self.state_dir), "--save", "60", "1"],
            self.redis_port,
            "--redis-port",
        )  # fmt: skip
        labels = [arg for k, v in sorted(self.labels.items()) for arg in ("--label", f"{k}={v}")]
        host_argv = [
            tool("wasmcloud-host"), "--nats-port", str(self.nats_port), "--lattice",
            self.lattice, "--allow-file-load", "--with-controller", *labels,
        ]  # fmt: skip
        pid, started = procs["host"].start(host_argv, cwd=Path.cwd())
        self.progress(f"{'started' if started else 'reusing'} host + controller (pid {pid})")
        await self._deploy(manifest_path, timeout)

    async def _down(self) -> list[str]:
        stopped = []
        for name, proc in reversed(self.processes().items()):
            if await proc.stop_async():
                stopped.append(name)
                self.progress(f"stopped {name}")
        return stopped

    async def _start(self, proc: ManagedProcess, argv: list[str], port: int, flag: str) -> None:
        pid, started = await start_server(proc, argv, port, f"pick another port with {flag}")
        where = f"127.0.0.1:{port}"
        if started:
            self.progress(f"started {proc.name} (pid {pid}, {where}, log {proc.logfile})")
        else:
            self.progress(f"reusing {proc.name} (pid {pid}, {where})")

    async def _deploy(self, manifest_path: Path, timeout: float) -> None:
        manifest = load_manifest(manifest_path).manifest
        nc = await nats.connect(self.nats_url)
        try:
            wadm = WadmClient(nc, self.lattice)
            ctl = CtlClient(nc, self.lattice)
            deadline = time.monotonic() + timeout
            await _until(deadline, lambda: _has_host(ctl), "no host joined the lattice")
            await _until(deadline, lambda: _answers(wadm), "the controller did not answer")
            stored = await wadm.versions(manifest.name)
            if any(v.version == manifest.version for v in stored.versions):
                self.progress(f"{manifest.name} {manifest.version} already stored")
            else:
                try:
                    put = await wadm.put(manifest_path.read_bytes())
                except WadmError as exc:
                    raise LocalLatticeError(f"{manifest_path}: {exc}") from None
                self.progress(f"put {put.name} {put.current_version}")
            await wadm.deploy(manifest.name, manifest.version)
            self.progress(f"deploying {manifest.name} {manifest.version} ...")
            last = ""
            while time.monotonic() < deadline:
                reply = await wadm.status(manifest.name)
                info = reply.status.status if reply.status else None
                if info and info.type is StatusType.DEPLOYED:
                    self.progress(f"{manifest.name}: deployed")
                    await self._wait_for_http(manifest_path, deadline)
                    return
                shown = f"{info.type.value}: {info.message}" if info else "waiting"
                if shown != last:
                    self.progress(f"  {manifest.name}: {shown}")
                    last = shown
                await asyncio.sleep(0.25)
            raise LocalLatticeError(
                f"{manifest.name} did not reach deployed in {timeout:.0f}s (last: {last}); "
                f"see {self.state_dir}/host.log"
            )
        finally:
            await nc.close()

    async def _wait_for_http(self, manifest_path: Path, deadline: float) -> None:
        """Deployed means links are set; the HTTP listener opens a moment later, when
        the provider has received its link. Wait for it so the printed curl works."""
        for url in http_addresses(manifest_path):
            host, _, port = url.removeprefix("http://").rpartition(":")
            while not await listening_async(int(port), host) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            self.progress(f"listening on {url}")


async def _until(deadline: float, check: Callable[[], Awaitable[bool]], what: str) -> None:
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise LocalLatticeError(f"{what}; see the logs in the state folder")


async def _has_host(ctl: CtlClient) -> bool:
    return bool(await ctl.ping_hosts(wait=0.3))


async def _answers(wadm: WadmClient) -> bool:
    try:
        await wadm.list()
        return True
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        return False


def tool(name: str) -> str:
    """A program from this Python's environment first (the bootstrap's venv), then PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise LocalLatticeError(f"{name} not found; run `bash scripts/bootstrap.sh` first")
    return found


def http_addresses(manifest_path: Path) -> list[str]:
    """Where the manifest's HTTP servers listen (config properties named ``address``),
    as URLs to try from this machine."""
    manifest = load_manifest(manifest_path).manifest
    found = []
    for component in manifest.spec.components:
        for trait in component.link_traits:
            for config in trait.properties.effective_source_config:
                address = (config.properties or {}).get("address")
                if address:
                    host, _, port = address.rpartition(":")
                    found.append(
                        f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
                    )
    return found
