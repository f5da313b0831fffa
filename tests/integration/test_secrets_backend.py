"""The NATS KV secrets backend against a real nats-server: what a client that gets it
wrong hears (never a value, never a traceback), and what sits in its bucket."""

from __future__ import annotations

import nats
import pytest

from host_agent.secrets.backend import BackendSettings, NatsKvBackend
from host_agent.secrets.client import SecretNotFound, SecretsClient, SecretsError
from host_agent.secrets.protocol import (
    HOST_XKEY_HEADER,
    Context,
    SecretRequest,
    SecretResponse,
    secrets_subject,
)
from host_agent.secrets.xkeys import XKey
from tests.lattice import NatsServer, run_async

pytestmark = pytest.mark.timeout(60)

VALUE = "s3cr3t-value"


def request(key: str, version: str | None = None) -> SecretRequest:
    return SecretRequest(key=key, version=version, context=Context())


@run_async
async def test_backend_answers_mistakes_with_upstreams_errors_and_keeps_values_sealed(
    nats_server: NatsServer,
) -> None:
    nc = await nats.connect(nats_server.url)
    backend = NatsKvBackend(nc, BackendSettings(XKey.generate(), XKey.generate()))
    await backend.start()
    try:
        client = SecretsClient(nc, "nats-kv")
        revision = await client.put("db/password", VALUE)
        got = await client.get(request("db/password"), "db")
        assert (got.string_secret, got.version) == (VALUE, str(revision))
        await client.put("blob", b"\xff\x00\xfe")  # not UTF-8: comes back as bytes
        assert (await client.get(request("blob"), "blob")).binary_secret == [255, 0, 254]

        with pytest.raises(SecretNotFound, match="backend 'nats-kv' has no secret 'nope'"):
            await client.get(request("nope"), "secret 'x'")
        with pytest.raises(SecretNotFound, match="at version 0"):
            await client.get(request("db/password", "0"), "secret 'x'")
        with pytest.raises(SecretsError, match="refused: Invalid request"):
            await client.get(request("db/password", "v1"), "secret 'x'")
        with pytest.raises(SecretsError, match="not a NATS KV key"):
            await client.get(request("has space"), "secret 'x'")

        get = secrets_subject("nats-kv", "get")
        body = request("db/password").model_dump_json().encode()
        unsealed = await nc.request(
            get, body, headers={HOST_XKEY_HEADER: XKey.generate().public_key}
        )
        assert SecretResponse.parse(unsealed.data).error == "DecryptionError"
        no_key = await nc.request(get, body)
        assert SecretResponse.parse(no_key.data).error == "InvalidXKey"
        other = await nc.request(secrets_subject("nats-kv", "list_everything"), b"")
        assert other.data == b"unknown operation list_everything"

        kv = await nc.jetstream().key_value("WASMCLOUD_SECRETS")
        stored = (await kv.get("db/password")).value or b""
        assert stored.startswith(b"xkv1") and VALUE.encode() not in stored

        await client.delete("db/password")
        with pytest.raises(SecretNotFound):
            await client.get(request("db/password"), "secret 'x'")
        with pytest.raises(SecretNotFound):  # the history went too
            await client.get(request("db/password", str(revision)), "secret 'x'")
    finally:
        await backend.stop()
        await nc.close()
