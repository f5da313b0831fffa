"""keyvalue-nats: wasi:keyvalue in JetStream KV on the lattice's NATS. Optional `bucket`."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient

from host_agent.providers.keyvalue_server import KeyValueProvider
from host_agent.providers.kv_backends import NatsKvBackend
from host_agent.providers.sdk import run_provider


def backend(config: dict[str, str], nc: NatsClient) -> NatsKvBackend:
    return NatsKvBackend(nc, config.get("bucket") or None)


if __name__ == "__main__":
    run_provider(KeyValueProvider(backend))
