"""The package schema: what the provider's GetSchema returns, as the real Pulumi CLI
prints and reads it, and its agreement with the provider's handlers (every resource type
served, the secrets they mark, the properties whose change replaces)."""

from __future__ import annotations

import importlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pulumi_wasmcloud import __version__
from pulumi_wasmcloud.provider.provider import HANDLER_CLASSES
from pulumi_wasmcloud.schema.package import (
    CONFIG,
    functions,
    object_types,
    package_schema,
    schema_json,
)
from pulumi_wasmcloud.schema.resources import RESOURCES, resource
from pulumi_wasmcloud.schema.types import Property, Type
from pulumi_wasmcloud.schema.validate import Checker
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
    # `package info` binds the schema (a malformed one is an error) and lists it.
    listed = pulumi(tmp_path, "package", "info", str(PLUGIN))
    assert f"Version: {__version__}" in listed
    for item in (*RESOURCES, *functions()):
        assert f" - {item.name}: {item.description[:40]}" in listed, item.name
    lattice = pulumi(
        tmp_path, "package", "info", str(PLUGIN), "--module", "index", "--resource", "Lattice"
    )
    assert " - natsPort (integer): The local NATS server's client port" in lattice
    assert " - credentials (string): " in lattice


def every_property() -> list[tuple[str, Property]]:
    found = [(f"config.{p.name}", p) for p in CONFIG]
    for item in (*RESOURCES, *functions()):
        found += [(f"{item.name}.{p.name}", p) for p in item.inputs + item.outputs]
    for object_ in object_types():
        found += [(f"{object_.name}.{p.name}", p) for p in object_.properties]
    return found


def refs(type_: Type) -> list[str]:
    inner = refs(type_.items) if type_.items is not None else []
    return inner + ([type_.ref] if type_.ref else [])


@pytest.mark.parametrize(
    ("where", "prop"), every_property(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_each_property_is_described_typed_and_defaults_to_its_type(
    where: str, prop: Property
) -> None:
    assert prop.description.strip(), f"{where} has no description"
    assert prop.description[0].isupper() or prop.description[0] in '`"', where
    tokens = {o.token for o in object_types()}
    assert set(refs(prop.type)) <= tokens, f"{where} refers to an object type not in the schema"
    if prop.default is not None:
        checker = Checker({o.token: o for o in object_types()}, lambda _: False)
        assert checker.value(prop.default, prop.type, where) == [], where
    assert not (prop.required and prop.default is not None), f"{where}: required with a default"


def test_the_package_schema_has_every_part_with_descriptions() -> None:
    schema: dict[str, Any] = package_schema()
    assert set(schema["resources"]) == set(HANDLER_CLASSES)
    assert set(schema["functions"]) == {f.token for f in functions()} != set()
    for token, spec in (*schema["resources"].items(), *schema["functions"].items()):
        assert spec["description"], token
    # Outputs hold the inputs too, marked like them (secret, replaceOnChanges).
    lattice = schema["resources"]["wasmcloud:index:Lattice"]
    assert lattice["properties"]["stateDir"]["replaceOnChanges"] is True
    assert lattice["properties"]["credentials"]["secret"] is True
    assert lattice["inputProperties"]["natsPort"] == {
        "type": "integer",
        "description": "The local NATS server's client port (a local lattice).",
        "default": 4222,
        "replaceOnChanges": True,
    }
    assert lattice["inputProperties"]["cluster"]["items"] == {
        "$ref": "#/types/wasmcloud:index:SshMachine"
    }
    assert schema["resources"]["wasmcloud:index:Secret"]["requiredInputs"] == ["key", "value"]


def handler_modules() -> dict[str, list[Any]]:
    """Type token -> the handler modules that serve it (a Lattice or Host on machines has
    its own)."""
    served: dict[str, list[Any]] = {}
    for token, where in HANDLER_CLASSES.items():
        module = importlib.import_module(where.split(":")[0])
        served[token] = [module]
    for token, extra in (
        ("wasmcloud:index:Lattice", "pulumi_wasmcloud.provider.machine_lattice"),
        ("wasmcloud:index:Host", "pulumi_wasmcloud.provider.machine_host"),
    ):
        served[token].append(importlib.import_module(extra))
    return served


def test_the_handlers_secrets_and_replacements_are_the_schema_s() -> None:
    for token, modules in handler_modules().items():
        defined = resource(token)
        assert defined is not None
        replace_on: set[str] = set()
        secrets: set[str] = set()
        for module in modules:
            replace_on |= set(module.REPLACE_ON)
            for value in vars(module).values():
                if isinstance(getattr(value, "secrets", None), frozenset):  # a handler class
                    secrets |= value.secrets
        assert secrets == set(defined.secrets), token
        assert replace_on == set(defined.replace_on_changes), token
