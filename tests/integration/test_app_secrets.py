"""Application secrets end to end (wadm 0.20 / host 1.4.2 semantics): real nats-server,
the NATS KV secrets backend process, a redis-server with ``requirepass``, a host and the
controller. The counter reaches Redis only with the password its manifest names as a
secret; references to secrets the backend does not have leave their application
undeployed with the secret named in its status; the password is nowhere in plain text
(logs, inventory, JetStream's files on disk, process arguments)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from nats.aio.client import Client as NatsClient

from host_agent.lattice.wadm_types import StatusType
from host_agent.secrets.client import SecretsClient, SecretsError
from host_agent.secrets.xkeys import XKey
from tests.integration.test_controller import clients, running, wait_status
from tests.lattice import (
    ROOT,
    ChildProcess,
    NatsServer,
    Processes,
    RedisServer,
    counter_manifest,
    eventually_get,
    free_port,
    http_get,
    http_server_to_counter,
    run_async,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

POLICY = {
    "name": "nats-kv",
    "type": "policy.secret.wasmcloud.dev/v1alpha1",
    "properties": {"backend": "nats-kv"},
}


class SecretsBackendProcess(ChildProcess):
    """``python -m host_agent.secrets serve``, its key in the environment only."""

    def __init__(self, nats_server: NatsServer, log: Path) -> None:
        self.log = log
        self.encryption_seed = XKey.generate().seed
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "host_agent.secrets"),
                *("--nats-server", f"127.0.0.1:{nats_server.port}", "serve"),
            ],
            env={**os.environ, "ENCRYPTION_XKEY_SEED": self.encryption_seed},
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def backend(nats_server: NatsServer, tmp_path: Path) -> Iterator[SecretsBackendProcess]:
    process = SecretsBackendProcess(nats_server, tmp_path / "secrets-backend.log")
    yield process
    process.stop()


async def put_secret(nc: NatsClient, key: str, value: str) -> int:
    client = SecretsClient(nc, "nats-kv")
    for _ in range(100):  # the backend process is still starting: no responders yet
        try:
            return await client.put(key, value)
        except SecretsError:
            await asyncio.sleep(0.1)
    raise AssertionError("the secrets backend never answered")


def secret(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "properties": {"policy": "nats-kv", "key": key}}


def counter_with_password_secret(redis: RedisServer, port: int, key: str) -> dict[str, Any]:
    """The tutorial's counter; its link to keyvalue-redis gives the URL (no password) as
    config and the password as a secret of the link's target."""
    manifest = counter_manifest(redis.url, port)
    counter = manifest["spec"]["components"][0]
    counter["traits"][1]["properties"] = {
        "namespace": "wasi",
        "package": "keyvalue",
        "interfaces": ["atomics", "store"],
        "target": {
            "name": "kvredis",
            "config": [{"name": "redis-url", "properties": {"url": redis.url}}],
            "secrets": [secret("password", key)],
        },
    }
    manifest["spec"]["policies"] = [POLICY]
    return manifest


def provider_with_secret(app: str, key: str) -> dict[str, Any]:
    """Only keyvalue-redis, its own ``password`` secret stored under ``key``."""
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": app, "annotations": {"version": "v1"}},
        "spec": {
            "policies": [POLICY],
            "components": [
                {
                    "name": "kvredis",
                    "type": "capability",
                    "properties": {
                        "image": "ghcr.io/wasmcloud/keyvalue-redis:0.28.1",
                        "secrets": [secret("password", key)],
                    },
                    "traits": [{"type": "spreadscaler", "properties": {"instances": 1}}],
                }
            ],
        },
    }


async def log_line(log: Path, text: str, timeout: float = 20.0) -> None:
    """Wait until ``text`` appears in ``log`` (a line the process writes on the event)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in log.read_text():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {text!r} in {log} within {timeout:g}s")
        await asyncio.sleep(0.1)


def ps_args() -> str:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


@run_async
async def test_redis_password_as_a_secret_counts_and_missing_secrets_are_named(
    nats_server: NatsServer,
    processes: Processes,
    backend: SecretsBackendProcess,
    tmp_path: Path,
) -> None:
    password = f"pw-{secrets.token_hex(12)}"
    redis = RedisServer(tmp_path / "redis", password=password).start()
    try:
        host = processes.host(region="local")
        controller = processes.controller()
        port = free_port()
        async with clients(nats_server) as (wadm, ctl):
            revision = await put_secret(wadm.nc, "redis-password", password)
            assert revision >= 1

            await wadm.put(
                yaml.safe_dump(counter_with_password_secret(redis, port, "redis-password"))
            )
            await wadm.deploy("counter")
            await wait_status(wadm, "counter", StatusType.DEPLOYED)
            url = f"http://127.0.0.1:{port}"
            assert await eventually_get(f"{url}/hello") == b"hello -> 1"
            assert await asyncio.to_thread(http_get, f"{url}/hello") == (200, b"hello -> 2")

            # A provider whose own secret is missing: not started, the secret named.
            await wadm.put(yaml.safe_dump(provider_with_secret("lost-provider", "no-such-key")))
            await wadm.deploy("lost-provider")
            await wait_status(
                wadm, "lost-provider", StatusType.FAILED, contains="secret 'password'"
            )
            reply = await wadm.status("lost-provider")
            assert reply.status is not None
            assert "no-such-key" in reply.status.status.message

            # A link whose target secret is missing: refused, the secret named.
            other = counter_with_password_secret(redis, free_port(), "gone-password")
            other["metadata"]["name"] = "lost-link"
            await wadm.put(yaml.safe_dump(other))
            await wadm.deploy("lost-link")
            await wait_status(wadm, "lost-link", StatusType.FAILED, contains="gone-password")

            workloads = await running(ctl, 1)
            assert "lost-provider-kvredis" not in workloads
            inventory = await ctl.get_inventory(next(iter(workloads["counter-counter"])))
            assert password not in str(inventory)
            # The value is nowhere in plain text: not in the logs, not in JetStream's
            # files (config, manifests, the secrets bucket: sealed), not in argv.
            assert password not in ps_args()
            assert backend.encryption_seed not in ps_args()

            # The backend goes away and the lattice's links change: the provider keeps
            # the link it has (with its password) and the counter goes on counting.
            backend.stop()
            await ctl.put_link(
                {
                    "source_id": "ghost",
                    "target": "nobody",
                    "name": "default",
                    "wit_namespace": "wasi",
                    "wit_package": "blobstore",
                    "interfaces": ["blobstore"],
                    "source_config": [],
                    "target_config": [],
                }
            )
            await log_line(host.log, "counter-counter -> counter-kvredis kept as pushed")
            assert await asyncio.to_thread(http_get, f"{url}/hello") == (200, b"hello -> 3")
        for process in (host, controller):
            process.stop()
        for log in (host.log, controller.log, backend.log):
            assert password not in log.read_text(), log
        nats_server.stop()
        for path in nats_server.store.rglob("*"):
            if path.is_file():
                assert password.encode() not in path.read_bytes(), path
    finally:
        redis.stop()


SECRET_READER = ROOT / "tests" / "components" / "secret-reader" / "build" / "secret-reader.wasm"


def secret_reader_app(port: int, key: str) -> dict[str, Any]:
    """tests/components/secret-reader behind http-server, given one secret, ``greeting``."""
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "reader", "annotations": {"version": "v1"}},
        "spec": {
            "policies": [POLICY],
            "components": [
                {
                    "name": "reader",
                    "type": "component",
                    "properties": {
                        "image": f"file://{SECRET_READER}",
                        "secrets": [secret("greeting", key)],
                    },
                    "traits": [{"type": "spreadscaler", "properties": {"instances": 1}}],
                },
                http_server_to_counter(port) | {"name": "http"},
            ],
        },
    }


@run_async
async def test_a_component_reads_its_secrets_through_wasmcloud_secrets_and_no_others(
    nats_server: NatsServer, processes: Processes, backend: SecretsBackendProcess
) -> None:
    greeting, other = f"hi-{secrets.token_hex(8)}", f"no-{secrets.token_hex(8)}"
    processes.host()
    processes.controller()
    port = free_port()
    manifest = secret_reader_app(port, "greeting-key")
    manifest["spec"]["components"][1]["traits"][1]["properties"]["target"]["name"] = "reader"
    async with clients(nats_server) as (wadm, _):
        await put_secret(wadm.nc, "greeting-key", greeting)
        await put_secret(wadm.nc, "other-key", other)  # in the backend, not in the manifest
        await wadm.put(yaml.safe_dump(manifest))
        await wadm.deploy("reader")
        await wait_status(wadm, "reader", StatusType.DEPLOYED)
        url = f"http://127.0.0.1:{port}"
        assert (
            await eventually_get(f"{url}/greeting")
            == hashlib.sha256(greeting.encode()).hexdigest().encode()
        )
        for name in ("other-key", "other"):
            status, body = await asyncio.to_thread(http_get, f"{url}/{name}")
            assert (status, body) == (404, f"no secret {name}: SecretsError_NotFound".encode())
