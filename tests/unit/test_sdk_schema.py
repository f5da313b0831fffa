"""The Python SDK agrees with the schema: every argument is a schema input of the same
type (or a resource whose outputs give inputs, or one of the SDK's own arguments it says
it has), documented; every schema input is sent by some use of the SDK; every schema
output is an output property of the matching type, and every output property reads a
schema property of its type. Pulumi's own mocks stand in for the engine (no provider
runs): what the SDK registers is what the engine would get."""

from __future__ import annotations

import asyncio
import collections.abc
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pytest
from pulumi import _types as pulumi_types

import pulumi_wasmcloud as wasmcloud
from pulumi_wasmcloud import functions as sdk_functions
from pulumi_wasmcloud.resources import OutputProperty
from pulumi_wasmcloud.schema import package
from pulumi_wasmcloud.schema.resources import RESOURCES
from pulumi_wasmcloud.schema.types import Function, ObjectType, Property, Resource, Type, snake_case

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot really\n-----END OPENSSH PRIVATE KEY-----\n"


# pulumi.Input[T] is Union[T, Awaitable[T], "Output[T]"]: its forward reference resolves
# with these (the Output part is dropped below; T's value does not matter).
PULUMI_NAMES = {"Output": pulumi.Output, "T": type(None)}


def fake(type_: Type) -> Any:
    """A value of ``type_`` (what the engine hands back for an output)."""
    return {
        "string": "x",
        "integer": 1,
        "number": 1.5,
        "boolean": True,
        "array": [],
        "map": {},
        "object": {},
        "any": {},
    }[type_.kind]


class Engine(pulumi.runtime.Mocks):
    """Records what each resource is registered with; its outputs are its inputs plus a
    value of the schema's type for every other property."""

    def __init__(self) -> None:
        self.registered: dict[str, list[dict[str, Any]]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered.setdefault(args.typ, []).append(dict(args.inputs))
        outputs = dict(args.inputs)
        defined = next((r for r in RESOURCES if r.token == args.typ), None)
        for prop in defined.all_properties if defined else ():
            outputs.setdefault(prop.name, fake(prop.type))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []


@pytest.fixture
def engine() -> Iterator[Engine]:
    # Pulumi's test runner takes the thread's current event loop; an earlier test's
    # asyncio.run() in this process leaves none set, so give it its own.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    mocks = Engine()
    pulumi.runtime.set_mocks(mocks, preview=False)
    yield mocks
    asyncio.set_event_loop(None)
    loop.close()


def sdk_class(resource: Resource) -> type[pulumi.CustomResource]:
    found: type[pulumi.CustomResource] = getattr(wasmcloud, resource.name)
    return found


# -- types ---------------------------------------------------------------------------------


def plain_hint(hint: Any) -> Any:
    """``hint`` without ``None`` and without what ``pulumi.Input[T]`` adds to ``T``
    (``Awaitable[T]``, ``Output[T]``)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kept = [
            arg
            for arg in typing.get_args(hint)
            if arg is not type(None)
            and typing.get_origin(arg) not in (collections.abc.Awaitable, pulumi.Output)
        ]
        return kept[0] if len(kept) == 1 else typing.Union[tuple(kept)]  # noqa: UP007
    return hint


def matches(hint: Any, type_: Type) -> bool:
    """Whether the Python type ``hint`` is the schema's ``type_``."""
    hint = plain_hint(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if type_.kind == "any":
        return hint is Any
    if type_.kind in ("string", "integer", "number", "boolean"):
        return bool(
            hint is {"string": str, "integer": int, "number": float, "boolean": bool}[type_.kind]
        )
    assert type_.items is not None or type_.ref is not None
    if type_.kind == "array":
        assert type_.items is not None
        sequence = origin in (list, tuple, collections.abc.Sequence)
        return sequence and len(args) >= 1 and matches(args[0], type_.items)
    if type_.kind == "map":
        assert type_.items is not None
        mapping = origin in (dict, collections.abc.Mapping)
        return mapping and args[0] is str and matches(args[1], type_.items)
    # An object type: the SDK's class of that name, else a plain map.
    assert type_.ref is not None
    name = type_.ref.rsplit(":", 1)[-1]
    for module in (wasmcloud, sdk_functions):
        if inspect.isclass(getattr(module, name, None)):
            return bool(hint is getattr(module, name))
    return origin in (dict, collections.abc.Mapping) and args == (str, Any)


def signature_of(target: Any) -> Any:
    """A class's ``__init__``, or a function itself."""
    return target.__init__ if inspect.isclass(target) else target


def arguments(target: Any) -> dict[str, inspect.Parameter]:
    skipped = ("self", "resource_name", "opts")
    params = inspect.signature(signature_of(target)).parameters
    return {name: p for name, p in params.items() if name not in skipped}


def is_resource(hint: Any) -> bool:
    hint = plain_hint(hint)
    return inspect.isclass(hint) and issubclass(hint, pulumi.Resource)


def argument_problems(cls: Any, inputs: tuple[Property, ...]) -> list[str]:
    hints = typing.get_type_hints(signature_of(cls), localns=PULUMI_NAMES)
    by_python = {p.python: p for p in inputs}
    own = getattr(cls, "sdk_arguments", frozenset())
    documented = inspect.getdoc(signature_of(cls)) or ""
    problems = []
    for name in arguments(cls):
        under_args = re.search(rf"^\s*{name}: \S", documented.split("Args:", 1)[-1], re.M)
        if not under_args and f":param {name}:" not in documented:
            problems.append(f"{cls.__name__}({name}=...) is not documented")
        if is_resource(hints[name]) or name in own:
            continue  # gives inputs from a resource's outputs, or builds one (manifest)
        prop = by_python.get(name)
        if prop is None:
            problems.append(f"{cls.__name__}({name}=...) is no input of the schema")
        elif not matches(hints[name], prop.type):
            problems.append(
                f"{cls.__name__}({name}=...) is {hints[name]}; the schema says "
                f"{prop.type.describe()}"
            )
    return problems


def output_problems(cls: type, resource: Resource) -> list[str]:
    declared = {
        name: value for name, value in vars(cls).items() if isinstance(value, OutputProperty)
    }
    by_name = {p.name: p for p in resource.all_properties}
    problems = []
    for name, output in declared.items():
        prop = by_name.get(output.key)
        hint = output.python_type
        if prop is None:
            problems.append(f"{cls.__name__}.{name} reads {output.key}, not in the schema")
        elif not matches(hint, prop.type):
            problems.append(
                f"{cls.__name__}.{name} is Output[{hint}]; the schema says {prop.type.describe()}"
            )
    for prop in resource.outputs:
        output = declared.get(prop.python)
        if output is None or output.key != prop.name:
            problems.append(f"{cls.__name__} has no output property {prop.python} ({prop.name})")
    return problems


# -- the checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.name)
def test_each_argument_is_a_schema_input_of_its_type(resource: Resource) -> None:
    assert argument_problems(sdk_class(resource), resource.inputs) == []


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.name)
def test_each_output_is_an_output_property_of_its_type(resource: Resource) -> None:
    assert output_problems(sdk_class(resource), resource) == []


def test_the_provider_s_arguments_are_its_config() -> None:
    assert argument_problems(wasmcloud.Provider, package.CONFIG) == []
    assert {p.python for p in package.CONFIG} == set(arguments(wasmcloud.Provider))


@pytest.mark.parametrize("name", ["SshMachine", "LeafNode"])
@pulumi.runtime.test
def test_machine_classes_are_their_object_types(engine: Engine, name: str) -> None:
    # (in a program: to_input marks the key secret, an Output)
    object_ = next(o for o in package.object_types() if o.name == name)
    cls = getattr(wasmcloud, name)
    assert argument_problems(cls, object_.properties) == []
    assert {p.python for p in object_.properties} == set(arguments(cls))
    machine = wasmcloud.SshMachine("m", host="198.18.0.2", private_key=KEY)
    made = machine if name == "SshMachine" else wasmcloud.LeafNode("edge", machine)
    assert set(made.to_input()) == {p.name for p in object_.properties}


def result_problems(cls: type, props: tuple[Property, ...], seen: set[str]) -> list[str]:
    """An output type (a function's result, an object in it) against its properties."""
    typed = pulumi_types.output_type_types(cls)
    by_name = {p.name: p for p in props}
    problems = [f"{cls.__name__}.{key} is not in the schema" for key in set(typed) - set(by_name)]
    problems += [f"{cls.__name__} has no {key}" for key in set(by_name) - set(typed)]
    for key in set(typed) & set(by_name):
        if not matches(typed[key], by_name[key].type):
            problems.append(
                f"{cls.__name__}.{key} is {typed[key]}; the schema says "
                f"{by_name[key].type.describe()}"
            )
    objects = {o.token: o for o in package.object_types()}
    for prop in props:
        type_ = prop.type.items if prop.type.items is not None else prop.type
        if type_.ref is not None and type_.ref not in seen:
            seen.add(type_.ref)
            object_: ObjectType = objects[type_.ref]
            problems += result_problems(
                getattr(sdk_functions, object_.name), object_.properties, seen
            )
    return problems


@pytest.mark.parametrize("function", package.functions(), ids=lambda f: f.name)
def test_each_function_s_arguments_and_result_are_the_schema_s(function: Function) -> None:
    python = snake_case(function.name)
    for form in (python, f"{python}_output"):
        # (documented in functions.py's own style; the types are what is checked here)
        problems = argument_problems(getattr(wasmcloud, form), function.inputs)
        assert [p for p in problems if not p.endswith("is not documented")] == [], form
        assert set(arguments(getattr(wasmcloud, form))) == {p.python for p in function.inputs}
    result = getattr(sdk_functions, f"{function.name[0].upper()}{function.name[1:]}Result")
    assert result_problems(result, function.outputs, set()) == []


def every_use() -> list[Callable[[], pulumi.Resource]]:
    """Every way of using the SDK, with every argument given: between them they send
    every input of the schema."""
    machine = wasmcloud.SshMachine("core-1", host="198.18.0.2", private_key=KEY, port=22)
    local = wasmcloud.Lattice(
        "local",
        state_dir="/tmp/lattice",
        redis_port=6379,
        registry_port=5000,
        otlp_endpoint="http://127.0.0.1:4318",
    )
    on_machines = wasmcloud.Lattice(
        "machines",
        cluster=[machine],
        leaf_nodes=[wasmcloud.LeafNode("edge", machine)],
        jetstream_domain="core",
        max_file_store=1 << 30,
        registry_port=5000,
    )
    return [
        lambda: wasmcloud.Host("local-host", lattice=local, labels={"tier": "core"}),
        lambda: wasmcloud.Host(
            "machine-host", lattice=on_machines, machine=machine, nats_url="nats://198.18.0.3"
        ),
        lambda: wasmcloud.Application("by-manifest", lattice=local, manifest={"spec": {}}),
        lambda: wasmcloud.Application(
            "by-path",
            lattice=local,
            manifest_path="wadm.yaml",
            allow_unplaced=True,
            health_url="http://127.0.0.1:8080",
            health_timeout_seconds=5,
        ),
        lambda: wasmcloud.Secret("password", value="pw", lattice=on_machines, key="k"),
        lambda: wasmcloud.Ec2Machine(
            "ec2",
            region="us-east-1",
            lattice="default",
            role="core",
            subnet_id="subnet-0abc",
            private_key=KEY,
            ami="ami-0abc",
            ami_parameter=None,
            ssh_from=["198.18.0.0/15"],
            lattice_cidrs=["198.18.0.0/15"],
            peer_cidrs=["198.18.0.0/15"],
            extra_ports=[{"port": 8080, "cidrs": ["198.18.0.0/15"]}],
            address="public",
            endpoint_url="http://127.0.0.1:5000",
            tags={"team": "wasm"},
        ),
        lambda: wasmcloud.Ec2Machine(
            "ec2-by-parameter",
            region="us-east-1",
            lattice="default",
            role="host",
            subnet_id="subnet-0abc",
            private_key=KEY,
            ami_parameter="/aws/service/debian/release/12/latest/amd64",
        ),
    ]


@pulumi.runtime.test
def test_the_sdk_sends_every_schema_input_and_reads_every_output(engine: Engine) -> Any:
    made = [use() for use in every_use()]
    outputs: list[pulumi.Output[Any]] = []
    for resource in made:
        for name, value in vars(type(resource)).items():
            if isinstance(value, OutputProperty):
                output = getattr(resource, name)
                assert isinstance(output, pulumi.Output), f"{type(resource).__name__}.{name}"
                outputs.append(output)

    def check(_: Any) -> None:
        for resource in RESOURCES:
            sent = set().union(*(set(given) for given in engine.registered[resource.token]))
            missing = {p.name for p in resource.inputs} - sent
            assert not missing, f"no use of the SDK's {resource.name} sends {sorted(missing)}"

    return pulumi.Output.all(*outputs).apply(check)
