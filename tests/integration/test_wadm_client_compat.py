"""wadm-client 0.7 (the library behind wash 0.36's `wash app` commands) drives our
controller: put, deploy, list (the deprecated `model.list`), status, get, versions,
undeploy and delete, decoded with wadm-types' own serde shapes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.lattice import NatsServer, Processes, RedisServer, counter_manifest, free_port

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(os.environ.get("TOOLS", ROOT / ".tools")) / "wadm-probe" / "release" / "wadm-probe"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not PROBE.exists(),
        reason=f"wadm-probe not built ({PROBE}); run bash scripts/build-wadm-probe.sh",
    ),
    pytest.mark.timeout(180),
]


def probe(server: NatsServer, *args: str, ok: bool = True) -> Any:
    result = subprocess.run(
        [str(PROBE), server.url, "default", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if not ok:
        assert result.returncode != 0
        return result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def wait_deployed(server: NatsServer, app: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = probe(server, "status", app)
        if status["status"]["type"] == "deployed":
            return status
        time.sleep(0.2)
    raise AssertionError(f"{app} never deployed: {status}")


def test_wadm_client_runs_the_tutorial_app_lifecycle(
    nats_server: NatsServer, redis_server: RedisServer, processes: Processes, tmp_path: Path
) -> None:
    import yaml

    processes.host()
    processes.controller()
    manifest = tmp_path / "wadm.yaml"
    manifest.write_text(yaml.safe_dump(counter_manifest(redis_server.url, free_port())))
    for _ in range(100):  # the controller is still starting
        if subprocess.run([str(PROBE), nats_server.url, "default", "list"],
                          capture_output=True, check=False).returncode == 0:  # fmt: skip
            break
        time.sleep(0.1)

    assert probe(nats_server, "put", str(manifest)) == {"name": "counter", "version": "v0.1.0"}
    assert "already exists" in probe(nats_server, "put", str(manifest), ok=False)
    assert probe(nats_server, "deploy", "counter") == {"name": "counter", "version": "v0.1.0"}
    status = wait_deployed(nats_server, "counter")
    kinds = {scaler["kind"] for scaler in status["scalers"]}
    assert {"SpreadScaler", "LinkScaler", "ConfigScaler"} <= kinds

    [summary] = probe(nats_server, "list")
    assert summary["name"] == "counter"
    assert summary["deployed_version"] == "v0.1.0"
    assert summary["detailed_status"]["status"]["type"] == "deployed"
    assert probe(nats_server, "get", "counter")["metadata"]["name"] == "counter"
    assert probe(nats_server, "versions", "counter") == [{"version": "v0.1.0", "deployed": True}]

    assert probe(nats_server, "undeploy", "counter") == {"name": "counter"}
    [summary] = probe(nats_server, "list")
    assert summary["deployed_version"] is None
    assert probe(nats_server, "delete", "counter") == {"deleted": True}
    assert probe(nats_server, "list") == []
