"""The same provider id on several hosts (a keyvalue provider in every core host): each
host waits for its own instance before pushing links to it, so no instance misses one.

Before, a host's readiness check was answered at once by the instance another host had
started earlier; links put in the second that followed went out before the new instance
listened, and that instance then refused every call it was given ("no link ... has
reached it yet") while the other one served them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient

from host_agent.interfaces.keyvalue import KeyValueError
from host_agent.providers.contract import HEALTH, HostData, provider_subject
from host_agent.wrpc import keyvalue as kv
from host_agent.wrpc.transport import Payload, WrpcClient
from tests.integration.test_counter_app import lattice
from tests.lattice import HostProcess, NatsServer, run_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

KV = "builtin:keyvalue-inmemory"
CALLS = 40


async def answered(nc: NatsClient, body: bytes) -> None:
    """Until a provider instance `kv` answers a health check with this body."""
    subject = provider_subject("default", "kv", HEALTH)
    for _ in range(300):
        try:
            await nc.request(subject, body, timeout=0.3)
            return
        except nats.errors.NoRespondersError:
            await asyncio.sleep(0.1)  # nobody subscribed yet: nothing to wait on but time
        except nats.errors.TimeoutError:
            continue  # subscribed, but this is not the instance that answers this body
    raise AssertionError(f"no instance of kv answered a health check with {body!r}")


@pytest.fixture
def two_hosts(nats_server: NatsServer, tmp_path: Path) -> Iterator[list[HostProcess]]:
    hosts = [
        HostProcess(nats_server, {"tier": "core"}, log=tmp_path / f"host{index}.log")
        for index in range(2)
    ]
    yield hosts
    for host in hosts:
        host.stop()


@run_async
async def test_links_put_while_a_second_host_starts_the_provider_reach_both_instances(
    nats_server: NatsServer, two_hosts: list[HostProcess]
) -> None:
    async with lattice(nats_server) as lat:
        first, second = await lat.host_ids(2)
        await lat.ctl.start_provider(first, "kv", KV)
        await lat.event("health_check_passed", timeout=60, host_id=first, provider_id="kv")
        await lat.ctl.start_provider(second, "kv", KV)
        # Once the second process is spawned (its start data carries no link) and while
        # it is still starting: a Python provider takes about half a second to subscribe.
        await lat.event("provider_started", timeout=60, host_id=second, provider_id="kv")
        await lat.link("counter", "kv", "keyvalue", ["atomics", "store"])
        await lat.event("health_check_passed", timeout=60, host_id=second, provider_id="kv")
        # The second instance itself answers (not only the first, for the second host).
        await answered(lat.nc, json.dumps({"host_id": second}).encode())

        # The queue group spreads calls over both instances: each must know the link.
        client = WrpcClient(lat.nc, "default")
        refused = []
        for index in range(CALLS):
            reply = await client.invoke(
                "kv",
                kv.instance("atomics"),
                "increment",
                Payload(kv.bucket_key_delta("b", f"k{index}", 1)),
                source_id="counter",
            )
            try:
                kv.decode_increment(reply.data)
            except KeyValueError as error:
                refused.append(error.message)
        assert refused == [], f"{len(refused)} of {CALLS} calls refused: {refused[0]}"


@run_async
async def test_a_provider_answers_the_readiness_check_of_its_own_host_only(
    nats_server: NatsServer,
) -> None:
    own, other = "N" + "A" * 55, "N" + "B" * 55
    data = HostData(
        host_id=own,
        lattice_rpc_prefix="default",
        lattice_rpc_url=nats_server.url,
        provider_key="kv",
        instance_id="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "host_agent.providers.keyvalue_inmemory"],
        stdin=subprocess.PIPE,
        env={"PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    assert proc.stdin is not None
    proc.stdin.write(data.encode())
    proc.stdin.close()
    nc = await nats.connect(nats_server.url)
    subject = provider_subject("default", "kv", HEALTH)
    try:
        await answered(nc, b"")  # the instance listens (it answers an empty body)
        ask = json.dumps({"host_id": own}).encode()
        answer = json.loads((await nc.request(subject, ask, timeout=5)).data)
        assert answer["healthy"] is True
        with pytest.raises(nats.errors.TimeoutError):
            await nc.request(subject, json.dumps({"host_id": other}).encode(), timeout=1)
        refused = await nc.request(subject, b'{"host_id": 5}', timeout=5)
        assert refused.data.decode() == (
            "invalid health check request: host_id: expected a string, got a number (5)"
        )
    finally:
        await nc.close()
        proc.kill()
        proc.wait()
