"""The provider's functions in Python: reads a program makes before it creates anything.

``get_lattice`` / ``get_lattice_output``: the hosts of a running lattice, their labels and
what runs on each. ``plan_placement`` / ``plan_placement_output``: a wadm manifest planned
on the running lattice by the controller's planner (what an Application's preview would
show), deploying nothing. The plain forms take plain values and block until the answer
is in; the ``_output`` forms take Inputs (a Lattice's outputs, say) and return an Output,
so they wait for those resources first (give ``opts=pulumi.InvokeOutputOptions(
depends_on=[...])`` to wait for Hosts too). Their arguments and results are the schema's
(pulumi_wasmcloud/schema/functions.py), camelCase on the wire, snake_case here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi.runtime

GET_LATTICE = "wasmcloud:index:getLattice"
PLAN_PLACEMENT = "wasmcloud:index:planPlacement"


@pulumi.output_type
class HostComponent:
    """A Wasm component a host runs."""

    def __init__(
        self,
        *,
        id: str,
        image_ref: str,
        max_instances: int,
        application: str | None = None,
    ) -> None:
        pulumi.set(self, "id", id)
        pulumi.set(self, "image_ref", image_ref)
        pulumi.set(self, "max_instances", max_instances)
        pulumi.set(self, "application", application)

    @property
    @pulumi.getter
    def id(self) -> str:
        """Its id in the lattice (``<application>-<name>``)."""
        return pulumi.get(self, "id")  # type: ignore[no-any-return]

    @property
    @pulumi.getter(name="imageRef")
    def image_ref(self) -> str:
        """The image it was started from."""
        return pulumi.get(self, "image_ref")  # type: ignore[no-any-return]

    @property
    @pulumi.getter(name="maxInstances")
    def max_instances(self) -> int:
        """How many instances it may run at once."""
        return pulumi.get(self, "max_instances")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def application(self) -> str | None:
        """The wadm application that placed it; None when it was started by hand."""
        return pulumi.get(self, "application")  # type: ignore[no-any-return]


@pulumi.output_type
class HostProvider:
    """A capability provider a host runs."""

    def __init__(self, *, id: str, image_ref: str, application: str | None = None) -> None:
        pulumi.set(self, "id", id)
        pulumi.set(self, "image_ref", image_ref)
        pulumi.set(self, "application", application)

    @property
    @pulumi.getter
    def id(self) -> str:
        """Its id in the lattice."""
        return pulumi.get(self, "id")  # type: ignore[no-any-return]

    @property
    @pulumi.getter(name="imageRef")
    def image_ref(self) -> str:
        """The image (or ``builtin:...``) it was started from."""
        return pulumi.get(self, "image_ref")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def application(self) -> str | None:
        """The wadm application that placed it; None when it was started by hand."""
        return pulumi.get(self, "application")  # type: ignore[no-any-return]


@pulumi.output_type
class LatticeHost:
    """One host of the lattice, as its ping and inventory replies describe it."""

    def __init__(
        self,
        *,
        id: str,
        name: str,
        friendly_name: str,
        labels: Mapping[str, str],
        version: str,
        uptime_seconds: int,
        components: Sequence[HostComponent],
        providers: Sequence[HostProvider],
        error: str | None = None,
    ) -> None:
        pulumi.set(self, "id", id)
        pulumi.set(self, "name", name)
        pulumi.set(self, "friendly_name", friendly_name)
        pulumi.set(self, "labels", labels)
        pulumi.set(self, "version", version)
        pulumi.set(self, "uptime_seconds", uptime_seconds)
        pulumi.set(self, "components", components)
        pulumi.set(self, "providers", providers)
        pulumi.set(self, "error", error)

    @property
    @pulumi.getter
    def id(self) -> str:
        """The host's public key (its id in the lattice)."""
        return pulumi.get(self, "id")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def name(self) -> str:
        """What previews call it: its friendly name, or its id where names repeat."""
        return pulumi.get(self, "name")  # type: ignore[no-any-return]

    @property
    @pulumi.getter(name="friendlyName")
    def friendly_name(self) -> str:
        """The friendly name the host gave itself."""
        return pulumi.get(self, "friendly_name")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def labels(self) -> Mapping[str, str]:
        """The host's labels."""
        return pulumi.get(self, "labels")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def version(self) -> str:
        """The host's version."""
        return pulumi.get(self, "version")  # type: ignore[no-any-return]

    @property
    @pulumi.getter(name="uptimeSeconds")
    def uptime_seconds(self) -> int:
        """Seconds since the host started."""
        return pulumi.get(self, "uptime_seconds")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def components(self) -> Sequence[HostComponent]:
        """The components it runs, by id."""
        return pulumi.get(self, "components")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def providers(self) -> Sequence[HostProvider]:
        """The capability providers it runs, by id."""
        return pulumi.get(self, "providers")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def error(self) -> str | None:
        """Why its inventory could not be read; None when it was read."""
        return pulumi.get(self, "error")  # type: ignore[no-any-return]


@pulumi.output_type
class PlannedHost:
    """A host the planner considered."""

    def __init__(self, *, id: str, name: str, labels: Mapping[str, str]) -> None:
        pulumi.set(self, "id", id)
        pulumi.set(self, "name", name)
        pulumi.set(self, "labels", labels)

    @property
    @pulumi.getter
    def id(self) -> str:
        """The host's id."""
        return pulumi.get(self, "id")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def name(self) -> str:
        """What ``placement`` calls it."""
        return pulumi.get(self, "name")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def labels(self) -> Mapping[str, str]:
        """The labels spreads are matched against."""
        return pulumi.get(self, "labels")  # type: ignore[no-any-return]


@pulumi.output_type
class GetLatticeResult:
    """What ``get_lattice`` read."""

    def __init__(self, *, nats_url: str, lattice: str, hosts: Sequence[LatticeHost]) -> None:
        pulumi.set(self, "nats_url", nats_url)
        pulumi.set(self, "lattice", lattice)
        pulumi.set(self, "hosts", hosts)

    @property
    @pulumi.getter(name="natsUrl")
    def nats_url(self) -> str:
        """The NATS URL that was read."""
        return pulumi.get(self, "nats_url")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def lattice(self) -> str:
        """The lattice's name."""
        return pulumi.get(self, "lattice")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def hosts(self) -> Sequence[LatticeHost]:
        """The hosts, by name."""
        return pulumi.get(self, "hosts")  # type: ignore[no-any-return]


@pulumi.output_type
class PlanPlacementResult:
    """What ``plan_placement`` planned."""

    def __init__(
        self,
        *,
        nats_url: str,
        lattice: str,
        application: str,
        placement: Mapping[str, Mapping[str, int]],
        unplaced: Mapping[str, int],
        moves: Mapping[str, Mapping[str, int]],
        problems: Sequence[str],
        hosts: Sequence[PlannedHost],
        table: str,
    ) -> None:
        pulumi.set(self, "nats_url", nats_url)
        pulumi.set(self, "lattice", lattice)
        pulumi.set(self, "application", application)
        pulumi.set(self, "placement", placement)
        pulumi.set(self, "unplaced", unplaced)
        pulumi.set(self, "moves", moves)
        pulumi.set(self, "problems", problems)
        pulumi.set(self, "hosts", hosts)
        pulumi.set(self, "table", table)

    @property
    @pulumi.getter(name="natsUrl")
    def nats_url(self) -> str:
        """The NATS URL that was read."""
        return pulumi.get(self, "nats_url")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def lattice(self) -> str:
        """The lattice's name."""
        return pulumi.get(self, "lattice")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def application(self) -> str:
        """The manifest's name."""
        return pulumi.get(self, "application")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def placement(self) -> Mapping[str, Mapping[str, int]]:
        """Component name -> host name -> instances."""
        return pulumi.get(self, "placement")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def unplaced(self) -> Mapping[str, int]:
        """Component name -> instances no host can take (only those with any)."""
        return pulumi.get(self, "unplaced")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def moves(self) -> Mapping[str, Mapping[str, int]]:
        """Component name -> host name -> change in instances from what runs now."""
        return pulumi.get(self, "moves")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def problems(self) -> Sequence[str]:
        """Why instances are unplaced, one sentence each."""
        return pulumi.get(self, "problems")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def hosts(self) -> Sequence[PlannedHost]:
        """The hosts planned on, by name."""
        return pulumi.get(self, "hosts")  # type: ignore[no-any-return]

    @property
    @pulumi.getter
    def table(self) -> str:
        """The plan as the table ``wasmcloud placement`` prints."""
        return pulumi.get(self, "table")  # type: ignore[no-any-return]


def _connection(
    nats_url: Any, lattice: Any, credentials: Any, ca_cert: Any, client_tls: Any
) -> dict[str, Any]:
    """The connection arguments on the wire; the secret ones as Pulumi secrets, so a
    preview or the state never shows them."""
    return {
        "natsUrl": nats_url,
        "lattice": lattice,
        "credentials": pulumi.Output.secret(credentials) if credentials is not None else None,
        "caCert": ca_cert,
        "clientTls": pulumi.Output.secret(client_tls) if client_tls is not None else None,
    }


def get_lattice(
    nats_url: str | None = None,
    lattice: str | None = None,
    credentials: str | None = None,
    ca_cert: str | None = None,
    client_tls: Mapping[str, str] | None = None,
    opts: pulumi.InvokeOptions | None = None,
) -> GetLatticeResult:
    """Read a running lattice: every host that answers, its labels, and the components
    and providers it runs.

    :param nats_url: the lattice's NATS URL (a Lattice's ``nats_url``); default: the
        provider's ``wasmcloud:natsUrl``.
    :param lattice: the lattice's name; default: ``wasmcloud:lattice``, else ``default``.
    :param credentials: the text of a NATS .creds file (a secured Lattice's
        ``credentials``); default: ``wasmcloud:credentials``.
    :param ca_cert: the CA of a NATS that speaks TLS (a local Lattice's ``ca_cert``).
    :param client_tls: {caPem, certPem, keyPem} for a NATS that asks for a client
        certificate (a Lattice on machines' ``client_tls``).

    Fails naming ``lattice`` when no host and no controller of it answers, ``natsUrl``
    or ``credentials`` when NATS cannot be reached or refuses them.
    """
    args = _connection(nats_url, lattice, credentials, ca_cert, client_tls)
    result: GetLatticeResult = pulumi.runtime.invoke(
        GET_LATTICE, args, opts=opts, typ=GetLatticeResult
    ).value
    return result


def get_lattice_output(
    nats_url: pulumi.Input[str] | None = None,
    lattice: pulumi.Input[str] | None = None,
    credentials: pulumi.Input[str] | None = None,
    ca_cert: pulumi.Input[str] | None = None,
    client_tls: pulumi.Input[Mapping[str, str]] | None = None,
    opts: pulumi.InvokeOptions | pulumi.InvokeOutputOptions | None = None,
) -> pulumi.Output[GetLatticeResult]:
    """``get_lattice`` on Inputs (a Lattice's outputs), as an Output: runs once they are
    known (and, with ``InvokeOutputOptions(depends_on=...)``, those resources exist)."""
    args = _connection(nats_url, lattice, credentials, ca_cert, client_tls)
    return pulumi.runtime.invoke_output(GET_LATTICE, args, opts=opts, typ=GetLatticeResult)


def plan_placement(
    manifest: Mapping[str, Any] | None = None,
    manifest_path: str | None = None,
    nats_url: str | None = None,
    lattice: str | None = None,
    credentials: str | None = None,
    ca_cert: str | None = None,
    client_tls: Mapping[str, str] | None = None,
    opts: pulumi.InvokeOptions | None = None,
) -> PlanPlacementResult:
    """Plan a wadm manifest on the running lattice with the controller's planner,
    deploying nothing: ``placement`` (component -> host name -> instances, as an
    Application's preview shows it), ``unplaced``, ``problems``, ``moves`` (the change
    from what runs now) and ``table`` (as ``wasmcloud placement`` prints it).

    :param manifest: the wadm manifest as a dict (e.g. ``yaml.safe_load`` of a file, or
        ``wasmcloud.app.build_manifest(...)``); or give ``manifest_path``.
    :param manifest_path: a wadm manifest file (YAML or JSON) instead.
    :param nats_url: see ``get_lattice`` (as are ``lattice``, ``credentials``,
        ``ca_cert`` and ``client_tls``).

    Manifest errors fail naming the path (``manifest.spec.components[0]...``).
    """
    args = {
        "manifest": manifest,
        "manifestPath": manifest_path,
        **_connection(nats_url, lattice, credentials, ca_cert, client_tls),
    }
    result: PlanPlacementResult = pulumi.runtime.invoke(
        PLAN_PLACEMENT, args, opts=opts, typ=PlanPlacementResult
    ).value
    return result


def plan_placement_output(
    manifest: pulumi.Input[Mapping[str, Any]] | None = None,
    manifest_path: pulumi.Input[str] | None = None,
    nats_url: pulumi.Input[str] | None = None,
    lattice: pulumi.Input[str] | None = None,
    credentials: pulumi.Input[str] | None = None,
    ca_cert: pulumi.Input[str] | None = None,
    client_tls: pulumi.Input[Mapping[str, str]] | None = None,
    opts: pulumi.InvokeOptions | pulumi.InvokeOutputOptions | None = None,
) -> pulumi.Output[PlanPlacementResult]:
    """``plan_placement`` on Inputs, as an Output (see ``get_lattice_output``)."""
    args = {
        "manifest": manifest,
        "manifestPath": manifest_path,
        **_connection(nats_url, lattice, credentials, ca_cert, client_tls),
    }
    return pulumi.runtime.invoke_output(PLAN_PLACEMENT, args, opts=opts, typ=PlanPlacementResult)
