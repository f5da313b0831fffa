"""A host asked directly (no manifest check in between) to start a provider whose release
serves other WIT than ours refuses it with provider_start_failed naming what is supported,
and keeps starting what it can run."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats

from host_agent.lattice.client import CtlClient
from host_agent.lattice.subjects import event_subject
from tests.lattice import NatsServer, Processes, first_host_id, run_async


@run_async
async def test_host_refuses_a_provider_release_with_other_wit(
    nats_server: NatsServer, processes: Processes
) -> None:
    processes.host()
    nc = await nats.connect(nats_server.url)
    try:
        events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

        async def record(msg: Any) -> None:
            event = json.loads(msg.data)
            await events.put((event["type"].rsplit(".", 1)[-1], event["data"]))

        await nc.subscribe(event_subject("default", "*"), cb=record)
        ctl = CtlClient(nc)
        host = await first_host_id(nc)

        async def next_event(provider_id: str) -> tuple[str, dict[str, Any]]:
            while True:
                kind, data = await asyncio.wait_for(events.get(), timeout=20)
                if data.get("provider_id") == provider_id and kind.startswith("provider_"):
                    return kind, data

        await ctl.start_provider(host, "old-kv", "ghcr.io/wasmcloud/keyvalue-redis:0.23.0")
        kind, data = await next_event("old-kv")
        assert kind == "provider_start_failed"
        assert "releases before 0.24.0 serve wasmCloud 0.x's wasmcloud:keyvalue" in data["error"]
        assert "ghcr.io/wasmcloud/keyvalue-redis:0.28.1" in data["error"]

        await ctl.start_provider(host, "kv", "ghcr.io/wasmcloud/keyvalue-redis:0.28.1")
        kind, _ = await next_event("kv")
        assert kind == "provider_started"
        inventory = await ctl.get_inventory(host)
        assert [p["id"] for p in inventory["providers"]] == ["kv"]
    finally:
        await nc.close()
