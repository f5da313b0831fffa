"""examples/ci/drift-check.yml: a valid GitHub Actions workflow (GitHub's own schema, as
vendored by check-jsonschema), scheduled, one job per stack of examples/multi-region,
running scripts/drift-check.sh and failing with its exit status; every secret it uses is
explained in examples/ci/README.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "ci" / "drift-check.yml"
README = ROOT / "examples" / "ci" / "README.md"


def workflow() -> dict[Any, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(loaded, dict)
    return loaded


def drift_step() -> dict[str, Any]:
    [step] = [s for s in workflow()["jobs"]["drift"]["steps"] if s.get("name") == "drift check"]
    return dict(step)


def test_the_workflow_is_valid_by_githubs_schema() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_it_runs_on_a_schedule_and_by_hand() -> None:
    triggers = workflow()[True]  # YAML 1.1 reads the key `on` as true
    [schedule] = triggers["schedule"]
    fields = schedule["cron"].split()
    assert len(fields) == 5, schedule
    minute, hour = fields[:2]
    assert re.fullmatch(r"\d+", minute) and 0 <= int(minute) <= 59
    assert hour == "*"
    assert "workflow_dispatch" in triggers


def test_one_job_per_stack_of_the_multi_region_example() -> None:
    job = workflow()["jobs"]["drift"]
    stacks = job["strategy"]["matrix"]["stack"]
    assert stacks == ["dev", "prod"]
    assert job["strategy"]["fail-fast"] is False
    for stack in stacks:
        assert (ROOT / "examples" / "multi-region" / f"Pulumi.{stack}.yaml").is_file()
    run = drift_step()["run"]
    assert 'scripts/drift-check.sh --stack "$STACK" --cwd examples/multi-region' in run
    script = ROOT / "scripts" / "drift-check.sh"
    assert script.is_file() and script.stat().st_mode & 0o111


def test_every_secret_it_uses_is_explained_in_the_readme() -> None:
    used = set(re.findall(r"secrets\.([A-Z_]+)", WORKFLOW.read_text()))
    assert used == {"PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "AWS_ROLE_ARN"}
    readme = README.read_text()
    for secret in used:
        assert f"gh secret set {secret} " in readme, secret
        assert f"- `{secret}`" in readme, secret


@pytest.mark.parametrize("status", [0, 1, 2])
def test_the_step_fails_with_the_checks_status_and_writes_the_summary(
    tmp_path: Path, status: int
) -> None:
    """The step's own shell, with a stand-in for the check (the check itself runs for
    real in tests/integration/test_drift_check.py): the job's result is the check's."""
    (tmp_path / "scripts").mkdir()
    check = tmp_path / "scripts" / "drift-check.sh"
    check.write_text(
        f'#!/bin/sh\necho "drift-check: stack $2: ({status})"\necho why\nexit {status}\n'
    )
    check.chmod(0o755)
    summary = tmp_path / "summary.md"
    done = subprocess.run(
        ["bash", "-e", "-c", drift_step()["run"]],
        cwd=tmp_path,
        env={"STACK": "prod", "GITHUB_STEP_SUMMARY": str(summary), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == status
    assert summary.read_text() == (
        f"### drift check: stack prod\n```\ndrift-check: stack prod: ({status})\nwhy\n```\n"
    )
    if status == 0:
        assert "::error" not in done.stdout
    elif status == 1:
        assert "::error title=stack prod drifted::drift-check: stack prod: (1)" in done.stdout
    else:
        assert "::error title=stack prod could not be checked::why" in done.stdout
