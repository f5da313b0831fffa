"""keyvalue-redis after its redis-server is killed and started again: the next call
reconnects instead of failing (what a user's counter does after `kill -9` of Redis)."""

from __future__ import annotations

from pathlib import Path

from host_agent.providers.kv_backends import RedisBackend
from tests.lattice import RedisServer, run_async


@run_async
async def test_the_first_call_after_a_redis_restart_succeeds(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    backend = RedisBackend(server.url)
    try:
        await backend.set("b", "k", b"1")  # a pooled connection now exists
        assert server.proc is not None
        server.proc.kill()
        server.proc.wait()
        server.start()  # same port; the pooled connection is dead
        assert await backend.get("b", "k") is None  # answered (no persistence here)
        await backend.set("b", "k", b"2")
        assert await backend.get("b", "k") == b"2"
    finally:
        await backend.close()
        server.stop()
