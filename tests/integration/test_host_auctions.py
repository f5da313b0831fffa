"""Auctions, claims.get and registry.put as wash uses them, against real hosts.

`wash start component|provider` without `--host-id` publishes an auction and takes a
bid; hosts whose labels do not satisfy the constraints stay silent, so the replies are
gathered over a bounded window, as ping's are.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import nkeys
import pytest
from nats.aio.client import Client as NatsClient

from host_agent.host.process import Host, HostConfig
from host_agent.lattice.client import CtlClient
from host_agent.lattice.subjects import CtlSubjects
from tests.integration.test_counter_app import lattice
from tests.lattice import ROOT, NatsServer, Processes, run_async

pytestmark = pytest.mark.timeout(120)
SUBJECTS = CtlSubjects("default")
HELLO = ROOT / "examples" / "hello" / "build" / "hello.wasm"
GATHER = 1.0  # seconds: every live host answers a request within this on loopback


async def gather(nc: NatsClient, subject: str, body: Any) -> list[dict[str, Any]]:
    """Publish one request and collect every reply for GATHER seconds (scatter/gather)."""
    return [json.loads(msg.data) for msg in await CtlClient(nc).gather(subject, body, GATHER)]


@asynccontextmanager
async def east_and_west(
    nats_server: NatsServer, processes: Processes
) -> AsyncIterator[tuple[NatsClient, dict[str, str]]]:
    """Two host processes labeled zone=east and zone=west; zone -> host id."""
    processes.host(zone="east", tier="web")
    processes.host(zone="west", tier="web")
    async with lattice(nats_server) as lat:
        await lat.host_ids(2)
        hosts = {h["labels"]["zone"]: h["id"] for h in await lat.ctl.ping_hosts(wait=0.3)}
        yield lat.nc, hosts


@run_async
async def test_a_component_auction_gets_bids_only_from_hosts_whose_labels_match(
    nats_server: NatsServer, processes: Processes
) -> None:
    async with east_and_west(nats_server, processes) as (nc, hosts):
        request = {
            "component_ref": "ghcr.io/wasmcloud/components/http-hello-world-rust:0.1.0",
            "component_id": "hello",
            "constraints": {"zone": "east"},
        }
        bids = await gather(nc, SUBJECTS("component", "auction"), request)
        assert bids == [
            {
                "success": True,
                "message": "",
                "response": {
                    "component_ref": request["component_ref"],
                    "component_id": "hello",
                    "host_id": hosts["east"],
                    "constraints": {"zone": "east"},
                },
            }
        ]
        both = await gather(nc, SUBJECTS("component", "auction"), {**request, "constraints": {}})
        assert sorted(b["response"]["host_id"] for b in both) == sorted(hosts.values())
        # Every constraint must hold: a label value that differs, or a label no host has.
        for constraints in ({"zone": "north"}, {"zone": "east", "tier": "db"}, {"gpu": "true"}):
            none = await gather(
                nc, SUBJECTS("component", "auction"), {**request, "constraints": constraints}
            )
            assert none == [], constraints


@run_async
async def test_a_provider_auction_skips_hosts_already_running_that_provider(
    nats_server: NatsServer, processes: Processes
) -> None:
    async with east_and_west(nats_server, processes) as (nc, hosts):
        async with lattice(nats_server) as lat:
            await lat.ctl.start_provider(hosts["east"], "kv", "builtin:keyvalue-inmemory")
            await lat.event("provider_started", provider_id="kv")
        request = {"provider_ref": "builtin:keyvalue-inmemory", "provider_id": "kv"}
        bids = await gather(nc, SUBJECTS("provider", "auction"), {**request, "constraints": {}})
        assert bids == [
            {
                "success": True,
                "message": "",
                "response": {
                    "host_id": hosts["west"],
                    "provider_ref": "builtin:keyvalue-inmemory",
                    "provider_id": "kv",
                    "constraints": {},
                },
            }
        ]
        other = {"provider_ref": "builtin:keyvalue-inmemory", "provider_id": "kv2"}
        east_only = await gather(
            nc, SUBJECTS("provider", "auction"), {**other, "constraints": {"zone": "east"}}
        )
        assert [b["response"]["host_id"] for b in east_only] == [hosts["east"]]
        none = await gather(
            nc, SUBJECTS("provider", "auction"), {**request, "constraints": {"zone": "east"}}
        )
        assert none == []


@run_async
async def test_a_malformed_auction_is_refused_naming_the_field(
    nats_server: NatsServer, processes: Processes
) -> None:
    async with east_and_west(nats_server, processes) as (nc, _):
        cases = [
            ("component", {"component_id": "x", "constraints": {"zone": 1}}, "constraints.zone"),
            ("component", {"component_id": "x"}, "constraints: required"),
            ("provider", {"provider_id": 5, "constraints": {}}, "provider_id"),
            ("provider", {"provider_id": "p", "constraints": ["zone=east"]}, "constraints"),
        ]
        for kind, body, field in cases:
            replies = await gather(nc, SUBJECTS(kind, "auction"), body)
            assert len(replies) == 2, (body, replies)  # every host says why, none bids
            for reply in replies:
                assert reply["success"] is False and "response" not in reply
                assert f"{kind}.auction" in reply["message"] and field in reply["message"]


ACCOUNT = nkeys.from_seed(nkeys.encode_seed(bytes(range(32)), nkeys.PREFIX_BYTE_ACCOUNT))
OTHER_ACCOUNT = nkeys.from_seed(nkeys.encode_seed(bytes(32), nkeys.PREFIX_BYTE_ACCOUNT))
MODULE_PREFIX = 12 << 3  # nkey role "M" (module/component), which nkeys-py does not list


def module_key(raw: bytes) -> str:
    body = bytes([MODULE_PREFIX]) + raw
    return base64.b32encode(body + nkeys.crc16(bytearray(body)).to_bytes(2, "little")).decode()


def custom_section(name: str, data: bytes) -> bytes:
    def leb(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    payload = leb(len(name)) + name.encode() + data
    return b"\x00" + leb(len(payload)) + payload


def signed(
    wasm: bytes, expires: int | None = None, signer: nkeys.KeyPair = ACCOUNT, **meta: Any
) -> bytes:
    """`wasm` signed the way `wash claims sign` does: a wascap JWT (Ed25519, by an account
    key) in a `wasmcloud_jwt` custom section, over the hash of the unsigned bytes."""

    def segment(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims: dict[str, Any] = {
        "jti": "h3-test-token",
        "iat": int(time.time()),
        "iss": ACCOUNT.public_key.decode(),
        "sub": module_key(bytes(range(32, 64))),
        "wascap": {"hash": hashlib.sha256(wasm).hexdigest().upper(), "prov": False, **meta},
        "wascap_revision": 3,
    }
    if expires is not None:
        claims["exp"] = expires
    head_and_claims = f"{segment({'typ': 'jwt', 'alg': 'Ed25519'})}.{segment(claims)}"
    signature = base64.urlsafe_b64encode(signer.sign(head_and_claims.encode()))
    token = f"{head_and_claims}.{signature.rstrip(b'=').decode()}"
    return wasm + custom_section("wasmcloud_jwt", token.encode())


@run_async
async def test_claims_get_reports_the_claims_of_signed_components(
    nats_server: NatsServer, processes: Processes, tmp_path: Path
) -> None:
    hello = HELLO.read_bytes()
    good = tmp_path / "hello-signed.wasm"
    meta = {"name": "Hello", "tags": ["demo", "http"], "rev": 4, "ver": "0.1.0"}
    good.write_bytes(signed(hello, **meta))
    tampered = tmp_path / "hello-tampered.wasm"
    tampered.write_bytes(
        signed(hello, **meta).replace(b"hello from wasmCloud", b"HELLO from wasmCloud")
    )
    expired = tmp_path / "hello-expired.wasm"
    expired.write_bytes(signed(hello, expires=int(time.time()) - 60, **meta))
    forged = tmp_path / "hello-forged.wasm"
    forged.write_bytes(signed(hello, signer=OTHER_ACCOUNT, **meta))  # claims ACCOUNT as iss
    plain = tmp_path / "hello.wasm"
    plain.write_bytes(hello)

    async with east_and_west(nats_server, processes) as (nc, hosts):
        msg = await nc.request(SUBJECTS.claims_get(), b"", timeout=5)
        assert json.loads(msg.data) == {"success": True, "message": "", "response": []}
        async with lattice(nats_server) as lat:
            east = hosts["east"]
            await lat.ctl.scale_component(east, "plain", f"file://{plain}", 1)
            await lat.ctl.scale_component(east, "tampered", f"file://{tampered}", 1)
            await lat.ctl.scale_component(east, "expired", f"file://{expired}", 1)
            await lat.ctl.scale_component(east, "forged", f"file://{forged}", 1)
            await lat.ctl.scale_component(east, "signed", f"file://{good}", 1)
            for refused, why in [
                ("tampered", "changed after it was signed"),
                ("expired", "expired"),
                ("forged", "signature does not verify"),
            ]:
                failed = await lat.event("component_scale_failed", component_id=refused)
                assert "embedded claims are refused" in failed["error"] and why in failed["error"]
            async with asyncio.timeout(120):  # a cold compile takes 3-20 s on a busy box
                while not {"plain", "signed"} <= {
                    d.get("component_id") for n, d in lat.events if n == "component_scaled"
                }:
                    await asyncio.sleep(0.05)
        # claims.get is answered by one host (queue group). Claims are lattice-wide: with
        # the east host gone, the west host, which ran nothing, answers with them.
        east_process = processes.started[0]  # east_and_west starts east first
        east_process.stop()
        reply = json.loads((await nc.request(SUBJECTS.claims_get(), b"", timeout=5)).data)
        subject = module_key(bytes(range(32, 64)))
        issuer = ACCOUNT.public_key.decode()
        assert reply == {
            "success": True,
            "message": "",
            "response": [
                {
                    "call_alias": "",
                    "iss": issuer,
                    "issuer": issuer,
                    "name": "Hello",
                    "rev": "4",
                    "revision": "4",
                    "sub": subject,
                    "subject": subject,
                    "tags": "demo,http",
                    "version": "0.1.0",
                }
            ],
        }


@asynccontextmanager
async def host_in_process(nats_server: NatsServer) -> AsyncIterator[Host]:
    host = Host(HostConfig(nats_url=nats_server.url, heartbeat_interval=60))
    await host.start()
    try:
        yield host
    finally:
        await host.shutdown()


@run_async
async def test_registry_put_keeps_the_credentials_for_fetching(nats_server: NatsServer) -> None:
    async with host_in_process(nats_server) as host:
        nc = await nats.connect(nats_server.url)
        try:
            put = SUBJECTS("registry", "put")
            body = {
                "ghcr.io": {"username": "ci", "password": "s3cret", "registryType": "oci"},
                "registry.example:5000": {"token": "t0ken"},
            }
            reply = json.loads((await nc.request(put, json.dumps(body).encode(), 5)).data)
            assert reply == {"success": True, "message": "successfully put registries"}
            ghcr = host.state.registry_credential("ghcr.io")
            assert ghcr is not None and ghcr.auth == "basic"
            assert (ghcr.username, ghcr.password) == ("ci", "s3cret")
            assert "s3cret" not in repr(ghcr) and "s3cret" not in repr(host.state)
            local = host.state.registry_credential("registry.example:5000")
            assert local is not None and (local.auth, local.token) == ("token", "t0ken")

            # A second put replaces one registry's credentials and keeps the others.
            again = {"ghcr.io": {"token": "new"}}
            reply = json.loads((await nc.request(put, json.dumps(again).encode(), 5)).data)
            assert reply["success"] is True
            ghcr = host.state.registry_credential("ghcr.io")
            assert ghcr is not None and (ghcr.auth, ghcr.token) == ("token", "new")
            assert host.state.registry_credential("registry.example:5000") == local
            assert host.state.registry_credential("docker.io") is None

            # Malformed bodies change nothing and say which field is wrong.
            before = dict(host.state.registries)
            for bad, field in [
                ({"ghcr.io": {"username": "ci"}}, "ghcr.io: password is missing"),
                ({"ghcr.io": {"password": 5}}, "ghcr.io.password: expected a string"),
                ({"ghcr.io": {"registryType": "docker"}}, 'registryType "docker"'),
                ({"ghcr.io": {"registry_type": "oci"}}, "ghcr.io.registry_type: unknown field"),
                # A string is never quoted here: it may be the credential itself.
                ({"ghcr.io": "ci:s3cret"}, "ghcr.io: expected a JSON object, got a string"),
                ({"ghcr.io": "ci:s3cret" * 10}, "ghcr.io: expected a JSON object, got a string"),
                (["ghcr.io"], "expected an object"),
            ]:
                msg = await nc.request(put, json.dumps(bad).encode(), 5)
                reply = json.loads(msg.data)
                assert reply["success"] is False, bad
                assert "registry.put" in reply["message"] and field in reply["message"], reply
                assert "s3cret" not in reply["message"]
            assert host.state.registries == before
        finally:
            await nc.close()
