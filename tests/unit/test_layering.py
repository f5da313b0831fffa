"""host_agent is installed on every lattice machine: it must never pull in Pulumi."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import host_agent

PACKAGE_DIR = Path(host_agent.__file__).parent
FORBIDDEN = ("pulumi", "pulumi_wasmcloud")


def test_no_host_agent_module_imports_pulumi_statically() -> None:
    offenders = []
    for path in PACKAGE_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_importing_every_host_agent_module_loads_no_pulumi() -> None:
    # __main__ modules run a program when imported; their imports are checked statically.
    modules = [
        m.name
        for m in pkgutil.walk_packages([str(PACKAGE_DIR)], "host_agent.")
        if not m.name.endswith("__main__")
    ]
    assert "host_agent.placement.planner" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pulumi', 'pulumi_wasmcloud')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_transport_and_providers_do_not_import_the_runtime() -> None:
    # A provider process serves HTTP or keyvalue over wRPC: it needs the interface shapes
    # (host_agent.interfaces), never the component runtime and the wasmtime it loads.
    lower = [PACKAGE_DIR / "wrpc", PACKAGE_DIR / "providers", PACKAGE_DIR / "interfaces"]
    offenders = []
    for folder in lower:
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                offenders += [
                    f"{path}: {n}"
                    for n in names
                    if n == "host_agent.runtime" or n.startswith("host_agent.runtime.")
                ]
    assert offenders == []

    modules = [
        m.name
        for m in pkgutil.walk_packages([str(PACKAGE_DIR)], "host_agent.")
        if m.name.split(".")[1] in ("wrpc", "providers", "interfaces")
        and not m.name.endswith("__main__")
    ]
    assert "host_agent.providers.http_server" in modules
    assert "host_agent.providers.keyvalue_redis" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'wasmtime'"
        " or m.startswith('host_agent.runtime')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_lattice_imports_no_other_host_agent_package() -> None:
    # host_agent/lattice is the wire protocol (subjects, request/reply shapes, clients):
    # the controller, the host and the Pulumi provider all build on it, so it builds on
    # nothing of theirs.
    offenders = []
    for path in (PACKAGE_DIR / "lattice").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                # `from . import x` stays in the package; `from .. import x` leaves it.
                names = [node.module or ""] if node.level == 0 else []
                if node.level > 1:
                    names = ["." * node.level + (node.module or "")]
            offenders += [
                f"{path}: {n}"
                for n in names
                if n.startswith(".")
                or n == "host_agent"
                or (n.startswith("host_agent.") and not n.startswith("host_agent.lattice."))
            ]
    assert offenders == []

    modules = [
        m.name for m in pkgutil.walk_packages([str(PACKAGE_DIR / "lattice")], "host_agent.lattice.")
    ]
    assert "host_agent.lattice.wadm" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.startswith('host_agent.')\n"
        "             and not m.startswith('host_agent.lattice'))\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pulumi_wasmcloud_does_not_import_the_controller() -> None:
    # The provider depends on the control protocol (host_agent.lattice) and the planner's
    # read-only lattice view, never on the controller's modules.
    import pulumi_wasmcloud

    iac_dir = Path(pulumi_wasmcloud.__file__).parent
    offenders = []
    for path in iac_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            offenders += [
                f"{path}: {n}"
                for n in names
                if n == "host_agent.controller" or n.startswith("host_agent.controller.")
            ]
    assert offenders == []

    modules = [
        m.name
        for m in pkgutil.walk_packages([str(iac_dir)], "pulumi_wasmcloud.")
        if not m.name.endswith("__main__")
    ]
    assert "pulumi_wasmcloud.provider.live" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.startswith('host_agent.controller'))\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
