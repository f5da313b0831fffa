"""A Host whose natsUrl points at another machine's NATS connects there; with the
lattice's credentials when that NATS requires a user, and the providers it starts connect
with them too.

The other machine is a network namespace (tests/netns.py) joined to this one by a veth
pair, running a real nats-server at 198.18.N.2. Hosts are started through the Pulumi
provider's Host resource, in process over gRPC in the order the engine calls it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.client import RawCredentials
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from host_agent.lattice.client import CtlClient
from host_agent.lattice.connection import NatsCredentials
from host_agent.lattice.subjects import event_subject
from host_agent.local.supervisor import ManagedProcess
from host_agent.providers.contract import HostData
from tests.integration.test_counter_app import COUNTER, HTTP_SERVER
from tests.lattice import VENV_BIN, eventually_get, free_port, run_async
from tests.nats_auth import operator_auth
from tests.netns import NetworkNamespace, unavailable
from tests.provider_grpc import plain, provider, struct

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

NATS_PORT = 4222  # inside the namespace nothing else listens


def host_urn(name: str) -> str:
    return f"urn:pulumi:test::proj::wasmcloud:index:Host::{name}"


@pytest.fixture
def namespace() -> Iterator[NetworkNamespace]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"no network namespace for a remote NATS: {reason}")
    created = NetworkNamespace.create()
    yield created
    created.cleanup()
    assert not created.exists()


def start_nats(namespace: NetworkNamespace, args: list[str], log: Path) -> str:
    """nats-server inside the namespace; its URL once it says it is ready."""
    server = namespace.popen(
        [str(VENV_BIN / "nats-server"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    seen = []
    for line in server.stdout:
        seen.append(line)
        if "Server is ready" in line:
            break
    else:
        raise RuntimeError(f"nats-server did not start in {namespace.name}: {''.join(seen)}")
    # Keep draining its output into the log, so a chatty server never blocks on the pipe.
    stdout = server.stdout

    def drain() -> None:
        with log.open("w") as out:
            out.writelines(seen)
            out.writelines(stdout)

    threading.Thread(target=drain, daemon=True).start()
    return f"nats://{namespace.address}:{NATS_PORT}"


class Events:
    """The lattice's events as they arrive, waited for by name and fields."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.arrived = asyncio.Condition()

    async def follow(self, nc: NatsClient) -> None:
        async def record(msg: Any) -> None:
            event = json.loads(msg.data)
            async with self.arrived:
                self.seen.append((event["type"].rsplit(".", 1)[-1], event["data"]))
                self.arrived.notify_all()

        await nc.subscribe(event_subject("default", "*"), cb=record)
        await nc.flush()

    async def wait(self, name: str, timeout: float = 60.0, **match: str) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for seen, data in self.seen:
                if seen == name and all(data.get(k) == v for k, v in match.items()):
                    return data
            return None

        async with self.arrived:
            try:
                await asyncio.wait_for(self.arrived.wait_for(lambda: found() is not None), timeout)
            except TimeoutError:
                names = sorted({seen for seen, _ in self.seen})
                raise AssertionError(f"no {name} event matching {match}; saw {names}") from None
        data = found()
        assert data is not None
        return data


def host_inputs(name: str, url: str, state_dir: Path, **labels: str) -> dict[str, Any]:
    return {
        "name": name,
        "natsUrl": url,
        "lattice": "default",
        "stateDir": str(state_dir),
        "heartbeatSeconds": 1,
        "labels": labels,
    }


async def check_host(
    stub: provider_pb2_grpc.ResourceProviderStub, inputs: dict[str, Any]
) -> provider_pb2.CheckResponse:
    urn = host_urn(inputs["name"])
    checked = await stub.Check(provider_pb2.CheckRequest(urn=urn, news=struct(inputs)))
    assert list(checked.failures) == [], checked.failures
    return checked


@asynccontextmanager
async def host_resource(
    stub: provider_pb2_grpc.ResourceProviderStub, inputs: dict[str, Any]
) -> AsyncIterator[provider_pb2.CreateResponse]:
    """A Host created through the provider; deleted through it afterwards."""
    urn = host_urn(inputs["name"])
    checked = await check_host(stub, inputs)
    created = await stub.Create(
        provider_pb2.CreateRequest(urn=urn, properties=checked.inputs, timeout=120)
    )
    try:
        yield created
    finally:
        await stub.Delete(
            provider_pb2.DeleteRequest(id=created.id, urn=urn, properties=created.properties)
        )
        assert ManagedProcess(f"host-{inputs['name']}", Path(inputs["stateDir"])).pid() is None


def secret_value(value: Any) -> str:
    """A secret output as the engine sees it (wrapped in the secret signature)."""
    assert isinstance(value, dict) and "value" in value, f"not a secret: {value!r}"
    return str(value["value"])


def cmdline(state_dir: Path, name: str) -> str:
    pid = ManagedProcess(f"host-{name}", state_dir).pid()
    assert pid is not None, f"host {name} does not run"
    return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")


@run_async
async def test_a_host_joins_the_nats_its_nats_url_names(
    namespace: NetworkNamespace, tmp_path: Path
) -> None:
    url = start_nats(
        namespace,
        ["-a", namespace.address, "-p", str(NATS_PORT), "-js", "-sd", str(tmp_path / "js")],
        tmp_path / "nats.log",
    )
    state_dir = tmp_path / "state"
    async with (
        provider(url) as (stub, _),
        host_resource(stub, host_inputs("remote", url, state_dir, zone="netns")) as created,
    ):
        nc = await nats.connect(url)
        try:
            hosts = await CtlClient(nc, "default").ping_hosts(wait=0.5)
        finally:
            await nc.close()
        [host] = [h for h in hosts if h["id"] == created.id]
        assert host["labels"]["zone"] == "netns"
        assert host["ctl_host"] == url == host["rpc_host"]
        # The seed reaches the host in its environment (its own user's to read), never
        # on its command line (everyone's, through ps).
        seed = secret_value(plain(created.properties)["seed"])
        assert seed.startswith("SN")
        assert seed not in cmdline(state_dir, "remote")


@run_async
async def test_a_lattice_that_needs_credentials_gets_them_for_host_and_providers(
    namespace: NetworkNamespace, tmp_path: Path
) -> None:
    auth = operator_auth(NATS_PORT, str(tmp_path / "js"), host=namespace.address)
    (tmp_path / "nats.conf").write_text(auth.config)
    url = start_nats(namespace, ["-c", str(tmp_path / "nats.conf")], tmp_path / "nats.log")
    user = NatsCredentials.from_creds(auth.creds)
    state_dir = tmp_path / "state"
    inputs = host_inputs("secure", url, state_dir, zone="netns")

    # Without credentials the provider says which setting to give, and starts nothing.
    async with provider(url) as (stub, _):
        checked = await check_host(stub, inputs)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Create(
                provider_pb2.CreateRequest(urn=host_urn("secure"), properties=checked.inputs)
            )
        assert f"NATS at {url} refused the connection" in str(raised.value.details())
        assert "wasmcloud:credentials" in str(raised.value.details())
        assert ManagedProcess("host-secure", state_dir).pid() is None

    # A host started by hand without them stops at once and names the settings.
    bare = {k: v for k, v in os.environ.items() if not k.startswith("WASMCLOUD_")}
    refused = subprocess.run(
        [sys.executable, "-m", "host_agent"],
        env={**bare, "WASMCLOUD_NATS_HOST": namespace.address, "WASMCLOUD_NATS_PORT": "4222"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1, refused.stderr
    assert f"NATS at {url} refused the host's connection" in refused.stderr
    assert "WASMCLOUD_NATS_CREDS" in refused.stderr

    # So does a provider whose host passed it no NATS user.
    host_data = HostData(
        host_id="N" * 56,
        lattice_rpc_prefix="default",
        lattice_rpc_url=url,
        provider_key="kvbare",
        instance_id="0",
    )
    bare_provider = subprocess.run(
        [sys.executable, "-m", "host_agent.providers.keyvalue_nats"],
        input=host_data.encode(),
        env={"PYTHONPATH": os.environ.get("PYTHONPATH", "")},
        capture_output=True,
        timeout=60,
    )
    assert bare_provider.returncode == 1
    said = bare_provider.stderr.decode()
    assert f"NATS at {url} refused the provider kvbare's connection" in said, said
    assert "lattice_rpc_user_jwt" in said

    # With them: the host joins, and its providers serve the counter over that NATS.
    http_port = free_port()
    async with (
        provider(url, auth.creds) as (stub, _),
        host_resource(stub, inputs) as created,
    ):
        state = plain(created.properties)
        assert user.seed not in str(state) and user.jwt not in str(state)
        assert user.seed not in cmdline(state_dir, "secure")
        nc = await nats.connect(url, user_credentials=RawCredentials(auth.creds))
        try:
            events = Events()
            await events.follow(nc)
            ctl = CtlClient(nc, "default")
            host = created.id
            await ctl.put_config("http-listen", {"address": f"127.0.0.1:{http_port}"})
            await ctl.start_provider(host, "kvnats", "builtin:keyvalue-nats")
            await ctl.start_provider(host, "httpserver", HTTP_SERVER)
            await ctl.scale_component(host, "counter", COUNTER, 1)
            # A provider passes a health check only over its own NATS connection.
            await events.wait("health_check_passed", provider_id="kvnats")
            await events.wait("health_check_passed", provider_id="httpserver")
            await events.wait("component_scaled", component_id="counter")
            for source, target, package, interfaces, configs in (
                ("counter", "kvnats", "keyvalue", ["atomics", "store"], {}),
                ("httpserver", "counter", "http", ["incoming-handler"],
                 {"source_config": ["http-listen"]}),
            ):  # fmt: skip
                await ctl.put_link(
                    {"source_id": source, "target": target, "wit_namespace": "wasi",
                     "wit_package": package, "interfaces": interfaces, **configs}
                )  # fmt: skip
            assert await eventually_get(f"http://127.0.0.1:{http_port}/hello") == b"hello -> 1"
            # The count lives in the account's JetStream, reached with the host's user.
            kv = await nc.jetstream().key_value(await bucket_of(nc))
            assert (await kv.get("hello")).value == b"1"
        finally:
            await nc.close()


async def bucket_of(nc: NatsClient) -> str:
    """The one KV bucket the keyvalue-nats provider made (besides the lattice's own)."""
    names = [str(info.config.name) for info in await nc.jsm().streams_info()]
    buckets = [n.removeprefix("KV_") for n in names if n.startswith("KV_")]
    made = [b for b in buckets if not b.startswith(("LATTICEDATA_", "CONFIGDATA_"))]
    assert len(made) == 1, buckets
    return made[0]
