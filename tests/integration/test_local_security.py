"""The local default runs secured: `make up`'s own program (the root __main__.py) on the
real Pulumi CLI, on free ports, with nats-server in operator mode. The counter answers;
NATS refuses an anonymous client and a user of another authority; the tooling user the
lattice leaves in its state folder (what `wasmcloud env`, wash and the README use) gets
in; `pulumi stack export` (no --show-secrets), the lattice's process lists and its logs
hold no seed and no private key; a plain lattice from before is secured by the next `up`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import pytest
import yaml
from nats.aio.client import Client as NatsClient
from nats.aio.client import RawCredentials

from host_agent.cli.wasmcloud import main as wasmcloud_main
from host_agent.lattice.client import CtlClient
from host_agent.local.credentials import local_nats_options
from host_agent.local.supervisor import ManagedProcess
from host_agent.security.authority import LatticeAuthority
from host_agent.security.permissions import Role
from tests.lattice import ROOT
from tests.pulumi_cli import Stack, e2e_stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

COUNTER_WASM = ROOT / "examples" / "counter" / "build" / "counter.wasm"
WASH = ROOT / ".tools" / "wash" / "bin" / "wash"
# `make up`'s program, with the escape hatch a stack from before this version amounts to.
PROGRAM = (
    (ROOT / "__main__.py")
    .read_text()
    .replace("heartbeat_seconds=", 'secure=config.get_bool("secure"),\n    heartbeat_seconds=', 1)
)
# An nkey seed (operator, account, user, server...) as text: 'S', its kind, then base32.
SEED = re.compile(r"\bS[OAUNCPX][A-Z2-7]{54,}\b")  # a seed, not a public key's tail
PRIVATE = re.compile(r"PRIVATE KEY|NKEY SEED|password", re.IGNORECASE)


class LocalStack(Stack):
    """The root program on free ports, its manifest pointed at them."""

    command_timeout = 600

    def __init__(self, workdir: Path, name: str, settings: dict[str, object] | None = None):
        manifest = yaml.safe_load((ROOT / "examples" / "counter" / "wadm.yaml").read_text())
        self.manifest = workdir / "wadm.yaml"
        super().__init__(
            workdir,
            name,
            program=PROGRAM,
            extra_ports=("registryPort",),
            settings={"manifest": self.manifest, "heartbeatSeconds": 2, **(settings or {})},
            env={"WASMCLOUD_CACHE_DIR": str(workdir / "host-cache")},
        )
        counter, _, http = manifest["spec"]["components"]
        counter["properties"]["image"] = str(COUNTER_WASM)
        link = counter["traits"][1]["properties"]
        link["target_config"][0]["properties"]["url"] = (
            f"redis://127.0.0.1:{self.ports['redisPort']}"
        )
        address = http["traits"][0]["properties"]["source_config"][0]["properties"]
        address["address"] = f"127.0.0.1:{self.ports['httpPort']}"
        self.manifest.write_text(yaml.safe_dump(manifest))

    @property
    def creds_file(self) -> Path:
        return self.state / "nats.creds"

    @property
    def ca_file(self) -> Path:
        return self.state / "ca.pem"

    def our_processes(self) -> dict[str, int]:
        """Every process the stack runs (pidfile name -> pid)."""
        found = {}
        for pidfile in self.state.glob("*.pid"):
            pid = ManagedProcess(pidfile.stem, self.state).pid()
            if pid is not None:
                found[pidfile.stem] = pid
        return found


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    if not COUNTER_WASM.exists():
        pytest.fail("the counter is not built: run scripts/bootstrap.sh")
    workdir = tmp_path_factory.mktemp("local-secured")
    with e2e_stack(workdir, "secured", lambda: LocalStack(workdir, "secured")) as stack:
        assert isinstance(stack, LocalStack)
        stack.up()
        yield stack


async def connect_as(url: str, creds: str | None, ca: Path | None) -> NatsClient:
    async def quiet(_: Exception) -> None:
        pass

    return await nats.connect(
        url,
        user_credentials=RawCredentials(creds) if creds else None,
        tls=ssl.create_default_context(cafile=str(ca)) if ca else None,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=3,
        error_cb=quiet,
    )


def refused(url: str, creds: str | None, ca: Path | None = None) -> str:
    """The server's refusal, as nats-py raises it (fails if the connection is accepted)."""

    async def attempt() -> str:
        try:
            nc = await connect_as(url, creds, ca)
        except (nats.errors.Error, OSError) as exc:
            return str(exc)
        await nc.close()
        raise AssertionError(f"NATS at {url} accepted the connection")

    return asyncio.run(attempt())


def host_ids(url: str, creds: str, ca: Path) -> set[str]:
    async def ping() -> set[str]:
        nc = await connect_as(url, creds, ca)
        try:
            return {str(h["id"]) for h in await CtlClient(nc, "default").ping_hosts(wait=1.0)}
        finally:
            await nc.close()

    return asyncio.run(ping())


def test_the_counter_answers_on_the_secured_default(secured: LocalStack) -> None:
    assert secured.count("secured") == 1
    assert secured.count("secured") == 2
    # The state is stable: nothing (no user, no key) is made again by a second look.
    secured.run("preview", "--refresh", "--expect-no-changes")


def test_nats_refuses_anonymous_and_foreign_users(secured: LocalStack) -> None:
    url, ca = secured.nats_url, secured.ca_file
    # TLS: a client that does not trust the lattice's CA does not get as far as a user.
    assert "certificate verify failed" in refused(url, None).lower()
    assert "authorization violation" in refused(url, None, ca).lower()
    # A well-formed user of another authority (another lattice, say) is refused too.
    foreign = LatticeAuthority.create("default").user_issuer()
    stranger = foreign.issue(Role.TOOLING, "stranger", "default").creds()
    assert "authorization violation" in refused(url, stranger, ca).lower()
    # The tooling user the lattice left for tools gets in and sees both hosts.
    hosts = secured.outputs()["hosts"]
    assert host_ids(url, secured.creds_file.read_text(), ca) == set(hosts.values())


def test_tools_find_the_local_credentials_by_themselves(
    secured: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert wasmcloud_main(["env", "--state-dir", str(secured.state)]) == 0
    exports = capsys.readouterr().out
    assert f"export WASH_CTL_CREDS={secured.creds_file.resolve()}" in exports, exports
    assert not SEED.search(exports)
    # The README's Python: nats.connect(url, **local_nats_options()).
    readme = local_nats_options(env={"WASMCLOUD_STATE_DIR": str(secured.state)})

    async def ping() -> int:
        nc = await nats.connect(secured.nats_url, **readme)
        try:
            return len(await CtlClient(nc, "default").ping_hosts(wait=1.0))
        finally:
            await nc.close()

    assert asyncio.run(ping()) == 2
    if not WASH.exists():
        pytest.skip("real wash is not built (make test-tools)")
    env = {
        **os.environ,
        "WASMCLOUD_CTL_PORT": str(secured.ports["natsPort"]),
        "WASH_CTL_CREDS": str(secured.creds_file),
        "WASH_CTL_TLS_CA_FILE": str(secured.ca_file),
    }
    listed = subprocess.run(
        [str(WASH), "get", "hosts", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert {h["id"] for h in json.loads(listed.stdout)["hosts"]} == set(
        secured.outputs()["hosts"].values()
    )


def secrets_in(text: str) -> list[str]:
    return [m.group(0)[:12] + "..." for m in (*SEED.finditer(text), *PRIVATE.finditer(text))]


def test_no_secret_in_the_export_process_lists_or_logs(secured: LocalStack) -> None:
    exported = secured.run("stack", "export").stdout
    assert '"credentials"' in exported  # the outputs are there, as ciphertext
    assert secrets_in(exported) == [], "pulumi stack export shows secrets"
    processes = secured.our_processes()
    expected = {
        "nats-server",
        "controller",
        "secrets-backend",
        "host-local-core",
        "host-local-edge",
    }
    assert expected <= set(processes)
    for name, pid in processes.items():
        # -ww: whole command lines (ps cuts them at 80 columns when not on a terminal)
        args = subprocess.run(
            ["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=True
        ).stdout
        assert secrets_in(args) == [], f"{name}'s command line holds a secret"
    for log in secured.state.glob("*.log"):
        assert secrets_in(log.read_text(errors="replace")) == [], f"{log} holds a secret"
    # What holds private material (or the server's trust anchor) is its owner's only.
    private = ("nats.creds", "controller.creds", "secrets.creds", "nats-server-key.pem")
    for name in (*private, "nats-server.conf", "grant-issuer.json"):
        mode = stat.S_IMODE((secured.state / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"


def test_a_plain_lattice_from_before_is_secured_by_the_next_up(tmp_path: Path) -> None:
    if not COUNTER_WASM.exists():
        pytest.fail("the counter is not built: run scripts/bootstrap.sh")
    make = lambda: LocalStack(tmp_path, "migrated", {"secure": "false"})  # noqa: E731
    with e2e_stack(tmp_path, "migrated", make) as stack:
        assert isinstance(stack, LocalStack)
        stack.up()
        assert stack.count("before") == 1
        # The state a version without `secure` left: no such property anywhere.
        exported = json.loads(stack.run("stack", "export").stdout)
        for resource in exported["deployment"]["resources"]:
            for part in ("inputs", "outputs"):
                resource.get(part, {}).pop("secure", None)
        (tmp_path / "old.json").write_text(json.dumps(exported))
        stack.run("stack", "import", "--file", str(tmp_path / "old.json"))
        assert not refused_or_none(stack.nats_url)  # plain: anyone gets in
        stack.config("secure", None)  # the program's default: secured
        stack.up()
        assert "authorization violation" in refused(stack.nats_url, None, stack.ca_file).lower()
        assert host_ids(stack.nats_url, stack.creds_file.read_text(), stack.ca_file) == set(
            stack.outputs()["hosts"].values()
        )
        assert stack.count("after") == 1
        stack.run("preview", "--refresh", "--expect-no-changes")


def refused_or_none(url: str) -> str | None:
    """The refusal of an anonymous connection, or None when it is accepted."""
    try:
        return refused(url, None)
    except AssertionError:
        return None
