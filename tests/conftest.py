from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry import RegistryProcess

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryProcess]:
    """A real docker-registry on loopback with anonymous access, storage in the test's
    tmp_path. For one that asks for credentials, start
    ``RegistryProcess(tmp_path / "auth-registry", users={"name": "password"})``."""
    server = RegistryProcess(tmp_path / "registry").start()
    yield server
    server.stop()
