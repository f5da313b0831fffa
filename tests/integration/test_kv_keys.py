"""Listing a JetStream KV bucket's keys never comes back empty while keys exist.

nats-py's ``KeyValue.keys()`` did, about once in a thousand calls (measured: 2 of 2000 on
this machine), so ``link.get`` sometimes answered "no links" and the hypothesis test in
test_malformed_requests.py saw links vanish for one read. The loop below makes that
failure likely enough (about 95% of runs) to notice if the listing regresses.
"""

from __future__ import annotations

import nats

from host_agent.lattice.jetstream import kv_keys, open_kv
from host_agent.providers.kv_backends import NatsKvBackend
from tests.lattice import NatsServer, run_async


@run_async
async def test_kv_keys_lists_every_key_on_every_call(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        kv = await open_kv(nc.jetstream(), "KEYS_PROBE")
        await kv.put("COMPONENT_counter", b"{}")
        await kv.put("CLAIMS_x", b"{}")
        await kv.put("gone", b"x")
        await kv.delete("gone")  # listed (its delete marker is the last message); readers skip it
        listings = [await kv_keys(kv) for _ in range(3000)]
        assert {tuple(keys) for keys in listings} == {("CLAIMS_x", "COMPONENT_counter", "gone")}
    finally:
        await nc.close()


@run_async
async def test_keyvalue_nats_lists_its_keys_on_every_call(nats_server: NatsServer) -> None:
    """The keyvalue-nats provider's list-keys: every live key on every call, deleted keys
    never (it listed none at all about once in a thousand calls through KeyValue.keys())."""
    nc = await nats.connect(nats_server.url)
    try:
        backend = NatsKvBackend(nc, "LIST_PROBE")
        await backend.set("b", "counter", b"1")
        await backend.set("b", "other", b"2")
        await backend.set("b", "gone", b"3")
        await backend.delete("b", "gone")
        listings = set()
        for _ in range(2000):
            keys, cursor = await backend.list_keys("b", None)
            listings.add((tuple(keys), cursor))
        assert listings == {(("counter", "other"), None)}
    finally:
        await nc.close()
