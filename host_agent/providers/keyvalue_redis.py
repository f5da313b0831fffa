"""keyvalue-redis: wasi:keyvalue in Redis. Link target_config `url` (or provider config)."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient

from host_agent.providers.contract import HostData
from host_agent.providers.keyvalue_server import KeyValueProvider
from host_agent.providers.kv_backends import RedisBackend
from host_agent.providers.sdk import run_provider

DEFAULT_URL = "redis://127.0.0.1:6379"


def backend(config: dict[str, str], nc: NatsClient, host: HostData) -> RedisBackend:
    return RedisBackend(config.get("url") or config.get("URL") or DEFAULT_URL)


if __name__ == "__main__":
    run_provider(KeyValueProvider(backend))
