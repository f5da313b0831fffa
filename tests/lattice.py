"""Test helpers: a real nats-server with JetStream on disk, and real host processes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import nats.errors
import yaml
from nats.aio.client import Client as NatsClient

from host_agent.lattice.subjects import CtlSubjects

VENV_BIN = Path(sys.executable).parent


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test function with asyncio.run (fixtures still resolve by name)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block runs: bound but
    never listening, so no other test's server can take it (a closed free_port() can be
    reused by a parallel worker and then answer)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


class NatsServer:
    """``nats-server -js`` on a loopback port with a store directory that survives restarts."""

    def __init__(self, store: Path, port: int | None = None, args: tuple[str, ...] = ()) -> None:
        self.store = store
        self.port = port or free_port()
        self.args = args  # more nats-server options, e.g. ("-c", a config with JetStream limits)
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "nats-server"),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.store),
                *self.args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 20
        for line in self.proc.stdout:
            if re.search(r"Server is ready", line):
                return self
            if time.monotonic() > deadline:
                break
        raise RuntimeError("nats-server did not become ready")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class RedisServer:
    """Debian's ``redis-server`` on a loopback port, without persistence; with
    ``password``, it refuses clients that do not give it (``--requirepass``)."""

    def __init__(self, workdir: Path, port: int | None = None, password: str | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def url_with(self, password: str) -> str:
        return f"redis://:{password}@127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        auth = ["--requirepass", self.password] if self.password else []
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--bind", "127.0.0.1", "--port", str(self.port), *auth),
                *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Up: it answers PING (or, with a password, asks for it).
        ready = b"-NOAUTH" if self.password else b"+PONG"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(ready):
                    return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class ChildProcess:
    """A process a test started, logging to a file; stopped with SIGTERM, then SIGKILL."""

    proc: subprocess.Popen[bytes]
    _log_file: Any

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
            if self.proc.poll() is None:
                self.proc.kill()
        self._log_file.close()
        return self.proc.wait()

    def kill(self) -> None:
        """Die without a goodbye (no host_stopped): what a crashed machine looks like."""
        self.proc.kill()
        self.proc.wait()


class HostProcess(ChildProcess):
    """``python -m host_agent`` configured the way the real host is: by environment."""

    def __init__(
        self,
        nats: NatsServer,
        labels: dict[str, str],
        *args: str,
        lattice: str = "default",
        heartbeat: float = 1.0,
        log: Path,
    ) -> None:
        env = {
            **os.environ,
            "WASMCLOUD_NATS_HOST": "127.0.0.1",
            "WASMCLOUD_NATS_PORT": str(nats.port),
            "WASMCLOUD_LATTICE": lattice,
            "WASMCLOUD_HEARTBEAT_INTERVAL": str(heartbeat),
        }
        env |= {f"WASMCLOUD_LABEL_{k}": v for k, v in labels.items()}
        self.log = log
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "host_agent", *args],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )


async def first_host_id(nc: NatsClient, attempts: int = 100) -> str:
    """Ping until a host answers; return its id."""
    for _ in range(attempts):
        try:
            msg = await nc.request(CtlSubjects().host_ping(), b"", timeout=0.5)
            if msg.data:
                host_id: str = json.loads(msg.data)["response"]["id"]
                return host_id
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("no host answered a ping")


class ControllerProcess(ChildProcess):
    """``wasmcloud-controller`` against a test nats-server."""

    def __init__(self, nats: NatsServer, *args: str, lattice: str = "default", log: Path) -> None:
        self.log = log
        self._log_file = log.open("a")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "host_agent.cli.controller",
                "--nats-server",
                f"127.0.0.1:{nats.port}",
                "--lattice",
                lattice,
                "--heartbeat-interval",
                "1",
                "--lease-ttl",
                "3",
                *args,
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def controller_id(self, timeout: float = 20.0) -> str:
        """The id this controller logs when it starts (what it writes in the leader lease)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log.read_text().splitlines():
                with suppress(json.JSONDecodeError):
                    entry = json.loads(line)
                    if entry.get("message") == "controller started":
                        return str(entry["controller"])
            time.sleep(0.1)
        raise AssertionError(f"no 'controller started' line in {self.log}")


def http_get(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, data=data, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def eventually_get(url: str, want_status: int = 200, tries: int = 150) -> bytes:
    """GET until the listener is up and the component answers (links arrive async)."""
    last: object = None
    for _ in range(tries):
        try:
            status, body = await asyncio.to_thread(http_get, url)
            if status == want_status:
                return body
            last = (status, body)
        except OSError as error:  # listener not up yet
            last = error
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered {want_status}: last {last!r}")


class Processes:
    def __init__(self, nats_server: NatsServer, tmp: Path) -> None:
        self.nats = nats_server
        self.tmp = tmp
        self.started: list[HostProcess | ControllerProcess] = []

    def host(self, **labels: str) -> HostProcess:
        log = self.tmp / f"host{len(self.started)}.log"
        host = HostProcess(self.nats, labels, "--allow-file-load", log=log)
        self.started.append(host)
        return host

    def controller(self) -> ControllerProcess:
        log = self.tmp / f"controller{len(self.started)}.log"  # one each: ids are per log
        controller = ControllerProcess(self.nats, log=log)
        self.started.append(controller)
        return controller


ROOT = Path(__file__).resolve().parents[1]
COUNTER_WASM = ROOT / "examples" / "counter" / "build" / "counter.wasm"


def counter_manifest(redis_url: str, port: int) -> dict[str, Any]:
    """examples/counter/wadm.yaml, pointed at this test's Redis and a free port."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "counter" / "wadm.yaml").read_text())
    counter, _, http = data["spec"]["components"]
    counter["properties"]["image"] = f"file://{COUNTER_WASM}"
    counter["traits"][1]["properties"]["target_config"][0]["properties"]["url"] = redis_url
    http["traits"][0]["properties"]["source_config"][0]["properties"]["address"] = (
        f"127.0.0.1:{port}"
    )
    return data


def spreadscaler(instances: int, spread: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A spreadscaler trait of ``instances``, over ``spread`` when given."""
    properties: dict[str, Any] = {"instances": instances}
    if spread is not None:
        properties["spread"] = spread
    return {"type": "spreadscaler", "properties": properties}


def counter_on_inmemory_kv(
    instances: int, spread: list[dict[str, Any]] | None = None, **properties: Any
) -> dict[str, Any]:
    """The counter component (``properties`` added to its own), linked to a component
    named ``kv`` over wasi:keyvalue atomics + store."""
    return {
        "name": "counter",
        "type": "component",
        "properties": {"image": f"file://{COUNTER_WASM}", **properties},
        "traits": [
            spreadscaler(instances, spread),
            {
                "type": "link",
                "properties": {
                    "target": {"name": "kv"},
                    "namespace": "wasi",
                    "package": "keyvalue",
                    "interfaces": ["atomics", "store"],
                },
            },
        ],
    }


def inmemory_kv(spread: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One builtin in-memory keyvalue provider named ``kv``."""
    return {
        "name": "kv",
        "type": "capability",
        "properties": {"image": "builtin:keyvalue-inmemory"},
        "traits": [spreadscaler(1, spread)],
    }


def http_server_to_counter(port: int, spread: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One http-server provider named ``http`` on 127.0.0.1:``port``, linked to ``counter``
    over wasi:http incoming-handler."""
    listen = {"name": "listen", "properties": {"address": f"127.0.0.1:{port}"}}
    return {
        "name": "http",
        "type": "capability",
        "properties": {"image": "ghcr.io/wasmcloud/http-server:0.23.0"},
        "traits": [
            spreadscaler(1, spread),
            {
                "type": "link",
                "properties": {
                    "target": {"name": "counter"},
                    "namespace": "wasi",
                    "package": "http",
                    "interfaces": ["incoming-handler"],
                    "source": {"config": [listen]},
                },
            },
        ],
    }
