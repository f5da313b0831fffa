"""blobstore-fs end to end: the blobby example deployed by the controller from its wadm
manifest on a local lattice (real nats-server, host, http-server and blobstore-fs
processes, the component run by wasmtime), objects landing as files under the link's ROOT;
the directory taken away and given back; a refused ROOT named with its fix."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from host_agent.lattice.wadm_types import StatusType
from tests.blobstore import acall, blobby_manifest, until_answers
from tests.integration.test_controller import clients, wait_status
from tests.lattice import NatsServer, Processes, free_port, run_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

FS = "ghcr.io/wasmcloud/blobstore-fs:0.10.1"


@run_async
async def test_blobby_on_blobstore_fs(
    nats_server: NatsServer, processes: Processes, tmp_path: Path
) -> None:
    root = tmp_path / "blobs"
    processes.host()
    processes.controller()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with clients(nats_server) as (wadm, _):
        await wadm.put(yaml.safe_dump(blobby_manifest(port, FS, {"ROOT": str(root)})))
        await wadm.deploy("blobby")
        await wait_status(wadm, "blobby", StatusType.DEPLOYED, timeout=120)
        await until_answers(f"{url}/", 200)

        # Objects in and out, a large one in many 4 KiB stream chunks (under NATS's 1 MiB
        # message: the http-server hands a request body to the component in one message).
        big = os.urandom(700 * 1024 + 17)
        assert await acall("PUT", f"{url}/hello", b"hi there") == (
            201,
            b"stored hello (8 bytes)\n",
        )
        assert await acall("PUT", f"{url}/big", big) == (201, b"stored big (716817 bytes)\n")
        assert await acall("GET", f"{url}/hello") == (200, b"hi there")
        assert await acall("GET", f"{url}/big") == (200, big)
        assert await acall("GET", f"{url}/") == (200, b"big\nhello\n")
        assert (root / "blobby" / "big").read_bytes() == big  # a real file under ROOT
        assert await acall("DELETE", f"{url}/big") == (200, b"deleted big\n")
        assert await acall("GET", f"{url}/big") == (404, b"no object big\n")

        # The storage goes away (ROOT is a file now): the component hears why, and the
        # host, the provider and the component keep running; given back, it all works.
        away = tmp_path / "away"
        root.rename(away)
        root.write_text("not a directory")
        status, body = await acall("GET", f"{url}/hello")
        assert status == 502 and b"blobstore-fs under" in body and b"Not a directory" in body
        root.unlink()
        away.rename(root)
        assert await acall("GET", f"{url}/hello") == (200, b"hi there")

        # A relative ROOT is refused at link time, and each call says which field and fix.
        bad = blobby_manifest(port, FS, {"ROOT": "relative/blobs"}, version="v0.2.0")
        await wadm.put(yaml.safe_dump(bad))
        await wadm.deploy("blobby")
        body = await until_answers(f"{url}/hello", 502, b"ROOT")
        assert b"target_config ROOT 'relative/blobs' is not an absolute path" in body
        assert b"set ROOT to an absolute directory" in body
        good = blobby_manifest(port, FS, {"ROOT": str(root)}, version="v0.3.0")
        await wadm.put(yaml.safe_dump(good))
        await wadm.deploy("blobby")
        await until_answers(f"{url}/hello", 200, b"hi there")
    shutil.rmtree(root)
