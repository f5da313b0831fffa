"""The WIT versions the built-in providers serve, for the interfaces the host forwards.

A component's import outside `wasi:` (e.g. wasmcloud:postgres/query) is not served by the
host: its calls are forwarded to whatever the link targets. When that target is a
provider this host runs, the built-in providers serve exactly the versions builtin.py
lists; a component built against another version of the package is refused at link time
with both versions named (the draft-vs-final pitfall), instead of failing on its first
call with a decode error. A component that starts after its links were put is checked
against them when it starts. A target this host knows neither as a component nor as a
provider is not judged: it may be a component on another host that exports the version
the source imports, and refusing it would break a link that works.
"""

from __future__ import annotations

from collections.abc import Container, Iterable

from host_agent.lattice.protocol import Link
from host_agent.providers.builtin import BUILTINS


def _forwarded_versions() -> dict[str, set[str]]:
    served: dict[str, set[str]] = {}
    for provider in BUILTINS.values():
        for export in provider.exports:
            name = export.split(" ", 1)[0]  # an export may say how it travels, in brackets
            base, sep, version = name.partition("@")
            if sep and not base.startswith("wasi:"):
                served.setdefault(base, set()).add(version)
    return served


PROVIDER_SERVED = _forwarded_versions()


def provider_version_mismatch(imports: dict[str, str], link: Link) -> str | None:
    """Why a link from a component with these imports to a provider cannot work, or None."""
    for interface in link.interfaces:
        base = f"{link.wit_namespace}:{link.wit_package}/{interface}"
        version = imports.get(base)
        served = PROVIDER_SERVED.get(base)
        if version is not None and served and version not in served:
            wanted = " or ".join(f"{base}@{v}" for v in sorted(served))
            return (
                f"{link.source_id} imports {base}@{version} but providers on this lattice "
                f"serve {wanted}; rebuild the component against {wanted}"
            )
    return None


def linked_version_problems(
    imports: dict[str, str], source_id: str, links: Iterable[Link], providers: Container[str]
) -> list[str]:
    """The same check when a component starts after its links were put: each link from it
    to a provider this host runs (``providers``, by id)."""
    problems = []
    for link in links:
        if link.source_id == source_id and link.target in providers:
            problem = provider_version_mismatch(imports, link)
            if problem is not None:
                problems.append(problem)
    return problems


def link_advice(source_id: str, base: str) -> str:
    """What to link ``source_id`` to for ``base`` (namespace:package/interface): a provider
    when built-in providers serve it, a component that exports it otherwise."""
    served = PROVIDER_SERVED.get(base)
    if served:
        versions = " or ".join(f"{base}@{v}" for v in sorted(served))
        return f"link {source_id} to a provider that serves {versions}"
    return f"link {source_id} to a component that exports {base}"
