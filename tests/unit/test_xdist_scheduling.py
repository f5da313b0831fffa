"""How `make unit` spreads test files over two pytest-xdist workers: a file stays in one
worker, files that hold the EC2 test network run in one worker one after another, and
the longest files start first (timed in the last run, else guessed from what they start).
Driven through xdist's own scheduler protocol with two stand-in workers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests import xdist_scheduling
from tests.xdist_scheduling import CACHE_KEY, FileScheduling


class Worker:
    """What the scheduler sees of a worker: it is sent test indexes to run."""

    def __init__(self, name: str, sends: list[tuple[str, list[int]]]) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down = False
        self.sent: list[list[int]] = []
        self.sends = sends  # every worker's, in order

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent.append(indexes)
        self.sends.append((self.gateway.id, indexes))

    def shutdown(self) -> None:
        self.shutting_down = True


class Cache:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def get(self, key: str, default: Any) -> Any:
        return self.values.get(key, default)


FILES = {
    "tests/unit/test_a.py": "from tests.lattice import free_port\n",
    "tests/unit/test_b.py": "import json\n",
    "tests/integration/test_ec2_one.py": "from tests.ec2 import Ec2World\n",
    "tests/integration/test_ec2_two.py": "from tests import ec2, machines\n",
    "tests/integration/test_machines.py": "from tests.machines import booted\n",
    "tests/e2e/test_stack.py": "from tests.pulumi_cli import Stack\n",
}
COLLECTION = [
    "tests/e2e/test_stack.py::test_up",
    "tests/integration/test_ec2_one.py::test_one",
    "tests/integration/test_ec2_two.py::test_two",
    "tests/integration/test_machines.py::test_boot",
    "tests/integration/test_machines.py::test_ssh",
    "tests/unit/test_a.py::test_a1",
    "tests/unit/test_a.py::test_a2",
    "tests/unit/test_b.py::test_b1",
]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for relative, text in FILES.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    monkeypatch.setattr(xdist_scheduling, "ROOT", tmp_path)
    xdist_scheduling._imports.cache_clear()
    yield tmp_path
    xdist_scheduling._imports.cache_clear()


def scheduled(timed: dict[str, Any] | None) -> list[tuple[str, list[str]]]:
    """Which worker is sent which files, in the order they are sent, when every test
    passes as soon as it is sent."""
    values = {"tx": ["2*popen"]}
    config = SimpleNamespace(
        getvalue=values.get,
        option=SimpleNamespace(loadscopereorder=True),
        cache=Cache({CACHE_KEY: timed}) if timed is not None else None,
    )
    scheduler = FileScheduling(config)  # type: ignore[arg-type]
    sends: list[tuple[str, list[int]]] = []
    workers = [Worker("gw0", sends), Worker("gw1", sends)]
    for worker in workers:
        scheduler.add_node(worker)  # type: ignore[arg-type]
        scheduler.add_node_collection(worker, COLLECTION)  # type: ignore[arg-type]
    scheduler.schedule()
    for _ in range(100):
        if scheduler.tests_finished:
            break
        for worker in workers:
            while worker.sent:
                for index in worker.sent.pop(0):
                    scheduler.mark_test_complete(worker, index)  # type: ignore[arg-type]
    return [(name, sorted({COLLECTION[i].split("::")[0] for i in batch})) for name, batch in sends]


def test_files_importing_the_ec2_harness_run_in_one_worker_and_each_file_in_one(
    tree: Path,
) -> None:
    batches = [files for _, files in scheduled(None)]
    ec2 = ["tests/integration/test_ec2_one.py", "tests/integration/test_ec2_two.py"]
    assert ec2 in batches
    everything = [path for batch in batches for path in batch]
    assert sorted(everything) == sorted(FILES)  # each file sent once, whole


def test_never_timed_the_files_that_boot_machines_or_stacks_start_first_unit_files_last(
    tree: Path,
) -> None:
    order = [files for _, files in scheduled(None)]
    # Guessed: the EC2 unit and the machines file (2 tests x 40 s) before the e2e stack
    # (1 x 60 s), and the plain files (0.2 s a test) after all of them.
    assert {tuple(order[0]), tuple(order[1])} == {
        ("tests/integration/test_ec2_one.py", "tests/integration/test_ec2_two.py"),
        ("tests/integration/test_machines.py",),
    }
    assert order[2] == ["tests/e2e/test_stack.py"]
    assert sorted(order[3] + order[4]) == ["tests/unit/test_a.py", "tests/unit/test_b.py"]


def test_files_timed_in_the_last_run_start_longest_first(tree: Path) -> None:
    timed = {path: [1.0, 1] for path in FILES} | {"tests/unit/test_b.py": [500.0, 1]}
    sends = scheduled(timed)
    assert sends[0] == ("gw0", ["tests/unit/test_b.py"])
    # The next longest by the record: the EC2 unit (two files, one second a test each).
    ec2 = ["tests/integration/test_ec2_one.py", "tests/integration/test_ec2_two.py"]
    assert sends[1] == ("gw1", ec2)
