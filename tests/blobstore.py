"""Shared by the blobstore provider tests: the blobby example's manifest pointed at a
provider and a port, and HTTP calls to it."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BLOBBY_WASM = ROOT / "examples" / "blobby" / "build" / "blobby.wasm"


def blobby_manifest(
    port: int, provider_image: str, link_config: dict[str, str], version: str = "v0.1.0"
) -> dict[str, Any]:
    """examples/blobby/wadm.yaml with only the provider and its link's config changed; the
    link's named config is named after ``version`` (providers read config at link time, so
    a new version's config must make a new link)."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "blobby" / "wadm.yaml").read_text())
    data["metadata"]["annotations"]["version"] = version
    blobby, store, http = data["spec"]["components"]
    blobby["properties"]["image"] = f"file://{BLOBBY_WASM}"
    config = blobby["traits"][1]["properties"]["target"]["config"][0]
    config["name"] = f"blobby-{version.replace('.', '-')}"
    config["properties"] = link_config
    store["properties"]["image"] = provider_image
    http["traits"][0]["properties"]["source_config"][0]["properties"]["address"] = (
        f"127.0.0.1:{port}"
    )
    return data


def call(method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def acall(method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
    return await asyncio.to_thread(call, method, url, data)


async def until_answers(url: str, status: int, contains: bytes = b"", tries: int = 300) -> bytes:
    """GET until it answers ``status`` with ``contains`` (a link or config still arriving)."""
    last: object = None
    for _ in range(tries):
        try:
            got, body = await acall("GET", url)
            if got == status and contains in body:
                return body
            last = (got, body)
        except OSError as error:  # the listener is not up yet
            last = error
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered {status} with {contains!r}: last {last!r}")
