"""A password in a Redis URL never reaches a component, an HTTP caller, a log or a reply.

Real redis-server with `--requirepass` on a loopback port, real hosts and providers.
"""

from __future__ import annotations

import asyncio
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from host_agent.host.identity import HostIdentity
from host_agent.host.state import HostState
from host_agent.interfaces.keyvalue import KeyValueError
from host_agent.providers.kv_backends import RedisBackend
from host_agent.redaction import redact_text, redact_url
from tests.integration.test_counter_app import COUNTER, KV_REDIS, Lattice, lattice
from tests.lattice import (
    HostProcess,
    NatsServer,
    RedisServer,
    eventually_get,
    free_port,
    http_get,
    run_async,
)

RIGHT = "h3-right-pw-5f1c9e"
WRONG = "h3-wrong-pw-a72d04"


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", password=RIGHT).start()
    yield server
    server.stop()


def test_urls_lose_their_passwords_and_keep_where_they_point() -> None:
    assert redact_url("redis://:pw@10.0.0.1:6379/2") == "redis://:***@10.0.0.1:6379/2"
    assert redact_url("redis://app:p%40ss@h:1/0?db=1") == "redis://app:***@h:1/0?db=1"
    assert redact_url("redis://h:1?password=pw&db=1") == "redis://h:1?password=***&db=1"
    assert redact_url("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
    assert redact_url("redis://user@h") == "redis://user@h"
    # A library quoting the decoded password in its own words.
    said = "auth failed for redis://:p%40ss@h as p@ss"
    assert redact_text(said, "redis://:p%40ss@h") == "auth failed for redis://:***@h as ***"


def test_a_host_ping_shows_its_nats_url_without_the_password() -> None:
    state = HostState(HostIdentity.generate(), "default", "1.4.2", {})
    info = state.host_info(f"nats://app:{RIGHT}@127.0.0.1:4222")
    assert info["ctl_host"] == info["rpc_host"] == "nats://app:***@127.0.0.1:4222"


@run_async
async def test_redis_errors_name_the_server_without_the_password(
    password_redis: RedisServer,
) -> None:
    wrong = RedisBackend(password_redis.url_with(WRONG))
    with pytest.raises(KeyValueError) as refused:
        await wrong.increment("b", "k", 1)
    await wrong.close()
    message = refused.value.message
    assert f"redis at redis://:***@127.0.0.1:{password_redis.port}/0 failed" in message
    assert WRONG not in message and RIGHT not in message

    right = RedisBackend(password_redis.url_with(RIGHT))
    assert await right.increment("b", "k", 1) == 1
    assert RIGHT not in right.url
    await right.close()

    with pytest.raises(ValueError) as invalid:
        RedisBackend(f"redis://:{RIGHT}@127.0.0.1:notaport/0")
    assert RIGHT not in str(invalid.value) and "redis url redis://:***@" in str(invalid.value)


@pytest.fixture
def start_host(nats_server: NatsServer, tmp_path: Path) -> Iterator[Callable[[], HostProcess]]:
    hosts: list[HostProcess] = []

    def start() -> HostProcess:
        host = HostProcess(nats_server, {}, "--allow-file-load", log=tmp_path / "host.log")
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.stop()


async def scaled(lat: Lattice, component_id: str) -> None:
    """Wait for the component_scaled event: a cold compile takes 3-20 s on a busy box."""
    async with asyncio.timeout(120):
        while not any(
            name == "component_scaled" and data.get("component_id") == component_id
            for name, data in lat.events
        ):
            await asyncio.sleep(0.05)


async def redis_refusal(url: str) -> bytes:
    """The 500 body once the link has reached the provider and Redis has answered
    (before that the http-server may not listen yet, or the provider says the link has
    not reached it yet)."""
    body = b""
    for _ in range(150):
        try:
            status, body = await asyncio.to_thread(http_get, url)
        except urllib.error.URLError:  # the http-server's listener is not up yet
            status = 0
        if status == 500 and b"redis at" in body:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"Redis never refused the password; last answer {body!r}")


@pytest.mark.slow
@pytest.mark.timeout(180)
@run_async
async def test_a_wrong_redis_password_never_reaches_the_caller_or_the_logs(
    nats_server: NatsServer,
    password_redis: RedisServer,
    start_host: Callable[[], HostProcess],
) -> None:
    host_process = start_host()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with lattice(nats_server) as lat:
        [host] = await lat.host_ids(1)
        await lat.ctl.put_config("redis-wrong", {"url": password_redis.url_with(WRONG)})
        await lat.ctl.put_config("redis-right", {"url": password_redis.url_with(RIGHT)})
        await lat.ctl.start_provider(host, "kvredis", KV_REDIS)
        await lat.ctl.scale_component(host, "counter", COUNTER, 1)
        await scaled(lat, "counter")
        await lat.link(
            "counter", "kvredis", "keyvalue", ["atomics", "store"], target_config=["redis-wrong"]
        )
        await lat.serve_http(host, "counter", port)

        # The component gets the keyvalue error and answers 500 with it: the caller
        # learns which Redis refused, not the password that was tried.
        await lat.event("health_check_passed", provider_id="kvredis")
        body = await redis_refusal(f"{url}/hello")
        assert f"redis://:***@127.0.0.1:{password_redis.port}/0".encode() in body
        assert WRONG.encode() not in body

        await lat.ctl.delete_link("counter", "wasi", "keyvalue")
        await lat.link(
            "counter", "kvredis", "keyvalue", ["atomics", "store"], target_config=["redis-right"]
        )
        assert await eventually_get(f"{url}/hello") == b"hello -> 1"

    status, _ = await asyncio.to_thread(http_get, f"{url}/hello")
    assert status == 200
    host_process.stop()  # flush: the host's log also holds its providers' output
    logged = host_process.log.read_text()
    assert "kvredis" in logged
    assert WRONG not in logged and RIGHT not in logged
