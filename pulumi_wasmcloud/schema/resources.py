"""Every resource's inputs and outputs, defined once.

The provider's schema (GetSchema), its type checks, secret marking and replace-on-change,
the Python SDK test and the reference docs all read these definitions.
"""

from __future__ import annotations

from pulumi_wasmcloud.schema.objects import LEAF_NODE_TOKEN, SSH_MACHINE_TOKEN
from pulumi_wasmcloud.schema.types import (
    ANY,
    BOOLEAN,
    INTEGER,
    STRING,
    Property,
    Resource,
    array_of,
    map_of,
    object_type,
)

LATTICE = Resource(
    "wasmcloud:index:Lattice",
    "A wasmCloud lattice: NATS with JetStream, the controller (wadm's API), and optionally "
    "a redis-server and an OCI registry. On this machine by default (detached, supervised "
    "processes with pidfiles and logs in `stateDir`); with `cluster`, on those machines "
    "over SSH: a NATS cluster, the controller on every node, and a leaf node per "
    "`leafNodes` entry. `secure` (default true) runs NATS in operator mode with the "
    "lattice's own authority and TLS; its private material comes out as secret outputs.",
    inputs=(
        Property(
            "lattice",
            STRING,
            "The lattice's name (in every NATS subject and bucket of it).",
            default="default",
            replace_on_changes=True,
        ),
        Property(
            "natsPort",
            INTEGER,
            "The local NATS server's client port (a local lattice).",
            default=4222,
            replace_on_changes=True,
        ),
        Property(
            "stateDir",
            STRING,
            "Where a local lattice keeps its processes' data, pidfiles and logs.",
            default=".state/lattice",
            replace_on_changes=True,
        ),
        Property(
            "heartbeatSeconds",
            INTEGER,
            "How often hosts send heartbeats; the controller counts a host gone after missing "
            "some.",
            default=30,
        ),
        Property(
            "redisPort",
            INTEGER,
            "Run a redis-server on this loopback port for keyvalue-redis providers (a local "
            "lattice).",
        ),
        Property(
            "registryPort",
            INTEGER,
            "Run an OCI registry on this port (loopback locally; on `cluster[0]` for a "
            "lattice on machines).",
        ),
        Property(
            "secure",
            BOOLEAN,
            "Operator-mode NATS with the lattice's own authority and TLS (a local lattice); "
            "false runs plain NATS anyone on this machine may connect to.",
            default=True,
        ),
        Property(
            "otlpEndpoint",
            STRING,
            "The URL of an OTLP/HTTP collector (e.g. http://localhost:4318) the lattice's "
            "hosts and their providers export traces and metrics to; empty: none.",
            default="",
        ),
        Property(
            "cluster",
            array_of(object_type(SSH_MACHINE_TOKEN)),
            "The machines of the core NATS cluster: the lattice lives on them instead of "
            "this machine.",
        ),
        Property(
            "leafNodes",
            array_of(object_type(LEAF_NODE_TOKEN)),
            "NATS leaf nodes for regions' hosts (a lattice on machines).",
            default=[],
        ),
        Property(
            "jetstreamDomain",
            STRING,
            "The JetStream domain of the core cluster (a lattice on machines).",
        ),
        Property(
            "maxFileStore",
            INTEGER,
            "At most this many bytes of JetStream file store per cluster node.",
        ),
    ),
    outputs=(
        Property(
            "natsUrl",
            STRING,
            "`nats://<address>:<port>`: where hosts, the controller and clients connect.",
        ),
        Property("registryUrl", STRING, '`http://<address>:<port>` of the registry, or "".'),
        Property("running", BOOLEAN, "Whether every process of the lattice runs (drift)."),
        Property(
            "caCert",
            STRING,
            'The PEM of the CA that signed the NATS server\'s certificate; "" without TLS.',
        ),
        Property(
            "credentials",
            STRING,
            "A .creds file's text for the lattice's tooling "
            "user: what Hosts, Applications and tools connect as.",
            secret=True,
        ),
        Property(
            "userIssuer",
            map_of(STRING),
            "The lattice account's public key and a "
            "signing key's seed: Hosts mint their own NATS users with it.",
            secret=True,
        ),
        Property(
            "authority",
            map_of(ANY),
            "The lattice's operator, system account and account keys.",
            secret=True,
        ),
        Property("controllerCredentials", STRING, "The controller's .creds.", secret=True),
        Property("tls", map_of(ANY), "The lattice's CA and server certificate pairs.", secret=True),
        Property("secretsKey", STRING, "The secrets backend's sealing key.", secret=True),
        Property("secretsCredentials", STRING, "The secrets backend's .creds.", secret=True),
        Property(
            "clientTls",
            map_of(STRING),
            "The tooling user's TLS client pair and the "
            "CA, {caPem, certPem, keyPem} (a lattice on machines).",
            secret=True,
        ),
        Property(
            "tlsIssuer",
            map_of(STRING),
            "The lattice CA's certificate and key (a "
            "lattice on machines): Hosts on machines issue their client certificates "
            "with it.",
            secret=True,
        ),
        Property("security", map_of(ANY), "A lattice on machines' security state.", secret=True),
        Property(
            "natsUrls",
            map_of(STRING),
            "Machine name -> `nats://<address>:4222` of the "
            "NATS node on it (a lattice on machines).",
        ),
        Property(
            "jsDomain", STRING, "The JetStream domain of the core cluster (a lattice on machines)."
        ),
        Property(
            "hostKeys",
            map_of(STRING),
            "Machine name -> the SSH host key recorded for it (a lattice on machines).",
        ),
        Property(
            "drift",
            map_of(ANY),
            "What differs on the machines from what the lattice should be (a lattice on machines).",
        ),
    ),
)

RESOURCES: tuple[Resource, ...] = (LATTICE,)
