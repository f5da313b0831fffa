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
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import (
    BucketNotFoundError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
)
from nats.js.kv import KeyValue

from host_agent.lattice.protocol import DeleteLinkRequest, Link
from host_agent.lattice.subjects import component_spec_key, config_bucket, links_bucket

_UPDATE_ATTEMPTS = 8
_MISSING = (KeyNotFoundError, KeyDeletedError)


class LinkConflict(ValueError):
    pass


async def _bucket(js: JetStreamContext, name: str) -> KeyValue:
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        config = KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE)
        return await js.create_key_value(config)


class LatticeStore:
    def __init__(self, links: KeyValue, configs: KeyValue) -> None:
        self._links = links
        self._configs = configs

    @classmethod
    async def open(cls, js: JetStreamContext, lattice: str) -> LatticeStore:
        return cls(
            await _bucket(js, links_bucket(lattice)), await _bucket(js, config_bucket(lattice))
        )

    # config -----------------------------------------------------------------------
    async def put_config(self, name: str, values: dict[str, str]) -> None:
        await self._configs.put(name, json.dumps(values).encode())

    async def get_config(self, name: str) -> dict[str, str] | None:
        try:
            entry = await self._configs.get(name)
        except _MISSING:
            return None
        data: dict[str, str] = json.loads(entry.value or b"{}")
        return data

    async def delete_config(self, name: str) -> None:
        await self._configs.purge(name)

    # links ------------------------------------------------------------------------
    async def get_links(self) -> list[dict[str, Any]]:
        try:
            keys = await self._links.keys()
        except NoKeysError:
            return []
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
        watcher = await self._links.watchall(include_history=False)
        async for entry in watcher:
            if entry is None or not entry.key.startswith(prefix):
                continue  # None marks the end of the initial values
            links: list[dict[str, Any]] = []
            if entry.operation is None and entry.value:
                links = json.loads(entry.value).get("links", [])
            yield entry.key[len(prefix) :], links

    async def _read_spec(self, key: str) -> tuple[dict[str, Any], int | None]:
        try:
            entry = await self._links.get(key)
        except _MISSING:
            return {"url": "", "links": []}, None
        spec: dict[str, Any] = json.loads(entry.value or b"{}")
        return spec, entry.revision

    async def _update_links(self, source_id: str, change: Any) -> None:
        # Optimistic concurrency: another host may write the same key at the same time.
        key = component_spec_key(source_id)
        for _ in range(_UPDATE_ATTEMPTS):
            spec, revision = await self._read_spec(key)
            spec["links"] = change(list(spec.get("links", [])))
            spec.setdefault("url", "")
            payload = json.dumps(spec).encode()
            try:
                if revision is None:
                    await self._links.create(key, payload)
                else:
                    await self._links.update(key, payload, last=revision)
                return
            except KeyWrongLastSequenceError:
                continue
        raise RuntimeError(f"could not update links of {source_id}: too many concurrent writers")
