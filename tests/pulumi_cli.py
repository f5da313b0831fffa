"""The real Pulumi CLI on a throwaway project: shared by the end-to-end tests and
benchmarks/preview.py, so both run programs exactly the way `make up` does."""

from __future__ import annotations

import os
from pathlib import Path

from tests.lattice import ROOT

VENV = ROOT / ".tools" / "venv"
PULUMI_BIN = ROOT / ".tools" / "pulumi" / "v3.259.0" / "bin"


def write_project(folder: Path, name: str, program: str) -> Path:
    """A Python project whose language host and wasmcloud provider come from the venv."""
    folder.mkdir(parents=True)
    (folder / "__main__.py").write_text(program)
    (folder / "Pulumi.yaml").write_text(
        f"""name: {name}
runtime:
  name: python
  options:
    toolchain: pip
    virtualenv: {VENV}
plugins:
  languages:
    - name: python
      path: {VENV / "bin"}
  providers:
    - name: wasmcloud
      path: {VENV / "bin"}
"""
    )
    return folder


def cli_environment(workdir: Path, passphrase: str) -> dict[str, str]:
    """A file backend and PULUMI_HOME under ``workdir``: nothing touches ~/.pulumi."""
    (workdir / "backend").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "PATH": f"{PULUMI_BIN}:{VENV / 'bin'}:{os.environ['PATH']}",
        "PULUMI_BACKEND_URL": f"file://{workdir / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE": passphrase,
        "PULUMI_HOME": str(workdir / "pulumi-home"),
        "PULUMI_SKIP_UPDATE_CHECK": "1",
    }
