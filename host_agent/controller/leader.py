"""One leader per lattice reconciles; every controller serves the API.

Why a leader and not partitioned work: reconciliation of one application touches shared
hosts and lattice-wide links, so two controllers planning the same lattice at once could
place the same instances twice. The API, by contrast, only writes manifests with
compare-and-set, so any controller may answer it (queue group ``wadm_server``).

The lease is a key in a JetStream KV bucket whose entries expire after ``ttl`` seconds:
``create`` takes the lease only if nobody holds it, ``update`` with the last revision
renews it only if we still hold it. A leader that dies stops renewing, its key ages out,
and another controller takes over within ``ttl``. A leader that stops cleanly deletes it.
"""

from __future__ import annotations

import contextlib
import logging

from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from host_agent.lattice.jetstream import ensure_kv
from host_agent.lattice.subjects import WADM_LEADER_BUCKET

log = logging.getLogger("host_agent.controller.leader")


class LeaderLease:
    def __init__(self, kv: KeyValue, lattice: str, holder: str) -> None:
        self.kv = kv
        self.key = lattice
        self.holder = holder
        self.revision: int | None = None

    @classmethod
    async def open(
        cls, js: JetStreamContext, lattice: str, holder: str, ttl: float, replicas: int = 1
    ) -> LeaderLease:
        return cls(await ensure_kv(js, WADM_LEADER_BUCKET, replicas, ttl=ttl), lattice, holder)

    @property
    def held(self) -> bool:
        return self.revision is not None

    async def hold(self) -> bool:
        """Take or renew the lease; True while we are the leader."""
        try:
            if self.revision is None:
                self.revision = await self.kv.create(self.key, self.holder.encode())
                log.info("controller %s is now the leader", self.holder)
            else:
                self.revision = await self.kv.update(
                    self.key, self.holder.encode(), last=self.revision
                )
        except KeyWrongLastSequenceError:
            if self.revision is not None:
                log.warning("controller %s lost the leadership", self.holder)
            self.revision = None
        return self.revision is not None

    async def release(self) -> None:
        if self.revision is not None:
            with contextlib.suppress(KeyWrongLastSequenceError):  # already taken over
                await self.kv.delete(self.key, last=self.revision)
            self.revision = None
