"""The bootstrap's tools are real and work: Pulumi CLI, nats-server with JetStream,
wasm-tools and componentize-py."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("TOOLS", ROOT / ".tools"))
VENV_BIN = Path(sys.executable).parent
PULUMI_VERSION = "3.259.0"


def run(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_pulumi_cli_from_tool_folder_prints_v3() -> None:
    pulumi = TOOLS / "pulumi" / f"v{PULUMI_VERSION}" / "bin" / "pulumi"
    assert pulumi.exists(), f"{pulumi} missing: run scripts/bootstrap.sh"
    result = run(pulumi, "version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"v{PULUMI_VERSION}"


def test_nats_server_runs_with_jetstream_on_disk(tmp_path: Path) -> None:
    store = tmp_path / "js"
    server = subprocess.Popen(
        [str(VENV_BIN / "nats-server"), "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = None
        for line in server.stdout:
            match = re.search(r"Listening for client connections on 127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        assert port, "nats-server did not report its client port"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            info_line = conn.makefile("r").readline()
        assert info_line.startswith("INFO ")
        info = json.loads(info_line[5:])
        assert info["jetstream"] is True
        assert (store / "jetstream").is_dir()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_wasm_tools_validates_a_component(tmp_path: Path) -> None:
    wat = tmp_path / "empty.wat"
    wat.write_text("(component)")
    wasm = tmp_path / "empty.wasm"
    assert run(VENV_BIN / "wasm-tools", "parse", wat, "-o", wasm).returncode == 0
    result = run(VENV_BIN / "wasm-tools", "validate", wasm)
    assert result.returncode == 0, result.stderr
    not_wasm = tmp_path / "bad.wasm"
    not_wasm.write_bytes(b"not wasm")
    assert run(VENV_BIN / "wasm-tools", "validate", not_wasm).returncode != 0


def test_componentize_py_is_installed() -> None:
    result = run(VENV_BIN / "componentize-py", "--version")
    assert result.returncode == 0
    assert result.stdout.startswith("componentize-py 0.25.1")
