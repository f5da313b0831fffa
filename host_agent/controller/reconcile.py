"""What one application needs done on the lattice now (pure: no I/O, no clock).

``reconcile`` compares a deployed manifest (or nothing, for an undeployed one) with the
lattice view, links and configs, and returns the commands that close the gap plus a
status per scaler, as wadm's scalers do. Placement comes from ``plan_placement``, the
same function ``wasmcloud plan`` and ``pulumi preview`` call, so what they promise is
what gets applied. Ownership is by lattice id (unique per deployed application, checked
at deploy), so instances scaled by hand are corrected rather than ignored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from host_agent.controller.view import LatticeView
from host_agent.lattice.wadm_types import ScalerStatus, StatusInfo, StatusType
from host_agent.model.manifest import (
    DAEMONSCALER,
    Component,
    ConfigProperty,
    Manifest,
    SecretProperty,
)
from host_agent.model.naming import config_name
from host_agent.placement.planner import PlacementPlan, WorkloadPlan, plan_placement
from host_agent.secrets.protocol import (
    is_secret_reference,
    reference_values,
    secret_config_name,
)

MANAGED_BY = "wasmcloud.dev/managed-by"
APPSPEC = "wasmcloud.dev/appspec"
SCALER = "wasmcloud.dev/scaler"
SPREAD_NAME = "wasmcloud.dev/spread_name"
MAX_BACKOFF = 60.0


# Commands -------------------------------------------------------------------------
@dataclass(frozen=True)
class PutConfig:
    name: str
    values: dict[str, str]


@dataclass(frozen=True)
class DeleteConfig:
    name: str


@dataclass(frozen=True)
class StartProvider:
    host_id: str
    provider_id: str
    image: str
    annotations: dict[str, str]
    config: list[str]


@dataclass(frozen=True)
class StopProvider:
    host_id: str
    provider_id: str


@dataclass(frozen=True)
class ScaleComponent:
    host_id: str
    component_id: str
    image: str
    count: int
    annotations: dict[str, str]
    config: list[str]


@dataclass(frozen=True)
class PutLink:
    link: dict[str, Any]


@dataclass(frozen=True)
class DeleteLink:
    source_id: str
    namespace: str
    package: str
    name: str


Command = (
    PutConfig | DeleteConfig | StartProvider | StopProvider | ScaleComponent | PutLink | DeleteLink
)


@dataclass(frozen=True)
class Reconciliation:
    commands: tuple[Command, ...]
    scalers: tuple[ScalerStatus, ...]
    plan: PlacementPlan | None = None


@dataclass(frozen=True)
class Owned:
    """What an application may own on the lattice (from every version it ever had)."""

    workload_ids: frozenset[str] = frozenset()
    config_names: frozenset[str] = frozenset()


def owned_by(manifests: Iterable[Manifest]) -> Owned:
    ids: set[str] = set()
    configs: set[str] = set()
    for manifest in manifests:
        ids.update(c.component_id(manifest.name) for c in manifest.spec.components)
        configs.update(desired_configs(manifest))
    return Owned(frozenset(ids), frozenset(configs))


# Desired state, derived from the manifest ------------------------------------------
def _created_configs(
    manifest: Manifest, configs: Iterable[ConfigProperty]
) -> dict[str, dict[str, str]]:
    return {
        config_name(manifest.name, c.name): dict(c.properties)
        for c in configs
        if c.properties is not None
    }


def _config_names(manifest: Manifest, configs: Iterable[ConfigProperty]) -> list[str]:
    """Names a command carries: created configs get wadm's prefixed name."""
    return [
        config_name(manifest.name, c.name) if c.properties is not None else c.name for c in configs
    ]


def _secret_configs(
    manifest: Manifest, secrets: Iterable[SecretProperty]
) -> dict[str, dict[str, str]]:
    """wadm 0.20's SecretScaler entries: ``SECRET_<app>-<name>`` -> the reference (the
    policy's ``backend``, the rest of its properties as the policy). Validation has
    already refused an unknown policy or one without a backend."""
    policies = {p.name: p for p in manifest.spec.policies or []}
    configs = {}
    for secret in secrets:
        source = secret.properties
        properties = dict(policies[source.policy].properties)
        backend = properties.pop("backend")
        configs[secret_config_name(manifest.name, secret.name)] = reference_values(
            secret.name, backend, source.key, source.field, source.version, properties
        )
    return configs


def _secret_names(manifest: Manifest, secrets: Iterable[SecretProperty]) -> list[str]:
    return [secret_config_name(manifest.name, s.name) for s in secrets]


def _link_secrets(link: Any, side: str) -> list[SecretProperty]:
    """A link's ``source.secrets`` or ``target.secrets`` (absent: none)."""
    holder = link.source if side == "source" else link.target
    return list(holder.secrets) if holder is not None else []


def desired_configs(manifest: Manifest) -> dict[str, dict[str, str]]:
    configs: dict[str, dict[str, str]] = {}
    for component in manifest.spec.components:
        configs |= _created_configs(manifest, component.properties.config)
        configs |= _secret_configs(manifest, component.properties.secrets)
        for trait in component.link_traits:
            link = trait.properties
            configs |= _created_configs(manifest, link.effective_source_config)
            configs |= _created_configs(manifest, link.effective_target_config)
            configs |= _secret_configs(manifest, _link_secrets(link, "source"))
            configs |= _secret_configs(manifest, _link_secrets(link, "target"))
    return configs


def workload_config_names(manifest: Manifest, component: Component) -> list[str]:
    """What a scale/start command carries: config names, then secret references."""
    return _config_names(manifest, component.properties.config) + _secret_names(
        manifest, component.properties.secrets
    )


def desired_links(manifest: Manifest) -> list[dict[str, Any]]:
    by_name = {c.name: c for c in manifest.spec.components}
    links = []
    for component in manifest.spec.components:
        for trait in component.link_traits:
            link = trait.properties
            target = by_name.get(link.target.name)
            links.append(
                {
                    "source_id": component.component_id(manifest.name),
                    "target": target.component_id(manifest.name) if target else link.target.name,
                    "name": link.link_name,
                    "wit_namespace": link.namespace,
                    "wit_package": link.package,
                    "interfaces": list(link.interfaces),
                    "source_config": _config_names(manifest, link.effective_source_config)
                    + _secret_names(manifest, _link_secrets(link, "source")),
                    "target_config": _config_names(manifest, link.effective_target_config)
                    + _secret_names(manifest, _link_secrets(link, "target")),
                }
            )
    return links


def link_key(link: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (
        str(link["source_id"]),
        str(link["wit_namespace"]),
        str(link["wit_package"]),
        str(link.get("name") or "default"),
    )


def link_label(link: Mapping[str, Any]) -> str:
    """wadm's LinkScaler name: ``<source> -(<ns>:<pkg>)-> <target>``."""
    return (
        f"{link['source_id']} -({link['wit_namespace']}:{link['wit_package']})-> {link['target']}"
    )


def scaler_id(manifest: Manifest, component: Component, kind: str) -> str:
    """wadm's scaler id: sha256 over kind, app, component name, id, image and configs."""
    parts = [
        kind,
        manifest.name,
        component.name,
        component.component_id(manifest.name),
        component.properties.image or "",
        *workload_config_names(manifest, component),
    ]
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def _same_link(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if a.get("target") != b.get("target"):
        return False
    lists = ("interfaces", "source_config", "target_config")
    return all(sorted(a.get(f) or []) == sorted(b.get(f) or []) for f in lists)


# The reconcile function -----------------------------------------------------------
@dataclass
class _Round:
    commands: list[Command] = field(default_factory=list)
    scalers: list[ScalerStatus] = field(default_factory=list)


def reconcile(
    app: str,
    manifest: Manifest | None,
    owned: Owned,
    view: LatticeView,
    links: Sequence[Mapping[str, Any]],
    configs: Mapping[str, Mapping[str, str] | None],
    now: float,
) -> Reconciliation:
    """Commands that move the lattice towards ``manifest`` (None: remove everything the
    application owns), and each scaler's status. ``configs`` holds the current values of
    the configs this application creates (None where absent)."""
    round_ = _Round()
    wanted_configs = desired_configs(manifest) if manifest else {}
    for name, values in sorted(wanted_configs.items()):
        if configs.get(name) != values:
            round_.commands.append(PutConfig(name, values))
        if manifest:
            kind = StatusType.RECONCILING if configs.get(name) != values else StatusType.DEPLOYED
            scaler = "SecretScaler" if is_secret_reference(name) else "ConfigScaler"
            round_.scalers.append(
                ScalerStatus(id=name, kind=scaler, name=name, status=StatusInfo(type=kind))
            )

    plan = None
    wanted: dict[str, Component] = {}
    if manifest is not None:
        wanted = {
            c.component_id(manifest.name): c
            for c in manifest.spec.components
            if c.properties.image is not None
        }
        plan = plan_placement(manifest, view.inventory_for(manifest))
        for component in manifest.spec.components:
            if component.properties.image is None:
                continue  # a shared component another application runs
            workload = plan.workload(component.name)
            if workload.scaler is None:
                continue
            _reconcile_workload(round_, manifest, component, workload, view, now)

    # Instances of ids this application owns but no longer wants.
    for host in sorted(view.hosts.values(), key=lambda h: h.id):
        for wid in sorted(owned.workload_ids - set(wanted)):
            if wid in host.components:
                round_.commands.append(
                    ScaleComponent(host.id, wid, host.components[wid].image_ref, 0, {}, [])
                )
            if wid in host.providers:
                round_.commands.append(StopProvider(host.id, wid))

    _reconcile_links(round_, manifest, owned, links, view)

    for name in sorted(owned.config_names - set(wanted_configs)):
        if configs.get(name):  # the host answers {} for a config that does not exist
            round_.commands.append(DeleteConfig(name))
    return Reconciliation(tuple(_ordered(round_.commands)), tuple(round_.scalers), plan)


def _ordered(commands: list[Command]) -> list[Command]:
    """Config first, then providers, then components, then links; removals last."""
    rank = {
        PutConfig: 0,
        StartProvider: 1,
        ScaleComponent: 2,
        PutLink: 3,
        DeleteLink: 4,
        StopProvider: 5,
        DeleteConfig: 6,
    }

    def key(command: Command) -> int:
        if isinstance(command, ScaleComponent) and command.count == 0:
            return 5
        return rank[type(command)]

    return sorted(commands, key=key)


def _reconcile_workload(
    round_: _Round,
    manifest: Manifest,
    component: Component,
    workload: WorkloadPlan,
    view: LatticeView,
    now: float,
) -> None:
    wid = component.component_id(manifest.name)
    image = component.properties.image or ""
    kind = "DaemonScaler" if workload.scaler == DAEMONSCALER else "SpreadScaler"
    sid = scaler_id(manifest, component, kind)
    config = workload_config_names(manifest, component)
    spread_of = {a.host_id: a.spread for a in workload.assignments}
    desired = workload.hosts

    def annotations(host_id: str) -> dict[str, str]:
        return {
            MANAGED_BY: "wadm",
            APPSPEC: manifest.name,
            SCALER: sid,
            SPREAD_NAME: spread_of.get(host_id) or "default",
        }

    problems = list(workload.problems)
    pending = 0
    waiting: list[str] = []  # hosts where the provider has not passed a health check yet
    for host in sorted(view.hosts.values(), key=lambda h: h.id):
        want = desired.get(host.id, 0)
        if workload.kind == "capability":
            running = wid in host.providers
            if want and not running:
                failure = view.start_failures.get((host.id, wid))
                if failure:
                    problems.append(f"provider {wid} failed on host {host.id}: {failure.error}")
                if failure is None or now >= failure.retry_at(MAX_BACKOFF):
                    round_.commands.append(
                        StartProvider(host.id, wid, image, annotations(host.id), config)
                    )
                pending += 1
            elif running and not want:
                round_.commands.append(StopProvider(host.id, wid))
                pending += 1
            elif running and not host.providers[wid].healthy:
                waiting.append(host.id)
        else:
            seen = host.components.get(wid)
            have = seen.count if seen else 0
            if seen is not None and seen.image_ref != image:
                # Another image under this id: a 1.4.2 host keeps a running component's
                # image when a scale names a new one (no allow_update, which wadm 0.20 never
                # sends). wadm moves it as its new scaler and the old one's cleanup do: the
                # old image is scaled to 0, then the next round starts the new one.
                if not view.awaiting_scale(host.id, wid, seen.image_ref, 0, now):
                    round_.commands.append(ScaleComponent(host.id, wid, seen.image_ref, 0, {}, []))
                pending += 1
            elif have != want:
                if not view.awaiting_scale(host.id, wid, image, want, now):
                    round_.commands.append(
                        ScaleComponent(
                            host.id, wid, image, want, annotations(host.id) if want else {}, config
                        )
                    )
                pending += 1
                error = view.scale_failures.get((host.id, wid))
                if error:
                    problems.append(f"component {wid} failed to scale on host {host.id}: {error}")

    if problems:
        status = StatusInfo(type=StatusType.FAILED, message="; ".join(problems))
    elif pending:
        status = StatusInfo(
            type=StatusType.RECONCILING, message=f"Scaling {wid} on {pending} host(s)"
        )
    elif waiting:
        status = StatusInfo(
            type=StatusType.RECONCILING,
            message=f"Waiting for {wid} to pass a health check on {len(waiting)} host(s)",
        )
    else:
        status = StatusInfo(type=StatusType.DEPLOYED)
    round_.scalers.append(ScalerStatus(id=sid, kind=kind, name=wid, status=status))


def _reconcile_links(
    round_: _Round,
    manifest: Manifest | None,
    owned: Owned,
    links: Sequence[Mapping[str, Any]],
    view: LatticeView,
) -> None:
    current = {link_key(link): link for link in links}
    wanted = {link_key(link): link for link in desired_links(manifest)} if manifest else {}
    for key, link in wanted.items():
        existing = current.get(key)
        in_place = existing is not None and _same_link(existing, link)
        if not in_place:
            round_.commands.append(PutLink(link))
        kind = StatusType.DEPLOYED if in_place else StatusType.RECONCILING
        status = StatusInfo(type=kind)
        refused = None if in_place else view.link_failures.get(key)
        if refused is not None:
            status = StatusInfo(
                type=StatusType.FAILED, message=f"link {link_label(link)} failed: {refused}"
            )
        round_.scalers.append(
            ScalerStatus(
                id=link_label(link), kind="LinkScaler", name=link_label(link), status=status
            )
        )
    for key in sorted(current):
        if key[0] in owned.workload_ids and key not in wanted:
            round_.commands.append(DeleteLink(*key))
