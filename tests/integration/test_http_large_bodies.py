"""HTTP bodies larger than one NATS message (1 MiB by default) through the http-server
provider and the host: a 5 MiB upload and a 5 MiB download through the blobby example on
blobstore-fs, deployed by the controller on a local lattice (real nats-server, host,
http-server and blobstore-fs processes). The bodies cross NATS as wRPC byte streams in
chunks; the link's `max_body_bytes` bounds them both ways, and a body over it is refused
with a sentence naming `max_body_bytes` (413 to a client whose upload is too large, 502
when the component's answer is)."""

from __future__ import annotations

import asyncio
import http.client
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.lattice.wadm_types import StatusType
from host_agent.providers.http_server import ConfigError, LinkSettings
from host_agent.wrpc.http import (
    BODY_PATH,
    INLINE_BODY,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    pending_request_paths,
    pending_response_paths,
)
from host_agent.wrpc.transport import NestedCollector, NestedTooLarge
from tests.blobstore import acall, blobby_manifest, until_answers
from tests.integration.test_controller import clients, wait_status
from tests.lattice import NatsServer, Processes, free_port, run_async

FS = "ghcr.io/wasmcloud/blobstore-fs:0.10.1"
MIB = 1024 * 1024


def manifest(port: int, root: Path, max_body_bytes: int, version: str) -> dict[str, Any]:
    data = blobby_manifest(port, FS, {"ROOT": str(root)}, version=version)
    http = data["spec"]["components"][2]["traits"][0]["properties"]["source_config"][0]
    http["name"] = f"blobby-http-{version.replace('.', '-')}"
    http["properties"]["max_body_bytes"] = str(max_body_bytes)
    http["properties"]["timeout_ms"] = "60000"  # ~2-3 s per 5 MiB here; CI runs loaded
    return data


def chunked_put(port: int, path: str, pieces: int, piece: bytes) -> tuple[int, bytes]:
    """PUT a body with Transfer-Encoding: chunked (no Content-Length to refuse it by)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("PUT", path, body=(piece for _ in range(pieces)), encode_chunked=True)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


async def until_uploads_refused(url: str, size: int, tries: int = 300) -> None:
    """PUT ``size`` bytes until the listener refuses them by Content-Length (413): a new
    link's lower limit is in effect (a refused upload costs no component call)."""
    last: object = None
    for _ in range(tries):
        try:
            last = await acall("PUT", url, bytes(size))
            if last[0] == 413:
                return
        except OSError as error:  # the listener is being replaced
            last = error
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never refused {size} bytes: last {last!r}")


@pytest.mark.parametrize("size", [1, INLINE_BODY, INLINE_BODY + 1, 5 * MIB])
def test_a_body_over_the_inline_size_streams_on_its_own_path(size: int) -> None:
    body = os.urandom(size)
    request = encode_request(HttpRequest("PUT", "/big", "http", "a", [], body))
    response = encode_response(HttpResponse(200, [], body))
    streamed = size > INLINE_BODY
    # The root message stays small (it must fit one NATS message); the body follows.
    assert len(request.data) < 1024 if streamed else len(request.data) > size
    assert pending_request_paths(request.data) == ([BODY_PATH] if streamed else [])
    assert pending_response_paths(response.data) == ([BODY_PATH] if streamed else [])
    assert decode_request(request).body == body
    assert decode_response(response).body == body


@run_async
async def test_a_caller_keeps_no_more_nested_bytes_than_its_limit() -> None:
    collector = NestedCollector(limit=10)
    collector.on_message("0.0", b"x" * 6)
    reading = asyncio.ensure_future(collector.read(["0.0"], timeout=5))
    await asyncio.sleep(0)  # the reader waits for the rest
    collector.on_message("0.0", b"x" * 6)  # 12 bytes: over, before the stream's end
    with pytest.raises(NestedTooLarge, match="over 10 bytes"):
        await reading
    assert len(collector.buffers["0.0"]) == 6
    within = NestedCollector(limit=10)
    within.on_message("0.0", b"x" * 10)
    within.on_message("0.0", b"")
    assert await within.read(["0.0"], timeout=5) == {"0.0": b"x" * 10}


@pytest.mark.parametrize(
    ("name", "value"),
    [("max_body_bytes", "16MiB"), ("max_body_bytes", "0"), ("timeout_ms", "-1")],
)
def test_a_malformed_limit_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        LinkSettings.parse({name: value}, "blobby")
    assert f"source_config {name}={value!r} is not a positive whole number" in str(refused.value)
    assert "the http-server link to blobby" in str(refused.value)


def test_limits_parse_and_default() -> None:
    assert LinkSettings.parse({}, "c") == LinkSettings("127.0.0.1:8000", 16 * MIB, 10.0)
    parsed = LinkSettings.parse({"max_body_bytes": "6291456", "timeout_ms": "60000"}, "c")
    assert (parsed.max_body_bytes, parsed.timeout_s) == (6 * MIB, 60.0)


@pytest.mark.slow
@pytest.mark.timeout(240)
@run_async
async def test_five_mib_both_ways_and_the_limit(
    nats_server: NatsServer, processes: Processes, tmp_path: Path
) -> None:
    root = tmp_path / "blobs"
    processes.host()
    processes.controller()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with clients(nats_server) as (wadm, _):
        await wadm.put(yaml.safe_dump(manifest(port, root, 6 * MIB, "v0.1.0")))
        await wadm.deploy("blobby")
        await wait_status(wadm, "blobby", StatusType.DEPLOYED, timeout=120)
        await until_answers(f"{url}/", 200)

        # 5 MiB up (five times NATS's largest message) and the same 5 MiB back down.
        big = os.urandom(5 * MIB)
        assert await acall("PUT", f"{url}/big", big) == (201, b"stored big (5242880 bytes)\n")
        assert (root / "blobby" / "big").read_bytes() == big
        status, body = await acall("GET", f"{url}/big")
        assert status == 200 and len(body) == len(big) and body == big

        # Over the link's limit, by Content-Length and by a chunked upload: 413 naming it.
        over = b"request body over max_body_bytes (6291456 bytes) of the http-server link"
        status, body = await acall("PUT", f"{url}/huge", os.urandom(6 * MIB + 1))
        assert status == 413 and body.startswith(over)
        assert b"raise max_body_bytes in the link's source_config" in body
        status, body = await asyncio.to_thread(chunked_put, port, "/huge", 7, b"x" * MIB)
        assert status == 413 and body.startswith(over)
        assert not (root / "blobby" / "huge").exists()

        # A lower limit: the component's 5 MiB answer is now over it (502, named), and a
        # body under it still goes through.
        await wadm.put(yaml.safe_dump(manifest(port, root, 2 * MIB, "v0.2.0")))
        await wadm.deploy("blobby")
        await until_uploads_refused(f"{url}/probe", 2 * MIB + 1)  # the new link is in
        status, body = await acall("GET", f"{url}/big")
        assert status == 502
        assert b"answered a body over max_body_bytes (2097152 bytes)" in body
        small = os.urandom(2 * MIB)
        assert await acall("PUT", f"{url}/small", small) == (
            201,
            b"stored small (2097152 bytes)\n",
        )
        assert await acall("GET", f"{url}/small") == (200, small)
