"""The provider's functions (``invoke``): reads a program makes before it creates anything.

``wasmcloud:index:getLattice``: every host that answers a ping on the lattice, its labels
and what runs on it (components with their instance counts, providers), read from the
control interface the way ``wasmcloud inventory`` reads it (host_agent/ops/inventory.py).

``wasmcloud:index:planPlacement``: a wadm manifest planned on the live lattice with the
controller's planner (host_agent/placement/) on the same view an Application's preview
plans on (``Lattice.view``), so ``placement`` and ``unplaced`` are what a preview of that
manifest as an Application shows, with the table ``wasmcloud placement`` prints.

Both connect with what a Lattice's outputs give (``natsUrl``, ``lattice``,
``credentials``, ``caCert``, ``clientTls``), the provider's config as defaults like
every resource. Bad arguments come back as failures naming the argument (the SDKs show
``invoke of <token> failed: <reason> (<argument>)``); nothing is read as a default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pulumi.provider.experimental.provider import CheckFailure, InvokeRequest, InvokeResponse

from pulumi_wasmcloud.provider.handlers import InputError, ProviderSettings, nats_url_required
from pulumi_wasmcloud.provider.live import (
    CredentialsRefused,
    Lattice,
    LatticeUnreachable,
    connect,
    lattice_credentials,
    lattice_tls,
    placement_by_name,
)
from pulumi_wasmcloud.provider.values import has_unknowns, plain, to_props
from pulumi_wasmcloud.schema.functions import FUNCTIONS as SCHEMA_FUNCTIONS
from pulumi_wasmcloud.schema.functions import GET_LATTICE_TOKEN, PLAN_PLACEMENT_TOKEN
from pulumi_wasmcloud.schema.package import object_types
from pulumi_wasmcloud.schema.validate import Checker

if TYPE_CHECKING:
    from host_agent.model.manifest import Manifest

GET_LATTICE = GET_LATTICE_TOKEN
PLAN_PLACEMENT = PLAN_PLACEMENT_TOKEN
# Each function's definition (its arguments, their types), from the schema.
FUNCTIONS = {f.token: f for f in SCHEMA_FUNCTIONS}
CLIENT_TLS_KEYS = ("caPem", "certPem", "keyPem")
# How long a lattice's controller has to answer whether the lattice exists at all.
CONTROLLER_WAIT = 2.0


@dataclass(frozen=True)
class Connection:
    """Where a function's lattice is, checked: what ``live.connect`` takes."""

    nats_url: str
    lattice: str
    state: dict[str, Any]  # credentials, caCert, clientTls as given (lattice_tls reads them)


async def invoke(
    request: InvokeRequest,
    defaults: Callable[[dict[str, Any]], dict[str, Any]],
    settings: ProviderSettings,
) -> InvokeResponse:
    """Run the function ``request.tok`` on its arguments (``defaults`` adds the provider's
    config); bad arguments and a lattice that cannot be read are failures naming the
    argument to fix."""
    if request.tok not in FUNCTIONS:
        known = ", ".join(sorted(FUNCTIONS))
        raise ValueError(f"unknown function {request.tok}; this provider has: {known}")
    args = defaults(plain(request.args))
    try:
        connection = connection_args(request.tok, args)
        if request.tok == GET_LATTICE:
            result = await get_lattice(connection, settings)
        else:
            manifest = manifest_arg(args)
            result = await plan_placement(connection, manifest, settings)
    except ArgumentErrors as exc:
        return InvokeResponse(failures=[failure(e) for e in exc.errors])
    except InputError as exc:
        return InvokeResponse(failures=[failure(exc)])
    return InvokeResponse(return_value=to_props(result))


class ArgumentErrors(Exception):
    def __init__(self, errors: list[InputError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def failure(error: InputError) -> CheckFailure:
    # The reason starts with the argument too: the Python SDK prints the reason first and
    # the property last, and a reason that reads on its own is what YAML programs show.
    return CheckFailure(error.property, str(error))


def connection_args(token: str, args: dict[str, Any]) -> Connection:
    """The arguments checked against the function's schema (unknown names with the
    nearest one, types by path), then what the schema cannot say."""
    function = FUNCTIONS[token]
    checker = Checker({o.token: o for o in object_types()}, has_unknowns)
    errors = [
        InputError(problem.path, problem.reason)
        for problem in checker.properties(args, function.inputs, function.name)
    ]
    for name, value in args.items():
        if has_unknowns(value):
            errors.append(
                InputError(
                    name,
                    "is not known yet (another resource's output): a function "
                    "runs on known values only; make the call depend on that resource",
                )
            )
    url, lattice = args.get("natsUrl"), args.get("lattice")
    if url in (None, ""):
        errors.append(nats_url_required())
    errors += client_tls_errors(args.get("clientTls"))
    if errors:
        raise ArgumentErrors(errors)
    state = {k: args[k] for k in ("credentials", "caCert", "clientTls") if args.get(k)}
    if "credentials" in state:
        from host_agent.lattice.connection import CredentialsError, NatsCredentials  # NATS

        try:
            NatsCredentials.from_creds(state["credentials"], "credentials")
        except CredentialsError as exc:
            raise InputError("credentials", str(exc)) from None
    return Connection(str(url), lattice or "default", state)


def client_tls_errors(value: Any) -> list[InputError]:
    """A map of PEM strings (the schema checks that): the names a client pair has."""
    if not isinstance(value, Mapping):
        return []
    errors = [
        InputError(
            f"clientTls.{key}", f"clientTls takes no {key!r}; it takes caPem, certPem, keyPem"
        )
        for key in sorted(set(value) - set(CLIENT_TLS_KEYS))
    ]
    if not value.get("caPem"):
        errors.append(InputError("clientTls.caPem", "required: the CA's certificate (PEM)"))
    return errors


def manifest_arg(args: dict[str, Any]) -> Manifest:
    """``manifest`` (the wadm manifest as an object) or ``manifestPath`` (a YAML/JSON
    file), exactly one, validated as wadm would; every issue named by its path."""
    from host_agent.model.issues import ManifestError  # the manifest model: pydantic
    from host_agent.model.loader import load_manifest, parse_manifest

    given, path = args.get("manifest"), args.get("manifestPath")
    if given is not None and path is not None:
        raise InputError("manifest", "give manifest or manifestPath, not both")
    if given is None and path is None:
        raise InputError("manifest", "required: a wadm manifest (an object) or manifestPath")
    field = "manifest" if given is not None else "manifestPath"
    try:
        parsed = parse_manifest(given) if given is not None else load_manifest(str(path))
    except ManifestError as exc:
        raise ArgumentErrors(
            [
                InputError(f"{field}.{i.path}" if i.path else field, str(replace(i, path="")))
                for i in exc.issues
            ]
        ) from None
    return parsed.manifest


async def read_lattice(
    connection: Connection, settings: ProviderSettings, read: Callable[[Lattice], Any]
) -> Any:
    """``read`` on the connected lattice; a NATS that cannot be reached or refuses the
    credentials is a failure naming the argument to fix."""
    from host_agent.lattice.connection import TlsConfigError  # brings NATS

    try:
        tls = lattice_tls(connection.state)
    except TlsConfigError as exc:
        raise InputError("clientTls", str(exc)) from None
    try:
        async with connect(
            connection.nats_url,
            connection.lattice,
            lattice_credentials(connection.state, settings),
            tls,
        ) as lattice:
            return await read(lattice)
    except CredentialsRefused as exc:
        raise InputError("credentials", str(exc)) from None
    except LatticeUnreachable as exc:
        raise InputError("natsUrl", str(exc)) from None


async def get_lattice(connection: Connection, settings: ProviderSettings) -> dict[str, Any]:
    from host_agent.ops.inventory import display_names, inventory_document  # its own read

    async def read(lattice: Lattice) -> dict[str, Any]:
        readings = await lattice.ctl.read_hosts(wait=0.5)
        if not readings:
            await require_lattice(lattice, connection)
        return inventory_document(lattice.lattice, readings)

    document = await read_lattice(connection, settings, read)
    names = display_names(document["hosts"])
    hosts = [
        {
            "id": h["id"],
            "name": names[h["id"]],
            "friendlyName": h["friendly_name"],
            "labels": h["labels"],
            "version": h["version"],
            "uptimeSeconds": h["uptime_seconds"],
            "components": [
                {
                    "id": c["id"],
                    "imageRef": c["image_ref"],
                    "maxInstances": c["max_instances"],
                    "application": c["application"],
                }
                for c in h["components"]
            ],
            "providers": [
                {"id": p["id"], "imageRef": p["image_ref"], "application": p["application"]}
                for p in h["providers"]
            ],
            "error": h["error"],
        }
        for h in sorted(document["hosts"], key=lambda h: (names[h["id"]], h["id"]))
    ]
    return {"natsUrl": connection.nats_url, "lattice": connection.lattice, "hosts": hosts}


async def require_lattice(lattice: Lattice, connection: Connection) -> None:
    """No host answered: the lattice exists if its controller answers; else the name is
    most likely wrong (or nothing of it runs), and an empty answer would hide that."""
    import nats.errors  # the lattice is read

    from host_agent.lattice.wadm import WadmClient

    try:
        await WadmClient(lattice.nc, lattice.lattice, timeout=CONTROLLER_WAIT).list()
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError):
        raise InputError(
            "lattice",
            f"no host and no controller of lattice {connection.lattice!r} answers at "
            f"{connection.nats_url}: check the name (the Lattice resource's `lattice` "
            "output) and that its controller runs",
        ) from None


async def plan_placement(
    connection: Connection, manifest: Manifest, settings: ProviderSettings
) -> dict[str, Any]:
    from host_agent.ops.placement import plan_live, render_live_plan  # the planner's calls

    async def read(lattice: Lattice) -> Any:
        view = await lattice.view(fresh=True)
        if not view.hosts:
            await require_lattice(lattice, connection)
        return view

    view = await read_lattice(connection, settings, read)
    live = plan_live(manifest, view)
    names = live.names
    return {
        "natsUrl": connection.nats_url,
        "lattice": connection.lattice,
        "application": manifest.name,
        "placement": placement_by_name(live.plan, names),
        "unplaced": live.plan.unplaced(),
        "moves": {
            component: {names.get(h, h): n for h, n in sorted(counts.items())}
            for component, counts in live.moves.items()
        },
        "problems": live.plan.problems(),
        "hosts": [
            {"id": h.id, "name": names.get(h.id, h.id), "labels": dict(sorted(h.labels.items()))}
            for h in sorted(live.hosts, key=lambda h: (names.get(h.id, h.id), h.id))
        ],
        "table": render_live_plan(live),
    }
