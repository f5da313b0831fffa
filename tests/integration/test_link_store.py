"""Link entries in the lattice's LATTICEDATA bucket are parsed as the 1.4.2 host parses
them: an entry another writer left malformed is named, its links are ignored, and the
links of every other component keep routing."""

from __future__ import annotations

import asyncio
import json
import logging

import nats
import pytest

from host_agent.host.store import LatticeStore, UnreadableLinkEntry
from host_agent.lattice.jetstream import open_kv
from host_agent.lattice.protocol import Link
from host_agent.lattice.subjects import links_bucket
from tests.lattice import NatsServer, run_async

GOOD = Link(
    source_id="counter",
    target="kvredis",
    wit_namespace="wasi",
    wit_package="keyvalue",
    interfaces=["atomics"],
)


@run_async
async def test_a_malformed_entry_is_named_and_the_other_links_still_route(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        store = await LatticeStore.open(js, "default")
        await store.put_link(GOOD)
        raw = await open_kv(js, links_bucket("default"))
        # `links` of the wrong type: read as "no links" by a lenient parser, quietly.
        await raw.put("COMPONENT_broken", json.dumps({"url": "", "links": "none"}).encode())
        await raw.put("COMPONENT_nolinks", json.dumps({"url": ""}).encode())

        with caplog.at_level(logging.WARNING, logger="host_agent.host.store"):
            assert [link["source_id"] for link in await store.get_links()] == ["counter"]
        warnings = caplog.text
        assert "invalid link entry COMPONENT_broken: links: expected a list" in warnings
        assert "invalid link entry COMPONENT_nolinks: links:" in warnings

        seen: dict[str, list[str]] = {}
        watch = store.watch_links()
        while len(seen) < 3:
            source, links = await asyncio.wait_for(anext(watch), 10)
            seen[source] = [link["target"] for link in links]
        await watch.aclose()
        assert seen == {"counter": ["kvredis"], "broken": [], "nolinks": []}
    finally:
        await nc.close()


@run_async
async def test_a_link_on_a_malformed_entry_is_refused_with_the_repair(
    nats_server: NatsServer,
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        store = await LatticeStore.open(js, "default")
        raw = await open_kv(js, links_bucket("default"))
        await raw.put("COMPONENT_counter", json.dumps({"url": 5, "links": []}).encode())
        with pytest.raises(UnreadableLinkEntry, match="COMPONENT_counter: url: expected a string"):
            await store.put_link(GOOD)
        await raw.put("COMPONENT_counter", b"{not json")
        with pytest.raises(UnreadableLinkEntry, match=r"COMPONENT_counter: not JSON.*purge"):
            await store.put_link(GOOD)
        # The entry is left as it was for the operator to look at, not overwritten.
        assert (await raw.get("COMPONENT_counter")).value == b"{not json"
    finally:
        await nc.close()
