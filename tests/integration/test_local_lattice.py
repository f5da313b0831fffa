"""`wasmcloud up` / `wasmcloud down`: the README's main job on its own ports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from host_agent.local.supervisor import ManagedProcess
from tests.lattice import free_port, http_get

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]


def wasmcloud(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "wasmcloud"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_up_deploys_the_counter_reuses_on_rerun_and_down_stops_everything(tmp_path: Path) -> None:
    http_port = free_port()
    manifest = tmp_path / "counter.yaml"
    text = (ROOT / "examples" / "counter" / "wadm.yaml").read_text()
    manifest.write_text(text.replace("127.0.0.1:8080", f"127.0.0.1:{http_port}"))
    redis_port = free_port()
    manifest.write_text(manifest.read_text().replace("127.0.0.1:6379", f"127.0.0.1:{redis_port}"))
    state = tmp_path / "state"
    ports = ["--state-dir", str(state), "--nats-port", str(free_port()),
             "--redis-port", str(redis_port)]  # fmt: skip
    try:
        first = wasmcloud("up", "--manifest", str(manifest), *ports)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "started nats-server" in first.stdout
        assert "counter: deployed" in first.stdout
        assert f"curl http://127.0.0.1:{http_port}/hello" in first.stdout
        url = f"http://127.0.0.1:{http_port}"
        assert http_get(f"{url}/hello") == (200, b"hello -> 1")
        assert http_get(f"{url}/hello") == (200, b"hello -> 2")
        assert http_get(f"{url}/world") == (200, b"world -> 1")

        second = wasmcloud("up", "--manifest", str(manifest), *ports)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "reusing nats-server" in second.stdout
        assert "already stored" in second.stdout
        assert http_get(f"{url}/hello") == (200, b"hello -> 3")  # same Redis, same count
    finally:
        down = wasmcloud("down", *ports)
    assert down.returncode == 0
    assert "stopped nats-server" in down.stdout
    for name in ("nats-server", "redis-server", "host"):
        assert not ManagedProcess(name, state).running()
    with pytest.raises(OSError):
        http_get(f"{url}/hello")


def test_up_refuses_a_port_it_does_not_own(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = wasmcloud("up", "--state-dir", str(tmp_path), "--nats-port", str(port))
    assert result.returncode == 1
    assert f"port {port} is taken by a process this command did not start" in result.stderr
    assert "--nats-port" in result.stderr
