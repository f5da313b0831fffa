"""The provider's schema as the real Pulumi CLI prints and reads it:
``pulumi package get-schema`` and ``pulumi package info`` on the provider plugin."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pulumi_wasmcloud import __version__
from pulumi_wasmcloud.schema.package import functions, schema_json
from pulumi_wasmcloud.schema.resources import RESOURCES
from tests.pulumi_cli import PULUMI_BIN, VENV, cli_environment

PLUGIN = VENV / "bin" / "pulumi-resource-wasmcloud"


def pulumi(workdir: Path, *args: str) -> str:
    done = subprocess.run(
        [str(PULUMI_BIN / "pulumi"), *args],
        cwd=workdir,
        env=cli_environment(workdir, "unused"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_pulumi_package_get_schema_prints_the_schema(tmp_path: Path) -> None:
    printed = json.loads(pulumi(tmp_path, "package", "get-schema", str(PLUGIN)))
    assert printed == json.loads(schema_json())
    assert printed["name"] == "wasmcloud" and printed["version"] == __version__
    assert printed["language"]["python"]["packageName"] == "pulumi_wasmcloud"


def test_pulumi_reads_the_schema_and_lists_every_resource_and_function(tmp_path: Path) -> None:
    # `package info` reads the schema and lists what it has.
    listed = pulumi(tmp_path, "package", "info", str(PLUGIN))
    assert f"Version: {__version__}" in listed
    for item in (*RESOURCES, *functions()):
        assert f" - {item.name}: {item.description[:40]}" in listed, item.name
    lattice = pulumi(
        tmp_path, "package", "info", str(PLUGIN), "--module", "index", "--resource", "Lattice"
    )
    assert " - natsPort (integer): The local NATS server's client port" in lattice
    assert " - credentials (string): " in lattice
