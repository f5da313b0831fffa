"""Application secrets on a secured lattice: nats-server in operator mode, every process
with its own user (host, controller and tooling with exactly their roles' permissions,
the secrets backend with ``backend_access``), link grants on. The counter counts against
a redis-server with ``requirepass`` whose password is a secret; tooling may put a value
but not read one."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from pathlib import Path

import nats
import nats.errors
import pytest
import yaml
from nats.aio.client import RawCredentials

from host_agent.lattice.wadm import WadmClient
from host_agent.lattice.wadm_types import StatusType
from host_agent.secrets.access import backend_access
from host_agent.secrets.client import SecretsClient, SecretsError
from host_agent.secrets.protocol import Context, SecretRequest
from host_agent.secrets.xkeys import XKey
from host_agent.security.authority import LatticeAuthority
from host_agent.security.permissions import Role
from pulumi_wasmcloud.provision.nats_config import JetStreamSettings
from tests.integration.test_app_secrets import counter_with_password_secret
from tests.integration.test_controller import wait_status
from tests.integration.test_nats_security import Node, nodes, secret_file
from tests.lattice import (
    ChildProcess,
    ControllerProcess,
    HostProcess,
    RedisServer,
    eventually_get,
    free_port,
    run_async,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

__all__ = ["nodes"]  # the fixture, shared with test_nats_security
LATTICE = "default"


class SecuredBackend(ChildProcess):
    def __init__(self, node: Node, creds: Path, log: Path) -> None:
        self.log = log
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "host_agent.secrets"),
                *("--nats-server", f"127.0.0.1:{node.port}", "--nats-creds", str(creds)),
                "serve",
            ],
            env={"ENCRYPTION_XKEY_SEED": XKey.generate().seed, "PATH": "/usr/bin:/bin"},
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )


@run_async
async def test_secrets_on_a_lattice_where_every_process_has_its_own_role(
    tmp_path: Path, nodes: list[Node]
) -> None:
    authority = LatticeAuthority.create(LATTICE)
    issuer = authority.user_issuer()
    node = Node("core-1", tmp_path)
    node.write(authority, jetstream=JetStreamSettings(store_dir=str(tmp_path / "js")))
    nodes.append(node.start())

    def user(role: Role) -> Path:
        """A user with exactly its role's permissions (the secrets API's included)."""
        creds = issuer.issue(role, str(role), LATTICE).creds()
        return secret_file(tmp_path / f"{role}.creds", creds)

    host_creds = user(Role.HOST)
    tooling_creds = user(Role.TOOLING)
    backend_creds = secret_file(
        tmp_path / "backend.creds", issuer.issue_with(backend_access("nats-kv"), "secrets").creds()
    )
    grant_issuer = secret_file(tmp_path / "issuer.json", json.dumps(issuer.to_state()))
    password = f"pw-{secrets.token_hex(12)}"
    redis = RedisServer(tmp_path / "redis", password=password).start()
    started: list[ChildProcess] = [SecuredBackend(node, backend_creds, tmp_path / "backend.log")]
    try:
        started.append(
            ControllerProcess(
                node,  # type: ignore[arg-type]
                *("--nats-creds", str(user(Role.CONTROLLER))),
                *("--grant-issuer-file", str(grant_issuer)),
                log=tmp_path / "controller.log",
            )
        )
        started.append(
            HostProcess(
                node,  # type: ignore[arg-type]
                {},
                *("--allow-file-load", "--link-grants", "--nats-creds", str(host_creds)),
                log=tmp_path / "host.log",
            )
        )
        nc = await nats.connect(
            f"nats://127.0.0.1:{node.port}",
            user_credentials=RawCredentials(tooling_creds.read_text()),
        )
        try:
            client = SecretsClient(nc, "nats-kv", timeout=1.0)
            for _ in range(100):  # the backend is still starting
                try:
                    await client.put("redis-password", password)
                    break
                except SecretsError:
                    await asyncio.sleep(0.1)
            # Tooling writes values but may not ask for one.
            request = SecretRequest(key="redis-password", context=Context())
            with pytest.raises((SecretsError, nats.errors.Error)):
                await client.get(request, "tooling's read")

            wadm = WadmClient(nc, LATTICE)
            for _ in range(100):
                try:
                    await wadm.list()
                    break
                except nats.errors.Error:
                    await asyncio.sleep(0.1)
            port = free_port()
            manifest = counter_with_password_secret(redis, port, "redis-password")
            await wadm.put(yaml.safe_dump(manifest))
            await wadm.deploy("counter")
            await wait_status(wadm, "counter", StatusType.DEPLOYED, timeout=90)
            assert await eventually_get(f"http://127.0.0.1:{port}/secured") == b"secured -> 1"
        finally:
            await nc.close()
    finally:
        for process in started:
            process.stop()
        redis.stop()
    for log in ("host.log", "controller.log", "backend.log"):
        text = (tmp_path / log).read_text()
        assert "permissions violation" not in text.lower(), log
        assert password not in text, log
