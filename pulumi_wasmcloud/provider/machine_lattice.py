"""``wasmcloud:index:Lattice`` with ``cluster``: the lattice on machines, over SSH.

The core cluster's machines run nats-server (routes between them, JetStream on disk in
the lattice's domain, a leaf-node listener) and the controller; ``cluster[0]`` also runs
the lattice's registry when ``registryPort`` is given; each leaf node's machine runs a
nats-server that is a leaf of the core (provision/topology.py says what each runs).

Every operation starts the same way: connect to every machine at once, gather its facts
and plan what it still needs. Preview shows those plans (one sentence per change, per
machine); ``up`` applies them in three steps across all machines: NATS everywhere, then
(once JetStream has a meta leader) the lattice's host buckets made with their replicas,
then the controllers and the registry; it ends when a controller answers. A running
core node whose nats-server must restart (new config or binary) restarts alone, and the
next only once it is back in the cluster, so JetStream keeps its majority. A machine that
fails is named with its output while the others finish; the update then fails, and a
re-run converges (what was done is found done). A machine we cannot serve (another
architecture) is refused by name before anything changes anywhere.

``read`` reports drift per machine (``drift``: machine -> what it needs, e.g. a stopped
node), which the next ``up`` repairs; ``delete`` removes everything of ours from every
machine.

Secured (always): the lattice is its own NATS authority and CA (provision/security.py),
made at create and kept as secret state (``security``). Every node runs nats-server in
operator mode with the same accounts, mutual TLS on its client, route and leaf
listeners with a certificate for the machine's address; each leaf node's remote has its
own user; each core node's controller its own controller user and client certificate.
The provider talks to the lattice as its tooling user (``credentials``, ``clientTls``),
and Hosts mint their users from ``userIssuer`` and their client certificates from
``tlsIssuer``. Each core node also runs the NATS KV secrets backend (application
secrets) as its own user, one queue group over the cluster; its keys are the secret
outputs ``secretsKey`` and ``secretsCredentials`` (as a local Lattice's). Every ``up``
reissues what expires within 30 days (the preview says which, per machine) and has the
nodes reload them without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from pulumi_wasmcloud.provider.engine_log import EngineLog
from pulumi_wasmcloud.provider.handlers import Checked, Created, Diff, InputError, changed_keys
from pulumi_wasmcloud.provider.machine_inputs import (
    MachineSpec,
    connect,
    describe,
    parse_host_keys,
    parse_machine,
    recorded_keys,
    secret_private_keys,
)
from pulumi_wasmcloud.provider.values import UNKNOWN, has_unknowns, to_property
from pulumi_wasmcloud.provision.changes import Change, apply
from pulumi_wasmcloud.provision.connector import ProvisionError, SshConnection
from pulumi_wasmcloud.provision.nats_config import OperatorModeSettings, render
from pulumi_wasmcloud.provision.operations import (
    NatsServerBinary,
    Unsupported,
    gather_nats_server_facts,
    packaged_nats_server,
    plan_nats_server,
    plan_remove_nats_server,
)
from pulumi_wasmcloud.provision.secret_files import (
    CA_SUFFIX,
    CERT_SUFFIX,
    CREDS_SUFFIX,
    ISSUER_SUFFIX,
    KEY_SUFFIX,
    agent_file,
)
from pulumi_wasmcloud.provision.service import log_path, unit_name
from pulumi_wasmcloud.provision.topology import (
    DEFAULT_DOMAIN,
    DEFAULT_MAX_FILE_STORE,
    EdgeNode,
    NodeMachine,
    Topology,
    TopologyError,
    TopologySecurity,
    plan_topology,
)

# NATS, the lattice's security (its authority and certificates: cryptography's x509), the
# agent's wheelhouse and the registry's code are imported where machines are surveyed or
# changed and the cluster is waited for: a preview whose machines are not known yet (a new
# stack of EC2 machines) does none of it, and every preview's plugin process would pay
# for them (tests/unit/test_provider_startup.py keeps it so).
if TYPE_CHECKING:
    from datetime import timedelta

    from pulumi_wasmcloud.provision.agent import Wheelhouse
    from pulumi_wasmcloud.provision.registry import RegistryBinary
    from pulumi_wasmcloud.provision.security import LatticeSecurity, NodeRole

T = TypeVar("T")

# Only these properties replace the lattice: its name is in every bucket and subject.
REPLACE_ON = ("lattice",)
INPUTS = (
    "lattice",
    "cluster",
    "leafNodes",
    "registryPort",
    "heartbeatSeconds",
    "jetstreamDomain",
    "maxFileStore",
    "otlpEndpoint",
)
# The local lattice's properties, which a lattice on machines has no use for.
LOCAL_ONLY = {
    "natsPort": "every machine's NATS serves clients on 4222",
    "stateDir": "each machine keeps its state under /var/lib/wasmcloud",
    "redisPort": "a lattice on machines runs no redis-server",
}
# topology.py's field names as the wire spells them.
WIRE_FIELDS = {
    "leaf_nodes": "leafNodes",
    "jetstream_domain": "jetstreamDomain",
    "max_file_store": "maxFileStore",
}
MAX_PARALLEL = 16
JETSTREAM_TIMEOUT = 60.0
CONTROLLER_TIMEOUT = 60.0
CONTROLLER_SERVICE = "controller"
SECRETS_BACKEND_SERVICE = "secrets-backend"
SECRETS_BACKEND_TIMEOUT = 60.0
# Secret outputs: all of the lattice's private material, and what Hosts, Applications and
# Secrets take from it (the names the local Lattice uses too, where it has them).
SECRET_OUTPUTS = (
    "security",
    "userIssuer",
    "credentials",
    "clientTls",
    "tlsIssuer",
    "secretsKey",
    "secretsCredentials",
)
# The local Lattice's outputs a lattice on machines has no use for (its authority is in
# `security`; no single controller user): empty, not missing, so a preview does not read
# them as unknown.
LOCAL_OUTPUTS: dict[str, Any] = {
    "authority": {},
    "controllerCredentials": "",
    "tls": {},
}


# --- inputs --------------------------------------------------------------------------


@dataclass(frozen=True)
class MachineLatticeSpec:
    """A lattice on machines, every input known and valid."""

    lattice: str
    cluster: tuple[MachineSpec, ...]
    leaf_nodes: tuple[tuple[str, MachineSpec], ...]  # (region, machine)
    registry_port: int | None
    heartbeat_seconds: int
    topology: Topology
    max_file_store: int = DEFAULT_MAX_FILE_STORE
    security: LatticeSecurity | None = field(default=None, repr=False)
    # The OTLP/HTTP collector the machines' hosts and controllers export to ("": none).
    otlp_endpoint: str = ""

    @property
    def machines(self) -> list[MachineSpec]:
        return [*self.cluster, *(machine for _, machine in self.leaf_nodes)]

    @property
    def nats_url(self) -> str:
        return self.topology.nats_url

    def secured(self, security: LatticeSecurity) -> MachineLatticeSpec:
        """This lattice with ``security``: every node's config in operator mode with TLS."""
        authority = security.authority
        topology = plan_topology(
            [NodeMachine(m.name, m.host) for m in self.cluster],
            [EdgeNode(region, NodeMachine(m.name, m.host)) for region, m in self.leaf_nodes],
            domain=self.topology.domain,
            max_file_store=self.max_file_store,
            security=TopologySecurity(
                OperatorModeSettings.from_auth(authority.server_auth()),
                authority.account_public_key,
            ),
        )
        return replace(self, topology=topology, security=security)

    def roles(self) -> dict[str, NodeRole]:
        """Each machine's address and whether it is a core node (for its certificates)."""
        from pulumi_wasmcloud.provision.security import NodeRole  # see the note on imports above

        return {m.name: NodeRole(m.host, m.name in self.topology.core) for m in self.machines}

    @property
    def registry_url(self) -> str:
        if self.registry_port is None:
            return ""
        return f"http://{_host_port(self.cluster[0].host, self.registry_port)}"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _whole(value: Any, field: str, least: int, most: int | None = None) -> InputError | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return InputError(field, f"expected a whole number, got {describe(value)}")
    if value < least or (most is not None and value > most):
        bound = f"between {least} and {most}" if most is not None else f"at least {least}"
        return InputError(field, f"{value} is not {bound}")
    return None


def normalized(news: dict[str, Any]) -> dict[str, Any]:
    """The inputs with their defaults, as the state keeps them."""

    def given(key: str, default: Any) -> Any:
        return default if news.get(key) is None else news[key]

    return {
        "lattice": given("lattice", "default"),
        "cluster": news.get("cluster"),
        "leafNodes": given("leafNodes", []),
        "registryPort": news.get("registryPort"),
        "heartbeatSeconds": given("heartbeatSeconds", 30),
        "jetstreamDomain": given("jetstreamDomain", DEFAULT_DOMAIN),
        "maxFileStore": given("maxFileStore", DEFAULT_MAX_FILE_STORE),
        # A collector the MACHINES reach (an address of theirs, not this machine's
        # localhost); "" is off.
        "otlpEndpoint": given("otlpEndpoint", ""),
    }


def parse_spec(inputs: dict[str, Any]) -> MachineLatticeSpec | list[InputError]:
    """The lattice the (normalized) inputs describe, or every failure by field; an empty
    list while some value is not known yet (preview)."""
    failures: list[InputError] = []
    lattice = inputs["lattice"]
    if lattice is not UNKNOWN and (not isinstance(lattice, str) or not lattice):
        failures.append(
            InputError("lattice", f"expected a non-empty string, got {describe(lattice)}")
        )
    for key, why in LOCAL_ONLY.items():
        if inputs.get(key) is not None:
            failures.append(InputError(key, f"not for a lattice on machines ({why}); leave it out"))
    for key, least, most in (
        ("registryPort", 1, 65535),
        ("heartbeatSeconds", 1, None),
        ("maxFileStore", 1 << 20, None),
    ):
        value = inputs.get(key)
        if value is not None and value is not UNKNOWN:
            problem = _whole(value, key, least, most)
            if problem is not None:
                failures.append(problem)
    from pulumi_wasmcloud.provider.lattice_resource import otlp_endpoint_problem  # it imports us

    endpoint_problem = otlp_endpoint_problem(inputs["otlpEndpoint"])
    if endpoint_problem:
        failures.append(
            InputError("otlpEndpoint", f"{endpoint_problem}, an address the machines reach")
        )
    domain = inputs["jetstreamDomain"]
    if domain is not UNKNOWN and not isinstance(domain, str):
        failures.append(InputError("jetstreamDomain", f"expected a string, got {describe(domain)}"))

    cluster: list[MachineSpec] = []
    given_cluster = inputs["cluster"]
    if isinstance(given_cluster, list):
        if not given_cluster:
            failures.append(
                InputError(
                    "cluster", "give at least one machine (three keep serving with one down)"
                )
            )
        for i, value in enumerate(given_cluster):
            parsed = parse_machine(value, f"cluster[{i}]")
            if isinstance(parsed, list):
                failures += parsed
            else:
                cluster.append(parsed)
    elif given_cluster is not UNKNOWN:
        failures.append(
            InputError("cluster", f"expected a list of machines, got {describe(given_cluster)}")
        )
    leaves: list[tuple[str, MachineSpec]] = []
    given_leaves = inputs["leafNodes"]
    if isinstance(given_leaves, list):
        for i, value in enumerate(given_leaves):
            leaf = _parse_leaf(value, f"leafNodes[{i}]", failures)
            if leaf is not None:
                leaves.append(leaf)
    elif given_leaves is not UNKNOWN:
        failures.append(
            InputError("leafNodes", f"expected a list of leaf nodes, got {describe(given_leaves)}")
        )
    if failures or has_unknowns({k: inputs[k] for k in INPUTS}):
        return failures
    try:
        topology = plan_topology(
            [NodeMachine(m.name, m.host) for m in cluster],
            [EdgeNode(region, NodeMachine(m.name, m.host)) for region, m in leaves],
            domain=domain,
            max_file_store=inputs["maxFileStore"],
        )
    except TopologyError as e:
        where = e.field
        for snake, camel in WIRE_FIELDS.items():
            where = where.replace(snake, camel)
        return [InputError(where, e.reason)]
    return MachineLatticeSpec(
        lattice=lattice,
        cluster=tuple(cluster),
        leaf_nodes=tuple(leaves),
        registry_port=inputs["registryPort"],
        heartbeat_seconds=inputs["heartbeatSeconds"],
        topology=topology,
        max_file_store=inputs["maxFileStore"],
        otlp_endpoint=inputs["otlpEndpoint"],
    )


def _parse_leaf(
    value: Any, field: str, failures: list[InputError]
) -> tuple[str, MachineSpec] | None:
    if value is UNKNOWN:
        return None
    if not isinstance(value, dict):
        failures.append(
            InputError(field, f"expected a leaf node (region and machine), got {describe(value)}")
        )
        return None
    for key in sorted(set(value) - {"region", "machine"}):
        failures.append(
            InputError(f"{field}.{key}", "unknown field; a leaf node has region, machine")
        )
    region = value.get("region")
    if region is not UNKNOWN and (not isinstance(region, str) or not region):
        failures.append(
            InputError(f"{field}.region", f"expected a non-empty string, got {describe(region)}")
        )
    if "machine" not in value or value["machine"] is None:
        failures.append(InputError(f"{field}.machine", "required: the leaf node's SshMachine"))
        return None
    machine = parse_machine(value["machine"], f"{field}.machine")
    if isinstance(machine, list):
        failures += machine
        return None
    if not isinstance(region, str) or not region:
        return None
    return region, machine


# --- what each machine runs ------------------------------------------------------------


@dataclass(frozen=True)
class Artifacts:
    """What the provider ships (read once per operation)."""

    nats_server: NatsServerBinary
    wheelhouse: Wheelhouse
    registry: RegistryBinary | None


def registry_config(address: str, port: int) -> str:
    """docker-registry's config on cluster[0]: the local lattice's (filesystem storage,
    deletes allowed), stored under /var/lib/wasmcloud/registry, on the machine's address."""
    from pulumi_wasmcloud.provider import lattice_resource  # it imports this module
    from pulumi_wasmcloud.provision.registry import REGISTRY_STORE  # see the note on imports above

    config = lattice_resource.registry_config(Path(REGISTRY_STORE).parent, port)
    config["http"]["addr"] = _host_port(address, port)
    return yaml.safe_dump(config)


def controller_environment(spec: MachineLatticeSpec, machine: str) -> dict[str, str]:
    """The controller on a core node talks to that node's NATS; secured, as its own
    user over mutual TLS, and it signs link grants with the lattice's user issuer (each
    a 0600 file named here, never a value)."""
    url = spec.topology.nats_urls[machine].removeprefix("nats://")
    environment = {
        "WADM_NATS_SERVER": url,
        "WASMCLOUD_LATTICE": spec.lattice,
        "WADM_JETSTREAM_DOMAIN": spec.topology.domain,
        "WASMCLOUD_HEARTBEAT_INTERVAL": str(spec.heartbeat_seconds),
        "WADM_STREAM_REPLICAS": str(spec.topology.replicas),
    }
    if spec.security is not None:
        environment |= {
            "WADM_NATS_CREDS_FILE": agent_file(CONTROLLER_SERVICE, CREDS_SUFFIX),
            "WASMCLOUD_TLS_CA_PATH": agent_file(CONTROLLER_SERVICE, CA_SUFFIX),
            "WASMCLOUD_NATS_TLS_CERT": agent_file(CONTROLLER_SERVICE, CERT_SUFFIX),
            "WASMCLOUD_NATS_TLS_KEY": agent_file(CONTROLLER_SERVICE, KEY_SUFFIX),
            "WASMCLOUD_GRANT_ISSUER_FILE": agent_file(CONTROLLER_SERVICE, ISSUER_SUFFIX),
        }
    return environment | telemetry_environment(spec.otlp_endpoint)


def telemetry_environment(otlp_endpoint: str) -> dict[str, str]:
    """A service's OpenTelemetry variables for the lattice's collector (none without one):
    traces and metrics on, exported there over OTLP/HTTP (host_agent/telemetry/config.py
    reads them as the OpenTelemetry specification says)."""
    if not otlp_endpoint:
        return {}
    return {
        "WASMCLOUD_OBSERVABILITY_ENABLED": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
    }


def secrets_backend_environment(spec: MachineLatticeSpec, machine: str) -> dict[str, str]:
    """The secrets backend on a core node talks to that node's NATS as its own user over
    mutual TLS (0600 files named here), in the lattice's JetStream domain; its seeds are
    in this environment (its 0600 file), never in argv."""
    security = spec.security
    assert security is not None
    service = SECRETS_BACKEND_SERVICE
    return {
        "WASMCLOUD_SECRETS_NATS_SERVER": spec.topology.nats_urls[machine],
        "WADM_JETSTREAM_DOMAIN": spec.topology.domain,
        "NATS_CREDSFILE": agent_file(service, CREDS_SUFFIX),
        "WASMCLOUD_TLS_CA_PATH": agent_file(service, CA_SUFFIX),
        "WASMCLOUD_NATS_TLS_CERT": agent_file(service, CERT_SUFFIX),
        "WASMCLOUD_NATS_TLS_KEY": agent_file(service, KEY_SUFFIX),
        **security.secrets_backend_seeds(),
    }


def client_options(spec: MachineLatticeSpec) -> dict[str, Any]:
    """How the provider connects to the lattice's NATS: as its tooling user over mutual
    TLS (the CA's certificate checks the node's; the SAN is the machine's address)."""
    from nats.aio.client import RawCredentials  # see the note on imports above

    security = spec.security
    if security is None:
        return {}
    tls = security.client_tls_state()
    return {
        "user_credentials": RawCredentials(security.tooling.creds()),
        "tls": tls_context(tls["caPem"], tls["certPem"], tls["keyPem"]),
    }


def tls_context(ca_pem: str, cert_pem: str, key_pem: str) -> ssl.SSLContext:
    """A client context that trusts ``ca_pem`` only and presents ``cert_pem``."""
    from host_agent.lattice.connection import ClientTls  # see the note on imports above

    return ClientTls(ca_pem, cert_pem, key_pem).context()


@dataclass
class MachinePlan:
    """A machine's changes, in the order ``up`` applies them: NATS first (all machines),
    then the services that need the cluster (controller, registry)."""

    machine: str
    nats: list[Change]
    services: list[Change]

    @property
    def changes(self) -> list[Change]:
        return [*self.nats, *self.services]


def survey(
    spec: MachineLatticeSpec, artifacts: Artifacts, name: str, connection: SshConnection
) -> MachinePlan:
    """Facts of one machine and what it still needs (read-only)."""
    from pulumi_wasmcloud.provision.agent import (  # see the note on imports above
        ControllerConfig,
        SecretsBackendConfig,
        gather_agent_facts,
        plan_controller,
        plan_secrets_backend,
    )
    from pulumi_wasmcloud.provision.registry import gather_registry_facts, plan_registry

    topology = spec.topology
    nats_facts = gather_nats_server_facts(connection)
    security = spec.security
    nats_changes = plan_nats_server(
        name,
        nats_facts,
        artifacts.nats_server,
        render(topology.settings[name]),
        security.nats_files(name) if security is not None else {},
    )
    services: list[Change] = []
    if name in topology.core:
        agent_facts = gather_agent_facts(connection, (CONTROLLER_SERVICE, SECRETS_BACKEND_SERVICE))
        config = ControllerConfig(
            environment=controller_environment(spec, name),
            files=security.controller_files(name, CONTROLLER_SERVICE) if security else {},
        )
        services += plan_controller(name, agent_facts, artifacts.wheelhouse, config)
        # Not before the state has the backend's keys (a `read` of a lattice from before
        # them): the next `up` makes them, and its preview says so.
        if security is not None and security.backend is not None:
            backend = SecretsBackendConfig(
                environment=secrets_backend_environment(spec, name),
                replicas=topology.replicas,
                files=security.secrets_backend_files(name),
            )
            services += plan_secrets_backend(name, agent_facts, artifacts.wheelhouse, backend)
    if name == topology.core[0] and spec.registry_port is not None:
        assert artifacts.registry is not None
        registry_facts = gather_registry_facts(
            connection, nats_facts.machine, artifacts.registry.interpreter
        )
        config_text = registry_config(spec.cluster[0].host, spec.registry_port)
        services += plan_registry(name, registry_facts, artifacts.registry, config_text)
    return MachinePlan(name, nats_changes, services)


def controller_log_tail(
    name: str, connection: SshConnection, service: str = CONTROLLER_SERVICE
) -> str:
    """The last lines the controller (or ``service``) on ``name`` logged (supervisor log
    or journal)."""
    command = (
        f"tail -n 5 {log_path(service)} 2>/dev/null || "
        f"journalctl -u {unit_name(service)} -n 5 --no-pager 2>/dev/null; true"
    )
    return connection.run(command, timeout=30).stdout.strip() or "(empty)"


def restarts_nats(plan: MachinePlan) -> bool:
    return any(c.description.startswith("nats-server service: restart") for c in plan.nats)


def survey_removal(name: str, connection: SshConnection) -> list[Change]:
    """Everything of ours on the machine, to remove (the controller and the secrets
    backend first, NATS last)."""
    from pulumi_wasmcloud.provision.agent import (  # see the note on imports above
        gather_agent_facts,
        plan_remove_controller,
        plan_remove_secrets_backend,
    )
    from pulumi_wasmcloud.provision.registry import gather_registry_facts, plan_remove_registry

    nats_facts = gather_nats_server_facts(connection)
    agent_facts = gather_agent_facts(connection, (CONTROLLER_SERVICE, SECRETS_BACKEND_SERVICE))
    changes = plan_remove_controller(name, agent_facts)
    # The controller is gone by then: the backend's removal takes the agent install with
    # it when nothing else of ours uses it.
    without_controller = replace(agent_facts, users=agent_facts.users - {CONTROLLER_SERVICE})
    changes += plan_remove_secrets_backend(name, without_controller)
    changes += plan_remove_registry(name, gather_registry_facts(connection, nats_facts.machine))
    return changes + plan_remove_nats_server(name, nats_facts)


# --- many machines at once -------------------------------------------------------------


class Fleet:
    """SSH connections to many machines, opened at once and kept for every step of an
    operation; a machine that fails (unreachable, refused, a command failing) is set
    aside by name with its error while the others go on."""

    def __init__(self, machines: Sequence[MachineSpec], host_keys: Mapping[str, str]) -> None:
        self.specs = {m.name: m for m in machines}
        self.known_keys = dict(host_keys)
        self.connections: dict[str, SshConnection] = {}
        self.failures: dict[str, ProvisionError] = {}

    def open(self) -> Fleet:
        specs = list(self.specs.values())
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(specs) or 1)) as pool:
            futures = {s.name: pool.submit(connect, s, self.known_keys) for s in specs}
        for name, future in futures.items():
            try:
                self.connections[name] = future.result()
            except ProvisionError as e:
                self.failures[name] = e
        return self

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()

    def each(
        self, work: Callable[[str, SshConnection], T], names: Sequence[str] | None = None
    ) -> dict[str, T]:
        """``work`` on every connected machine (or those of ``names``) at once; the
        result per machine that did not fail."""
        chosen = [
            n for n in (names if names is not None else self.connections) if n in self.connections
        ]
        results: dict[str, T] = {}
        if not chosen:
            return results
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(chosen))) as pool:
            futures = {name: pool.submit(work, name, self.connections[name]) for name in chosen}
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except ProvisionError as e:
                self.failures[name] = e
                self.connections.pop(name).close()
        return results

    def host_keys(self) -> dict[str, str]:
        keys = dict(self.known_keys)
        for name, connection in self.connections.items():
            keys = recorded_keys(self.specs[name], connection, keys)
        return keys


@contextlib.asynccontextmanager
async def opened(
    machines: Sequence[MachineSpec], host_keys: Mapping[str, str]
) -> AsyncIterator[Fleet]:
    """A fleet connected (in worker threads, so the provider's loop goes on)."""
    fleet = await asyncio.to_thread(Fleet(machines, host_keys).open)
    try:
        yield fleet
    finally:
        await asyncio.to_thread(fleet.close)


def failed(failures: Mapping[str, BaseException], doing: str) -> RuntimeError:
    said = "; ".join(f"{name}: {error}" for name, error in failures.items())
    return RuntimeError(
        f"{doing} failed on {', '.join(failures)} (the other machines were done): {said}. "
        "Fix what it says, then run `pulumi up` again: what was done is kept"
    )


# --- the cluster -------------------------------------------------------------------------


async def _until_answered(
    spec: MachineLatticeSpec,
    core: Sequence[str],
    timeout: float,
    ask: Callable[[Any], Awaitable[None]],
    retried: tuple[type[BaseException], ...],
    pause: float,
) -> object | None:
    """Connect as the tooling user to any of the ``core`` nodes (again while none
    answers) and ``ask`` until it returns without one of ``retried``: None then, else
    what was last seen when ``timeout`` passed."""
    import nats  # see the note on imports above
    import nats.errors

    urls = [spec.topology.nats_urls[name] for name in core]
    deadline = time.monotonic() + timeout
    last: object = "no answer"
    while time.monotonic() < deadline:
        try:
            nc = await nats.connect(
                servers=urls,
                connect_timeout=2,
                max_reconnect_attempts=0,
                allow_reconnect=False,
                **client_options(spec),
            )
        except (nats.errors.NoServersError, OSError, TimeoutError) as e:
            last = e
            await asyncio.sleep(0.5)
            continue
        try:
            while time.monotonic() < deadline:
                try:
                    await ask(nc)
                    return None
                except retried as e:
                    last = e
                    await asyncio.sleep(pause)
        finally:
            await nc.close()
    return last


async def await_jetstream(
    spec: MachineLatticeSpec, via: str | None = None, timeout: float = JETSTREAM_TIMEOUT
) -> None:
    """Until the core cluster's JetStream answers in its domain (it has a meta leader)
    through any core node, or through ``via`` (a restarted node: it has rejoined when it
    answers), then make the lattice's host buckets with their replicas (a host opening
    them finds them; it would make them with one copy). A bucket is made once enough
    nodes are current, so that is retried too."""
    import nats.errors  # see the note on imports above
    import nats.js.errors

    from host_agent.lattice.jetstream import ensure_kv
    from host_agent.lattice.subjects import config_bucket, links_bucket

    async def buckets_made(nc: Any) -> None:
        js = nc.jetstream(domain=spec.topology.domain, timeout=5)
        await js.account_info()
        for bucket in (links_bucket(spec.lattice), config_bucket(spec.lattice)):
            await ensure_kv(js, bucket, spec.topology.replicas)

    core = spec.topology.core if via is None else (via,)
    retried = (nats.js.errors.Error, nats.errors.TimeoutError, nats.errors.NoRespondersError)
    last = await _until_answered(spec, core, timeout, buckets_made, retried, 0.5)
    if last is not None:
        raise RuntimeError(
            f"the NATS cluster of lattice {spec.lattice} ({', '.join(spec.topology.core)}) "
            f"did not serve JetStream in domain {spec.topology.domain} within {timeout:.0f} s "
            f"(last: {last}). A majority of the cluster's nodes must run: look at "
            "/var/log/wasmcloud/nats-server.log (or `journalctl -u wasmcloud-nats-server`) "
            "on them, then run `pulumi up` again"
        )


async def await_controller(spec: MachineLatticeSpec, timeout: float = CONTROLLER_TIMEOUT) -> None:
    """Until a controller answers the wadm API: applications deployed next in the same
    ``up`` need it."""
    import nats.errors  # see the note on imports above

    from host_agent.lattice.wadm import WadmClient

    async def listed(nc: Any) -> None:
        await WadmClient(nc, spec.lattice, timeout=1.0).list()

    retried = (nats.errors.NoRespondersError, nats.errors.TimeoutError)
    if await _until_answered(spec, spec.topology.core, timeout, listed, retried, 0.2) is not None:
        raise RuntimeError(
            f"no controller of lattice {spec.lattice} answered within {timeout:.0f} s; look "
            "at /var/log/wasmcloud/controller.log (or `journalctl -u wasmcloud-controller`) "
            f"on {', '.join(spec.topology.core)}, then run `pulumi up` again"
        )


async def await_secrets_backend(
    spec: MachineLatticeSpec, timeout: float = SECRETS_BACKEND_TIMEOUT
) -> None:
    """Until a secrets backend answers its ``server_xkey`` as the tooling user does: a
    Secret put next in the same ``up`` needs it."""
    from host_agent.secrets.client import SecretsClient, SecretsError
    from host_agent.secrets.protocol import DEFAULT_BACKEND

    async def sealing_key(nc: Any) -> None:
        await SecretsClient(nc, DEFAULT_BACKEND, timeout=1.0).server_xkey()

    last = await _until_answered(
        spec, spec.topology.core, timeout, sealing_key, (SecretsError,), 0.2
    )
    if last is not None:
        raise RuntimeError(
            f"no secrets backend of lattice {spec.lattice} answered within {timeout:.0f} s "
            f"(last: {last}); look at /var/log/wasmcloud/{SECRETS_BACKEND_SERVICE}.log (or "
            f"`journalctl -u wasmcloud-{SECRETS_BACKEND_SERVICE}`) on "
            f"{', '.join(spec.topology.core)}, then run `pulumi up` again"
        )


# --- the handler -------------------------------------------------------------------------


@dataclass
class Progress:
    """Messages from the machines' threads to the engine, on the handler's loop."""

    log: EngineLog
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)

    def info(self, message: str) -> None:
        asyncio.run_coroutine_threadsafe(self.log.info(message), self.loop)

    def note(self, message: str) -> None:
        asyncio.run_coroutine_threadsafe(self.log.note(message), self.loop)


class MachineLattice:
    secrets: frozenset[str] = frozenset(SECRET_OUTPUTS)

    def __init__(self, log: EngineLog | None = None) -> None:
        self.log = log or EngineLog(None)
        # How long before its expiry a certificate is reissued (None: provision.security's
        # ROTATION_WINDOW, imported when used). TEST-ONLY knob: a test sets it past the
        # certificates' lifetime to have the next `up` rotate them all.
        self.rotation_window: timedelta | None = None
        # What this provider process ships, read once: one `pulumi` command is one
        # provider process, so preview, diff and up of it compare with the same
        # wheelhouse (a source edited meanwhile is the next command's).
        self._shipped: Artifacts | None = None

    # check ---------------------------------------------------------------------------
    async def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Checked:
        inputs = normalized(news)
        parsed = parse_spec({**inputs, **{k: news.get(k) for k in LOCAL_ONLY}})
        failures = parsed if isinstance(parsed, list) else []
        return Checked(self._secret(inputs), failures)

    @staticmethod
    def _secret(values: dict[str, Any]) -> dict[str, Any]:
        """Private keys stay secret in state and displays (plain() lost the marks)."""
        return {
            **values,
            "cluster": secret_private_keys(values.get("cluster")),
            "leafNodes": secret_private_keys(values.get("leafNodes")),
        }

    def _spec(self, inputs: dict[str, Any]) -> MachineLatticeSpec:
        parsed = parse_spec(normalized(inputs))
        if isinstance(parsed, list):
            if parsed:
                raise parsed[0]
            raise InputError("cluster", "not known yet")
        return parsed

    @staticmethod
    def _kept_security(state: dict[str, Any]) -> LatticeSecurity | None:
        """The security an earlier ``up`` made (None for a lattice from before it)."""
        from pulumi_wasmcloud.provision.security import (  # see the note on imports above
            LatticeSecurity,
            SecurityStateError,
        )

        kept = state.get("security")
        if kept is None or kept is UNKNOWN:
            return None
        try:
            return LatticeSecurity.from_state(kept, "security")
        except SecurityStateError as e:
            raise RuntimeError(
                f"{e}; the lattice's secret state is damaged: nothing was changed"
            ) from None

    def _converged(
        self, spec: MachineLatticeSpec, kept: LatticeSecurity | None
    ) -> tuple[MachineLatticeSpec, dict[str, list[str]]]:
        """``spec`` secured with ``kept`` brought up to date (made when None): what is
        missing issued, what expires within 30 days reissued; and the sentences per
        machine saying what was (re)issued."""
        from pulumi_wasmcloud.provision.security import (  # see the note on imports above
            ROTATION_WINDOW,
            LatticeSecurity,
        )

        now = datetime.now(UTC)
        base = kept or LatticeSecurity.create(spec.lattice, spec.topology.domain, now)
        security, said = base.converge(
            spec.roles(), spec.topology.domain, now, window=self.rotation_window or ROTATION_WINDOW
        )
        return spec.secured(security), said

    @staticmethod
    def _host_keys(state: dict[str, Any]) -> dict[str, str]:
        keys = parse_host_keys(state.get("hostKeys"))
        if isinstance(keys, list):
            raise keys[0]
        return keys

    def _outputs(
        self,
        inputs: dict[str, Any],
        spec: MachineLatticeSpec | None,
        host_keys: dict[str, str] | Any,
        drift: dict[str, list[str]] | Any,
    ) -> dict[str, Any]:
        normal = normalized(inputs)
        if spec is None:
            known: dict[str, Any] = dict.fromkeys(
                ("natsUrl", "natsUrls", "jsDomain", "registryUrl"), UNKNOWN
            )
        else:
            known = {
                "natsUrl": spec.nats_url,
                "natsUrls": dict(spec.topology.nats_urls),
                "jsDomain": spec.topology.domain,
                "registryUrl": spec.registry_url,
            }
        security = spec.security if spec is not None else None
        if security is None:
            known |= dict.fromkeys(
                (*SECRET_OUTPUTS, *LOCAL_OUTPUTS, "caCert", "certificatesExpire"), UNKNOWN
            )
        else:
            known |= LOCAL_OUTPUTS
            known |= {
                key: to_property(value, secret=True)
                for key, value in (
                    ("security", security.to_state()),
                    ("userIssuer", security.user_issuer().to_state()),
                    ("credentials", security.tooling.creds()),
                    ("clientTls", security.client_tls_state()),
                    ("tlsIssuer", security.ca.to_state()),
                )
            }
            # What a local Lattice gives as well: the backend's sealing key and its user
            # (unknown in the preview of a lattice from before them: the `up` makes them).
            backend = security.backend
            known["secretsKey"] = (
                UNKNOWN if backend is None else to_property(backend.encryption_seed, secret=True)
            )
            known["secretsCredentials"] = (
                UNKNOWN if backend is None else to_property(backend.user.creds(), secret=True)
            )
            known["caCert"] = security.ca.cert_pem
            known["certificatesExpire"] = security.expiries()
        return self._secret(
            {
                **normal,
                **known,
                "hostKeys": host_keys,
                "drift": drift,
                "running": drift == {} if isinstance(drift, dict) else UNKNOWN,
            }
        )

    # planning ----------------------------------------------------------------------------
    async def _artifacts(self, spec: MachineLatticeSpec, progress: Progress) -> Artifacts:
        def load(shipped: Artifacts | None) -> Artifacts:
            # see the note on imports above
            from pulumi_wasmcloud.provision.agent import host_wheelhouse
            from pulumi_wasmcloud.provision.registry import operator_registry

            if shipped is None:
                shipped = Artifacts(packaged_nats_server(), host_wheelhouse(progress.info), None)
            if spec.registry_port is not None and shipped.registry is None:
                shipped = replace(shipped, registry=operator_registry())
            return shipped

        try:
            self._shipped = await asyncio.to_thread(load, self._shipped)
        except ProvisionError as e:
            raise RuntimeError(str(e)) from None
        return self._shipped

    async def _plan(
        self, spec: MachineLatticeSpec, fleet: Fleet, artifacts: Artifacts
    ) -> dict[str, MachinePlan]:
        """Every reachable machine's plan; a machine we cannot serve stops everything
        here, before any change."""
        plans = await asyncio.to_thread(
            fleet.each, lambda name, connection: survey(spec, artifacts, name, connection)
        )
        unsupported = {n: e for n, e in fleet.failures.items() if isinstance(e, Unsupported)}
        if unsupported:
            raise RuntimeError(
                "nothing was changed: " + " ".join(str(e) for e in unsupported.values())
            )
        return plans

    async def _preview(
        self, spec: MachineLatticeSpec, host_keys: dict[str, str]
    ) -> dict[str, list[str]]:
        """Each machine's change sentences, logged; a machine that cannot be reached is a
        warning here (``up`` will fail naming it)."""
        progress = Progress(self.log)
        artifacts = await self._artifacts(spec, progress)
        async with opened(spec.machines, host_keys) as fleet:
            plans = await self._plan(spec, fleet, artifacts)
            failures = dict(fleet.failures)
        drift: dict[str, list[str]] = {}
        for name in (m.name for m in spec.machines):
            if name in failures:
                drift[name] = [f"cannot be reached or read: {failures[name]}"]
                await self.log.warn(f"{name}: {failures[name]}")
                continue
            sentences = [change.description for change in plans[name].changes]
            if sentences:
                drift[name] = sentences
            for sentence in sentences:
                await self.log.note(sentence)
        return drift

    # diff ------------------------------------------------------------------------------
    async def diff(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> Diff:
        if olds.get("cluster") is None or news.get("cluster") is None:
            # From or to the local lattice: a new lattice altogether.
            return Diff({"cluster": (olds.get("cluster"), news.get("cluster"))}, ["cluster"])
        old_inputs, new_inputs = normalized(olds), normalized(news)
        changed = changed_keys(old_inputs, new_inputs, INPUTS)
        replaces = [k for k in REPLACE_ON if k in changed]
        if replaces:
            return Diff(changed, replaces)
        parsed = parse_spec(new_inputs)
        if isinstance(parsed, list):  # unknowns in preview: the inputs' diff says enough
            return Diff(changed, [])
        host_keys = self._host_keys(olds)
        secured, issued = self._converged(parsed, self._kept_security(olds))
        for sentences in issued.values():
            for sentence in sentences:
                await self.log.note(sentence)
        drift = await self._preview(secured, host_keys)
        for removed in self._removed(olds, parsed):
            drift[removed.name] = [
                f"everything of lattice {parsed.lattice}: remove from {removed.name}"
            ]
            await self.log.note(drift[removed.name][0])
        if drift:
            changed["running"] = (olds.get("running"), True)
        return Diff(changed, [])

    def _removed(self, olds: dict[str, Any], spec: MachineLatticeSpec) -> list[MachineSpec]:
        """Machines of the old lattice that the new one leaves out."""
        old = parse_spec(normalized(olds))
        if isinstance(old, list):
            return []
        keep = {m.name for m in spec.machines}
        return [m for m in old.machines if m.name not in keep]

    # create / update -----------------------------------------------------------------------
    async def create(self, inputs: dict[str, Any], preview: bool) -> Created:
        parsed = parse_spec(normalized(inputs))
        if isinstance(parsed, list):  # unknown inputs in preview
            if parsed:
                raise parsed[0]
            return Created("", self._outputs(inputs, None, UNKNOWN, UNKNOWN))
        secured, _ = self._converged(parsed, None)
        if preview:
            # Planned with a stand-in security (its sentences do not depend on the keys);
            # the real one is made by the `up`.
            drift = await self._preview(secured, {})
            return Created(self._id(parsed), self._outputs(inputs, parsed, UNKNOWN, drift))
        host_keys = await self._up(secured, {}, new_authority=True)
        return Created(self._id(parsed), self._outputs(inputs, secured, host_keys, {}))

    @staticmethod
    def _id(spec: MachineLatticeSpec) -> str:
        return f"{spec.lattice}@{spec.nats_url}"

    async def update(
        self, id: str, olds: dict[str, Any], news: dict[str, Any], preview: bool
    ) -> dict[str, Any]:
        spec = self._spec(news)
        host_keys = self._host_keys(olds)
        kept = self._kept_security(olds)
        if preview:  # diff has surveyed the machines and said what changes
            if kept is None:
                return self._outputs(news, spec, host_keys, {})
            return self._outputs(news, spec.secured(kept), host_keys, {})
        secured, issued = self._converged(spec, kept)
        for sentences in issued.values():
            for sentence in sentences:
                await self.log.info(sentence)
        removed = self._removed(olds, spec)
        if removed:
            host_keys = await self._remove(removed, host_keys)
        host_keys = await self._up(secured, host_keys, new_authority=kept is None)
        return self._outputs(news, secured, host_keys, {})

    async def _up(
        self, spec: MachineLatticeSpec, host_keys: dict[str, str], new_authority: bool = False
    ) -> dict[str, str]:
        """Plan every machine, then apply: NATS everywhere, the cluster's JetStream and
        buckets, the controllers and the registry; wait for a controller. The host keys
        to record. ``new_authority``: the lattice's authority and CA were just made (a
        create, or a lattice from before them), so nodes still running trust another
        one and cannot be kept serving while the others restart."""
        progress = Progress(self.log)
        artifacts = await self._artifacts(spec, progress)
        counts: dict[str, int] = {}
        problems: dict[str, BaseException] = {}

        def step(name: str, connection: SshConnection, changes: list[Change]) -> None:
            def say(change: Change) -> None:
                progress.info(f"{name}: {change.description}")

            counts[name] = counts.get(name, 0) + apply(connection, changes, say)

        async with opened(spec.machines, host_keys) as fleet:
            plans = await self._plan(spec, fleet, artifacts)
            # A running core node whose nats-server restarts (a new config or binary)
            # goes one at a time, each back in the cluster before the next, so the others
            # keep JetStream's majority; everything else at once.
            rolling = [
                n
                for n in spec.topology.core
                if n in plans and restarts_nats(plans[n]) and not new_authority
            ]
            await asyncio.to_thread(
                fleet.each,
                lambda name, connection: step(name, connection, plans[name].nats),
                [name for name in plans if name not in rolling],
            )
            try:
                await await_jetstream(spec)
                for node in rolling:
                    await asyncio.to_thread(
                        fleet.each,
                        lambda name, connection: step(name, connection, plans[name].nats),
                        [node],
                    )
                    if node in fleet.connections:
                        await await_jetstream(spec, via=node)
            except RuntimeError as e:
                problems["the cluster"] = e
            else:
                await asyncio.to_thread(
                    fleet.each,
                    lambda name, connection: step(name, connection, plans[name].services),
                )
                try:
                    await await_controller(spec)
                except RuntimeError as e:
                    said = await asyncio.to_thread(
                        fleet.each, controller_log_tail, list(spec.topology.core)
                    )
                    tails = "; ".join(f"{name}: {tail}" for name, tail in said.items())
                    problems["the controller"] = RuntimeError(f"{e}. The end of its logs: {tails}")
                if spec.security is not None and spec.security.backend is not None:
                    try:
                        await await_secrets_backend(spec)
                    except RuntimeError as e:
                        said = await asyncio.to_thread(
                            fleet.each,
                            lambda name, connection: controller_log_tail(
                                name, connection, SECRETS_BACKEND_SERVICE
                            ),
                            list(spec.topology.core),
                        )
                        tails = "; ".join(f"{name}: {tail}" for name, tail in said.items())
                        problems["the secrets backend"] = RuntimeError(
                            f"{e}. The end of its logs: {tails}"
                        )
            keys = fleet.host_keys()
            failures = {**fleet.failures, **problems}
        for name in (m.name for m in spec.machines):
            if name in counts:
                await self.log.note(f"{name}: {counts[name]} commands")
        if failures:
            raise failed(failures, f"setting up lattice {spec.lattice}")
        return keys

    # read ------------------------------------------------------------------------------
    async def read(self, id: str, state: dict[str, Any]) -> dict[str, Any] | None:
        spec = self._spec(state)
        kept = self._kept_security(state)
        if kept is not None:  # drift against what the state says (rotation is `up`'s)
            spec = spec.secured(kept)
        host_keys = self._host_keys(state)
        progress = Progress(self.log)
        artifacts = await self._artifacts(spec, progress)
        async with opened(spec.machines, host_keys) as fleet:
            plans = await asyncio.to_thread(
                fleet.each, lambda name, connection: survey(spec, artifacts, name, connection)
            )
            failures = dict(fleet.failures)
        if failures:
            # Not drift: those machines could not be checked. Reporting them drifted would
            # send a drift check (and `up`) after nodes that may run fine.
            said = "; ".join(f"{name}: {error}" for name, error in failures.items())
            raise RuntimeError(
                f"cannot read lattice {spec.lattice} on {', '.join(failures)}: {said}; "
                "nothing was changed. Reading it needs SSH to every machine: check they are "
                "up and reachable from here, then run the command again"
            )
        drift: dict[str, list[str]] = {}
        for name in (m.name for m in spec.machines):
            if plans[name].changes:
                drift[name] = [change.description for change in plans[name].changes]
        return {**state, **self._outputs(state, spec, host_keys, drift)}

    # delete ------------------------------------------------------------------------------
    async def delete(self, id: str, state: dict[str, Any]) -> None:
        spec = self._spec(state)
        await self._remove(spec.machines, self._host_keys(state))

    async def _remove(
        self, machines: Sequence[MachineSpec], host_keys: dict[str, str]
    ) -> dict[str, str]:
        progress = Progress(self.log)
        counts: dict[str, int] = {}

        def remove(name: str, connection: SshConnection) -> None:
            changes = survey_removal(name, connection)
            counts[name] = apply(
                connection, changes, lambda change: progress.info(f"{name}: {change.description}")
            )

        async with opened(machines, host_keys) as fleet:
            await asyncio.to_thread(fleet.each, remove)
            keys = fleet.host_keys()
            failures = dict(fleet.failures)
        for machine in machines:
            if machine.name in counts:
                await self.log.note(f"{machine.name}: {counts[machine.name]} commands")
        if failures:
            raise failed(failures, "removing the lattice")
        return keys
