"""keyvalue-inmemory: wasi:keyvalue in this process's memory, shared by all its links."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient

from host_agent.providers.contract import HostData
from host_agent.providers.keyvalue_server import KeyValueProvider
from host_agent.providers.kv_backends import InMemoryBackend
from host_agent.providers.sdk import run_provider

_SHARED = InMemoryBackend()


def backend(
    config: dict[str, str], nc: NatsClient, host: HostData, secrets: dict[str, str]
) -> InMemoryBackend:
    return _SHARED


if __name__ == "__main__":
    run_provider(KeyValueProvider(backend))
