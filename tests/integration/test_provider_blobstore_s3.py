"""blobstore-s3 end to end against moto's real S3 server: the blobby example (the same build
as on blobstore-fs, only the provider and the link's config changed) deployed by the
controller from its wadm manifest on a local lattice; objects landing in the aliased bucket;
the S3 server killed and started again; a mistyped StorageConfig field named with its fix."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3  # type: ignore[import-untyped]
import pytest
import yaml

from host_agent.lattice.wadm_types import StatusType
from tests.blobstore import acall, blobby_manifest, until_answers
from tests.integration.test_controller import clients, wait_status
from tests.lattice import NatsServer, Processes, free_port, run_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

S3 = "ghcr.io/wasmcloud/blobstore-s3:0.11.1"
KEYS = {"access_key_id": "test", "secret_access_key": "test", "region": "us-east-1"}


class S3Server:
    """moto's S3 server (``moto_server``) on a fixed loopback port, so it can come back
    where the provider looks for it. Its data lives in memory: a restart empties it."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> S3Server:
        server = Path(sys.executable).with_name("moto_server")
        self.proc = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                assert self.proc.poll() is None, f"moto_server exited; see {self.log}"
                time.sleep(0.1)  # moto is still importing: nothing listens yet
        raise AssertionError(f"moto_server did not listen on {self.port}; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def client(self) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    server = S3Server(free_port(), tmp_path / "moto.log").start()
    yield server
    server.stop()


def s3_config(server: S3Server, **fields: object) -> dict[str, str]:
    return {
        "config_json": json.dumps({"endpoint": server.endpoint, **KEYS, **fields}),
        "alias_blobby": "blobby-bucket",  # the component's container, in this bucket
    }


@run_async
async def test_blobby_on_blobstore_s3(
    nats_server: NatsServer, processes: Processes, s3: S3Server
) -> None:
    processes.host()
    processes.controller()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with clients(nats_server) as (wadm, _):
        await wadm.put(yaml.safe_dump(blobby_manifest(port, S3, s3_config(s3))))
        await wadm.deploy("blobby")
        await wait_status(wadm, "blobby", StatusType.DEPLOYED, timeout=120)
        await until_answers(f"{url}/", 200)

        big = os.urandom(700 * 1024 + 17)
        assert await acall("PUT", f"{url}/hello", b"hi there") == (
            201,
            b"stored hello (8 bytes)\n",
        )
        assert await acall("PUT", f"{url}/big", big) == (201, b"stored big (716817 bytes)\n")
        assert await acall("GET", f"{url}/big") == (200, big)
        assert await acall("GET", f"{url}/") == (200, b"big\nhello\n")
        stored = s3.client().get_object(Bucket="blobby-bucket", Key="big")  # type: ignore[attr-defined]
        assert stored["Body"].read() == big  # really in S3, in the aliased bucket
        assert await acall("DELETE", f"{url}/big") == (200, b"deleted big\n")
        assert await acall("GET", f"{url}/big") == (404, b"no object big\n")

        # S3 goes down: the component hears which endpoint does not answer, the host and
        # provider keep running; S3 comes back (empty: moto keeps data in memory) and the
        # next calls work again.
        s3.stop()
        status, body = await acall("GET", f"{url}/hello")
        assert status == 502, body
        assert f"cannot reach {s3.endpoint}".encode() in body and b"S3 server running" in body
        s3.start()
        assert await acall("PUT", f"{url}/hello", b"back") == (201, b"stored hello (4 bytes)\n")
        assert await acall("GET", f"{url}/hello") == (200, b"back")

        # A StorageConfig field of the wrong type is refused at link time, named with the fix.
        bad = s3_config(s3, max_attempts="3")
        await wadm.put(yaml.safe_dump(blobby_manifest(port, S3, bad, version="v0.2.0")))
        await wadm.deploy("blobby")
        body = await until_answers(f"{url}/hello", 502, b"max_attempts")
        assert b"target_config config_json field 'max_attempts'" in body
        assert b'"max_attempts": 3, a number not a string' in body
        good = blobby_manifest(port, S3, s3_config(s3), version="v0.3.0")
        await wadm.put(yaml.safe_dump(good))
        await wadm.deploy("blobby")
        await until_answers(f"{url}/hello", 200, b"back")
