"""Every resource's inputs and outputs, defined once.

The provider's schema (GetSchema), its type checks, secret marking and replace-on-change,
the Python SDK test and the reference docs all read these definitions.
"""

from __future__ import annotations

from pulumi_wasmcloud.schema import examples
from pulumi_wasmcloud.schema.objects import EXTRA_PORT_TOKEN, LEAF_NODE_TOKEN, SSH_MACHINE_TOKEN
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
            "The URL of an OTLP/HTTP collector the lattice's hosts, their providers and "
            "its controller export traces and metrics to; empty: none. A lattice on this "
            "machine: e.g. http://localhost:4318. A lattice on machines: an address every "
            "machine reaches (e.g. a collector on a core node), not localhost.",
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
            map_of(array_of(STRING)),
            "What differs on the machines from what the lattice should be (a lattice on machines).",
        ),
        Property(
            "certificatesExpire",
            map_of(STRING),
            "Machine name -> when its NATS server certificate expires (UTC; a lattice on "
            "machines): an `up` within 30 days of it reissues the certificate.",
        ),
    ),
    examples=examples.LATTICE,
)


# What a resource that talks to a lattice connects with: a Lattice's outputs.
# Another lattice (natsUrl, lattice) is another resource: it is replaced.
CONNECTION: tuple[Property, ...] = (
    Property(
        "natsUrl",
        STRING,
        "The lattice's NATS URL, where the provider connects (a Lattice's `natsUrl`; "
        "default: the provider's `wasmcloud:natsUrl`).",
        replace_on_changes=True,
    ),
    Property(
        "lattice",
        STRING,
        "The lattice's name (a Lattice's `lattice`; default: the provider's "
        '`wasmcloud:lattice`, else "default").',
        default="default",
        replace_on_changes=True,
    ),
    Property(
        "credentials",
        STRING,
        "The .creds text of the lattice's tooling user (a secured Lattice's "
        "`credentials`; default: the provider's `wasmcloud:credentials`).",
        secret=True,
    ),
    Property(
        "caCert",
        STRING,
        "The PEM of the CA of the lattice's NATS server certificate (a Lattice's `caCert`).",
    ),
    Property(
        "clientTls",
        map_of(STRING),
        "The tooling user's TLS client pair and CA (a Lattice on machines' `clientTls`).",
        secret=True,
    ),
)


HOST = Resource(
    "wasmcloud:index:Host",
    "A wasmCloud host in a lattice, with labels: on this machine (target `local`), or on "
    "`machine` over SSH, where it runs as a service of the host agent the provider "
    "installs there. A host on a secured lattice mints its own NATS user with the "
    "lattice's `userIssuer`.",
    inputs=(
        Property(
            "name",
            STRING,
            "The host's name (its process is `host-<name>`; on a machine: lowercase letters, "
            "digits and '-').",
            required=True,
            replace_on_changes=True,
        ),
        Property(
            "natsUrl",
            STRING,
            "The lattice's NATS URL, where the provider reaches the lattice (a Lattice's "
            "`natsUrl`; default: the provider's `wasmcloud:natsUrl`).",
        ),
        Property(
            "lattice",
            STRING,
            "The lattice's name (a Lattice's `lattice`).",
            default="default",
            replace_on_changes=True,
        ),
        Property(
            "labels",
            map_of(STRING),
            "The host's labels, which spread scalers place components by.",
            default={},
        ),
        Property(
            "stateDir",
            STRING,
            "Where a local host keeps its pidfile and log (the Lattice's `stateDir`).",
            default=".state/lattice",
            replace_on_changes=True,
        ),
        Property(
            "target",
            STRING,
            "Where the host runs when no `machine` is given: `local` (this machine).",
            default="local",
            replace_on_changes=True,
        ),
        Property(
            "heartbeatSeconds",
            INTEGER,
            "How often the host sends a heartbeat (the Lattice's `heartbeatSeconds`).",
            default=30,
        ),
        Property(
            "registryUrl",
            STRING,
            "The lattice's OCI registry, which the host may pull from over plain HTTP (the "
            "Lattice's `registryUrl`).",
        ),
        Property(
            "credentials",
            STRING,
            "The .creds text the provider connects with (a secured Lattice's `credentials`).",
            secret=True,
        ),
        Property(
            "userIssuer",
            map_of(STRING),
            "The lattice account's issuer (a secured Lattice's `userIssuer`): the host "
            "mints its own NATS user with it.",
            secret=True,
        ),
        Property(
            "caCert",
            STRING,
            "The PEM of the CA of the lattice's NATS server certificate (a Lattice's `caCert`).",
        ),
        Property(
            "clientTls",
            map_of(STRING),
            "The tooling user's TLS client pair and CA (a Lattice on machines' `clientTls`).",
            secret=True,
        ),
        Property(
            "otlpEndpoint",
            STRING,
            "The OTLP/HTTP collector the host exports telemetry to (the Lattice's "
            "`otlpEndpoint`); empty: none.",
        ),
        Property(
            "machine",
            object_type(SSH_MACHINE_TOKEN),
            "The machine the host runs on, over SSH; not given: this machine.",
        ),
        Property(
            "hostNatsUrl",
            STRING,
            "Where a host on a machine reaches NATS (e.g. its region's leaf node, the "
            'Lattice\'s `natsUrls["edge-1"]`); default: `natsUrl`.',
        ),
        Property(
            "jsDomain",
            STRING,
            "The lattice's JetStream domain (a Lattice on machines' `jsDomain`).",
            default="",
        ),
        Property(
            "tlsIssuer",
            map_of(STRING),
            "The lattice CA (a Lattice on machines' `tlsIssuer`): a host on a machine "
            "issues its own client certificate with it.",
            secret=True,
        ),
    ),
    outputs=(
        Property("hostId", STRING, "The host's public key (`N...`), its id in the lattice."),
        Property("seed", STRING, "The host's nkey seed.", secret=True),
        Property("hostCredentials", STRING, "The .creds of the host's own NATS user.", secret=True),
        Property(
            "hostTls",
            map_of(STRING),
            "A host on a machine's own TLS client pair.",
            secret=True,
        ),
        Property("running", BOOLEAN, "Whether the host runs (drift)."),
        Property(
            "converged",
            BOOLEAN,
            "Whether the host's machine is as the provider left it (a host on a machine).",
        ),
        Property(
            "hostKeys",
            map_of(STRING),
            "Machine name -> the SSH host key recorded for it (a host on a machine).",
        ),
    ),
    examples=examples.HOST,
)

APPLICATION = Resource(
    "wasmcloud:index:Application",
    "A wadm application, put and deployed through the lattice's controller. Preview shows "
    "`placement`: for each component, how many instances each host will run. With "
    "`healthUrl`, every deploy waits until the URL answers 2xx and rolls back a version "
    "that never does.",
    inputs=(
        *CONNECTION,
        Property(
            "registryUrl",
            STRING,
            "The lattice's registry (a Lattice's `registryUrl`): local component files "
            "(`file://`) are pushed there.",
        ),
        Property(
            "manifest",
            map_of(ANY),
            "The wadm manifest (apiVersion core.oam.dev/v1beta1); give it or `manifestPath`.",
        ),
        Property("manifestPath", STRING, "The path of a wadm.yaml to deploy."),
        Property(
            "allowUnplaced",
            BOOLEAN,
            "Deploy even when some instances cannot be placed on any host.",
            default=False,
        ),
        Property(
            "healthUrl",
            STRING,
            "An http:// or https:// URL the application serves: a deploy waits until it "
            "answers 2xx, else rolls back.",
        ),
        Property(
            "healthTimeoutSeconds",
            INTEGER,
            "How long a deploy waits for `healthUrl` to answer 2xx.",
            default=60,
        ),
    ),
    outputs=(
        Property(
            "name",
            STRING,
            "The application's name (the manifest's metadata.name).",
            replace_on_changes=True,
        ),
        Property(
            "placement",
            map_of(map_of(INTEGER)),
            "Component -> host name -> instances: the plan in preview, what runs after up.",
        ),
        Property(
            "unplaced",
            map_of(INTEGER),
            "Component -> instances no host can take.",
        ),
        Property(
            "version",
            STRING,
            "The version deployed.",
            python_name="deployed_version",
        ),
        Property("status", STRING, "The controller's status of the application (drift)."),
        Property(
            "localComponents",
            map_of(STRING),
            "Registry reference -> local file, for component files pushed to the registry.",
        ),
    ),
    examples=examples.APPLICATION,
)

EC2_MACHINE = Resource(
    "wasmcloud:index:Ec2Machine",
    "An EC2 instance for a lattice role (`core`: a NATS cluster node, `edge`: a leaf node, "
    "`host`: hosts only), running and answering SSH once created, with its own security "
    "group and key pair. Give it to a Lattice or Host as an SshMachine.",
    inputs=(
        Property("region", STRING, "The AWS region.", required=True, replace_on_changes=True),
        Property(
            "lattice",
            STRING,
            "The lattice the machine is for (in its names and tags).",
            required=True,
            replace_on_changes=True,
        ),
        Property(
            "role",
            STRING,
            "`core`, `edge` or `host`: which ports its security group opens.",
            required=True,
            replace_on_changes=True,
        ),
        Property(
            "subnetId", STRING, "The subnet to launch in.", required=True, replace_on_changes=True
        ),
        Property(
            "privateKey",
            STRING,
            "An OpenSSH private key; its public half becomes the instance's key pair.",
            required=True,
            secret=True,
            replace_on_changes=True,
        ),
        Property(
            "instanceType",
            STRING,
            "The instance type.",
            default="t3.small",
            replace_on_changes=True,
        ),
        Property("ami", STRING, "The AMI id; give it or `amiParameter`.", replace_on_changes=True),
        Property(
            "amiParameter",
            STRING,
            "An SSM public parameter naming the AMI (default: Debian 12's).",
            replace_on_changes=True,
        ),
        Property("user", STRING, "The login user of the AMI.", default="admin"),
        Property("sshFrom", array_of(STRING), "CIDR blocks SSH (22) is open to.", default=[]),
        Property(
            "latticeCidrs",
            array_of(STRING),
            "CIDR blocks NATS clients (4222) come from (core and edge).",
            default=[],
        ),
        Property(
            "peerCidrs",
            array_of(STRING),
            "CIDR blocks of the cluster's routes (6222) and leaf nodes (7422) (core).",
            default=[],
        ),
        Property(
            "extraPorts",
            array_of(object_type(EXTRA_PORT_TOKEN)),
            "More ports to open, each to its CIDR blocks.",
            default=[],
        ),
        Property(
            "address",
            STRING,
            "Which address SSH and NATS use: `private` or `public`.",
            default="private",
            replace_on_changes=True,
        ),
        Property(
            "sshTimeoutSeconds",
            INTEGER,
            "How long create waits for SSH to answer.",
            default=300,
        ),
        Property("endpointUrl", STRING, "Another EC2 endpoint for boto3 (a test's)."),
        Property("tags", map_of(STRING), "More tags on everything it makes.", default={}),
    ),
    outputs=(
        Property("instanceId", STRING, "The EC2 instance id."),
        Property("privateIp", STRING, "The instance's private IP."),
        Property("publicIp", STRING, 'The instance\'s public IP, or "".'),
        Property("ip", STRING, "The IP SSH and NATS use (by `address`)."),
        Property("securityGroupId", STRING, "The instance's own security group."),
        Property("keyPairName", STRING, "The instance's key pair."),
        Property("hostKey", STRING, "The SSH host key line the instance showed first."),
        Property("imageId", STRING, "The AMI the instance runs."),
        Property("ingress", array_of(STRING), "The security group's rules."),
        Property("state", STRING, "The instance's state (drift)."),
    ),
    examples=examples.EC2_MACHINE,
)

SECRET = Resource(
    "wasmcloud:index:Secret",
    "A value in a lattice's secrets backend (NATS KV), for manifests' secret references "
    "(a secret policy's `backend` and the secret's `key`). Sent sealed and kept sealed at "
    "rest; a Pulumi secret in the state.",
    inputs=(
        *CONNECTION,
        Property(
            "backend",
            STRING,
            "The secrets backend's name (a policy's `properties.backend`).",
            default="nats-kv",
            replace_on_changes=True,
        ),
        Property(
            "key",
            STRING,
            "The key manifests name (`secrets[].properties.key`).",
            required=True,
            replace_on_changes=True,
        ),
        Property("value", STRING, "The secret value.", required=True, secret=True),
    ),
    outputs=(Property("revision", INTEGER, "The backend's revision of the value."),),
    examples=examples.SECRET,
)

RESOURCES: tuple[Resource, ...] = (LATTICE, HOST, APPLICATION, EC2_MACHINE, SECRET)


def resource(token: str) -> Resource | None:
    """The resource of ``token``, or None."""
    return next((r for r in RESOURCES if r.token == token), None)
