from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# --- several workers: `make unit` runs pytest-xdist with --dist loadfile ------------------

_reports: list[tuple[str, float]] = []  # node id, seconds of one phase


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """loadfile, with files that share a resource of this computer in one unit and the
    longest units first (tests/xdist_scheduling.py)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.xdist_scheduling import FileScheduling

    return FileScheduling(config, log)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _reports.append((report.nodeid, report.duration))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Each file's time, for the next run's order; only from a run of whole files (no
    -k or -m) and from the process that saw every report (xdist's controller)."""
    config = session.config
    if hasattr(config, "workerinput") or config.option.keyword or config.option.markexpr:
        return
    from tests.xdist_scheduling import record_durations

    record_durations(config, _reports)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault suite's figures (tests/faults), one line per fault, whichever worker ran
    it: requests served / failed and seconds to converge."""
    from tests.faults.load import FIGURES_PROPERTY

    lines = [
        str(value)
        for reports in terminalreporter.stats.values()
        for report in reports
        # recorded after the test ran: its teardown report carries them
        if getattr(report, "when", None) == "teardown"
        for name, value in getattr(report, "user_properties", ())
        if name == FIGURES_PROPERTY
    ]
    if lines:
        terminalreporter.section("fault suite figures")
        for line in lines:
            terminalreporter.line(line)
