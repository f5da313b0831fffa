"""Where the controller keeps state: JetStream, on disk, as wadm 0.20 lays it out.

``wadm_manifests`` (KV): ``{lattice}`` -> JSON list of application names,
``{lattice}-{app}`` -> ``StoredManifest`` JSON. ``wadm_status`` (stream, 10 messages per
subject): the latest ``Status`` of each application on ``wadm.status.{lattice}.{app}``.
Hosts' state is not stored: it is rebuilt from heartbeats and inventories.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from host_agent.lattice.jetstream import ensure_kv, ensure_replicas, read_json, update_json
from host_agent.lattice.stored_manifest import StoredManifest
from host_agent.lattice.subjects import (
    WADM_MANIFESTS_BUCKET,
    WADM_STATUS_PREFIX,
    WADM_STATUS_STREAM,
    wadm_status_subject,
)
from host_agent.lattice.wadm_types import Status

StoredChange = Callable[[StoredManifest | None], StoredManifest | None]


class ManifestStore:
    def __init__(self, kv: KeyValue, lattice: str) -> None:
        self.kv = kv
        self.lattice = lattice

    @classmethod
    async def open(cls, js: JetStreamContext, lattice: str, replicas: int = 1) -> ManifestStore:
        return cls(await ensure_kv(js, WADM_MANIFESTS_BUCKET, replicas), lattice)

    def key(self, name: str) -> str:
        return f"{self.lattice}-{name}"

    async def names(self) -> list[str]:
        names, _ = await read_json(self.kv, self.lattice)
        return list(names or [])

    async def get(self, name: str) -> StoredManifest | None:
        data, _ = await read_json(self.kv, self.key(name))
        return StoredManifest.from_json(data) if data else None

    async def update(self, name: str, change: StoredChange) -> StoredManifest | None:
        """Read-modify-write one application (``change`` may raise to refuse); the name
        list is kept in step. Returns the stored result (None once deleted)."""
        result: list[StoredManifest | None] = [None]

        def edit(data: dict[str, object] | None) -> dict[str, object] | None:
            stored = change(StoredManifest.from_json(data) if data else None)
            result[0] = stored
            return stored.to_json() if stored else None

        await update_json(self.kv, self.key(name), edit)
        present = result[0] is not None

        def edit_names(names: list[str] | None) -> list[str]:
            kept = [n for n in names or [] if n != name]
            return [*kept, name] if present else kept

        await update_json(self.kv, self.lattice, edit_names)
        return result[0]


class StatusStore:
    def __init__(self, js: JetStreamContext, lattice: str) -> None:
        self.js = js
        self.lattice = lattice

    @classmethod
    async def open(cls, js: JetStreamContext, lattice: str, replicas: int = 1) -> StatusStore:
        config = StreamConfig(
            name=WADM_STATUS_STREAM,
            subjects=[f"{WADM_STATUS_PREFIX}.*.*"],
            max_msgs_per_subject=10,
            storage=StorageType.FILE,
            allow_direct=True,
            num_replicas=replicas,
        )
        try:
            await js.stream_info(WADM_STATUS_STREAM)
        except NotFoundError:
            await js.add_stream(config)
        await ensure_replicas(js, WADM_STATUS_STREAM, replicas)
        return cls(js, lattice)

    async def publish(self, app: str, status: Status) -> None:
        await self.js.publish(wadm_status_subject(self.lattice, app), status.to_json())

    async def latest(self, app: str) -> Status | None:
        try:
            msg = await self.js.get_last_msg(
                WADM_STATUS_STREAM, wadm_status_subject(self.lattice, app)
            )
        except NotFoundError:
            return None
        return Status.model_validate(json.loads(msg.data or b"{}"))
