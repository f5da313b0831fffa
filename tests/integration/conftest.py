"""Real servers for integration tests, one per test, in the test's tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lattice import NatsServer, Processes, RedisServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "jetstream").start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def processes(nats_server: NatsServer, tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(nats_server, tmp_path)
    yield procs
    for proc in reversed(procs.started):
        proc.stop()
