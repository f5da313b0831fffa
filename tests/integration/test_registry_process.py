"""The test registry itself: a real docker-registry that answers the distribution API,
asks for credentials when it has users, and keeps what was pushed across a restart."""

from __future__ import annotations

from pathlib import Path

from tests.registry import RegistryProcess, put_blob


def test_answers_v2_and_keeps_blobs_across_restart(registry: RegistryProcess) -> None:
    assert registry.get_status("/v2/") == 200
    digest = put_blob(registry.url, "probe", b"a component, say")
    assert registry.get_status(f"/v2/probe/blobs/{digest}") == 200

    registry.stop()
    assert registry.get_status("/v2/") is None
    registry.restart()
    assert registry.get_status(f"/v2/probe/blobs/{digest}") == 200


def test_users_must_authenticate(tmp_path: Path) -> None:
    registry = RegistryProcess(tmp_path / "auth", users={"alice": "s3cret"}).start()
    try:
        assert registry.get_status("/v2/") == 401
        assert registry.get_status("/v2/", user="alice") == 200
        registry.users["alice"] = "wrong"
        assert registry.get_status("/v2/", user="alice") == 401
    finally:
        registry.stop()
    # The config names the htpasswd file; the password itself is only there as a hash.
    assert "s3cret" not in (registry.workdir / "config.yml").read_text()
    assert "s3cret" not in (registry.workdir / "htpasswd").read_text()
