"""Lattice-wide links and named config in JetStream KV, laid out as the Rust host does.

``LATTICEDATA_{lattice}``: ``COMPONENT_{source_id}`` -> ``{"url": ..., "links": [Link...]}``
``CONFIGDATA_{lattice}``: ``<config name>`` -> JSON object of strings.
Every host reads the same buckets, so every host sees the same links and config.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from host_agent.lattice.jetstream import (
    MISSING_KEY,
    follow,
    kv_keys,
    open_kv,
    read_json,
    update_json,
)
from host_agent.lattice.protocol import DeleteLinkRequest, Link
from host_agent.lattice.subjects import component_spec_key, config_bucket, links_bucket


class LinkConflict(ValueError):
    pass


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

    # links ------------------------------------------------------------------------
    async def get_links(self) -> list[dict[str, Any]]:
        keys = await kv_keys(self._links)
        links: list[dict[str, Any]] = []
        # KV filters are subject wildcards (whole tokens only), so match the prefix here.
        for key in sorted(k for k in keys if k.startswith(component_spec_key(""))):
            spec, _ = await self._read_spec(key)
            links.extend(spec.get("links", []))
        return links

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
                links = json.loads(entry.value).get("links", [])
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

    async def _read_spec(self, key: str) -> tuple[dict[str, Any], int | None]:
        spec, revision = await read_json(self._links, key)
        return spec or {"url": "", "links": []}, revision

    async def _update_links(self, source_id: str, change: Any) -> None:
        def edit(spec: dict[str, Any] | None) -> dict[str, Any]:
            spec = dict(spec or {})
            spec["links"] = change(list(spec.get("links", [])))
            spec.setdefault("url", "")
            return spec

        await update_json(self._links, component_spec_key(source_id), edit)
