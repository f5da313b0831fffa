"""A Lattice with ``cluster`` on namespace machines (tests/machines.py), its handler driven
directly as the engine would: 3 core nodes and one edge leaf node. The cluster forms with
JetStream in its domain, an edge client reaches the lattice's buckets across its leaf
node, the buckets have 3 replicas, a second `up` runs no command, a core node stopped
leaves the lattice serving and is drift that `up` repairs, and delete leaves the machines
as they were booted. A machine failing mid-install is named while the others finish. And
on loopback, why buckets are written through the domain from a leaf node.

Secured: every node refuses an anonymous client, a client without a certificate and one
without a user; the provider's clients connect as the lattice's tooling user over mutual
TLS; each node serves a certificate for its own address; the secret files are 0600 root;
no seed or private key shows in any machine's process list or logs, nor in what the
provider tells the engine; and certificates near their expiry are reissued by `up` and
reloaded by the running nodes, which keep their clients, routes and leaf connections.

Application secrets: every core node runs the NATS KV secrets backend (one queue group:
each node's instance answers `server_xkey` with the same transit key); a Secret put as
the Lattice's outputs give it is fetched by a host's secrets client through the edge and
through every core node (one encryption key everywhere). A lattice's state from before
the backend loads, its preview says what the next `up` makes, and the `up` makes it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest
from cryptography import x509
from nats.aio.client import RawCredentials

from host_agent.lattice.jetstream import open_kv, read_json, update_json
from host_agent.lattice.wadm import WadmClient
from host_agent.local.supervisor import listening_async
from host_agent.secrets.client import SecretsClient
from host_agent.secrets.host import HostSecrets
from host_agent.secrets.protocol import reference_values
from host_agent.secrets.xkeys import XKey
from host_agent.security.authority import UserIssuer
from host_agent.security.permissions import Role
from pulumi_wasmcloud.provider.engine_log import EngineLog
from pulumi_wasmcloud.provider.handlers import ProviderSettings
from pulumi_wasmcloud.provider.lattice_resource import LatticeResource
from pulumi_wasmcloud.provider.secret_resource import SecretResource
from pulumi_wasmcloud.provider.values import plain, to_props
from pulumi_wasmcloud.provision.security import ROTATION_WINDOW, role_in_domain
from tests.lattice import VENV_BIN, free_port, run_async
from tests.machines import Machine, Machines, booted
from tests.secured_nats import (
    client_options,
    leaks,
    machine_leaks,
    refusals,
    secret_files,
    served_certificate,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CORE = ("core-1", "core-2", "core-3")
EDGE = "edge-1"
DOMAIN = "core"
REGISTRY_PORT = 5000
BUCKETS = ("KV_LATTICEDATA_default", "KV_CONFIGDATA_default", "KV_wadm_manifests")


class RecordingLog(EngineLog):
    """What the handler tells the engine (the CLI would show the notes)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.notes: list[str] = []
        self.progress: list[str] = []

    async def note(self, message: str, urn: str = "") -> None:
        self.notes.append(message)

    async def info(self, message: str, urn: str = "") -> None:
        self.progress.append(message)

    def take(self) -> list[str]:
        notes, self.notes, self.progress = self.notes, [], []
        return notes


@pytest.fixture
def machines() -> Iterator[Machines]:
    yield from booted(*CORE, EDGE)


def machine_input(machines: Machines, name: str) -> dict[str, Any]:
    """An SshMachine's wire map without its host key: the first connection records it."""
    return {
        "name": name,
        "host": machines[name].address,
        "port": 22,
        "user": "root",
        "privateKey": machines.client_key.private_openssh,
        "hostKey": None,
        "verifyHostKey": True,
        "bastion": None,
        "sudo": None,
    }


def lattice_inputs(machines: Machines) -> dict[str, Any]:
    return {
        "lattice": "default",
        "cluster": [machine_input(machines, name) for name in CORE],
        "leafNodes": [{"region": "east", "machine": machine_input(machines, EDGE)}],
        "registryPort": REGISTRY_PORT,
        "heartbeatSeconds": 2,
        "jetstreamDomain": DOMAIN,
        "maxFileStore": 1 << 30,
    }


def wire(values: dict[str, Any]) -> dict[str, Any]:
    """Values as the next call gets them from the engine (secrets unwrapped)."""
    return plain(to_props(values))


def url(machines: Machines, name: str) -> str:
    return f"nats://{machines[name].address}:4222"


# The lattice's tooling user and TLS (its `credentials` and `clientTls` outputs), set
# once a test has created the lattice: the clients below connect with them; AS_HOST with
# a host's user minted from its `userIssuer` (what writes the hosts' buckets).
SECURED: dict[str, Any] = {}
AS_HOST: dict[str, Any] = {}


def secured(state: dict[str, Any]) -> None:
    SECURED.clear()
    SECURED.update(client_options(state))
    issuer = UserIssuer.from_state(state["userIssuer"], "userIssuer")
    host = issuer.issue_with(role_in_domain(Role.HOST, "default", DOMAIN), "test-host")
    AS_HOST.clear()
    AS_HOST.update({**SECURED, "user_credentials": RawCredentials(host.creds())})


async def kv_round_trip(server: str, key: str, value: bytes, timeout: float = 60.0) -> None:
    """Write and read back ``key`` in the lattice's links bucket through ``server``, in
    the core's domain; retried until it works (a leaf moving to another hub, a stream
    electing a new leader) or ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            nc = await nats.connect(server, connect_timeout=2, max_reconnect_attempts=0, **AS_HOST)
        except (nats.errors.NoServersError, OSError) as e:
            last = e
            await asyncio.sleep(0.5)
            continue
        try:
            # As a host opens it (writes through the domain: see jetstream._DomainWrites).
            kv = await open_kv(nc.jetstream(domain=DOMAIN, timeout=3), "LATTICEDATA_default")
            await kv.put(key, value)
            assert (await kv.get(key)).value == value
            return
        except (nats.js.errors.Error, nats.errors.TimeoutError, nats.errors.NoRespondersError) as e:
            last = e
            await asyncio.sleep(0.5)
        finally:
            await nc.close()
    raise AssertionError(f"no KV round trip through {server} within {timeout:g}s: {last}")


async def replicas(server: str) -> dict[str, tuple[int, int]]:
    """Per lattice stream: (configured replicas, peers that are current)."""
    nc = await nats.connect(server, connect_timeout=2, max_reconnect_attempts=0, **SECURED)
    try:
        js = nc.jetstream(domain=DOMAIN, timeout=5)
        found = {}
        for stream in BUCKETS:
            info = await js.stream_info(stream)
            cluster = info.cluster
            assert cluster is not None
            current = 1 + sum(1 for r in cluster.replicas or [] if r.current)
            found[stream] = (info.config.num_replicas, current)
        return found
    finally:
        await nc.close()


SECRETS_WILDCARD = "wasmcloud.secrets.v1alpha1.nats-kv.>"


async def backend_xkey(server: str) -> str:
    """The transit key the secrets backend answers ``server_xkey`` with, asked as the
    tooling user through ``server`` (a node's own queue subscriber answers first)."""
    nc = await nats.connect(server, connect_timeout=5, max_reconnect_attempts=0, **SECURED)
    try:
        return (await SecretsClient(nc, "nats-kv", timeout=5).server_xkey()).public_key
    finally:
        await nc.close()


async def host_fetch(server: str, key: str) -> str:
    """What a host connected to ``server`` gets for a reference to ``key`` (its secrets
    client, as it fetches a provider's or component's secrets)."""
    nc = await nats.connect(server, connect_timeout=5, max_reconnect_attempts=0, **AS_HOST)
    try:
        reference = reference_values("password", "nats-kv", key, None, None, {})

        async def read(name: str) -> dict[str, str] | None:
            return reference if name == "SECRET_app-password" else None

        values = await HostSecrets(nc, read, "NHOST", "test").fetch(["SECRET_app-password"])
        value: str = values.plain()["password"]["value"]
        return value
    finally:
        await nc.close()


def subscribed(machine: Machine, subject: str) -> bool:
    """Whether a client of this node's nats-server subscribes ``subject`` (its
    monitoring endpoint's connections with their subscriptions)."""
    address = f"http://{machine.address}:8222/connz?subs=1&limit=1024"
    with urllib.request.urlopen(address, timeout=10) as answer:
        connections = json.loads(answer.read()).get("connections") or []
    return any(subject in (c.get("subscriptions_list") or []) for c in connections)


def bucket_replicas(machine: Machine, stream: str) -> int | None:
    """The replicas ``stream`` is configured with, from the node's ``/jsz`` (None: no
    such stream)."""
    address = f"http://{machine.address}:8222/jsz?accounts=true&streams=true&config=true"
    with urllib.request.urlopen(address, timeout=10) as answer:
        jsz = json.loads(answer.read())
    for account in jsz.get("account_details") or []:
        for detail in account.get("stream_detail") or []:
            if detail.get("name") == stream:
                return int(detail["config"]["num_replicas"])
    return None


def backend_log(machine: Machine) -> str:
    return machine.inside(["sh", "-c", "cat /var/log/wasmcloud/secrets-backend.log"]).stdout


def server_start(machine: Machine) -> float:
    """When the node's nats-server started (its monitoring endpoint's ``/varz``: RFC 3339
    with up to nine fraction digits, which Go trims), in seconds since the epoch."""
    address = f"http://{machine.address}:8222/varz"
    with urllib.request.urlopen(address, timeout=10) as answer:
        start = str(json.loads(answer.read())["start"])
    whole, _, rest = start.partition(".")
    fraction = rest.rstrip("Z")[:6] if rest else "0"
    moment = datetime.fromisoformat(whole.rstrip("Z") + "+00:00")
    return moment.timestamp() + float(f"0.{fraction}")


def stop_nats_server(machine: Machine) -> None:
    """Stop the node's supervised nats-server as an operator would (the supervisor goes
    with it, so nothing restarts it)."""
    done = machine.inside(
        ["sh", "-c", 'kill -TERM -"$(cat /var/lib/wasmcloud/services/nats-server/pid)"']
    )
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 20
    while machine.inside(["pgrep", "-x", "nats-server"]).returncode == 0:
        assert time.monotonic() < deadline, "nats-server did not stop"
        time.sleep(0.1)


@run_async
async def test_a_lattice_on_machines_serves_survives_a_core_node_and_leaves_nothing(
    machines: Machines,
) -> None:
    booted_files = {m.name: m.own_files() for m in machines}
    log = RecordingLog()
    handler = LatticeResource(log)
    checked = await handler.check({}, lattice_inputs(machines))
    assert checked.failures == []
    inputs = wire(checked.inputs)

    # Preview: what each machine will get, said per machine; nothing changes yet.
    preview = await handler.create(inputs, preview=True)
    notes = log.take()
    for name in (*CORE, EDGE):
        assert f"nats-server 2.12.1: install on {name}" in notes
        assert f"nats-server service: start on {name}" in notes
        # Its certificate and secret files, said per machine, their values never.
        assert (
            f"nats-server secrets: write the lattice's CA certificate, its TLS certificate, "
            f"its TLS key{', its leaf node credentials' if name == EDGE else ''} on {name}"
        ) in notes, notes
    assert "controller NATS user and TLS files: write on core-2" in notes
    for name in CORE:  # the secrets backend on every core node, on no leaf node
        assert f"secrets-backend service: start on {name}" in notes, notes
        assert f"secrets backend NATS user and TLS files: write on {name}" in notes
    assert not any(n.endswith(f"on {EDGE}") and "secrets backend" in n for n in notes)
    assert not any(n.endswith(f"on {EDGE}") and "secrets-backend" in n for n in notes)
    assert not leaks("\n".join(notes))
    assert any(n.startswith("controller") and n.endswith("on core-2") for n in notes), notes
    assert not any(n.endswith(f"on {EDGE}") and "controller" in n for n in notes)
    assert "docker-registry 2.8.2+ds1: install on core-1" in notes
    assert set(preview.outputs["drift"]) == {*CORE, EDGE}
    assert not any("/opt/wasmcloud" in p for m in machines for p in m.processes().values())

    created = await handler.create(inputs, preview=False)
    for key in (
        "security",
        "userIssuer",
        "credentials",
        "clientTls",
        "tlsIssuer",
        "secretsKey",
        "secretsCredentials",
    ):
        assert to_props(created.outputs)[key].is_secret, key  # kept encrypted in state
    state = wire(created.outputs)
    secured(state)
    counts = {n.split(":")[0]: int(n.split()[1]) for n in log.take() if n.endswith(" commands")}
    assert set(counts) == {*CORE, EDGE} and all(c > 0 for c in counts.values())
    assert state["natsUrl"] == url(machines, "core-1")
    assert state["natsUrls"] == {name: url(machines, name) for name in (*CORE, EDGE)}
    assert state["jsDomain"] == DOMAIN
    assert state["registryUrl"] == f"http://{machines['core-1'].address}:{REGISTRY_PORT}"
    # The key each machine showed, recorded (its comment is not part of it).
    assert state["hostKeys"] == {m.name: " ".join(m.host_key.split()[:2]) for m in machines}
    assert state["running"] is True and state["drift"] == {}

    # A lattice from before the secrets backend ran on machines: its state has none of
    # the backend's material. It loads; the preview says what the `up` makes (never a
    # value), and the `up` makes it and (re)starts the backend with it.
    old = json.loads(json.dumps(state))
    del old["security"]["secretsBackend"]
    for node in old["security"]["nodes"].values():
        del node["secretsTls"]
    log.take()
    diff = await handler.diff(created.id, old, inputs)
    notes = log.take()
    assert "running" in diff.changed and diff.replaces == []
    assert (
        "secrets backend keys (encryption, transit) and NATS user: make for lattice default"
    ) in notes, notes
    for name in CORE:
        assert f"secrets backend TLS certificate: issue for {name}" in notes, notes
        assert f"secrets backend config: update on {name}" in notes, notes
    assert not leaks("\n".join(notes))
    state = wire(await handler.update(created.id, old, inputs, preview=False))
    assert state["security"]["secretsBackend"] is not None
    log.take()

    # Secured: every node refuses anyone but a user with a certificate of the lattice's
    # CA, and serves a certificate for its own address.
    for name in (*CORE, EDGE):
        refused = await refusals(url(machines, name), state)
        assert refused["anonymous"] and refused["no client certificate"], (name, refused)
        assert "Authorization Violation" in refused["no user"], (name, refused)
        served = served_certificate(machines[name].address, state)
        addresses = served.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        named = [str(a) for a in addresses.value.get_values_for_type(x509.IPAddress)]
        # Its own address first; a core node's names the other core nodes' too (a client
        # failing over verifies it against the address it first dialled).
        assert named[0] == machines[name].address, (name, named)
        others = {machines[n].address for n in CORE} if name in CORE else set()
        assert set(named) == {machines[name].address} | others, (name, named)
        files = secret_files(machines[name])
        assert {f: m for f, m in files.items() if not f.endswith("registry.yml")} == dict.fromkeys(
            [f for f in files if not f.endswith("registry.yml")], "600 root"
        ), files
        assert "/etc/wasmcloud/nats-server.key.pem" in files
    assert "/etc/wasmcloud/controller.creds" in secret_files(machines["core-1"])
    assert "/etc/wasmcloud/nats-server.leaf.creds" in secret_files(machines[EDGE])

    # Application secrets: the backend runs on every core node as its own service, its
    # files 0600 (its seeds in its environment file only), subscribed on its own node.
    assert state["secretsKey"].startswith("SX") and state["secretsCredentials"]
    for name in CORE:
        files = secret_files(machines[name])
        for suffix in ("env", "creds", "ca.pem", "cert.pem", "key.pem"):
            assert files[f"/etc/wasmcloud/secrets-backend.{suffix}"] == "600 root", files
        assert any(
            "-m host_agent.secrets serve --replicas 3" in p
            for p in machines[name].processes().values()
        ), name
        # Its definition (readable by every user) names its environment file, no value.
        definition = (
            machines[name].inside(["cat", "/var/lib/wasmcloud/services/secrets-backend/run"]).stdout
        )
        assert "/etc/wasmcloud/secrets-backend.env" in definition
        assert not leaks(definition), name
        deadline = time.monotonic() + 60  # `up` waited for one instance, not for all
        while not subscribed(machines[name], SECRETS_WILDCARD):
            assert time.monotonic() < deadline, (name, backend_log(machines[name]))
            await asyncio.sleep(0.5)
    assert not any("host_agent.secrets" in p for p in machines[EDGE].processes().values())
    # One queue group with one transit key: each node's instance answers alike.
    transit = {name: await backend_xkey(url(machines, name)) for name in CORE}
    shared = XKey.from_seed(state["security"]["secretsBackend"]["transitKey"]).public_key
    assert set(transit.values()) == {shared}, transit
    # A Secret given what the Lattice outputs (as the SDK's Secret takes them) is put...
    value = "pw-machine-lattice-7f3a"
    secret = SecretResource(RecordingLog(), ProviderSettings())
    checked_secret = await secret.check(
        {},
        {
            **{k: state[k] for k in ("natsUrl", "credentials", "caCert", "clientTls")},
            "lattice": "default",
            "key": "redis-password",
            "value": value,
        },
    )
    assert checked_secret.failures == []
    stored = await secret.create(checked_secret.inputs, preview=False)
    assert stored.outputs["revision"] >= 1
    # ... and a host's secrets client gets it, through the edge and through every core
    # node (whichever instance answers opens it: one encryption key everywhere).
    assert await host_fetch(url(machines, EDGE), "redis-password") == value
    for name in CORE:
        assert await host_fetch(url(machines, name), "redis-password") == value
    # The backend's bucket has the lattice's replicas (the monitoring endpoint says so:
    # no role but the backend's may read it).
    assert bucket_replicas(machines["core-1"], "KV_WASMCLOUD_SECRETS") == 3

    # The cluster serves the lattice: a KV write and read from a client on the leaf node,
    # in the core's domain; every lattice stream has 3 replicas, all current.
    await kv_round_trip(url(machines, EDGE), "from-the-edge", b"1")
    assert await replicas(url(machines, "core-1")) == dict.fromkeys(BUCKETS, (3, 3))
    nc = await nats.connect(url(machines, EDGE), **SECURED)
    try:  # the controller answers across the leaf node too
        await WadmClient(nc, "default", timeout=5).list()
    finally:
        await nc.close()
    with urllib.request.urlopen(f"{state['registryUrl']}/v2/", timeout=10) as answer:
        assert answer.status == 200

    # A second run changes nothing: no diff, and an update runs no command anywhere.
    log.take()
    unchanged = await handler.diff(created.id, state, inputs)
    assert unchanged.changed == {}, log.take()  # what the machines would still need
    state = wire(await handler.update(created.id, state, inputs, preview=False))
    done = list(log.progress)  # the changes made, if any
    assert sorted(n for n in log.take() if n.endswith(" commands")) == [
        f"{name}: 0 commands" for name in sorted((*CORE, EDGE))
    ], done

    # One core node down: the lattice keeps serving its JetStream state from the edge.
    stop_nats_server(machines["core-3"])
    await kv_round_trip(url(machines, EDGE), "with-core-3-down", b"2")
    read = await handler.read(created.id, state)
    assert read is not None
    read = wire(read)
    assert read["running"] is False
    assert read["drift"] == {"core-3": ["nats-server service: start on core-3"]}
    diff = await handler.diff(created.id, read, inputs)
    assert "running" in diff.changed and diff.replaces == []
    assert "nats-server service: start on core-3" in log.take()
    state = wire(await handler.update(created.id, read, inputs, preview=False))
    assert "core-3: 1 commands" in log.take()
    read = await handler.read(created.id, state)
    assert read is not None and read["drift"] == {} and read["running"] is True
    await kv_round_trip(url(machines, "core-3"), "core-3-back", b"3")

    # A new JetStream limit reaches the core nodes' configs (a leaf node has no JetStream);
    # they restart one at a time, each back in the cluster before the next goes.
    limited = {**inputs, "maxFileStore": 2 << 30}
    diff = await handler.diff(created.id, state, limited)
    assert "maxFileStore" in diff.changed and diff.replaces == []
    restarts = [f"nats-server service: restart on {name}" for name in CORE]
    assert [n for n in log.take() if "service: restart" in n] == restarts
    state = wire(await handler.update(created.id, state, limited, preview=False))
    done = [p for p in log.progress if "service: restart" in p]
    assert done == [f"{name}: nats-server service: restart on {name}" for name in CORE]
    # Each node's nats-server started after the one before it had rejoined.
    started = [server_start(machines[name]) for name in CORE]
    assert started == sorted(started) and len(set(started)) == len(CORE), started
    log.take()
    config = machines["core-2"].inside(["cat", "/etc/wasmcloud/nats-server.conf"]).stdout
    assert f"max_file_store: {2 << 30}" in config
    await kv_round_trip(url(machines, EDGE), "with-the-new-limit", b"4")

    # Certificates near their expiry: the next `up` reissues them, and every node reloads
    # them without a restart; clients, routes and the leaf stay connected throughout.
    handler.machines.rotation_window = timedelta(days=400)  # TEST-ONLY: all certs due
    start_times = {name: server_start(machines[name]) for name in (*CORE, EDGE)}
    serials = {
        name: served_certificate(machines[name].address, state).serial_number
        for name in (*CORE, EDGE)
    }
    disconnects: list[str] = []

    async def disconnected() -> None:
        disconnects.append("edge client")

    watcher = await nats.connect(
        url(machines, EDGE), disconnected_cb=disconnected, max_reconnect_attempts=0, **SECURED
    )
    try:
        diff = await handler.diff(created.id, state, limited)
        notes = log.take()
        assert "running" in diff.changed and diff.replaces == []
        for name in (*CORE, EDGE):
            assert any(
                n.startswith("nats-server TLS certificate: reissue (expires ")
                and n.endswith(f" for {name}")
                for n in notes
            ), notes
            assert f"nats-server secrets: replace its TLS certificate, its TLS key on {name}" in (
                notes
            ), notes
            assert any(n.startswith(f"nats-server service: reload on {name}") for n in notes)
            assert f"nats-server service: restart on {name}" not in notes
        state = wire(await handler.update(created.id, state, limited, preview=False))
        secured(state)
        log.take()
        for name in (*CORE, EDGE):
            assert server_start(machines[name]) == start_times[name], f"{name} restarted"
            now = served_certificate(machines[name].address, state).serial_number
            assert now != serials[name], f"{name} still serves its old certificate"
        assert watcher.is_connected and disconnects == []
        await kv_round_trip(url(machines, EDGE), "after-rotation", b"5")
        assert await replicas(url(machines, "core-1")) == dict.fromkeys(BUCKETS, (3, 3))
    finally:
        await watcher.close()
    handler.machines.rotation_window = ROTATION_WINDOW

    # Nothing secret in any machine's process list or logs, nor in what we told the
    # engine (the machines' sshd logs too: no secret went through a command line).
    for machine in machines:
        assert machine_leaks(machine) == {}, machine.name
    assert not leaks("\n".join(log.notes + log.progress))

    # Delete: nothing of ours on any machine.
    await handler.delete(created.id, state)
    for machine in machines:
        deadline = time.monotonic() + 20
        while machine.processes():  # SSH sessions end as the handler closes them
            assert time.monotonic() < deadline, f"{machine.name}: {machine.processes()}"
            await asyncio.sleep(0.2)
        assert machine.own_files() == booted_files[machine.name], machine.name


@pytest.fixture
def pair() -> Iterator[Machines]:
    yield from booted("core-1", EDGE)


@run_async
async def test_a_machine_failing_mid_install_is_named_the_others_finish_and_a_rerun_converges(
    pair: Machines,
) -> None:
    booted_files = {m.name: m.own_files() for m in pair}
    edge = pair[EDGE]
    # A file where our directory goes: the edge node's install fails at its first upload.
    blocked = edge.inside(["sh", "-c", "mkdir -p /opt/wasmcloud && : > /opt/wasmcloud/bin"])
    assert blocked.returncode == 0, blocked.stderr
    log = RecordingLog()
    handler = LatticeResource(log)
    inputs = {
        "lattice": "default",
        "cluster": [machine_input(pair, "core-1")],
        "leafNodes": [{"region": "east", "machine": machine_input(pair, EDGE)}],
    }
    checked = await handler.check({}, inputs)
    assert checked.failures == []
    inputs = wire(checked.inputs)

    with pytest.raises(RuntimeError) as failed:
        await handler.create(inputs, preview=False)
    said = str(failed.value)
    assert f"failed on {EDGE} (the other machines were done)" in said
    assert "/opt/wasmcloud/bin" in said  # the failing command's own output
    notes = log.take()
    core_commands = [n for n in notes if n.startswith("core-1: ")]
    assert len(core_commands) == 1 and core_commands[0] != "core-1: 0 commands"
    # core-1 finished: its JetStream holds the lattice's buckets (its monitoring port
    # says so: the failed create left no state, so no user to connect as).
    with urllib.request.urlopen(f"http://{pair['core-1'].address}:8222/jsz", timeout=10) as jsz:
        assert json.loads(jsz.read())["streams"] >= 2
    assert any("-m host_agent.cli.controller" in p for p in pair["core-1"].processes().values())

    # Fixed on the machine, the next `up` (a create again: the failed one left no state,
    # so the lattice gets a new authority and CA, and core-1 its new files) finishes.
    assert edge.inside(["rm", "-f", "/opt/wasmcloud/bin"]).returncode == 0
    created = await handler.create(inputs, preview=False)
    secured(wire(created.outputs))
    notes = log.take()
    assert any(n.startswith("core-1: ") for n in notes)
    assert any(n.startswith(f"{EDGE}: ") and n != f"{EDGE}: 0 commands" for n in notes)
    await kv_round_trip(url(pair, EDGE), "after-the-fix", b"2")
    # A second `up` now has nothing to do anywhere.
    state = wire(await handler.update(created.id, wire(created.outputs), inputs, preview=False))
    assert sorted(n for n in log.take() if n.endswith(" commands")) == [
        "core-1: 0 commands",
        f"{EDGE}: 0 commands",
    ]

    await handler.delete(created.id, state)
    for machine in pair:
        deadline = time.monotonic() + 20
        while machine.processes():
            assert time.monotonic() < deadline, f"{machine.name}: {machine.processes()}"
            await asyncio.sleep(0.2)
        assert machine.own_files() == booted_files[machine.name], machine.name


@run_async
async def test_a_client_on_a_leaf_node_writes_the_hubs_buckets_through_the_domain(
    tmp_path: Path,
) -> None:
    """On loopback, no machines: a hub in domain "core" and a leaf node without
    JetStream. The leaf connection refuses ``$KV.>``, so nats-py's own KV write finds no
    stream; a bucket opened with ``open_kv`` writes through the domain and works."""
    hub_port, leaf_port, listen_port = free_port(), free_port(), free_port()
    hub = tmp_path / "hub.conf"
    hub.write_text(
        f'listen: "127.0.0.1:{hub_port}"\nserver_name: "hub"\n'
        f'jetstream {{ store_dir: "{tmp_path / "js"}", domain: "{DOMAIN}" }}\n'
        f'leafnodes {{ listen: "127.0.0.1:{listen_port}" }}\n'
    )
    leaf = tmp_path / "leaf.conf"
    leaf.write_text(
        f'listen: "127.0.0.1:{leaf_port}"\nserver_name: "leaf"\n'
        f'leafnodes {{ remotes: [ {{ urls: ["nats-leaf://127.0.0.1:{listen_port}"] }} ] }}\n'
    )
    servers = [
        subprocess.Popen(
            [str(VENV_BIN / "nats-server"), "-c", str(conf)], stderr=subprocess.DEVNULL
        )
        for conf in (hub, leaf)
    ]
    try:
        for port in (hub_port, leaf_port):
            deadline = time.monotonic() + 10
            while not await listening_async(port):
                assert time.monotonic() < deadline, f"nats-server on {port} did not listen"
        core = await nats.connect(f"nats://127.0.0.1:{hub_port}")
        try:
            await open_kv(core.jetstream(domain=DOMAIN), "LATTICEDATA_default")
        finally:
            await core.close()
        edge = await nats.connect(f"nats://127.0.0.1:{leaf_port}")
        try:
            js = edge.jetstream(domain=DOMAIN, timeout=2)
            deadline = time.monotonic() + 10
            while True:  # until the leaf connection is up
                try:
                    plain_kv = await js.key_value("LATTICEDATA_default")
                    break
                except (nats.js.errors.ServiceUnavailableError, nats.errors.TimeoutError):
                    assert time.monotonic() < deadline, "the leaf node did not connect"
                    await asyncio.sleep(0.1)
            with pytest.raises(nats.js.errors.NoStreamResponseError):
                await plain_kv.put("plain", b"0")
            kv = await open_kv(js, "LATTICEDATA_default")
            await update_json(kv, "link", lambda current: {"n": 1})
            await update_json(kv, "link", lambda current: {"n": current["n"] + 1})
            assert await read_json(kv, "link") == ({"n": 2}, 2)
            await update_json(kv, "link", lambda current: None)
            assert await read_json(kv, "link") == (None, None)
        finally:
            await edge.close()
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
