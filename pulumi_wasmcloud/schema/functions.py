"""The provider's functions (invokes) and their results' object types.

Served by pulumi_wasmcloud/provider/functions.py; the Python SDK's forms are in
pulumi_wasmcloud/functions.py. Only the standard library (via types.py) here.
"""

from __future__ import annotations

from pulumi_wasmcloud.schema.types import (
    ANY,
    INTEGER,
    STRING,
    Function,
    ObjectType,
    Property,
    array_of,
    map_of,
    object_type,
)

GET_LATTICE_TOKEN = "wasmcloud:index:getLattice"
PLAN_PLACEMENT_TOKEN = "wasmcloud:index:planPlacement"
LATTICE_HOST_TOKEN = "wasmcloud:index:LatticeHost"
HOST_COMPONENT_TOKEN = "wasmcloud:index:HostComponent"
HOST_PROVIDER_TOKEN = "wasmcloud:index:HostProvider"
PLANNED_HOST_TOKEN = "wasmcloud:index:PlannedHost"

# Where the lattice is and how to get in: the same names as a Lattice's outputs, so a
# program passes them straight on (`nats_url=lattice.nats_url, ...`).
CONNECTION: tuple[Property, ...] = (
    Property(
        "natsUrl",
        STRING,
        "The lattice's NATS URL (a Lattice's `natsUrl`); default: the provider's "
        "`wasmcloud:natsUrl`.",
    ),
    Property(
        "lattice",
        STRING,
        "The lattice's name (a Lattice's `lattice`); default: the provider's "
        "`wasmcloud:lattice`, else `default`.",
        default="default",
    ),
    Property(
        "credentials",
        STRING,
        "The text of a NATS .creds file to connect with (a secured Lattice's "
        "`credentials`); default: the provider's `wasmcloud:credentials`.",
        secret=True,
    ),
    Property(
        "caCert",
        STRING,
        "The PEM of the CA that signed the NATS server's certificate (a local Lattice's "
        "`caCert`), for a NATS that speaks TLS.",
    ),
    Property(
        "clientTls",
        map_of(STRING),
        "A TLS client pair and CA, {caPem, certPem, keyPem} (a Lattice on machines' "
        "`clientTls`), for a NATS that asks for a client certificate.",
        secret=True,
    ),
)
# What both results repeat of the arguments: which lattice was read.
WHERE: tuple[Property, ...] = (
    Property("natsUrl", STRING, "The NATS URL that was read.", required=True),
    Property("lattice", STRING, "The lattice's name.", required=True),
)

HOST_COMPONENT = ObjectType(
    HOST_COMPONENT_TOKEN,
    "A Wasm component a host runs.",
    (
        Property("id", STRING, "Its id in the lattice (`<application>-<name>`).", required=True),
        Property("imageRef", STRING, "The image it was started from.", required=True),
        Property("maxInstances", INTEGER, "How many instances it may run at once.", required=True),
        Property(
            "application",
            STRING,
            "The wadm application that placed it (its `wasmcloud.dev/appspec` annotation); "
            "absent when it was started by hand.",
        ),
    ),
)

HOST_PROVIDER = ObjectType(
    HOST_PROVIDER_TOKEN,
    "A capability provider a host runs.",
    (
        Property("id", STRING, "Its id in the lattice.", required=True),
        Property(
            "imageRef", STRING, "The image (or builtin:...) it was started from.", required=True
        ),
        Property(
            "application",
            STRING,
            "The wadm application that placed it; absent when it was started by hand.",
        ),
    ),
)

LATTICE_HOST = ObjectType(
    LATTICE_HOST_TOKEN,
    "One host of the lattice, as its ping and inventory replies describe it.",
    (
        Property("id", STRING, "The host's public key (its id in the lattice).", required=True),
        Property(
            "name",
            STRING,
            "What previews call it: its friendly name, or its id where names repeat.",
            required=True,
        ),
        Property("friendlyName", STRING, "The friendly name the host gave itself.", required=True),
        Property("labels", map_of(STRING), "The host's labels.", required=True),
        Property("version", STRING, "The host's version.", required=True),
        Property("uptimeSeconds", INTEGER, "Seconds since the host started.", required=True),
        Property(
            "components",
            array_of(object_type(HOST_COMPONENT_TOKEN)),
            "The components it runs, by id.",
            required=True,
        ),
        Property(
            "providers",
            array_of(object_type(HOST_PROVIDER_TOKEN)),
            "The capability providers it runs, by id.",
            required=True,
        ),
        Property(
            "error",
            STRING,
            "Why its inventory could not be read (components and providers are then "
            "empty); absent when it was read.",
        ),
    ),
)

PLANNED_HOST = ObjectType(
    PLANNED_HOST_TOKEN,
    "A host the planner considered.",
    (
        Property("id", STRING, "The host's id.", required=True),
        Property("name", STRING, "What `placement` calls it.", required=True),
        Property(
            "labels", map_of(STRING), "The labels spreads are matched against.", required=True
        ),
    ),
)

GET_LATTICE = Function(
    GET_LATTICE_TOKEN,
    "Reads a running lattice: every host that answers a ping, its labels, and the "
    "components and providers it runs. Fails naming `lattice` when neither a host nor "
    "the controller of that lattice answers, and `natsUrl` or `credentials` when NATS "
    "cannot be reached or refuses them.",
    CONNECTION,
    (
        *WHERE,
        Property(
            "hosts",
            array_of(object_type(LATTICE_HOST_TOKEN)),
            "The hosts, by name.",
            required=True,
        ),
    ),
    examples={
        "python": (
            "lattice = wasmcloud.get_lattice_output(nats_url=local.nats_url, "
            "credentials=local.credentials, ca_cert=local.ca_cert)\n"
            'pulumi.export("hosts", lattice.hosts.apply(lambda hs: [h.name for h in hs]))'
        ),
        "yaml": (
            "variables:\n"
            "  live:\n"
            "    fn::invoke:\n"
            "      function: wasmcloud:index:getLattice\n"
            "      arguments:\n"
            "        natsUrl: ${local.natsUrl}\n"
            "        credentials: ${local.credentials}\n"
            "        caCert: ${local.caCert}\n"
            "outputs:\n"
            "  hosts: ${live.hosts}"
        ),
    },
)

PLAN_PLACEMENT = Function(
    PLAN_PLACEMENT_TOKEN,
    "Plans a wadm manifest on the running lattice with the controller's planner: where "
    "each component and provider instance would go (`placement`, hosts by name, as an "
    "Application's preview shows it), what no host can take (`unplaced`, `problems`) and "
    "the change from what runs now (`moves`). Deploys nothing. Manifest errors are "
    "failures naming the path (`manifest.spec.components[0]...`).",
    (
        *CONNECTION,
        Property(
            "manifest",
            map_of(ANY),
            "The wadm manifest (apiVersion, kind, metadata, spec) as an object; or give "
            "`manifestPath`.",
        ),
        Property("manifestPath", STRING, "A wadm manifest file (YAML or JSON) instead."),
    ),
    (
        *WHERE,
        Property("application", STRING, "The manifest's name.", required=True),
        Property(
            "placement",
            map_of(map_of(INTEGER)),
            "Component name -> host name -> instances.",
            required=True,
        ),
        Property(
            "unplaced",
            map_of(INTEGER),
            "Component name -> instances no host can take (only those with any).",
            required=True,
        ),
        Property(
            "moves",
            map_of(map_of(INTEGER)),
            "Component name -> host name -> change in instances from what runs now.",
            required=True,
        ),
        Property(
            "problems",
            array_of(STRING),
            "Why instances are unplaced, one sentence each.",
            required=True,
        ),
        Property(
            "hosts",
            array_of(object_type(PLANNED_HOST_TOKEN)),
            "The hosts planned on, by name.",
            required=True,
        ),
        Property(
            "table",
            STRING,
            "The plan as the table `wasmcloud placement` prints.",
            required=True,
        ),
    ),
    examples={
        "python": (
            "plan = wasmcloud.plan_placement_output(manifest=manifest, "
            "nats_url=local.nats_url, credentials=local.credentials, ca_cert=local.ca_cert)\n"
            'pulumi.export("placement", plan.placement)'
        ),
        "yaml": (
            "variables:\n"
            "  plan:\n"
            "    fn::invoke:\n"
            "      function: wasmcloud:index:planPlacement\n"
            "      arguments:\n"
            "        manifestPath: wadm.yaml\n"
            "        natsUrl: ${local.natsUrl}\n"
            "        credentials: ${local.credentials}\n"
            "        caCert: ${local.caCert}\n"
            "outputs:\n"
            "  placement: ${plan.placement}"
        ),
    },
)

FUNCTIONS: tuple[Function, ...] = (GET_LATTICE, PLAN_PLACEMENT)
OBJECT_TYPES: tuple[ObjectType, ...] = (HOST_COMPONENT, HOST_PROVIDER, LATTICE_HOST, PLANNED_HOST)
