"""The package schema the provider's GetSchema returns: valid under Pulumi's metaschema,
every reference resolving, every property described and typed, and in agreement with the
provider's handlers (every resource type served, the secrets they mark, the properties
whose change replaces). tests/unit/test_schema_cli.py reads it with the real CLI."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pulumi_wasmcloud.provider.provider import HANDLER_CLASSES
from pulumi_wasmcloud.schema.package import (
    CONFIG,
    functions,
    object_types,
    package_schema,
)
from pulumi_wasmcloud.schema.resources import RESOURCES, resource
from pulumi_wasmcloud.schema.types import Property, Type
from pulumi_wasmcloud.schema.validate import Checker


def metaschema() -> dict[str, Any] | None:
    """Pulumi's package metaschema at the CLI's version, from the Go module cache the
    CLI was built from (scripts/build-pulumi.sh); None if this machine has none."""
    version = f"v{importlib.metadata.version('pulumi')}"  # the SDK's pin is the CLI's
    caches = [
        os.environ.get("GOMODCACHE"),
        os.path.join(os.environ.get("GOPATH", os.path.expanduser("~/go")), "pkg", "mod"),
    ]
    for cache in filter(None, caches):
        found = (
            Path(cache) / f"github.com/pulumi/pulumi/pkg/v3@{version}/codegen/schema/pulumi.json"
        )
        if found.is_file():
            # Its patterns name groups as Go does, (?<name>...); Python says (?P<name>...).
            loaded: dict[str, Any] = json.loads(found.read_text().replace("(?<", "(?P<"))
            return loaded
    return None


def test_the_schema_is_valid_under_pulumi_s_metaschema() -> None:
    meta = metaschema()
    if meta is None:
        pytest.skip("no Go module cache with Pulumi's pkg/v3 (scripts/build-pulumi.sh makes it)")
    errors = [
        f"{list(e.absolute_path)}: {e.message[:200]}"
        for e in jsonschema.Draft202012Validator(meta).iter_errors(package_schema())
    ]
    assert errors == []


def test_every_type_reference_resolves() -> None:
    schema = package_schema()
    found: list[tuple[str, str]] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("$ref", "type") and isinstance(value, str):
                    found.append((where, f"{key}={value}"))
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    for part in ("resources", "functions", "types", "config", "provider"):
        walk(schema[part], part)
    allowed = {f"$ref=#/types/{token}" for token in schema["types"]} | {"$ref=pulumi.json#/Any"}
    allowed |= {
        f"type={kind}" for kind in ("string", "integer", "number", "boolean", "array", "object")
    }
    assert [(where, ref) for where, ref in found if ref not in allowed] == []
    assert len(found) > 100


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
