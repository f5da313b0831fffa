"""Semantic checks of a parsed manifest, mirroring wadm 0.20's ``validate_manifest``.

Each check is a small generator of ``ManifestIssue``s. Where we are stricter than wadm the
check says so in its docstring (docs/manifest.md lists them): those are inputs wadm
accepts but then mishandles (a panic, two scalers fighting, a runtime-only error).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from host_agent.model.issues import ManifestIssue, Severity, format_path
from host_agent.model.manifest import Component, CustomTrait, LinkTrait, Manifest
from host_agent.model.naming import (
    LATEST_VERSION,
    MANIFEST_NAME_PATTERN,
    is_valid_label_key,
)
from host_agent.providers.builtin import provider_reference_problem

SECRET_POLICY_TYPE = "policy.secret.wasmcloud.dev/v1alpha1"

# Interfaces wadm knows per (namespace, package); anything else inside these packages is
# probably a typo and gets a warning, as in wadm.
KNOWN_INTERFACES: dict[tuple[str, str], frozenset[str]] = {
    ("wrpc", "blobstore"): frozenset({"blobstore"}),
    ("wrpc", "keyvalue"): frozenset({"atomics", "store"}),
    ("wrpc", "http"): frozenset({"incoming-handler", "outgoing-handler"}),
    ("wasi", "blobstore"): frozenset({"blobstore"}),
    ("wasi", "config"): frozenset({"runtime"}),
    ("wasi", "keyvalue"): frozenset({"atomics", "store", "batch", "watch"}),
    ("wasi", "http"): frozenset({"incoming-handler", "outgoing-handler"}),
    ("wasi", "logging"): frozenset({"logging"}),
    ("wasmcloud", "messaging"): frozenset({"consumer", "handler"}),
}

Path = tuple[str | int, ...]


def _error(path: Path, message: str, fix: str = "") -> ManifestIssue:
    return ManifestIssue(format_path(path), message, fix, Severity.ERROR)


def _warning(path: Path, message: str, fix: str = "") -> ManifestIssue:
    return ManifestIssue(format_path(path), message, fix, Severity.WARNING)


def _component_path(index: int) -> Path:
    return ("spec", "components", index)


def _trait_path(index: int, trait_index: int) -> Path:
    return (*_component_path(index), "traits", trait_index)


def _traits(component: Component) -> list[Any]:
    return list(component.traits or [])


def check_name_and_version(manifest: Manifest) -> Iterator[ManifestIssue]:
    name = manifest.metadata.name
    if not MANIFEST_NAME_PATTERN.match(name):
        yield _error(
            ("metadata", "name"),
            f"application name {name!r} is not allowed (wadm requires ^[-\\w]+$)",
            "use only letters, digits, '_' and '-', e.g. 'my-app'",
        )
    if manifest.version == LATEST_VERSION:
        yield _error(
            ("metadata", "annotations", "version"),
            "version 'latest' is reserved by wadm",
            "use a concrete version such as v0.0.1",
        )


def check_label_keys(manifest: Manifest) -> Iterator[ManifestIssue]:
    maps = {"labels": manifest.metadata.labels or {}, "annotations": manifest.metadata.annotations}
    for field, entries in maps.items():
        for key in entries:
            if not is_valid_label_key(key):
                yield _error(
                    ("metadata", field, key),
                    f"invalid {field[:-1]} key {key!r}",
                    "use [prefix/]name where name is 1-63 characters of letters, digits, "
                    "'-', '_' or '.', starting and ending with a letter or digit",
                )


def check_unique_names_and_ids(manifest: Manifest) -> Iterator[ManifestIssue]:
    """Names must be unique (as in wadm). Stricter: ids wadm derives must not collide either."""
    seen_names: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    for index, component in enumerate(manifest.spec.components):
        if component.name in seen_names:
            yield _error(
                (*_component_path(index), "name"),
                f"duplicate component name {component.name!r} "
                f"(also spec.components[{seen_names[component.name]}])",
                "give every component its own name",
            )
            if component.properties.id is None:
                continue  # its derived id repeats too; one error for one mistake
        seen_names.setdefault(component.name, index)
        component_id = component.component_id(manifest.name)
        if component_id in seen_ids:
            explicit = component.properties.id is not None
            yield _error(
                (*_component_path(index), "properties", "id" if explicit else "name"),
                f"duplicate component id {component_id!r} "
                f"(also spec.components[{seen_ids[component_id]}])",
                "set a distinct `properties.id`"
                if explicit
                else "rename the component: names that differ only in punctuation or case "
                "give the same lattice id",
            )
        seen_ids.setdefault(component_id, index)


def check_component_properties(manifest: Manifest) -> Iterator[ManifestIssue]:
    for index, component in enumerate(manifest.spec.components):
        path = (*_component_path(index), "properties")
        props = component.properties
        if props.image and props.application:
            yield _error(path, "has both 'image' and 'application'", "keep only one of them")
        elif not props.image and not props.application:
            yield _error(
                (*path, "image"),
                "required field is missing",
                "add `image: <file path or OCI reference>` "
                "(or `application:` to use a shared component)",
            )
        elif props.application:
            shared = props.application.name
            if props.config:
                yield _error(
                    (*path, "config"),
                    f"shared component from {shared!r} cannot add config",
                    "remove `config`; the shared application configures it",
                )
            if props.secrets:
                yield _error(
                    (*path, "secrets"),
                    f"shared component from {shared!r} cannot add secrets",
                    "remove `secrets`; the shared application provides them",
                )
            if component.scaler_traits:
                yield _error(
                    (*_component_path(index), "traits"),
                    f"shared component from {shared!r} cannot have a scaler trait",
                    "remove the scaler; the shared application scales it",
                )


def check_provider_references(manifest: Manifest) -> Iterator[ManifestIssue]:
    """Stricter than wadm: a capability's image must be one our hosts run at the WIT we serve.

    wadm would deploy it and every host would answer ``provider_start_failed``; the reason is
    the same sentence, known before anything is deployed.
    """
    for index, component in enumerate(manifest.spec.components):
        image = component.properties.image
        if not component.is_capability or image is None:
            continue
        problem = provider_reference_problem(image)
        if problem is not None:
            yield _error((*_component_path(index), "properties", "image"), problem)


def check_traits(manifest: Manifest) -> Iterator[ManifestIssue]:
    """Stricter than wadm: one scaler per component, distinct spread names, weights not all 0.

    wadm would run two scalers that fight, mix up spreads sharing a name in its
    annotations, and divide by zero when every weight is 0.
    """
    for index, component in enumerate(manifest.spec.components):
        scaler_seen = False
        for trait_index, trait in enumerate(_traits(component)):
            path = _trait_path(index, trait_index)
            if isinstance(trait, CustomTrait):
                yield _warning(
                    (*path, "type"),
                    f"trait type {trait.type!r} is not acted on by wadm",
                    "use spreadscaler, daemonscaler or link, or ignore this warning",
                )
                continue
            if isinstance(trait, LinkTrait):
                continue
            if scaler_seen:
                yield _error(
                    (*path, "type"),
                    "a component can have only one scaler trait",
                    "merge the scalers into one spreadscaler or daemonscaler",
                )
            scaler_seen = True
            spreads = trait.properties.spread
            names: set[str] = set()
            for spread_index, spread in enumerate(spreads):
                if spread.name in names:
                    yield _error(
                        (*path, "properties", "spread", spread_index, "name"),
                        f"duplicate spread name {spread.name!r}",
                        "give every spread of a scaler its own name",
                    )
                names.add(spread.name)
            if spreads and all(spread.effective_weight == 0 for spread in spreads):
                yield _error(
                    (*path, "properties", "spread"),
                    "every spread has weight 0",
                    "give at least one spread a positive weight (the default is 100)",
                )


def check_links(manifest: Manifest) -> Iterator[ManifestIssue]:
    """Targets exist, no duplicate links, known interfaces, no provider-to-provider links."""
    by_name = {component.name: component for component in manifest.spec.components}
    for index, component in enumerate(manifest.spec.components):
        link_keys: set[tuple[str, str, str, str]] = set()
        for trait_index, trait in enumerate(_traits(component)):
            if not isinstance(trait, LinkTrait):
                continue
            link = trait.properties
            path = (*_trait_path(index, trait_index), "properties")
            target = by_name.get(link.target.name)
            if target is None:
                known = ", ".join(sorted(by_name))
                yield _error(
                    (*path, "target"),
                    f"link target {link.target.name!r} names no component in this manifest",
                    f"name one of: {known}",
                )
            elif component.is_capability and target.is_capability:
                yield _error(
                    (*path, "target"),
                    f"capability {component.name!r} links to capability {target.name!r}; "
                    "wadm refuses provider-to-provider links when it applies them",
                    "link a capability to a component, or link from a component",
                )
            known_ifaces = KNOWN_INTERFACES.get((link.namespace, link.package))
            for iface_index, iface in enumerate(link.interfaces):
                key = (link.link_name, link.namespace, link.package, iface)
                if key in link_keys:
                    yield _error(
                        (*path, "interfaces", iface_index),
                        f"duplicate link {link.link_name} "
                        f"({link.namespace}:{link.package}/{iface}) in {component.name!r}",
                        "remove the duplicate or give one link a different `name`",
                    )
                link_keys.add(key)
                if known_ifaces is not None and iface not in known_ifaces:
                    yield _warning(
                        (*path, "interfaces", iface_index),
                        f"unrecognized interface {link.namespace}:{link.package}/{iface}",
                        f"known ones are {', '.join(sorted(known_ifaces))}",
                    )
            for legacy in ("source_config", "target_config"):
                if getattr(link, legacy) is not None:
                    new = legacy.replace("_config", ".config")
                    yield _warning(
                        (*path, legacy), f"`{legacy}` is deprecated", f"move it under `{new}`"
                    )


def check_link_config_names(manifest: Manifest) -> Iterator[ManifestIssue]:
    """Configs that wadm creates from link ``properties`` share one namespace."""
    seen: set[str] = set()
    for index, component in enumerate(manifest.spec.components):
        for trait_index, trait in enumerate(_traits(component)):
            if not isinstance(trait, LinkTrait):
                continue
            link = trait.properties
            for config in [*link.effective_target_config, *link.effective_source_config]:
                if config.properties is None:
                    continue
                if config.name in seen:
                    yield _error(
                        (*_trait_path(index, trait_index), "properties"),
                        f"duplicate link config name {config.name!r}",
                        "give every link config with properties its own name",
                    )
                seen.add(config.name)


def _secret_references(manifest: Manifest) -> Iterator[tuple[Path, Any]]:
    """Every secret reference with its path: a component's, and its links' source and
    target secrets (wadm resolves all three through spec.policies)."""
    for index, component in enumerate(manifest.spec.components):
        for secret_index, secret in enumerate(component.properties.secrets):
            yield (*_component_path(index), "properties", "secrets", secret_index), secret
        for trait_index, trait in enumerate(_traits(component)):
            if getattr(trait, "type", None) != "link":
                continue
            link = trait.properties
            for side in ("source", "target"):
                holder = getattr(link, side, None)
                for secret_index, secret in enumerate(getattr(holder, "secrets", None) or []):
                    path = (*_trait_path(index, trait_index), "properties", side, "secrets")
                    yield (*path, secret_index), secret


def check_secret_policies(manifest: Manifest) -> Iterator[ManifestIssue]:
    policies = {policy.name: policy for policy in manifest.spec.policies or []}
    for path, secret in _secret_references(manifest):
        policy = policies.get(secret.properties.policy)
        name = secret.properties.policy
        if policy is None:
            yield _error(
                (*path, "properties", "policy"),
                f"unknown policy {name!r}",
                "add it under spec.policies or name an existing one",
            )
        elif policy.type != SECRET_POLICY_TYPE:
            yield _error(
                (*path, "properties", "policy"),
                f"policy {name!r} is not a secret policy",
                f"set its type to {SECRET_POLICY_TYPE}",
            )
        elif "backend" not in policy.properties:
            yield _error(
                (*path, "properties", "policy"),
                f"policy {name!r} has no 'backend' property",
                "add `backend: <secrets backend>` to the policy's properties",
            )


def check_unscaled_components(manifest: Manifest) -> Iterator[ManifestIssue]:
    for index, component in enumerate(manifest.spec.components):
        shared = component.properties.application is not None
        if not component.is_capability and not shared and not component.scaler_traits:
            yield _warning(
                (*_component_path(index), "traits"),
                f"component {component.name!r} has no scaler, so wadm will not run it",
                "add a spreadscaler or daemonscaler trait",
            )


CHECKS: tuple[Callable[[Manifest], Iterator[ManifestIssue]], ...] = (
    check_name_and_version,
    check_label_keys,
    check_unique_names_and_ids,
    check_component_properties,
    check_provider_references,
    check_traits,
    check_links,
    check_link_config_names,
    check_secret_policies,
    check_unscaled_components,
)


def validate_manifest(manifest: Manifest) -> list[ManifestIssue]:
    """All semantic findings (errors and warnings) for a manifest that parsed."""
    return [issue for check in CHECKS for issue in check(manifest)]
