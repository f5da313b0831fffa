"""keyvalue-nats: wasi:keyvalue in JetStream KV on the lattice's NATS. Optional `bucket`
and `js_domain` (upstream keyvalue-nats's names); new buckets are replicated like the
lattice's own data (``LATTICEDATA_<lattice>``)."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient

from host_agent.lattice.jetstream import kv_stream
from host_agent.lattice.subjects import links_bucket
from host_agent.providers.contract import HostData
from host_agent.providers.keyvalue_server import KeyValueProvider
from host_agent.providers.kv_backends import NatsKvBackend
from host_agent.providers.sdk import run_provider


def backend(
    config: dict[str, str], nc: NatsClient, host: HostData, secrets: dict[str, str]
) -> NatsKvBackend:
    return NatsKvBackend(
        nc,
        config.get("bucket") or None,
        js_domain=config.get("js_domain") or None,
        replicas_like=kv_stream(links_bucket(host.lattice_rpc_prefix)),
    )


if __name__ == "__main__":
    run_provider(KeyValueProvider(backend))
