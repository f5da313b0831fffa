"""Who may import whom. Each rule is checked twice: statically (every import statement in
the package's files, so a lazy import inside a function counts) and at runtime (import
every module in a fresh interpreter, then look at ``sys.modules``, so an indirect import
through a third package counts)."""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Rule:
    why: str
    packages: tuple[str, ...]  # the modules under these packages are checked
    forbidden: tuple[str, ...]  # ...and may import none of these (or their submodules)
    allowed: tuple[str, ...]  # ...except these (or their submodules)
    sentinel: str  # a module the walk must find, so an empty walk cannot pass

    def breaks(self, name: str) -> bool:
        def under(prefixes: tuple[str, ...]) -> bool:
            return any(name == p or name.startswith(p + ".") for p in prefixes)

        return under(self.forbidden) and not under(self.allowed)


RULES = {
    # host_agent is installed on every lattice machine: it must never pull in Pulumi.
    "host_agent-without-pulumi": Rule(
        why="host_agent runs on lattice machines without Pulumi",
        packages=("host_agent",),
        forbidden=("pulumi", "pulumi_wasmcloud"),
        allowed=(),
        sentinel="host_agent.placement.planner",
    ),
    # A provider process serves HTTP or keyvalue over wRPC: it needs the interface shapes
    # (host_agent.interfaces), never the component runtime and the wasmtime it loads.
    "transport-and-providers-without-runtime": Rule(
        why="provider processes must not load the component runtime (wasmtime)",
        packages=("host_agent.wrpc", "host_agent.providers", "host_agent.interfaces"),
        forbidden=("host_agent.runtime", "wasmtime"),
        allowed=(),
        sentinel="host_agent.providers.keyvalue_redis",
    ),
    # host_agent/lattice is the wire protocol (subjects, request/reply shapes, clients):
    # the controller, the host and the Pulumi provider all build on it, so it builds on
    # nothing of theirs. Certificate checks (security.tls, which imports only
    # `cryptography`) are the one exception: a TLS connection is part of the wire.
    "lattice-stands-alone": Rule(
        why="host_agent.lattice is the protocol everything else builds on",
        packages=("host_agent.lattice",),
        forbidden=("host_agent",),
        allowed=("host_agent.lattice", "host_agent.security.tls"),
        sentinel="host_agent.lattice.wadm",
    ),
    # The provider depends on the control protocol (host_agent.lattice) and the planner's
    # read-only lattice view, never on the controller's modules.
    "provider-without-controller": Rule(
        why="pulumi_wasmcloud talks to the controller over the wadm API only",
        packages=("pulumi_wasmcloud",),
        forbidden=("host_agent.controller",),
        allowed=(),
        sentinel="pulumi_wasmcloud.provider.live",
    ),
}


def package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, package
    return Path(next(iter(spec.submodule_search_locations)))


def modules_of(package: str) -> list[str]:
    """Every module of ``package``; ``__main__`` modules run a program when imported, so
    only the static check covers them."""
    walked = pkgutil.walk_packages([str(package_dir(package))], f"{package}.")
    return [package] + [m.name for m in walked if not m.name.endswith("__main__")]


def imported_names(path: Path, module: str) -> list[str]:
    """What ``path`` (module ``module``) imports, as absolute dotted names; for
    ``from x import y`` both ``x`` and ``x.y`` (y may be a submodule)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_no_import_statement_breaks_the_rule(rule: Rule) -> None:
    offenders, seen = [], set()
    for package in rule.packages:
        root = package_dir(package)
        for path in sorted(root.rglob("*.py")):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            seen.add(module)
            offenders += [f"{path}: {n}" for n in imported_names(path, module) if rule.breaks(n)]
    assert rule.sentinel in seen
    assert offenders == [], rule.why


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_importing_every_module_loads_nothing_forbidden(rule: Rule) -> None:
    modules = [m for package in rule.packages for m in modules_of(package)]
    assert rule.sentinel in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"forbidden, allowed = {rule.forbidden!r}, {rule.allowed!r}\n"
        "def under(name, prefixes):\n"
        "    return any(name == p or name.startswith(p + '.') for p in prefixes)\n"
        "bad = sorted(m for m in sys.modules if under(m, forbidden) and not under(m, allowed)\n"
        "             and not any(c.startswith(m + '.') for c in allowed))\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, f"{rule.why}: {result.stdout}{result.stderr}"
