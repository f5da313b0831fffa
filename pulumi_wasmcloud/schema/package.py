"""The Pulumi package schema (the JSON ``pulumi package get-schema`` prints), built from
the definitions in resources.py, objects.py and functions.py."""

from __future__ import annotations

import importlib
import json
from typing import Any

from pulumi_wasmcloud import __version__
from pulumi_wasmcloud.schema.objects import OBJECT_TYPES
from pulumi_wasmcloud.schema.resources import RESOURCES
from pulumi_wasmcloud.schema.types import (
    STRING,
    Function,
    ObjectType,
    Property,
    Resource,
    Type,
)

PACKAGE = "wasmcloud"
ANY_REF = "pulumi.json#/Any"

# The provider's own configuration (``wasmcloud:natsUrl`` ... in the stack's config).
CONFIG: tuple[Property, ...] = (
    Property(
        "natsUrl",
        STRING,
        "The lattice's NATS URL, the default `natsUrl` of every resource that does not give one.",
    ),
    Property(
        "lattice",
        STRING,
        "The lattice's name, the default `lattice` of every resource that does not give one.",
    ),
    Property(
        "credentials",
        STRING,
        "The text of a NATS .creds file to connect with, for a lattice whose NATS requires it.",
        secret=True,
    ),
)


def defined_functions() -> Any:
    """The module functions.py (FUNCTIONS, OBJECT_TYPES), None until it exists."""
    try:
        return importlib.import_module("pulumi_wasmcloud.schema.functions")
    except ModuleNotFoundError as error:  # functions.py lands with the invoke handlers
        if error.name != "pulumi_wasmcloud.schema.functions":
            raise
        return None


def functions() -> tuple[Function, ...]:
    """The functions (provider invokes), defined in functions.py."""
    found: tuple[Function, ...] = tuple(getattr(defined_functions(), "FUNCTIONS", ()))
    return found


def object_types() -> tuple[ObjectType, ...]:
    """Every object type: the resources' and the functions' results."""
    return OBJECT_TYPES + tuple(getattr(defined_functions(), "OBJECT_TYPES", ()))


def type_spec(type_: Type) -> dict[str, Any]:
    if type_.kind == "array":
        assert type_.items is not None
        return {"type": "array", "items": type_spec(type_.items)}
    if type_.kind == "map":
        assert type_.items is not None
        return {"type": "object", "additionalProperties": type_spec(type_.items)}
    if type_.kind == "object":
        return {"$ref": f"#/types/{type_.ref}"}
    if type_.kind == "any":
        return {"$ref": ANY_REF}
    return {"type": type_.kind}


def property_spec(prop: Property, as_input: bool = False) -> dict[str, Any]:
    spec = {**type_spec(prop.type), "description": prop.description}
    if (
        as_input
        and prop.default is not None
        and prop.type.kind
        in (
            "string",
            "integer",
            "number",
            "boolean",
        )
    ):
        spec["default"] = prop.default
    if prop.secret:
        spec["secret"] = True
    if prop.replace_on_changes:  # Pulumi's SDK generators read it from the outputs
        spec["replaceOnChanges"] = True
    return spec


def properties_spec(props: tuple[Property, ...], as_input: bool = False) -> dict[str, Any]:
    return {p.name: property_spec(p, as_input) for p in props}


def required(props: tuple[Property, ...]) -> list[str]:
    return [p.name for p in props if p.required]


def resource_spec(resource: Resource) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "description": resource.description,
        "properties": properties_spec(resource.all_properties),
        "inputProperties": properties_spec(resource.inputs, as_input=True),
    }
    if required(resource.inputs):
        spec["requiredInputs"] = required(resource.inputs)
    return spec


def object_spec(object_: ObjectType) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "object",
        "description": object_.description,
        "properties": properties_spec(object_.properties, as_input=True),
    }
    if required(object_.properties):
        spec["required"] = required(object_.properties)
    return spec


def function_spec(function: Function) -> dict[str, Any]:
    def part(props: tuple[Property, ...], as_input: bool) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "object", "properties": properties_spec(props, as_input)}
        if required(props):
            spec["required"] = required(props)
        return spec

    return {
        "description": function.description,
        "inputs": part(function.inputs, as_input=True),
        "outputs": part(function.outputs, as_input=False),
    }


def package_schema() -> dict[str, Any]:
    """The package schema as a dict (json.dumps it for GetSchema)."""
    return {
        "name": PACKAGE,
        "displayName": "wasmCloud",
        "version": __version__,
        "description": "Lattices, hosts and applications of wasmCloud 1.x.",
        "keywords": ["pulumi", "wasmcloud", "webassembly", "category/infrastructure"],
        "license": "Apache-2.0",
        "meta": {"moduleFormat": "(.*)"},
        "config": {"variables": properties_spec(CONFIG)},
        "provider": {
            "description": "The wasmcloud provider; its config gives resources their default "
            "`natsUrl`, `lattice` and `credentials`.",
            "inputProperties": properties_spec(CONFIG, as_input=True),
        },
        "resources": {r.token: resource_spec(r) for r in RESOURCES},
        "functions": {f.token: function_spec(f) for f in functions()},
        "types": {o.token: object_spec(o) for o in object_types()},
        "language": {
            "python": {
                "packageName": "pulumi_wasmcloud",
                "requires": {"pulumi": ">=3.259.0,<4.0.0"},
            }
        },
    }


def schema_json() -> str:
    return json.dumps(package_schema(), indent=2, sort_keys=False)
