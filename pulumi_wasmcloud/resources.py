"""The typed resources a Pulumi program declares (package ``wasmcloud``).

Each is a custom resource served by the native provider ``pulumi-resource-wasmcloud``.
Inputs are camelCase on the wire (like every Pulumi provider); the Python API is
snake_case.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar, overload

import pulumi

from pulumi_wasmcloud.app import CapabilityProvider, Component, Link, build_manifest
from pulumi_wasmcloud.machines import LeafNode, SshMachine
from pulumi_wasmcloud.schema import resources as schema
from pulumi_wasmcloud.schema.types import Resource as SchemaResource

T = TypeVar("T")


class OutputProperty(Generic[T]):
    """An output property of a resource: the schema's property ``key`` (its wire name),
    documented with the schema's description. Read on a resource, it is a
    ``pulumi.Output[T]``; tests/unit/test_sdk_schema.py checks ``T`` (``python_type``)
    against the schema. The type is an argument, not a class annotation: the Pulumi SDK
    reads a resource class's annotations as its own output declarations."""

    def __init__(self, resource: SchemaResource, key: str, python_type: type[T]) -> None:
        found = next((p for p in resource.all_properties if p.name == key), None)
        if found is None:  # a typo here is a bug of this module: fail at import
            raise KeyError(f"{resource.name} has no property {key!r} in the schema")
        self.key = key
        self.python_type = python_type
        self.__doc__ = found.description

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> OutputProperty[T]: ...

    @overload
    def __get__(self, instance: pulumi.Resource, owner: type[Any]) -> pulumi.Output[T]: ...

    def __get__(
        self, instance: pulumi.Resource | None, owner: type[Any]
    ) -> OutputProperty[T] | pulumi.Output[T]:
        if instance is None:
            return self
        return _output(instance, self.key)

    def __set__(self, instance: pulumi.Resource, value: Any) -> None:
        # A data descriptor, so it wins over the instance ``__dict__``, where the Pulumi SDK
        # keeps every property's Output by wire name: Ec2Machine.address reads "ip", while
        # ``address`` is also an input's wire name.
        raise AttributeError(f"{self.key} is an output; the provider sets it")


def registered(resource: SchemaResource, given: Mapping[str, Any]) -> dict[str, Any]:
    """What a resource registers: the inputs ``given`` (wire names) and every other property
    of the schema as ``None`` (so each output becomes an attribute the SDK reads). A name
    the schema does not have is a bug of the SDK, refused here."""
    known = {p.name for p in resource.all_properties}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"{resource.name}: {', '.join(unknown)} not in the schema")
    return {**dict.fromkeys(sorted(known)), **given}


def secret_outputs(resource: SchemaResource) -> pulumi.ResourceOptions:
    """The schema's secret properties as additional secret outputs: the provider marks them
    secret itself; saying so here too keeps them secret in the program even if a provider
    version forgot one."""
    return pulumi.ResourceOptions(additional_secret_outputs=sorted(resource.secrets))


class Provider(pulumi.ProviderResource):
    """An explicit provider instance, for several lattices in one program.

    Without one, resources use the default provider, configured by the stack's
    ``wasmcloud:natsUrl``, ``wasmcloud:lattice`` and (secret) ``wasmcloud:credentials``.
    ``credentials`` is the text of a NATS ``.creds`` file (user JWT and seed) for a
    lattice whose NATS requires it; it is kept secret in the state.
    """

    def __init__(
        self,
        resource_name: str,
        nats_url: pulumi.Input[str] | None = None,
        lattice: pulumi.Input[str] | None = None,
        credentials: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """Args:
        nats_url: The lattice's NATS URL, the default ``natsUrl`` of every resource
            that does not give one.
        lattice: The lattice's name, the default ``lattice`` of every resource that does
            not give one.
        credentials: The text of a NATS .creds file to connect with (kept secret).
        """
        props = {
            "natsUrl": nats_url,
            "lattice": lattice,
            "credentials": pulumi.Output.secret(credentials) if credentials else None,
        }
        super().__init__("wasmcloud", resource_name, props, opts)


class Lattice(pulumi.CustomResource):
    """A lattice: NATS with JetStream on disk, the controller, and (optionally) the
    redis-server that keyvalue-redis providers use and an OCI registry (``registry_port``:
    Debian's docker-registry on loopback, blobs under ``state_dir``; its hosts may pull from
    it over plain HTTP). Runs on this machine (target ``local``) as detached, supervised
    processes with pidfiles and logs in ``state_dir``.

    With ``cluster`` (``SshMachine``s) the lattice lives on those machines instead: a NATS
    cluster with JetStream on disk in the domain ``jetstream_domain`` (at most
    ``max_file_store`` bytes per node), the controller on every cluster node, the
    registry (``registry_port``) on ``cluster[0]``, and a NATS leaf node on each of
    ``leaf_nodes``' machines for its region's hosts. The lattice's JetStream state has
    min(3, cluster size) replicas: 3 nodes keep serving with one down, 1 or 2 with none.
    ``nats_url`` is then ``cluster[0]``'s, ``nats_urls`` every machine's.

    ``secure`` (default True): a local lattice's NATS runs in operator mode with the
    lattice's own authority, and speaks TLS with a certificate of the lattice's own CA
    (``ca_cert``; ``ca.pem`` in ``state_dir``). Its private material comes out as secret
    outputs only:
    ``credentials`` (the .creds of a tooling user: what Hosts, Applications and the CLI
    connect as; also written 0600 as ``nats.creds`` in ``state_dir``) and ``user_issuer``
    (what each Host mints its own NATS user with). ``secure=False`` runs the plain NATS of
    earlier versions (anyone on this machine may then connect).

    ``otlp_endpoint`` (e.g. ``"http://localhost:4318"``; on machines, a collector address the
    machines reach): its Hosts, the providers they start and (on machines) its controllers
    export OpenTelemetry traces and metrics there over OTLP/HTTP (docs/operations.md,
    Tracing); not given, they export nothing.
    """

    def __init__(
        self,
        resource_name: str,
        lattice: pulumi.Input[str] = "default",
        nats_port: pulumi.Input[int] = 4222,
        state_dir: pulumi.Input[str] | None = None,
        heartbeat_seconds: pulumi.Input[int] = 30,
        redis_port: pulumi.Input[int] | None = None,
        registry_port: pulumi.Input[int] | None = None,
        cluster: list[SshMachine] | None = None,
        leaf_nodes: list[LeafNode] | None = None,
        jetstream_domain: pulumi.Input[str] | None = None,
        max_file_store: pulumi.Input[int] | None = None,
        secure: pulumi.Input[bool] = True,
        otlp_endpoint: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """Args:
        lattice: The lattice's name (in every NATS subject and bucket of it).
        nats_port: The local NATS server's client port (a local lattice).
        state_dir: Where a local lattice keeps its data, pidfiles and logs (default
            ``.state/lattice``).
        heartbeat_seconds: How often hosts send heartbeats.
        redis_port: Run a redis-server on this loopback port (a local lattice).
        registry_port: Run an OCI registry on this port.
        cluster: The machines of the core NATS cluster: the lattice lives on them.
        leaf_nodes: NATS leaf nodes for regions' hosts (with ``cluster``).
        jetstream_domain: The core cluster's JetStream domain (with ``cluster``).
        max_file_store: Bytes of JetStream file store per cluster node (with ``cluster``).
        secure: Operator-mode NATS with TLS and the lattice's own authority (local).
        otlp_endpoint: An OTLP/HTTP collector URL for the lattice's telemetry.
        """
        props: dict[str, Any] = {
            "lattice": lattice,
            "otlpEndpoint": otlp_endpoint,
            "natsPort": nats_port,
            "stateDir": state_dir,
            "heartbeatSeconds": heartbeat_seconds,
            "redisPort": redis_port,
            "registryPort": registry_port,
            "secure": secure,
        }
        if cluster is not None:
            for i, machine in enumerate(cluster):
                if not isinstance(machine, SshMachine):
                    raise TypeError(f"Lattice {resource_name}: cluster[{i}] must be an SshMachine")
            for i, leaf in enumerate(leaf_nodes or []):
                if not isinstance(leaf, LeafNode):
                    raise TypeError(f"Lattice {resource_name}: leaf_nodes[{i}] must be a LeafNode")
            del props["natsPort"], props["stateDir"]  # machines have their own places
            del props["secure"]
            props |= {
                "cluster": [machine.to_input() for machine in cluster],
                "leafNodes": [leaf.to_input() for leaf in leaf_nodes or []],
                "jetstreamDomain": jetstream_domain,
                "maxFileStore": max_file_store,
            }
        elif leaf_nodes or jetstream_domain is not None or max_file_store is not None:
            raise ValueError(
                f"Lattice {resource_name}: leaf_nodes, jetstream_domain and max_file_store "
                "are for a lattice on machines; give cluster too"
            )
        super().__init__(
            schema.LATTICE.token,
            resource_name,
            registered(schema.LATTICE, props),
            pulumi.ResourceOptions.merge(opts, secret_outputs(schema.LATTICE)),
        )

    lattice_id = OutputProperty(schema.LATTICE, "lattice", str)
    state_dir = OutputProperty(schema.LATTICE, "stateDir", str)
    heartbeat_seconds = OutputProperty(schema.LATTICE, "heartbeatSeconds", int)
    otlp_endpoint = OutputProperty(schema.LATTICE, "otlpEndpoint", str)
    nats_url = OutputProperty(schema.LATTICE, "natsUrl", str)
    registry_url = OutputProperty(schema.LATTICE, "registryUrl", str)
    running = OutputProperty(schema.LATTICE, "running", bool)
    ca_cert = OutputProperty(schema.LATTICE, "caCert", str)
    credentials = OutputProperty(schema.LATTICE, "credentials", str)
    user_issuer = OutputProperty(schema.LATTICE, "userIssuer", dict[str, str])
    authority = OutputProperty(schema.LATTICE, "authority", dict[str, Any])
    controller_credentials = OutputProperty(schema.LATTICE, "controllerCredentials", str)
    tls = OutputProperty(schema.LATTICE, "tls", dict[str, Any])
    secrets_key = OutputProperty(schema.LATTICE, "secretsKey", str)
    secrets_credentials = OutputProperty(schema.LATTICE, "secretsCredentials", str)
    client_tls = OutputProperty(schema.LATTICE, "clientTls", dict[str, str])
    tls_issuer = OutputProperty(schema.LATTICE, "tlsIssuer", dict[str, str])
    security = OutputProperty(schema.LATTICE, "security", dict[str, Any])
    nats_urls = OutputProperty(schema.LATTICE, "natsUrls", dict[str, str])
    js_domain = OutputProperty(schema.LATTICE, "jsDomain", str)
    host_keys = OutputProperty(schema.LATTICE, "hostKeys", dict[str, str])
    drift = OutputProperty(schema.LATTICE, "drift", dict[str, list[str]])
    certificates_expire = OutputProperty(schema.LATTICE, "certificatesExpire", dict[str, str])


class Host(pulumi.CustomResource):
    """A wasmCloud host agent in ``lattice`` with ``labels``: on this machine (target
    ``local``), or on ``machine`` over SSH (see ``pulumi_wasmcloud.machines``), where it runs
    as a service from the host agent the provider installs there.

    ``nats_url`` is where the host reaches NATS (default ``lattice.nats_url``; an edge host
    gives its leaf node's, ``lattice.nats_urls["edge-1"]``); the provider itself always
    talks to the lattice at ``lattice.nats_url``. A host on a machine gets the lattice's
    JetStream domain (``jsDomain``), and its machine's host key is recorded in
    ``host_keys`` (machine name -> key line) unless given.
    """

    def __init__(
        self,
        resource_name: str,
        lattice: Lattice,
        labels: pulumi.Input[dict[str, str]] | None = None,
        target: pulumi.Input[str] = "local",
        machine: SshMachine | None = None,
        nats_url: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """Args:
        lattice: The Lattice the host joins; its outputs give the host's ``natsUrl``,
            ``lattice``, ``stateDir``, ``heartbeatSeconds``, ``registryUrl``,
            ``credentials``, ``userIssuer``, ``caCert``, ``clientTls``,
            ``otlpEndpoint`` (and on a machine ``jsDomain`` and ``tlsIssuer``).
        labels: The host's labels, which spread scalers place components by.
        target: Where the host runs without ``machine``: ``local``.
        machine: The machine the host runs on, over SSH.
        nats_url: Where the host reaches NATS (on a machine: ``hostNatsUrl``, e.g. its
            region's leaf node); default: the lattice's ``nats_url``.
        """
        props: dict[str, Any] = {
            "name": resource_name,
            "natsUrl": lattice.nats_url,
            "lattice": lattice.lattice_id,
            "stateDir": lattice.state_dir,
            "heartbeatSeconds": lattice.heartbeat_seconds,
            "registryUrl": lattice.registry_url,
            "labels": labels or {},
            "target": target,
            # A secured lattice: the provider talks to it as its tooling user, and the
            # host mints its own user (hostCredentials) with the lattice's issuer.
            "credentials": lattice.credentials,
            "userIssuer": lattice.user_issuer,
            "caCert": lattice.ca_cert,
            "clientTls": lattice.client_tls,
            # OpenTelemetry (the lattice's otlp_endpoint): the host exports there.
            "otlpEndpoint": lattice.otlp_endpoint,
        }
        if machine is not None:
            if not isinstance(machine, SshMachine):
                raise TypeError(f"Host {resource_name}: machine must be an SshMachine")
            del props["stateDir"], props["target"]  # machine: its own
            props |= {
                "machine": machine.to_input(),
                "hostNatsUrl": nats_url if nats_url is not None else lattice.nats_url,
                "jsDomain": lattice.js_domain,
                "tlsIssuer": lattice.tls_issuer,
            }
        elif nats_url is not None:
            props["natsUrl"] = nats_url
        super().__init__(
            schema.HOST.token,
            resource_name,
            registered(schema.HOST, props),
            pulumi.ResourceOptions.merge(opts, secret_outputs(schema.HOST)),
        )

    host_id = OutputProperty(schema.HOST, "hostId", str)
    seed = OutputProperty(schema.HOST, "seed", str)
    host_credentials = OutputProperty(schema.HOST, "hostCredentials", str)
    host_tls = OutputProperty(schema.HOST, "hostTls", dict[str, str])
    running = OutputProperty(schema.HOST, "running", bool)
    converged = OutputProperty(schema.HOST, "converged", bool)
    host_keys = OutputProperty(schema.HOST, "hostKeys", dict[str, str])


class Application(pulumi.CustomResource):
    """A wadm application, put and deployed through the lattice's controller.

    Give a whole manifest (``manifest`` as a dict, or ``manifest_path`` to a wadm.yaml),
    or build one from typed ``components`` and ``links``. Preview shows ``placement``:
    for each component, how many instances each host will run.

    With ``health_url`` (an ``http://`` or ``https://`` URL the application serves), every
    ``up`` that deploys a version waits until it is deployed, then GETs the URL until it
    answers 2xx, for at most ``health_timeout_seconds`` (default 60). A version that never
    does is rolled back: the version deployed before is deployed again (on a first deploy,
    the application is undeployed), and the update fails naming the application, the
    version, the URL and its last answer. The engine then changes nothing that depends on
    this resource, so a rollout goes region by region with one Application per region,
    each ``depends_on`` the previous region's: a broken version stops in the first region,
    and the others keep the version they run.
    """

    # Arguments of the SDK's own that build the wire input ``manifest``.
    sdk_arguments: ClassVar[frozenset[str]] = frozenset({"components", "links", "version"})

    def __init__(
        self,
        resource_name: str,
        lattice: Lattice | None = None,
        manifest: pulumi.Input[dict[str, Any]] | None = None,
        manifest_path: pulumi.Input[str] | None = None,
        components: list[Component | CapabilityProvider] | None = None,
        links: list[Link] | None = None,
        version: str | None = None,
        allow_unplaced: pulumi.Input[bool] = False,
        health_url: pulumi.Input[str] | None = None,
        health_timeout_seconds: pulumi.Input[int] = 60,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """Args:
        lattice: The Lattice to deploy to; its outputs give ``natsUrl``, ``lattice``,
            ``registryUrl``, ``credentials``, ``caCert`` and ``clientTls`` (without it:
            the provider's ``wasmcloud:*`` config).
        manifest: A wadm manifest as a dict.
        manifest_path: The path of a wadm.yaml.
        components: Typed components and providers to build the manifest from.
        links: Links between ``components``.
        version: The version of the manifest built from ``components``.
        allow_unplaced: Deploy even when some instances cannot be placed.
        health_url: An http(s) URL that must answer 2xx after each deploy.
        health_timeout_seconds: How long a deploy waits for ``health_url``.
        """
        if components is not None:
            if manifest is not None or manifest_path is not None:
                raise ValueError(
                    f"Application {resource_name}: give components/links or a manifest, not both"
                )
            manifest = build_manifest(resource_name, list(components), list(links or []), version)
        props: dict[str, Any] = {
            "natsUrl": lattice.nats_url if lattice else None,
            "lattice": lattice.lattice_id if lattice else None,
            # Local component files are pushed to the lattice's registry, if it runs one.
            "registryUrl": lattice.registry_url if lattice else None,
            # A secured lattice's tooling user (secret); else wasmcloud:credentials.
            "credentials": lattice.credentials if lattice else None,
            "caCert": lattice.ca_cert if lattice else None,
            "clientTls": lattice.client_tls if lattice else None,
            "manifest": manifest,
            "manifestPath": manifest_path,
            "allowUnplaced": allow_unplaced,
            "healthUrl": health_url,
            "healthTimeoutSeconds": health_timeout_seconds,
        }
        super().__init__(
            schema.APPLICATION.token,
            resource_name,
            registered(schema.APPLICATION, props),
            pulumi.ResourceOptions.merge(opts, secret_outputs(schema.APPLICATION)),
        )

    name = OutputProperty(schema.APPLICATION, "name", str)
    placement = OutputProperty(schema.APPLICATION, "placement", dict[str, dict[str, int]])
    unplaced = OutputProperty(schema.APPLICATION, "unplaced", dict[str, int])
    deployed_version = OutputProperty(schema.APPLICATION, "version", str)
    status = OutputProperty(schema.APPLICATION, "status", str)
    local_components = OutputProperty(schema.APPLICATION, "localComponents", dict[str, str])


def _output(resource: pulumi.Resource, key: str) -> pulumi.Output[Any]:
    """An output property. The SDK stores one per declared property in the instance
    ``__dict__`` under its wire (camelCase) name; ``pulumi.get`` reads it there, so a
    Python property of the same name (``placement``) does not shadow it."""
    value: pulumi.Output[Any] = pulumi.get(resource, key)
    return value
