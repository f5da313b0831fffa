"""``wasmcloud:index:Secret`` with the real Pulumi CLI against a real nats-server and the
secrets backend process: `up` stores the value where hosts fetch it, a changed value is
written again, `destroy` removes it; the state (`pulumi stack export`) and the CLI's
output never show the value in plain text."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from host_agent.secrets.client import SecretNotFound
from host_agent.secrets.host import HostSecrets
from host_agent.secrets.protocol import reference_values
from tests.integration.test_app_secrets import SecretsBackendProcess
from tests.lattice import NatsServer, run_async
from tests.pulumi_cli import PULUMI_BIN, Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PROGRAM = """
import pulumi
import pulumi_wasmcloud as wasmcloud

config = pulumi.Config()
lattice = wasmcloud.Provider("lattice", nats_url=config.require("natsUrl"))
secret = wasmcloud.Secret(
    "redis-password",
    value=config.require_secret("password"),
    opts=pulumi.ResourceOptions(provider=lattice),
)
pulumi.export("key", secret.key)
pulumi.export("revision", secret.revision)
"""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    if not (PULUMI_BIN / "pulumi").exists():
        pytest.fail("the Pulumi CLI is missing: run scripts/bootstrap.sh (it builds it)")
    stack = Stack(tmp_path / "stack", "secret", program=PROGRAM)
    yield stack
    stack.run("destroy", "--yes", ok=False)


async def fetch(url: str, version: str | None = None) -> str:
    """What a host gets for a reference to key ``redis-password`` (at ``version``)."""
    nc = await nats.connect(url)
    try:
        reference = reference_values("password", "nats-kv", "redis-password", None, version, {})

        async def read(name: str) -> dict[str, str] | None:
            return reference if name == "SECRET_app-password" else None

        values = await HostSecrets(nc, read, "NHOST", "test").fetch(["SECRET_app-password"])
        value: str = values.plain()["password"]["value"]
        return value
    finally:
        await nc.close()


@run_async
async def test_secret_resource_puts_updates_and_deletes_without_plain_text_in_state(
    nats_server: NatsServer, stack: Stack, tmp_path: Path
) -> None:
    backend = SecretsBackendProcess(nats_server, tmp_path / "backend.log")
    try:
        first, second = (f"pw-{secrets.token_hex(12)}" for _ in range(2))
        stack.config("natsUrl", nats_server.url)
        stack.run("config", "set", "--secret", "password", first)
        shown = stack.up().stdout
        assert await fetch(nats_server.url) == first
        outputs = stack.outputs()
        assert outputs["key"] == "redis-password" and outputs["revision"] >= 1
        first_revision = str(outputs["revision"])

        stack.run("config", "set", "--secret", "password", second)
        shown += stack.up().stdout
        assert await fetch(nats_server.url) == second
        # A reference may pin a version (the revision the resource reports).
        assert await fetch(nats_server.url, first_revision) == first
        assert await fetch(nats_server.url, str(stack.outputs()["revision"])) == second
        exported = stack.run("stack", "export").stdout
        for value in (first, second):
            assert value not in exported and value not in shown

        stack.run("destroy", "--yes")
        with pytest.raises(SecretNotFound, match="no secret 'redis-password'"):
            await fetch(nats_server.url)
    finally:
        backend.stop()
