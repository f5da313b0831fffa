"""This host's view of the lattice's links: who calls whom, and what providers must hear.

Pure: `LinkIndex` is fed the full link list (from JetStream KV) and answers lookups
for component imports; `provider_link_changes` says which link definitions to push to
which local provider, like the Rust host does when `COMPONENT_{id}` changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from host_agent.lattice.protocol import Link
from host_agent.secrets.host import SecretValues

LinkKey = tuple[str, str, str, str, str]  # source, target, name, namespace, package


@dataclass(frozen=True)
class ResolvedLink:
    """A link with its named configs merged into values: what providers receive. Its
    secret references' values are kept apart (sealed per provider when pushed)."""

    link: Link
    source_config: dict[str, str]
    target_config: dict[str, str]
    source_secrets: SecretValues = field(default_factory=SecretValues)
    target_secrets: SecretValues = field(default_factory=SecretValues)

    @property
    def key(self) -> LinkKey:
        link = self.link
        return (link.source_id, link.target, link.name, link.wit_namespace, link.wit_package)


class LinkIndex:
    def __init__(self, links: Iterable[Link] = ()) -> None:
        self.links: list[Link] = list(links)

    def target_for(
        self, source_id: str, namespace: str, package: str, interface: str, name: str = "default"
    ) -> str | None:
        """Who serves `namespace:package/interface` for `source_id` over link `name`."""
        for link in self.links:
            if (
                link.source_id == source_id
                and link.name == name
                and link.wit_namespace == namespace
                and link.wit_package == package
                and interface in link.interfaces
            ):
                return link.target
        return None

    def involving(self, entity_id: str) -> list[Link]:
        """Links where `entity_id` is the source or the target."""
        return [link for link in self.links if entity_id in (link.source_id, link.target)]


@dataclass(frozen=True)
class LinkChanges:
    put: list[ResolvedLink]
    delete: list[ResolvedLink]


def provider_link_changes(
    pushed: dict[LinkKey, ResolvedLink], wanted: Iterable[ResolvedLink]
) -> LinkChanges:
    """What to send a provider that was told `pushed` and should now know `wanted`."""
    wanted_by_key = {link.key: link for link in wanted}
    put = [link for key, link in wanted_by_key.items() if pushed.get(key) != link]
    delete = [link for key, link in pushed.items() if key not in wanted_by_key]
    return LinkChanges(put=put, delete=delete)
