"""How ``make unit`` spreads the test files over pytest-xdist's workers (``--dist
loadfile``; tests/conftest.py hands xdist this scheduler).

- A file's tests run in one worker, in order: its module-scoped fixtures (booted machines,
  a Pulumi stack) are made once, as in a serial run.
- Files that hold one resource of this computer for their whole run (tests/ec2.py's
  198.19.0.0/16 network, taken under a file lock) are one unit: one worker runs them one
  after another, instead of the other worker waiting on the lock.
- The units start longest first, so that no long file starts while the other worker runs
  out of work. A file's expected time is what it took a test in the last run on this
  checkout (pytest's cache, written by ``record_durations``) times its tests now; a file
  never timed there (a fresh clone, as CI has) is guessed from what it starts: each of
  its tests counts ``GUESS_SECONDS`` of its kind.
"""

from __future__ import annotations

import re
from collections import OrderedDict, defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

ROOT = Path(__file__).resolve().parent.parent
CACHE_KEY = "pulumi-wasmcloud/file-seconds"
# Modules that own a resource of this computer while any of their tests run, by the group
# their importers share.
EXCLUSIVE_MODULES = {"tests.ec2": "ec2-network (tests/ec2.py: 198.19.0.0/16)"}
# Seconds per test by what the file imports (the first match), for files never timed.
GUESS_SECONDS = (
    (("tests.ec2", "tests.machines", "tests.pulumi_cli"), 40.0),
    (("tests.lattice", "tests.registry", "tests.netns"), 4.0),
)
GUESS_E2E = 60.0  # tests/e2e/: a real stack each
GUESS_OTHER = 0.2


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@cache
def _imports(path: str) -> frozenset[str]:
    """The ``tests.*`` modules a test file imports (read from its text: the controller
    never imports the tests it schedules)."""
    try:
        text = (ROOT / path).read_text()
    except OSError:
        return frozenset()
    found = set(re.findall(r"^\s*from (tests\.\w+) import", text, re.MULTILINE))
    found |= set(re.findall(r"^\s*import (tests\.\w+)", text, re.MULTILINE))
    for names in re.findall(r"^\s*from tests import ([\w, ]+)", text, re.MULTILINE):
        found |= {f"tests.{name.strip()}" for name in names.split(",")}
    return frozenset(found)


def unit_of(path: str) -> str:
    """The unit a test file runs in: its own, or its exclusive resource's group."""
    for module, group in EXCLUSIVE_MODULES.items():
        if module in _imports(path):
            return group
    return path


def guessed_seconds(path: str, tests: int) -> float:
    if path.startswith("tests/e2e/"):
        return tests * GUESS_E2E
    imports = _imports(path)
    for modules, seconds in GUESS_SECONDS:
        if imports.intersection(modules):
            return tests * seconds
    return tests * GUESS_OTHER


class FileScheduling(LoadScopeScheduling):
    """xdist's ``loadfile`` with exclusive groups and longest-first units."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
        cached = cache.get(CACHE_KEY, {}) if cache is not None else {}
        # path -> [seconds, tests] of its last whole run
        self.timed: dict[str, Any] = cached if isinstance(cached, dict) else {}
        self.longest_first = False

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(file_of(nodeid))

    def expected(self, unit: dict[str, bool]) -> float:
        """A unit's expected seconds."""
        tests: dict[str, int] = defaultdict(int)
        for nodeid in unit:
            tests[file_of(nodeid)] += 1
        total = 0.0
        for path, count in tests.items():
            match self.timed.get(path):
                case [float(seconds), int(timed)] if timed > 0:
                    total += seconds / timed * count
                case _:
                    total += guessed_seconds(path, count)
        return total

    def _assign_work_unit(self, node: Any) -> None:
        # xdist fills its queue (collection order, or most tests first) and then assigns
        # the first units: reorder it, once, before that.
        if not self.longest_first:
            ordered = sorted(self.workqueue.items(), key=lambda unit: -self.expected(unit[1]))
            self.workqueue = OrderedDict(ordered)
            self.longest_first = True
        super()._assign_work_unit(node)


def record_durations(config: pytest.Config, reports: list[tuple[str, float]]) -> None:
    """Keep each file's time and number of tests of this run (from its tests' reports:
    node id, seconds of a phase) for the next run's order; other files keep theirs."""
    cache = getattr(config, "cache", None)
    if cache is None or not reports:
        return
    seconds: dict[str, float] = defaultdict(float)
    tests: dict[str, set[str]] = defaultdict(set)
    for nodeid, duration in reports:
        seconds[file_of(nodeid)] += duration
        tests[file_of(nodeid)].add(nodeid)
    cached = cache.get(CACHE_KEY, {})
    merged = {**(cached if isinstance(cached, dict) else {})}
    merged |= {path: [seconds[path], len(tests[path])] for path in seconds}
    cache.set(CACHE_KEY, merged)
