"""The fault suite reuses the integration tests' real servers (one per test, in its
tmp_path): nats-server with JetStream on disk, redis-server, host and controller processes."""

from tests.integration.conftest import nats_server, processes, redis_server

__all__ = ["nats_server", "processes", "redis_server"]
