"""Link-time WIT version checks: the tutorial's draft-vs-final pitfall, for every provider.

A component built against another version of an interface than the provider at the other
end of its link serves is refused when the link is put, with both versions named and the
fix, instead of failing on its first call (a decode error, or a call nobody answers).

What a provider serves comes from builtin.py (`BuiltinProvider.interfaces`: what it
exports to components and what it calls on them, each with its version), by the
provider's reference: every provider on our hosts is one of the built-ins, and
`resolve_provider` maps an upstream image reference to the built-in of the same WIT. Each
interface is judged in the direction it goes:

- a component's import of what the provider exports (keyvalue, blobstore, http-client's
  outgoing-handler, messaging's consumer, postgres): link component -> provider;
- a component's export of what the provider calls (http-server's incoming-handler,
  messaging's handler): link provider -> component.

`wasi:` interfaces are answered by the host's runtime (runtime/wasi_*.py), which speaks to
the provider over wRPC at the provider's version: the component's version must be one the
runtime serves (its version family, e.g. wasi:http 0.2.x; wasi:keyvalue exactly
0.2.0-draft). Other packages are forwarded as they are, so the version must be the
provider's exactly. A `wasi:` import the runtime does not serve is refused whatever the
link's target, since the component cannot run on these hosts at all (`import_problems`
refuses it when it starts).

Who the provider is: one this host runs (its reference is in the host's state), or one
another host runs, known from that host's `provider_started` event and its heartbeats
(host/lattice_providers.py). Not judged:

- a target known neither as a component nor as a provider: it may be a component on
  another host that exports the version the source imports, and refusing would break a
  link that works (e.g. a link put before the provider's host was heard from; the start
  of the component checks its links again);
- a provider whose reference resolves to no built-in (a wasmCloud 1.4.2 host in the same
  lattice running an image we do not know), or that several hosts run from references
  serving different WIT: what it serves cannot be told;
- a link whose component end this host has never been asked to run: the host has not
  read its WIT (link.put goes to any one host; the component's own host judges the link
  again when it starts the component).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from host_agent.lattice.protocol import Link
from host_agent.providers.builtin import BUILTINS, BuiltinProvider
from host_agent.runtime.image import HTTP_HANDLER, ComponentImage
from host_agent.runtime.instance import SERVED
from host_agent.runtime.interface import family_accepts

# Whom a link end is, for the checks: the built-in a provider id runs, or None.
ProviderOf = Callable[[str], BuiltinProvider | None]


def _runtime_family(base: str) -> str | None:
    """The versions of a `wasi:` interface the host's runtime speaks to components
    (a prefix ending in "." is a family); None if it does not."""
    served = SERVED.get(base)
    if served is None and base == HTTP_HANDLER:
        # The handler's request and response are the runtime's wasi:http/types.
        served = SERVED.get("wasi:http/types")
    return served.version_family if served is not None else None


def _shown(family: str) -> str:
    return f"{family}x" if family.endswith(".") else family


@dataclass(frozen=True)
class Offer:
    """One interface a provider serves, at the versions a component may be built against."""

    base: str  # namespace:package/interface
    version: str  # what the provider declares in builtin.py
    family: str  # what the component may use: the version, or a runtime family ("0.2.")

    def accepts(self, version: str) -> bool:
        return family_accepts(self.family, version)

    @property
    def wanted(self) -> str:
        return f"{self.base}@{_shown(self.family)}"


def provider_offers(provider: BuiltinProvider) -> dict[str, Offer]:
    """What ``provider`` serves, by interface. ValueError for an interface without a
    version, or a `wasi:` one the runtime does not speak at the provider's version."""
    offers = {}
    for entry in provider.interfaces:
        name = entry.split(" ", 1)[0]  # an export may say how it travels, in brackets
        base, sep, version = name.partition("@")
        if not sep or not version:
            raise ValueError(f"{provider.name}: {entry!r} has no version; write {base}@<version>")
        family = version
        if base.startswith("wasi:"):
            runtime = _runtime_family(base)
            if runtime is None or not Offer(base, version, runtime).accepts(version):
                raise ValueError(
                    f"{provider.name} serves {name} but the host's runtime speaks "
                    f"{base}@{_shown(runtime) if runtime else 'nothing'} to components"
                )
            family = runtime
        offers[base] = Offer(base, version, family)
    return offers


OFFERS = {name: provider_offers(provider) for name, provider in BUILTINS.items()}


def provider_version_problem(
    component: Mapping[str, str], link: Link, provider: BuiltinProvider, provider_is_target: bool
) -> str | None:
    """Why ``link`` between a component and ``provider`` cannot work, or None.
    ``component``: the component end's imports when it is the link's source (the provider
    is the target), its exports when it is the target (the provider calls it)."""
    offers = OFFERS.get(provider.name) or provider_offers(provider)
    for interface in link.interfaces:
        base = f"{link.wit_namespace}:{link.wit_package}/{interface}"
        offer, version = offers.get(base), component.get(base)
        if offer is None or version is None or offer.accepts(version):
            continue
        if provider_is_target:
            return (
                f"{link.source_id} imports {base}@{version} but {link.target} "
                f"({provider.name}) serves {offer.wanted}; rebuild {link.source_id} against "
                f"{offer.wanted} (its WIT dependencies), or link it to a provider that "
                f"serves {base}@{version}"
            )
        return (
            f"{link.target} exports {base}@{version} but {link.source_id} ({provider.name}) "
            f"calls {offer.wanted}; rebuild {link.target} against {offer.wanted} "
            "(its WIT dependencies)"
        )
    return None


def runtime_version_mismatch(imports: Mapping[str, str], link: Link) -> str | None:
    """A linked `wasi:` import at a version the host's runtime does not serve: whatever
    the target, the component cannot run on these hosts."""
    for interface in link.interfaces:
        base = f"{link.wit_namespace}:{link.wit_package}/{interface}"
        version = imports.get(base)
        served = SERVED.get(base)
        if version is not None and served is not None and not served.accepts(version):
            wanted = f"{base}@{_shown(served.version_family)}"
            return (
                f"{link.source_id} imports {base}@{version} but this lattice's hosts and "
                f"providers serve {wanted}; rebuild {link.source_id} against {wanted}"
            )
    return None


def link_problem(
    source: ComponentImage | None,
    target: ComponentImage | None,
    link: Link,
    provider_of: ProviderOf = lambda _: None,
) -> str | None:
    """Why ``link`` cannot work, judged from what this host knows (None if it can, or if
    it cannot tell: see the module docstring). ``provider_of`` names the built-in a
    provider id runs, here or on another host."""
    source_provider, target_provider = provider_of(link.source_id), provider_of(link.target)
    if source is not None and target_provider is not None:
        problem = provider_version_problem(source.imports, link, target_provider, True)
        if problem is not None:
            return problem
    if target is not None and source_provider is not None:
        problem = provider_version_problem(target.exports, link, source_provider, False)
        if problem is not None:
            return problem
    if source is not None:
        problem = runtime_version_mismatch(source.imports, link)
        if problem is not None:
            return problem
    if target is None:
        return None
    for interface in link.interfaces:
        base = f"{link.wit_namespace}:{link.wit_package}/{interface}"
        exported = target.exports.get(base)
        if exported is None:
            offers = ", ".join(sorted(target.export_name(name) for name in target.exports))
            return (
                f"{link.target} does not export {base} (it exports {offers or 'nothing'}); "
                f"{link_advice(link.source_id, base)}"
            )
        imported = source.imports.get(base) if source is not None else None
        if imported is not None and imported != exported:
            return (
                f"{link.source_id} imports {base}@{imported} but {link.target} exports "
                f"{base}@{exported}; rebuild one of them against the other's version"
            )
    return None


def linked_version_problems(
    imports: Mapping[str, str],
    exports: Mapping[str, str],
    component_id: str,
    links: Iterable[Link],
    provider_of: ProviderOf,
) -> list[str]:
    """The same checks when a component starts after its links were put: each link from
    it to a provider, and each link from a provider to it."""
    problems = []
    for link in links:
        problem = None
        if link.source_id == component_id and (provider := provider_of(link.target)):
            problem = provider_version_problem(imports, link, provider, True)
        elif link.target == component_id and (provider := provider_of(link.source_id)):
            problem = provider_version_problem(exports, link, provider, False)
        if problem is not None:
            problems.append(problem)
    return problems


def _forwarded_versions() -> dict[str, set[str]]:
    """Interfaces outside `wasi:` that providers export, and their versions."""
    served: dict[str, set[str]] = {}
    for provider in BUILTINS.values():
        for export in provider.exports:
            base, sep, version = export.split(" ", 1)[0].partition("@")
            if sep and not base.startswith("wasi:"):
                served.setdefault(base, set()).add(version)
    return served


PROVIDER_SERVED = _forwarded_versions()


def link_advice(source_id: str, base: str) -> str:
    """What to link ``source_id`` to for ``base`` (namespace:package/interface): a provider
    when built-in providers serve it, a component that exports it otherwise."""
    served = PROVIDER_SERVED.get(base)
    if served:
        versions = " or ".join(f"{base}@{v}" for v in sorted(served))
        return f"link {source_id} to a provider that serves {versions}"
    return f"link {source_id} to a component that exports {base}"
