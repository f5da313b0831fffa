"""The drift check's summary and exit status from `pulumi preview --refresh
--expect-no-changes --json` output (pulumi_wasmcloud/drift.py). The documents have the
shape Pulumi 3.259 prints (trimmed to what the summary reads); tests/integration/
test_drift_check.py runs the real CLI on a real lattice."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pulumi_wasmcloud import drift
from pulumi_wasmcloud.drift import CANNOT_CHECK, DRIFTED, IN_SYNC, judge, parse_path

PREFIX = "urn:pulumi:dev::wasmcloud-multi-region::"
STACK = f"{PREFIX}pulumi:pulumi:Stack::wasmcloud-multi-region-dev"
LATTICE = f"{PREFIX}wasmcloud:index:Lattice::lattice"
HOST = f"{PREFIX}wasmcloud:index:Host::core-1-host"
APP = f"{PREFIX}wasmcloud:index:Application::counter"
PROVIDER = f"{PREFIX}pulumi:providers:wasmcloud::default"


def refreshed(*urns: str) -> list[dict[str, Any]]:
    return [{"op": "refresh", "urn": urn, "detailedDiff": None} for urn in urns]


def preview(steps: list[dict[str, Any]], diagnostics: list[dict[str, Any]] | None = None) -> str:
    document: dict[str, Any] = {"config": {}, "steps": steps, "duration": 1}
    if diagnostics is not None:
        document["diagnostics"] = diagnostics
    return json.dumps(document)


def update(urn: str, kind: str, diffs: dict[str, str], live: dict[str, Any], desired: Any) -> dict:
    return {
        "op": "update",
        "urn": urn,
        "oldState": {"urn": urn, "type": kind, "inputs": desired, "outputs": live},
        "newState": {"urn": urn, "type": kind, "inputs": desired},
        "diffReasons": sorted({path.split(".")[0].split("[")[0] for path in diffs}),
        "detailedDiff": {path: {"kind": k, "inputDiff": False} for path, k in diffs.items()},
    }


ALL = refreshed(STACK, LATTICE, HOST, APP)


def test_a_clean_stack_is_in_sync_and_counts_the_resources_read() -> None:
    verdict = judge(preview([*ALL, {"op": "same", "urn": STACK}]))
    assert verdict.status == IN_SYNC
    # The stack itself is not one of the resources read.
    assert (
        verdict.summary("stack dev")
        == "drift-check: stack dev: in sync (exit 0): 3 resource(s) read"
    )


def test_a_hand_scaled_component_names_the_application_and_the_instances() -> None:
    placement = {"counter": {"core-1": 3}, "httpserver": {"edge-1": 1}}
    scaled = {"counter": {"core-1": 5}, "httpserver": {"edge-1": 1}}
    step = update(
        APP,
        "wasmcloud:index:Application",
        {'placement.counter["core-1"]': "update"},
        {"placement": scaled, "status": "deployed"},
        {"placement": placement, "status": "deployed"},
    )
    verdict = judge(preview([*ALL, step]), "error: no changes were expected", 7)
    assert verdict.status == DRIFTED
    assert verdict.summary("stack dev").splitlines() == [
        "drift-check: stack dev: drifted (exit 1): 1 of 3 resource(s) differ from the code; "
        "`pulumi up` repairs them",
        "  wasmcloud:index:Application counter: differs: would be updated",
        '    placement.counter["core-1"]: 5 => 3',
    ]


def test_a_stopped_host_names_the_host_and_running() -> None:
    step = update(
        HOST, "wasmcloud:index:Host", {"running": "update"}, {"running": False}, {"running": True}
    )
    summary = judge(preview([*ALL, step]), "", 7).summary("stack dev")
    assert "  wasmcloud:index:Host core-1-host: differs: would be updated" in summary
    assert "    running: false => true" in summary


def test_added_and_removed_properties_and_long_values() -> None:
    manifest = {"spec": {"components": [{"name": "counter", "image": "x" * 300}]}}
    step = update(
        HOST,
        "wasmcloud:index:Host",
        {"labels.zone": "add", "labels.old": "delete", "manifest": "update"},
        {"labels": {"old": "1"}, "manifest": manifest},
        {"labels": {"zone": "blue"}, "manifest": {}},
    )
    summary = judge(preview([*ALL, step])).summary("s")
    assert '    labels.zone: missing, wanted "blue"' in summary
    assert '    labels.old: "1", not wanted' in summary
    [line] = [line for line in summary.splitlines() if "manifest:" in line]
    assert line.endswith("... => {}") and len(line) < 2 * drift.VALUE_WIDTH


def test_a_resource_gone_from_the_lattice_would_be_created() -> None:
    step = {
        "op": "create",
        "urn": APP,
        "newState": {"urn": APP, "type": "wasmcloud:index:Application", "inputs": {}},
    }
    verdict = judge(preview([*ALL, step]), "", 7)
    assert verdict.status == DRIFTED
    assert "wasmcloud:index:Application counter: missing: would be created" in verdict.summary("s")


def test_an_unreachable_lattice_cannot_be_checked_and_says_why_per_resource() -> None:
    reason = "cannot reach NATS at nats://198.18.0.1:4222: no servers available"
    diagnostics = [
        {"urn": HOST, "message": f"error: Preview failed: {reason}\n", "severity": "error"},
        {"message": "error: preview failed\n", "severity": "error"},
    ]
    verdict = judge(preview(refreshed(STACK, LATTICE), diagnostics), "", 1)
    assert verdict.status == CANNOT_CHECK
    assert verdict.summary("stack prod").splitlines() == [
        "drift-check: stack prod: could not check (exit 2)",
        f"  wasmcloud:index:Host core-1-host: {reason}",
    ]


def test_an_error_wins_over_drift_seen_elsewhere() -> None:
    step = update(LATTICE, "wasmcloud:index:Lattice", {"running": "update"}, {"running": False}, {})
    diagnostics = [{"urn": APP, "message": "error: Preview failed: boom\n", "severity": "error"}]
    assert judge(preview([*ALL, step], diagnostics), "", 1).status == CANNOT_CHECK


def test_pulumi_failing_before_the_preview_cannot_be_checked_with_its_words() -> None:
    stderr = "error: getting stack configuration: incorrect passphrase\n"
    verdict = judge("", stderr, 255)
    assert verdict.status == CANNOT_CHECK
    assert verdict.summary("stack dev").splitlines()[1] == (
        "  getting stack configuration: incorrect passphrase"
    )
    assert judge("not json", "", 3).summary("s").endswith("  not json")
    assert judge("", "", 9).summary("s").endswith("  pulumi exited with status 9")


def test_a_failed_exit_without_changes_or_errors_is_not_called_in_sync() -> None:
    verdict = judge(preview(ALL), "error: something Pulumi said\n", 255)
    assert verdict.status == CANNOT_CHECK
    assert "something Pulumi said" in verdict.summary("s")


def test_provider_notes_and_warnings_are_shown() -> None:
    step = update(LATTICE, "wasmcloud:index:Lattice", {"running": "update"}, {"running": False}, {})
    diagnostics = [
        {"urn": LATTICE, "message": "nats-server service: start on core-3\n", "severity": "info"},
        {"urn": HOST, "message": "warning: slow answer\n", "severity": "warning"},
    ]
    summary = judge(preview([*ALL, step], diagnostics), "", 7).summary("s")
    assert "    provider: nats-server service: start on core-3" in summary
    assert "  warning: wasmcloud:index:Host core-1-host: slow answer" in summary


def test_provider_refreshes_and_reads_are_not_drift() -> None:
    steps = [*refreshed(PROVIDER), *ALL, {"op": "read", "urn": HOST}, {"op": "same", "urn": APP}]
    verdict = judge(preview(steps))
    assert verdict.status == IN_SYNC and verdict.checked == 3


def test_property_paths() -> None:
    assert parse_path('placement.counter["e2e-core"]') == ["placement", "counter", "e2e-core"]
    assert parse_path('labels["a.b"].x[2]') == ["labels", "a.b", "x", 2]
    assert parse_path("running") == ["running"]


def test_the_script_runs_the_module_by_path_with_the_standard_library_only() -> None:
    source = Path(drift.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported


def test_the_command_line_prints_the_summary_and_exits_with_the_status(tmp_path: Path) -> None:
    out, err = tmp_path / "out.json", tmp_path / "err.txt"
    out.write_text(preview(ALL))
    err.write_text("")
    done = subprocess.run(
        [sys.executable, "-I", drift.__file__, "--stack", "stack dev", str(out), str(err), "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (
        0,
        "drift-check: stack dev: in sync (exit 0): 3 resource(s) read\n",
    )
