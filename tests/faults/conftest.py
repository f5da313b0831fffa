"""The fault suite reuses the integration tests' real servers (one per test, in its
tmp_path): nats-server with JetStream on disk, redis-server, host and controller processes."""

from collections.abc import Callable, Iterator

import pytest

from tests.faults.load import FIGURES_PROPERTY, REPORTED
from tests.integration.conftest import nats_server, processes, redis_server

__all__ = ["nats_server", "processes", "redis_server"]


@pytest.fixture(autouse=True)
def report_figures(record_property: Callable[[str, object], None]) -> Iterator[None]:
    """The test's figure lines as a report property: the root conftest prints them at the
    end of the run, so `make test` under xdist shows them too."""
    before = len(REPORTED)
    yield
    for line in REPORTED[before:]:
        record_property(FIGURES_PROPERTY, line)
