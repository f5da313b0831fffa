"""What a fault test waits for on the control plane: the wadm API and the hosts'
inventories, polled until true (the state itself, never a fixed sleep)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient

from host_agent.lattice.client import CtlClient
from host_agent.lattice.subjects import (
    WADM_STATUS_STREAM,
    provider_rpc_subject,
    wadm_status_subject,
)
from host_agent.lattice.wadm import WadmClient
from host_agent.lattice.wadm_types import Status, StatusType
from tests.integration.test_controller import running, wait_status

# The counter app (tests/lattice.py counter_manifest): workload id -> instances.
COUNTER_WORKLOADS = {"counter-counter": 3, "counter-httpserver": 1, "counter-kvredis": 1}


async def placed(
    ctl: CtlClient,
    expect: dict[str, int],
    hosts: int,
    avoid: frozenset[str] = frozenset(),
    timeout: float = 60.0,
) -> float:
    """The moment every workload in ``expect`` runs its instances on the live hosts, none
    on ``avoid`` (a dead host's id) and none twice."""
    deadline = time.monotonic() + timeout
    seen: dict[str, dict[str, int]] = {}
    while time.monotonic() < deadline:
        try:
            seen = await running(ctl, hosts)
        except (TimeoutError, nats.errors.Error):
            seen = {}  # NATS or a host still coming back
        totals = {w: sum(h.values()) for w, h in seen.items() if w in expect}
        if totals == expect and not any(avoid & set(seen[w]) for w in expect):
            return time.monotonic()
        await asyncio.sleep(0.1)
    raise AssertionError(f"workloads never placed as {expect} (avoiding {set(avoid)}): {seen}")


async def providers_serving(
    nc: NatsClient, providers: dict[str, dict[str, int]], timeout: float = 30.0
) -> float:
    """The moment every instance of ``providers`` (provider id -> {host id: 1}, as
    ``running`` gives) answers a health check: its own NATS connection is back with its
    subscriptions. A host answering pings says nothing of the provider processes it runs,
    which reconnect on their own after a NATS restart."""
    deadline = time.monotonic() + timeout
    for provider_id, hosts in providers.items():
        for host_id in hosts:
            subject = provider_rpc_subject("default", provider_id, "health")
            body = json.dumps({"host_id": host_id}).encode()
            while True:
                try:
                    await nc.request(subject, body, timeout=0.5)
                    break
                except (TimeoutError, nats.errors.Error):
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{provider_id} on {host_id} never answered") from None
                    await asyncio.sleep(0.1)
    return time.monotonic()


async def deployed(wadm: WadmClient, app: str, timeout: float = 60.0) -> float:
    """The moment the wadm API says ``app`` is deployed."""
    await wait_status(wadm, app, StatusType.DEPLOYED, timeout=timeout)
    return time.monotonic()


async def kept(wadm: WadmClient, app: str, version: str) -> None:
    """No deployed app lost: the wadm API still lists ``app`` at ``version``, deployed."""
    models = {m.name: m for m in (await wadm.list()).models}
    assert app in models, f"{app} is gone from the wadm API: {sorted(models)}"
    assert models[app].deployed_version == version, models[app]


async def counter_deployed(wadm: WadmClient, ctl: CtlClient, manifest: dict[str, Any]) -> None:
    """Put and deploy the counter ``manifest``; return once it runs as COUNTER_WORKLOADS
    on the two hosts and the wadm API says deployed."""
    await wadm.put(manifest)
    await wadm.deploy("counter")
    await placed(ctl, COUNTER_WORKLOADS, hosts=2)
    await deployed(wadm, "counter")


async def last_status_seq(nc: NatsClient, app: str) -> int:
    """The stream sequence of the newest status the controller published for ``app``."""
    msg = await nc.jetstream().get_msg(
        WADM_STATUS_STREAM, subject=wadm_status_subject("default", app), direct=True
    )
    return int(msg.seq or 0)


async def statuses_since(nc: NatsClient, app: str, seq: int) -> list[str]:
    """Every status the controller published for ``app`` after stream sequence ``seq``,
    oldest first, as "type message" (the stream keeps the last 10 per app)."""
    js = nc.jetstream()
    subject = wadm_status_subject("default", app)
    seen: list[str] = []
    while True:
        try:
            msg = await js.get_msg(WADM_STATUS_STREAM, seq + 1, subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            return seen
        info = Status.model_validate(json.loads(msg.data or b"{}")).status
        seen.append(f"{info.type.value} {info.message}".strip())
        seq = int(msg.seq or seq + 1)
