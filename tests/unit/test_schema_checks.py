"""The provider's checks from the schema, through its gRPC service as the engine calls it:
a wrong property name or type is a check failure naming the property's path and the type
the schema expects; required properties are named; values not known yet pass; a change
of a replaceOnChanges property replaces the resource."""

from __future__ import annotations

from typing import Any

from pulumi.runtime.proto import provider_pb2
from pulumi.runtime.rpc import UNKNOWN as UNKNOWN_SENTINEL

from pulumi_wasmcloud.provider.handlers import Diff
from pulumi_wasmcloud.provider.provider import diff_response
from pulumi_wasmcloud.schema.resources import HOST, LATTICE
from tests.lattice import run_async
from tests.provider_grpc import provider, struct

URN = "urn:pulumi:test::proj::wasmcloud:index:{}::it"
MACHINE = {"name": "core-1", "host": "198.18.0.2", "privateKey": "key"}
PRIVATE_KEY_REFUSED = "not an unencrypted ed25519, ECDSA or RSA private key in OpenSSH or PEM form"


async def failures(type_name: str, news: dict[str, Any]) -> list[tuple[str, str]]:
    async with provider("nats://127.0.0.1:4222") as (stub, _):
        checked = await stub.Check(
            provider_pb2.CheckRequest(
                urn=URN.format(type_name), type=f"wasmcloud:index:{type_name}", news=struct(news)
            )
        )
    return sorted((f.property, f.reason) for f in checked.failures)


@run_async
async def test_a_wrongly_typed_property_is_named_with_the_type_it_takes() -> None:
    assert await failures("Lattice", {"natsPort": "4222", "secure": "yes"}) == [
        ("natsPort", 'expected a whole number, got a string ("4222")'),
        ("secure", 'expected true or false, got a string ("yes")'),
    ]
    # Strict like serde: 1.5 is no whole number, true no number.
    assert await failures("Lattice", {"heartbeatSeconds": 1.5, "redisPort": True}) == [
        ("heartbeatSeconds", "expected a whole number, got a number (1.5)"),
        ("redisPort", "expected a whole number, got true"),
    ]


@run_async
async def test_nested_values_are_named_by_their_path() -> None:
    got = await failures(
        "Lattice",
        {
            "cluster": [{**MACHINE, "port": "22"}, "core-2"],
            "leafNodes": [{"region": "edge", "machine": {**MACHINE, "sudo": 1}}],
        },
    )
    for failure in [
        ("cluster[0].port", 'expected a whole number, got a string ("22")'),
        ("cluster[1]", 'expected an object of type SshMachine, got a string ("core-2")'),
        ("leafNodes[0].machine.sudo", "expected true or false, got a number (1)"),
    ]:
        assert failure in got, got
    # The handler's own checks still speak about the rest (the key is no key).
    assert ("cluster[0].privateKey", PRIVATE_KEY_REFUSED) in got
    # ...and not again about what the schema named.
    assert [path for path, _ in got].count("cluster[0].port") == 1
    got = await failures("Host", {"name": "h", "labels": {"tier": "core", "zone": 1}})
    assert got == [("labels.zone", "expected a string, got a number (1)")]


@run_async
async def test_a_misspelt_property_names_the_nearest_one_and_the_known_ones() -> None:
    [(path, reason)] = await failures("Lattice", {"natsPrt": 4222})
    assert path == "natsPrt"
    assert reason.startswith("Lattice has no property 'natsPrt'; did you mean \"natsPort\"?")
    assert "lattice, natsPort, stateDir" in reason
    got = dict(await failures("Lattice", {"cluster": [{**MACHINE, "hots": "x"}]}))
    assert got["cluster[0].hots"].startswith(
        "SshMachine has no property 'hots'; did you mean \"host\"?"
    )


@run_async
async def test_required_properties_are_named_and_secrets_never_quoted() -> None:
    got = await failures("Secret", {"value": 42})
    assert got == [
        ("key", "required: a string"),
        ("value", "expected a string, got a number"),  # a secret's value is not shown
    ]
    got = await failures("Lattice", {"cluster": [{"name": "n", "host": "h", "privateKey": 7}]})
    assert ("cluster[0].privateKey", "expected a string, got a number") in got


@run_async
async def test_the_handler_s_own_checks_add_what_the_schema_does_not_say() -> None:
    got = await failures("Lattice", {"natsPort": "4222", "heartbeatSeconds": 0, "stateDir": 5})
    assert got == [
        ("heartbeatSeconds", "must be a whole number of seconds, at least 1"),  # the handler's
        ("natsPort", 'expected a whole number, got a string ("4222")'),
        ("stateDir", "expected a string, got a number (5)"),
    ]


@run_async
async def test_values_not_known_yet_pass_the_type_checks() -> None:
    unknown = UNKNOWN_SENTINEL
    got = await failures(
        "Host",
        {"name": "h", "lattice": unknown, "labels": {"tier": unknown}, "heartbeatSeconds": 30},
    )
    assert got == []


@run_async
async def test_an_unknown_resource_type_names_the_ones_that_exist() -> None:
    async with provider() as (stub, _):
        try:
            await stub.Check(
                provider_pb2.CheckRequest(
                    urn=URN.format("Lattise"), type="wasmcloud:index:Lattise", news=struct({})
                )
            )
        except Exception as error:  # grpc.aio.AioRpcError
            details = error.details()  # type: ignore[attr-defined]
        else:
            raise AssertionError("an unknown type was checked")
    assert "unknown resource type wasmcloud:index:Lattise" in details
    assert "wasmcloud:index:Lattice" in details


def test_a_replace_on_changes_property_replaces_the_resource() -> None:
    # The handler asked for no replacement; the schema's replaceOnChanges does.
    diff = diff_response(
        Diff({"stateDir": ("a", "b"), "heartbeatSeconds": (30, 5)}, []),
        LATTICE.replace_on_changes,
    )
    assert diff.replaces == ["stateDir"]
    assert diff.delete_before_replace
    assert "stateDir" in LATTICE.replace_on_changes and "labels" not in HOST.replace_on_changes
    in_place = diff_response(Diff({"labels.tier": ("a", "b")}, []), HOST.replace_on_changes)
    assert in_place.replaces == []
