"""keyvalue-redis: wasi:keyvalue in Redis. Link target_config `url` (or provider config).

Secrets (wadm manifest ``secrets``): a secret named ``url`` (any case) replaces the URL, as
upstream's provider intends; ours also takes a ``password`` secret, used when the URL
carries none, so the URL can stay in plain config. A link's target secrets win over the
provider's own."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient

from host_agent.providers.contract import HostData
from host_agent.providers.keyvalue_server import KeyValueProvider
from host_agent.providers.kv_backends import RedisBackend
from host_agent.providers.sdk import run_provider

DEFAULT_URL = "redis://127.0.0.1:6379"


def _named(values: dict[str, str], name: str) -> str | None:
    return next((v for k, v in values.items() if k.lower() == name), None)


def backend(
    config: dict[str, str], nc: NatsClient, host: HostData, secrets: dict[str, str]
) -> RedisBackend:
    url = _named(secrets, "url") or config.get("url") or config.get("URL") or DEFAULT_URL
    return RedisBackend(url, _named(secrets, "password"))


if __name__ == "__main__":
    run_provider(KeyValueProvider(backend))
