"""The typed resources a Pulumi program declares (package ``wasmcloud``).

Each is a custom resource served by the native provider ``pulumi-resource-wasmcloud``.
Inputs are camelCase on the wire (like every Pulumi provider); the Python API is
snake_case.
"""

from __future__ import annotations

from typing import Any

import pulumi

from pulumi_wasmcloud.app import CapabilityProvider, Component, Link, build_manifest
from pulumi_wasmcloud.machines import LeafNode, SshMachine

# Outputs that carry private material (seeds, .creds): Pulumi secrets.
LATTICE_SECRETS = (
    "authority",
    "userIssuer",
    "credentials",
    "controllerCredentials",
    "tls",
    "secretsKey",
    "secretsCredentials",
    "clientTls",
    "tlsIssuer",
    "security",
)
HOST_SECRETS = (
    "seed",
    "credentials",
    "userIssuer",
    "hostCredentials",
    "clientTls",
    "tlsIssuer",
    "hostTls",
)


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
        props: dict[str, Any] = {
            "lattice": lattice,
            "otlpEndpoint": otlp_endpoint,
            "natsPort": nats_port,
            "stateDir": state_dir,
            "heartbeatSeconds": heartbeat_seconds,
            "redisPort": redis_port,
            "registryPort": registry_port,
            "secure": secure,
            "natsUrl": None,
            "registryUrl": None,
            "running": None,
            **dict.fromkeys(LATTICE_SECRETS),
            "caCert": None,
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
                "natsUrls": None,
                "jsDomain": None,
                "hostKeys": None,
            }
        elif leaf_nodes or jetstream_domain is not None or max_file_store is not None:
            raise ValueError(
                f"Lattice {resource_name}: leaf_nodes, jetstream_domain and max_file_store "
                "are for a lattice on machines; give cluster too"
            )
        # The provider marks these secret itself; saying so here too keeps them secret in
        # the program even if a provider version forgot one.
        secret = pulumi.ResourceOptions(additional_secret_outputs=list(LATTICE_SECRETS))
        super().__init__(
            "wasmcloud:index:Lattice",
            resource_name,
            props,
            pulumi.ResourceOptions.merge(opts, secret),
        )

    @property
    def credentials(self) -> pulumi.Output[str]:
        """The text of a .creds file of the lattice's tooling user (secret; ``None`` for a
        plain lattice): give it to tools, or read ``nats.creds`` in ``state_dir``."""
        return _output(self, "credentials")

    @property
    def user_issuer(self) -> pulumi.Output[dict[str, str]]:
        """The lattice account's public key and a signing key's seed (secret): Hosts of
        the lattice mint their own NATS users with it."""
        return _output(self, "userIssuer")

    @property
    def client_tls(self) -> pulumi.Output[dict[str, str]]:
        """The tooling user's TLS client pair and the CA, {caPem, certPem, keyPem} (secret;
        a lattice on machines, whose nodes ask for client certificates; empty locally)."""
        return _output(self, "clientTls")

    @property
    def tls_issuer(self) -> pulumi.Output[dict[str, str]]:
        """The lattice CA's certificate and key (secret; a lattice on machines): a Host on a
        machine issues its own client certificate with it."""
        return _output(self, "tlsIssuer")

    @property
    def ca_cert(self) -> pulumi.Output[str]:
        """The PEM of the CA that signed the lattice's NATS server certificate, ``""``
        without TLS (public)."""
        return _output(self, "caCert")

    @property
    def nats_urls(self) -> pulumi.Output[dict[str, str]]:
        """Machine name -> ``nats://<address>:4222`` of the NATS node on that machine (a
        lattice on machines): hosts connect to the one nearest them."""
        return _output(self, "natsUrls")

    @property
    def js_domain(self) -> pulumi.Output[str]:
        """The JetStream domain of the core cluster (a lattice on machines)."""
        return _output(self, "jsDomain")

    @property
    def host_keys(self) -> pulumi.Output[dict[str, str]]:
        """Machine name -> the host key recorded for it (a lattice on machines)."""
        return _output(self, "hostKeys")

    @property
    def nats_url(self) -> pulumi.Output[str]:
        """``nats://127.0.0.1:<port>``: where hosts, the controller and clients connect."""
        return _output(self, "natsUrl")

    @property
    def registry_url(self) -> pulumi.Output[str | None]:
        """``http://127.0.0.1:<port>`` when the lattice runs a registry, else ``""``."""
        return _output(self, "registryUrl")

    @property
    def lattice_id(self) -> pulumi.Output[str]:
        return _output(self, "lattice")

    @property
    def state_dir(self) -> pulumi.Output[str]:
        return _output(self, "stateDir")


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
        target: str = "local",
        machine: SshMachine | None = None,
        nats_url: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "name": resource_name,
            "natsUrl": lattice.nats_url,
            "lattice": lattice.lattice_id,
            "stateDir": lattice.state_dir,
            "heartbeatSeconds": _output(lattice, "heartbeatSeconds"),
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
            "otlpEndpoint": _output(lattice, "otlpEndpoint"),
            "hostId": None,
            "seed": None,
            "hostCredentials": None,
            "running": None,
        }
        if machine is not None:
            if not isinstance(machine, SshMachine):
                raise TypeError(f"Host {resource_name}: machine must be an SshMachine")
            del props["stateDir"], props["target"]  # machine: its own
            props |= {
                "machine": machine.to_input(),
                "hostNatsUrl": nats_url if nats_url is not None else lattice.nats_url,
                "jsDomain": _output(lattice, "jsDomain"),
                "hostKeys": None,
                "tlsIssuer": lattice.tls_issuer,
                "hostTls": None,
            }
        elif nats_url is not None:
            props["natsUrl"] = nats_url

        secret = pulumi.ResourceOptions(additional_secret_outputs=list(HOST_SECRETS))
        super().__init__(
            "wasmcloud:index:Host", resource_name, props, pulumi.ResourceOptions.merge(opts, secret)
        )

    @property
    def host_keys(self) -> pulumi.Output[dict[str, str]]:
        """Machine name -> the host key recorded for it (a host on a machine)."""
        return _output(self, "hostKeys")

    @property
    def host_id(self) -> pulumi.Output[str]:
        return _output(self, "hostId")


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

    def __init__(
        self,
        resource_name: str,
        lattice: Lattice | None = None,
        manifest: pulumi.Input[dict[str, Any]] | None = None,
        manifest_path: str | None = None,
        components: list[Component | CapabilityProvider] | None = None,
        links: list[Link] | None = None,
        version: str | None = None,
        allow_unplaced: bool = False,
        health_url: pulumi.Input[str] | None = None,
        health_timeout_seconds: pulumi.Input[int] = 60,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
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
            "name": None,
            "placement": None,
            "unplaced": None,
            "version": None,
            "status": None,
        }
        secret = pulumi.ResourceOptions(additional_secret_outputs=["credentials", "clientTls"])
        super().__init__(
            "wasmcloud:index:Application",
            resource_name,
            props,
            pulumi.ResourceOptions.merge(opts, secret),
        )

    @property
    def placement(self) -> pulumi.Output[dict[str, dict[str, int]]]:
        return _output(self, "placement")

    @property
    def deployed_version(self) -> pulumi.Output[str]:
        return _output(self, "version")


def _output(resource: pulumi.Resource, key: str) -> pulumi.Output[Any]:
    """An output property. The SDK stores one per declared property in the instance
    ``__dict__`` under its wire (camelCase) name; ``pulumi.get`` reads it there, so a
    Python property of the same name (``placement``) does not shadow it."""
    value: pulumi.Output[Any] = pulumi.get(resource, key)
    return value
