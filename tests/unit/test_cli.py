"""The `wasmcloud` command as a user runs it (a real subprocess of the installed script)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COUNTER = ROOT / "examples" / "counter" / "wadm.yaml"
EDGE_CORE = ROOT / "examples" / "placement" / "edge-core.yaml"
EDGE_HOSTS = ROOT / "examples" / "placement" / "hosts.yaml"


def wasmcloud(*args: str | Path) -> subprocess.CompletedProcess[str]:
    script = shutil.which("wasmcloud", path=str(Path(sys.executable).parent))
    assert script, "the wasmcloud console script is not installed in this venv"
    return subprocess.run(
        [script, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def test_validate_valid_manifest_prints_one_summary_line() -> None:
    result = wasmcloud("validate", COUNTER)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{COUNTER}: valid: counter v0.1.0, 3 components, 2 links, 2 warnings"
    ]
    assert "warning: spec.components[0].traits[1].properties.target_config" in result.stderr


def test_validate_invalid_manifest_exits_1_with_one_line_per_error(tmp_path: Path) -> None:
    data = yaml.safe_load(COUNTER.read_text())
    data["spec"]["components"][0]["traits"][0]["properties"]["instances"] = -2
    data["spec"]["components"][2]["traits"][0]["properties"]["target"] = "nothing"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = wasmcloud("validate", bad)
    assert result.returncode == 1
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: spec.components[0].traits[0].properties.instances: must be >= 0 "
        "(fix: use a whole number, 0 or more)"
    ]
    # Structure errors come first; once fixed, the semantic error shows.
    data["spec"]["components"][0]["traits"][0]["properties"]["instances"] = 2
    bad.write_text(yaml.safe_dump(data))
    result = wasmcloud("validate", bad)
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [
        "error: spec.components[2].traits[0].properties.target: link target 'nothing' names no "
        "component in this manifest (fix: name one of: counter, httpserver, kvredis)"
    ]


def test_validate_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = wasmcloud("validate", tmp_path / "nope.yaml")
    assert result.returncode == 1
    assert "cannot read" in result.stderr and "check the path" in result.stderr


def test_plan_prints_a_readable_table() -> None:
    result = wasmcloud("plan", EDGE_CORE, "--hosts", EDGE_HOSTS)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "COMPONENT",
        "KIND",
        "SCALER",
        "HOST",
        "LABELS",
        "INSTANCES",
        "CHANGE",
    ]
    assert [
        "api",
        "component",
        "spreadscaler",
        "edge-use1-a",
        "region=us-east-1,tier=edge",
        "50",
        "+50",
    ] in [line.split() for line in lines]
    assert "285 instance(s) on 5 of 5 host(s); 0 unplaced" in lines


def test_plan_json_shape_with_moves(tmp_path: Path) -> None:
    hosts = yaml.safe_load(EDGE_HOSTS.read_text())
    hosts[0]["running"] = {"api": 50, "cache": 10}
    hosts_file = tmp_path / "hosts.yaml"
    hosts_file.write_text(yaml.safe_dump(hosts))
    result = wasmcloud("plan", EDGE_CORE, "--hosts", hosts_file, "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"placements", "unplaced", "moves"}
    assert document["placements"]["api"] == {"edge-use1-a": 50}
    assert document["unplaced"] == {}
    assert "api" not in document["moves"]  # already where it should be
    # cache was running 10 on edge-use1-a; the edge spread keeps that host at 200
    assert document["moves"]["cache"] == {"edge-use1-a": 190, "core-use1-a": 30}


def test_plan_reports_unplaced_instances(tmp_path: Path) -> None:
    hosts_file = tmp_path / "hosts.yaml"
    hosts_file.write_text("- id: lonely\n  labels: {tier: core}\n")
    result = wasmcloud("plan", EDGE_CORE, "--hosts", hosts_file, "--json")
    document = json.loads(result.stdout)
    assert document["unplaced"] == {"api": 50, "cache": 200, "httpserver": 1, "kv": 1}
    table = wasmcloud("plan", EDGE_CORE, "--hosts", hosts_file).stdout
    assert (
        "! api: no hosts match spread 'us-east-edge' (requirements: region=us-east-1, "
        "tier=edge)" in table
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("id: not-a-list\n", "must be a list of hosts"),
        ("- labels: {a: b}\n", "[0].id: field required (fix: add `id: <host id>`)"),
        ("- id: a\n  labels: {port: 80}\n", "[0].labels.port: input should be a valid string"),
        ("- id: a\n- id: a\n", "[1].id: duplicate host id 'a'"),
        ("- id: a\n  runing: {}\n", "[0].runing: extra inputs are not permitted"),
    ],
)
def test_plan_bad_hosts_file_exits_1_with_clear_message(
    tmp_path: Path, content: str, expected: str
) -> None:
    hosts_file = tmp_path / "hosts.yaml"
    hosts_file.write_text(content)
    result = wasmcloud("plan", COUNTER, "--hosts", hosts_file)
    assert result.returncode == 1
    assert result.stdout == ""
    assert expected in result.stderr, result.stderr
    assert str(hosts_file) in result.stderr


def test_help_explains_commands() -> None:
    result = wasmcloud("plan", "--help")
    assert result.returncode == 0
    assert "HOSTS.yaml is a list of hosts" in " ".join(result.stdout.split())
