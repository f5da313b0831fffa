"""Lattice-wide links and named config in JetStream KV, laid out as the Rust host does.

``LATTICEDATA_{lattice}``: ``COMPONENT_{source_id}`` -> ``{"url": ..., "links": [Link...]}``
``CONFIGDATA_{lattice}``: ``<config name>`` -> JSON object of strings.
Every host reads the same buckets, so every host sees the same links and config.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from host_agent.lattice.jetstream import (
    MISSING_KEY,
    follow,
    kv_keys,
    open_kv,
    update_json,
)
from host_agent.lattice.protocol import DeleteLinkRequest, Link
from host_agent.lattice.strict import BadRequest, StrictModel, parse_json
from host_agent.lattice.subjects import component_spec_key, config_bucket, links_bucket

log = logging.getLogger(__name__)


class LinkConflict(ValueError):
    pass


class UnreadableLinkEntry(LinkConflict):
    """A ``COMPONENT_{id}`` entry that is not a component specification: a link on that
    source cannot be stored (as with the 1.4.2 host) until the entry is repaired."""


class ComponentSpecification(StrictModel):
    """The value of ``COMPONENT_{id}``, as the 1.4.2 host (de)serializes it: both fields
    are required there (serde has no default on them)."""

    url: str
    links: list[Link]


def parse_spec(key: str, value: bytes) -> ComponentSpecification:
    """Strictly, naming the key: hosts of other versions write this bucket too."""
    return parse_json(ComponentSpecification, value, f"link entry {key}")


def _links_or_nothing(key: str, value: bytes) -> list[dict[str, Any]]:
    """The links of one entry; an unreadable entry routes nothing (its links cannot be
    trusted) and is reported, instead of stopping the links of every other component."""
    try:
        spec = parse_spec(key, value)
    except BadRequest as error:
        log.warning("%s; its links are ignored until it is rewritten (wash link put)", error)
        return []
    return [link.model_dump() for link in spec.links]


class LatticeStore:
    def __init__(self, links: KeyValue, configs: KeyValue) -> None:
        self._links = links
        self._configs = configs

    @classmethod
    async def open(cls, js: JetStreamContext, lattice: str) -> LatticeStore:
        return cls(
            await open_kv(js, links_bucket(lattice)), await open_kv(js, config_bucket(lattice))
        )

    # config -----------------------------------------------------------------------
    async def put_config(self, name: str, values: dict[str, str]) -> None:
        await self._configs.put(name, json.dumps(values).encode())

    async def get_config(self, name: str) -> dict[str, str] | None:
        try:
            entry = await self._configs.get(name)
        except MISSING_KEY:
            return None
        data: dict[str, str] = json.loads(entry.value or b"{}")
        return data

    async def delete_config(self, name: str) -> None:
        await self._configs.purge(name)

    async def watch_configs(self) -> AsyncIterator[str]:
        """The name of each config now (one per existing config, as the watch starts) and
        on every put or delete after, through one watcher on the bucket. Only the name:
        readers resolve the values anew (``get_config``), so they see the latest."""
        async for entry in follow(self._configs):
            yield entry.key

    # links ------------------------------------------------------------------------
    async def get_links(self) -> list[dict[str, Any]]:
        keys = await kv_keys(self._links)
        links: list[dict[str, Any]] = []
        # KV filters are subject wildcards (whole tokens only), so match the prefix here.
        for key in sorted(k for k in keys if k.startswith(component_spec_key(""))):
            try:
                entry = await self._links.get(key)
            except MISSING_KEY:
                continue  # deleted between the listing and the read
            if entry.value:
                links.extend(_links_or_nothing(key, entry.value))
        return links

    async def links_from(self, source_id: str) -> list[Link]:
        """The links stored now from ``source_id``, whichever host put them."""
        key = component_spec_key(source_id)
        try:
            entry = await self._links.get(key)
        except MISSING_KEY:
            return []
        return [Link.model_validate(link) for link in _links_or_nothing(key, entry.value or b"")]

    async def put_link(self, link: Link) -> None:
        """Add or replace ``link``; refuse one that would re-point an existing link."""

        def change(links: list[dict[str, Any]]) -> list[dict[str, Any]]:
            kept: list[dict[str, Any]] = []
            for existing in links:
                if Link.model_validate(existing).key() == link.key():
                    if existing["target"] != link.target:
                        raise LinkConflict(
                            "link already exists with different target, consider deleting "
                            "the existing link or using a different link name"
                        )
                    continue
                kept.append(existing)
            return [*kept, link.model_dump()]

        await self._update_links(link.source_id, change)

    async def delete_link(self, request: DeleteLinkRequest) -> dict[str, Any] | None:
        removed: list[dict[str, Any]] = []
        key = (request.source_id, request.wit_namespace, request.wit_package, request.name)

        def change(links: list[dict[str, Any]]) -> list[dict[str, Any]]:
            removed.clear()
            kept: list[dict[str, Any]] = []
            for existing in links:
                (removed if Link.model_validate(existing).key() == key else kept).append(existing)
            return kept

        await self._update_links(request.source_id, change)
        return removed[0] if removed else None

    async def watch_links(self) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
        """(source id, its links) now and on every change; deleted sources yield []."""
        prefix = component_spec_key("")
        async for entry in follow(self._links):
            if not entry.key.startswith(prefix):
                continue
            links: list[dict[str, Any]] = []
            if entry.operation is None and entry.value:
                links = _links_or_nothing(entry.key, entry.value)
            yield entry.key[len(prefix) :], links

    # claims (CLAIMS_{subject}, as the Rust host keeps them) --------------------------
    async def put_claims(self, subject: str, value: bytes) -> None:
        await self._links.put(f"CLAIMS_{subject}", value)

    async def get_claims(self) -> list[bytes]:
        keys = await kv_keys(self._links)
        values: list[bytes] = []
        for key in sorted(k for k in keys if k.startswith("CLAIMS_")):
            try:
                entry = await self._links.get(key)
            except MISSING_KEY:
                continue  # deleted between the listing and the read
            values.append(entry.value or b"")
        return values

    async def _update_links(self, source_id: str, change: Any) -> None:
        key = component_spec_key(source_id)

        def edit(current: Any) -> dict[str, Any]:
            if current is None:
                spec = ComponentSpecification(url="", links=[])
            else:
                try:
                    spec = parse_spec(key, json.dumps(current).encode())
                except BadRequest as error:
                    raise UnreadableLinkEntry(
                        f"{error}; links from {source_id} cannot be changed until it is "
                        "repaired (purge the key from the lattice's LATTICEDATA bucket, "
                        "then put the links again)"
                    ) from None
            links = change([link.model_dump() for link in spec.links])
            return {"url": spec.url, "links": links}

        try:
            await update_json(self._links, key, edit)
        except json.JSONDecodeError:
            raise UnreadableLinkEntry(
                f"invalid link entry {key}: not JSON; links from {source_id} cannot be "
                "changed until it is repaired (purge the key from the lattice's LATTICEDATA "
                "bucket, then put the links again)"
            ) from None
