"""Host(machine=SshMachine(...)) through the provider (in process, over gRPC, as the
engine calls it) on namespace machines (tests/machines.py): nats-server provisioned on
core-1 by plan_nats_server, the host agent installed and run on edge-1 over SSH, joining
the lattice with its labels; a converged machine gets no diff and runs no command; a
change keeps the host id; drift on the machine is read and repaired; a changed host key
and an unreachable machine are refused by name; delete leaves edge-1 as it was.

Secured as a Lattice on machines runs it (operator mode, mutual TLS): the host gets the
lattice's user issuer and CA, mints its own user and client certificate (secret in
state), finds them on edge-1 in 0600 files and its environment file, and nothing secret
shows in edge-1's process list or logs; its client certificate near expiry is reissued
by the next `up`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import nats
import pytest
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc
from pulumi.runtime.rpc import UNKNOWN

from host_agent.lattice.client import CtlClient
from host_agent.lattice.connection import NatsCredentials
from host_agent.security.tls import expires_at
from pulumi_wasmcloud.provider import host_resource
from pulumi_wasmcloud.provider.machine_inputs import (
    MachineSpec,
    connect,
    parse_machine,
    recorded_keys,
)
from pulumi_wasmcloud.provision import security as provision_security
from pulumi_wasmcloud.provision.changes import apply
from pulumi_wasmcloud.provision.connector import HostKeyRefused
from pulumi_wasmcloud.provision.nats_config import OperatorModeSettings, render
from pulumi_wasmcloud.provision.operations import (
    gather_nats_server_facts,
    packaged_nats_server,
    plan_nats_server,
)
from pulumi_wasmcloud.provision.security import LatticeSecurity, NodeRole
from pulumi_wasmcloud.provision.topology import NodeMachine, TopologySecurity, plan_topology
from tests.integration.test_provision_nats import connect as connect_to
from tests.integration.test_provision_nats import eventually
from tests.lattice import run_async
from tests.machines import KeyPair, Machine, Machines, booted
from tests.provider_grpc import EngineLog, plain, provider, struct
from tests.secured_nats import client_options, leaks, machine_leaks, secret_files

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

URN = "urn:pulumi:test::proj::wasmcloud:index:Host::edge"
SECRET = "4dabf18193072939515e22adb298388d"  # the engine's mark of a secret value
SUFFIXES = ("env", "ca.pem", "cert.pem", "key.pem")  # the host's files in /etc/wasmcloud


@pytest.fixture
def machines() -> Iterator[Machines]:
    yield from booted("core-1", "edge-1")


# The secured lattice's outputs a Host is given (credentials, userIssuer, clientTls,
# tlsIssuer), set by nats_url(): clients of the tests connect with them too.
LATTICE: dict[str, Any] = {}


def nats_url(machines: Machines) -> str:
    """A one-node lattice's NATS on core-1 (JetStream in domain "core"), secured and
    provisioned as a Lattice on machines does: operator mode, mutual TLS, its files."""
    core = machines["core-1"]
    now = datetime.now(UTC)
    security, _ = LatticeSecurity.create("default", "core", now).converge(
        {"core-1": NodeRole(core.address, core=True)}, "core", now
    )
    authority = security.authority
    topology = plan_topology(
        [NodeMachine("core-1", core.address)],
        security=TopologySecurity(
            OperatorModeSettings.from_auth(authority.server_auth()),
            authority.account_public_key,
        ),
    )
    with connect_to(machines, "core-1") as connection:
        facts = gather_nats_server_facts(connection)
        plan = plan_nats_server(
            "core-1",
            facts,
            packaged_nats_server(),
            render(topology.settings["core-1"]),
            security.nats_files("core-1"),
        )
        apply(connection, plan)
    LATTICE.clear()
    LATTICE.update(
        credentials=security.tooling.creds(),
        userIssuer=security.user_issuer().to_state(),
        clientTls=security.client_tls_state(),
        tlsIssuer=security.ca.to_state(),
    )
    return f"nats://{core.address}:4222"


def agent_environment(machine: Machine) -> dict[str, str]:
    """The environment of the host agent running on ``machine``."""
    [pid] = machine.inside(["pgrep", "-f", "python -m host_agent"]).stdout.split()
    pairs = machine.inside(["cat", f"/proc/{pid}/environ"]).stdout.split("\0")
    return dict(p.split("=", 1) for p in pairs if "=" in p)


def machine(machines: Machines, name: str, **fields: Any) -> dict[str, Any]:
    """The wire map SshMachine.to_input() sends (no host key given: recorded on create)."""
    return {
        "name": name,
        "host": machines[name].address if name in machines.by_name else fields.pop("host"),
        "port": 22,
        "user": "root",
        "privateKey": machines.client_key.private_openssh,
        "verifyHostKey": True,
        **fields,
    }


def inputs(url: str, on: dict[str, Any], **labels: str) -> dict[str, Any]:
    return {
        "name": "edge",
        "natsUrl": url,
        "hostNatsUrl": url,
        "lattice": "default",
        "heartbeatSeconds": 1,
        "registryUrl": "http://198.18.0.2:5000",  # the lattice's (allowed over plain HTTP)
        "jsDomain": "core",
        "labels": labels,
        "machine": on,
        **LATTICE,
    }


async def checked(stub: provider_pb2_grpc.ResourceProviderStub, news: dict[str, Any]) -> Any:
    response = await stub.Check(provider_pb2.CheckRequest(urn=URN, news=struct(news)))
    assert list(response.failures) == [], response.failures
    return response.inputs


async def host_in_lattice(url: str, host_id: str) -> dict[str, Any] | None:
    nc = await nats.connect(url, **client_options(LATTICE))
    try:
        hosts = await CtlClient(nc, "default").ping_hosts(wait=0.5)
    finally:
        await nc.close()
    return next((h for h in hosts if h["id"] == host_id), None)


def agent_processes(machine: Machine) -> list[str]:
    return [p for p in machine.processes().values() if "-m host_agent" in p]


def said(log: EngineLog, since: int) -> list[str]:
    """What the CLI showed under the host since message ``since`` (but the wheelhouse's
    progress, which says where it is cached)."""
    return [m for m in log.messages[since:] if not m.startswith("wheelhouse:")]


async def refusal(call: Any) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return str(refused.value.details())


@run_async
async def test_a_host_on_a_machine_joins_converges_keeps_its_id_and_leaves_no_trace(
    machines: Machines, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge = machines["edge-1"]
    before = edge.own_files()
    url = nats_url(machines)
    news = inputs(url, machine(machines, "edge-1"), region="edge", tier="edge")
    async with provider(url) as (stub, log):
        # Preview of a new host in a lattice made by the same `up` (its URL not known
        # yet): what will happen on edge-1, and nothing done there.
        unknown = await checked(stub, {**news, "natsUrl": UNKNOWN, "hostNatsUrl": UNKNOWN})
        mark = len(log.messages)
        await stub.Create(provider_pb2.CreateRequest(urn=URN, properties=unknown, preview=True))
        assert said(log, mark) == [
            "host agent 0.1.0: install on edge-1",
            "host-edge service: define on edge-1",
            "host edge config: write on edge-1",
            "host edge NATS user and TLS files: write on edge-1",
            "host-edge service: start on edge-1",
        ]
        assert edge.own_files() == before
        props = await checked(stub, news)

        mark = len(log.messages)
        created = await stub.Create(
            provider_pb2.CreateRequest(urn=URN, properties=props, timeout=300)
        )
        state = created.properties
        outputs = plain(state)
        host_id = created.id
        try:
            # It joined with its labels, and edge-1's host key was recorded.
            joined = await host_in_lattice(url, host_id)
            assert joined is not None
            assert {"region": "edge", "tier": "edge"}.items() <= joined["labels"].items()
            assert outputs["hostKeys"] == {"edge-1": edge.host_key.rsplit(" ", 1)[0]}
            assert outputs["machine"]["privateKey"][SECRET]  # kept secret in state
            assert outputs["seed"][SECRET]
            for key in ("hostCredentials", "hostTls", "credentials", "userIssuer", "tlsIssuer"):
                assert outputs[key][SECRET], key
            ran = [m for m in said(log, mark) if m.startswith("edge-1: ")]
            assert len(ran) == 1 and int(ran[0].split()[1]) > 0, ran
            # It reaches NATS where hostNatsUrl says, in the lattice's JetStream domain,
            # and may pull from the lattice's registry over plain HTTP.
            environment = agent_environment(edge)
            assert environment["WASMCLOUD_NATS_HOST"] == machines["core-1"].address
            assert environment["WASMCLOUD_JS_DOMAIN"] == "core"
            assert environment["WASMCLOUD_OCI_ALLOWED_INSECURE"] == "198.18.0.2:5000"
            assert environment["WASMCLOUD_HOST_SEED"] == outputs["seed"]["value"]
            # Secured: its own user (not the tooling user) and its own client certificate,
            # in 0600 files and its 0600 environment file; nothing secret in ps or logs.
            own = NatsCredentials.from_creds(outputs["hostCredentials"]["value"])
            tooling = NatsCredentials.from_creds(LATTICE["credentials"])
            assert environment["WASMCLOUD_NATS_SEED"] == own.seed != tooling.seed
            assert environment["WASMCLOUD_NATS_TLS_CERT"] == "/etc/wasmcloud/host-edge.cert.pem"
            assert environment["WASMCLOUD_LINK_GRANTS"] == "true"
            files = secret_files(edge)
            assert files == dict.fromkeys(
                [f"/etc/wasmcloud/host-edge.{suffix}" for suffix in SUFFIXES], "600 root"
            ), files
            certificate = edge.inside(["cat", "/etc/wasmcloud/host-edge.cert.pem"]).stdout
            assert certificate == outputs["hostTls"]["value"]["certPem"]
            assert machine_leaks(edge) == {}
            assert not leaks("\n".join(log.messages))

            # Converged: no diff, and an update runs no command.
            mark = len(log.messages)
            props = await checked(stub, news)
            diff = await stub.Diff(
                provider_pb2.DiffRequest(id=host_id, urn=URN, olds=state, news=props)
            )
            assert diff.changes == provider_pb2.DiffResponse.DIFF_NONE, said(log, mark)
            updated = await stub.Update(
                provider_pb2.UpdateRequest(id=host_id, urn=URN, olds=state, news=props)
            )
            assert "edge-1: 0 commands" in said(log, mark)
            state = updated.properties

            # A label change rewrites the config and restarts the host: same id.
            news = {**news, "labels": {"region": "edge", "tier": "gateway"}}
            props = await checked(stub, news)
            mark = len(log.messages)
            diff = await stub.Diff(
                provider_pb2.DiffRequest(id=host_id, urn=URN, olds=state, news=props)
            )
            assert list(diff.diffs) == ["labels"] and list(diff.replaces) == []
            assert "host edge config: update on edge-1" in said(log, mark)
            updated = await stub.Update(
                provider_pb2.UpdateRequest(id=host_id, urn=URN, olds=state, news=props)
            )
            state = updated.properties
            relabeled = await host_in_lattice(url, host_id)
            assert relabeled is not None and relabeled["labels"]["tier"] == "gateway"

            # Its client certificate within the rotation window: the next `up` reissues
            # it (a new pair on edge-1, the host restarted with it: same id, same user).
            old = plain(state)["hostTls"]["value"]["certPem"]
            # machine_host reads it when it checks a pair (imported there, not at start-up)
            monkeypatch.setattr(provision_security, "ROTATION_WINDOW", timedelta(days=400))
            mark = len(log.messages)
            diff = await stub.Diff(
                provider_pb2.DiffRequest(id=host_id, urn=URN, olds=state, news=props)
            )
            assert list(diff.diffs) == ["converged"], said(log, mark)
            assert "host edge NATS user and TLS files: replace on edge-1" in said(log, mark)
            assert "host-edge service: restart on edge-1" in said(log, mark)
            updated = await stub.Update(
                provider_pb2.UpdateRequest(id=host_id, urn=URN, olds=state, news=props)
            )
            monkeypatch.undo()
            state = updated.properties
            rotated = plain(state)["hostTls"]["value"]["certPem"]
            assert rotated != old and expires_at(rotated) > expires_at(old)
            assert edge.inside(["cat", "/etc/wasmcloud/host-edge.cert.pem"]).stdout == rotated
            assert plain(state)["hostCredentials"] == outputs["hostCredentials"]
            assert await host_in_lattice(url, host_id) is not None

            # Drift on the machine: its config changed there. Read says so, diff plans
            # the repair, update makes it.
            tampered = edge.inside(["sh", "-c", "echo EXTRA=1 >> /etc/wasmcloud/host-edge.env"])
            assert tampered.returncode == 0, tampered.stderr
            read = await stub.Read(
                provider_pb2.ReadRequest(id=host_id, urn=URN, properties=state, inputs=props)
            )
            assert plain(read.properties)["converged"] is False
            mark = len(log.messages)
            diff = await stub.Diff(
                provider_pb2.DiffRequest(id=host_id, urn=URN, olds=read.properties, news=props)
            )
            assert list(diff.diffs) == ["converged"]
            assert "host edge config: update on edge-1" in said(log, mark)
            updated = await stub.Update(
                provider_pb2.UpdateRequest(id=host_id, urn=URN, olds=read.properties, news=props)
            )
            state = updated.properties
            read = await stub.Read(
                provider_pb2.ReadRequest(id=host_id, urn=URN, properties=state, inputs=props)
            )
            assert plain(read.properties)["converged"] is True
            assert plain(read.properties)["running"] is True

            # Drift: the host's service stopped on the machine. Read says so; up restarts it.
            stop = 'kill -TERM "-$(cat /var/lib/wasmcloud/services/host-edge/pid)"'
            assert edge.inside(["sh", "-c", stop]).returncode == 0
            eventually(lambda: not agent_processes(edge) or None, "the host agent gone")
            read = await stub.Read(
                provider_pb2.ReadRequest(id=host_id, urn=URN, properties=state, inputs=props)
            )
            assert plain(read.properties)["running"] is False
            mark = len(log.messages)
            diff = await stub.Diff(
                provider_pb2.DiffRequest(id=host_id, urn=URN, olds=read.properties, news=props)
            )
            assert list(diff.diffs) == ["running"]
            assert said(log, mark) == ["host-edge service: start on edge-1"]
            updated = await stub.Update(
                provider_pb2.UpdateRequest(id=host_id, urn=URN, olds=read.properties, news=props)
            )
            state = updated.properties
            assert await host_in_lattice(url, host_id) is not None

            # A host key other than the recorded one is refused, naming the machine.
            impostor = {**plain(state), "hostKeys": {"edge-1": KeyPair.generate().public_line}}
            details = await refusal(
                stub.Diff(
                    provider_pb2.DiffRequest(id=host_id, urn=URN, olds=struct(impostor), news=props)
                )
            )
            assert details.startswith("refused: host key of edge-1 changed from"), details
            assert "give it as host_key of that SshMachine in the program" in details
        finally:
            mark = len(log.messages)
            await stub.Delete(provider_pb2.DeleteRequest(id=host_id, urn=URN, properties=state))
        assert any(m.startswith("edge-1: ") for m in said(log, mark))
        assert await host_in_lattice(url, host_id) is None
    # edge-1 is as it was: no process, unit or file of ours.
    assert edge.own_files() == before
    assert not [p for p in edge.processes().values() if "wasmcloud" in p] + agent_processes(edge)


@run_async
async def test_an_unreachable_machine_is_named_and_a_failed_create_leaves_nothing(
    machines: Machines, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = nats_url(machines)
    ghost = machine(machines, "edge-9", host=machines.unused_address())
    edge = machines["edge-1"]
    before = edge.own_files()
    async with provider(url) as (stub, log):
        props = await checked(stub, inputs(url, ghost))
        details = await refusal(
            stub.Create(provider_pb2.CreateRequest(urn=URN, properties=props, timeout=120))
        )
        assert details.startswith(f"cannot reach edge-9 at {machines.unused_address()}:22: ")
        assert "Check that the machine is up" in details
        # Destroying a host whose machine is gone says how to forget it.
        gone = {**inputs(url, ghost), "hostId": "NGHOST", "seed": "SGHOST", "hostKeys": {}}
        details = await refusal(
            stub.Delete(provider_pb2.DeleteRequest(id="NGHOST", urn=URN, properties=struct(gone)))
        )
        assert details.startswith(f"cannot reach edge-9 at {machines.unused_address()}:22: ")
        assert details.endswith(f"`pulumi state delete '{URN}'`"), details

        # A host installed but not joining in time: the error says where it stopped, and
        # what the create installed is removed (it is in no state to remove later).
        monkeypatch.setattr(host_resource, "READY_TIMEOUT", 0.0)
        props = await checked(stub, inputs(url, machine(machines, "edge-1")))
        details = await refusal(
            stub.Create(provider_pb2.CreateRequest(urn=URN, properties=props, timeout=300))
        )
        assert details.startswith(f"host edge did not join lattice default at {url}; on edge-1: ")
        assert "its log" in details
        assert [m for m in log.messages if m.startswith("edge-1: ")][-1] != "edge-1: 0 commands"
    assert edge.own_files() == before
    assert not [p for p in edge.processes().values() if "wasmcloud" in p] + agent_processes(edge)


@run_async
async def test_wrong_inputs_are_refused_by_path_before_any_connection() -> None:
    url = "nats://198.18.0.2:4222"  # never contacted: check fails first
    wrong = {
        "name": "edge-1",
        "host": "198.18.0.3",
        "port": "22",
        "sudo": "yes",
        "privateKey": KeyPair.generate().private_openssh,
    }
    async with provider(url) as (stub, _):
        response = await stub.Check(
            provider_pb2.CheckRequest(urn=URN, news=struct({**inputs(url, wrong), "name": "Edge"}))
        )
    failures = {f.property: f.reason for f in response.failures}
    assert failures["machine.port"] == 'expected a whole number, got a string ("22")'
    assert failures["machine.sudo"] == 'expected true or false, got a string ("yes")'
    assert failures["name"].startswith("a host on a machine is named with lowercase letters")


def test_through_a_bastion_both_host_keys_are_recorded_then_verified(
    machines: Machines,
) -> None:
    """edge-1 reached through core-1: the first connection records both machines' keys
    (as hostKeys keeps them), the next verifies both, and a changed bastion key is
    refused naming the bastion."""
    wire = machine(machines, "edge-1", bastion=machine(machines, "core-1"))
    spec = parse_machine(wire, "machine")
    assert isinstance(spec, MachineSpec)
    with connect(spec, {}) as first:
        recorded = recorded_keys(spec, first, {})
        assert first.run("hostname").stdout.strip() == "edge-1"
    assert recorded == {
        name: machines[name].host_key.rsplit(" ", 1)[0] for name in ("core-1", "edge-1")
    }
    with connect(spec, recorded) as again:
        assert recorded_keys(spec, again, recorded) == recorded
    with pytest.raises(HostKeyRefused) as refused:
        connect(spec, {**recorded, "core-1": KeyPair.generate().public_line})
    assert str(refused.value).startswith("refused: host key of core-1 changed from")
