"""The SDK's ``Secret`` takes from its Lattice what the provider connects with: on a
lattice on machines that includes the tooling user's client certificate (``clientTls``:
its nodes refuse a client without one), kept secret like the value and the credentials.
Pulumi's own mocks stand in for the engine (no provider runs)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest

CLIENT_TLS = {"caPem": "ca", "certPem": "cert", "keyPem": "key"}


class Engine(pulumi.runtime.Mocks):
    """Records what each resource is registered with; a Lattice's outputs are its own
    inputs plus what a lattice on machines returns."""

    def __init__(self) -> None:
        self.registered: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered[args.typ] = dict(args.inputs)
        outputs = dict(args.inputs)
        if args.typ == "wasmcloud:index:Lattice":
            outputs |= {
                "natsUrl": "nats://198.18.0.2:4222",
                "lattice": "default",
                "credentials": "tooling creds",
                "caCert": "ca",
                "clientTls": CLIENT_TLS,
            }
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []


@pytest.fixture
def engine() -> Iterator[Engine]:
    # Pulumi's test runner takes the thread's current event loop; an earlier test's
    # asyncio.run() in this process leaves none set, so give it its own.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    mocks = Engine()
    pulumi.runtime.set_mocks(mocks, preview=False)
    yield mocks
    asyncio.set_event_loop(None)
    loop.close()


@pulumi.runtime.test
def test_a_secret_connects_with_its_lattices_client_certificate(engine: Engine) -> Any:
    import pulumi_wasmcloud as wasmcloud

    lattice = wasmcloud.Lattice("lattice")
    secret = wasmcloud.Secret("redis-password", value="pw", lattice=lattice)

    def check(_: Any) -> None:
        given = engine.registered["wasmcloud:index:Secret"]
        assert given["clientTls"] == CLIENT_TLS
        assert given["credentials"] == "tooling creds"
        assert given["natsUrl"] == "nats://198.18.0.2:4222"

    return secret.key.apply(check)
