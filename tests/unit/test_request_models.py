"""Request and push bodies are parsed the way upstream serde parses them: a field of the
wrong type or range is refused with an error naming the field, never read as a default."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host_agent.lattice.protocol import (
    DeleteLinkRequest,
    HostLabel,
    Link,
    ScaleComponentCommand,
    StartProviderCommand,
    StopHostCommand,
    StopProviderCommand,
    UpdateComponentCommand,
    parse_config,
    parse_registry_credentials,
    parse_request,
)
from host_agent.lattice.stored_manifest import StoredManifest
from host_agent.lattice.strict import BadRequest
from host_agent.lattice.wadm_types import (
    DeleteModelRequest,
    DeployModelRequest,
    GetModelRequest,
    UndeployModelRequest,
    parse_model_request,
)
from host_agent.providers.contract import (
    HostData,
    InterfaceLinkDefinition,
    ShutdownRequest,
    parse_config_update,
)
from tests.malformed import CTL_FIELDS, WADM_FIELDS, body, names_field, wrong_value

WADM_MODELS = {"get": GetModelRequest, "del": DeleteModelRequest, "deploy": DeployModelRequest}
CTL_MODELS: dict[str, Any] = {
    "component.scale": ScaleComponentCommand,
    "component.update": UpdateComponentCommand,
    "provider.start": StartProviderCommand,
    "provider.stop": StopProviderCommand,
    "host.stop": StopHostCommand,
    "label.put": HostLabel,
    "label.del": HostLabel,
    "link.put": Link,
    "link.del": DeleteLinkRequest,
}
VALID_CTL: dict[str, dict[str, Any]] = {
    "component.scale": {
        "component_id": "app-counter",
        "component_ref": "file:///counter.wasm",
        "count": 3,
        "host_id": "NHOST",
        "annotations": {"wasmcloud.dev/appspec": "app"},
        "config": ["app-counter-greeting"],
        "allow_update": False,
    },
    "component.update": {
        "component_id": "app-counter",
        "new_component_ref": "file:///counter2.wasm",
        "host_id": "NHOST",
        "annotations": {},
    },
    "provider.start": {
        "provider_id": "app-kv",
        "provider_ref": "builtin:keyvalue-inmemory",
        "host_id": "NHOST",
        "config": [],
        "annotations": {"a": "b"},
    },
    "provider.stop": {"provider_id": "app-kv", "host_id": "NHOST"},
    "host.stop": {"host_id": "NHOST", "timeout": 10},
    "label.put": {"key": "zone", "value": "east"},
    "label.del": {"key": "zone", "value": ""},
    "link.put": {
        "source_id": "app-counter",
        "target": "app-kv",
        "name": "default",
        "wit_namespace": "wasi",
        "wit_package": "keyvalue",
        "interfaces": ["store", "atomics"],
        "source_config": [],
        "target_config": ["app-bucket"],
    },
    "link.del": {
        "source_id": "app-counter",
        "name": "default",
        "wit_namespace": "wasi",
        "wit_package": "keyvalue",
    },
}


def refusal(parse: Any, *args: Any) -> str:
    with pytest.raises(BadRequest) as caught:
        parse(*args)
    message = str(caught.value)
    assert "\n" not in message and "<class" not in message and "pydantic" not in message
    return message


# --- the wadm API -------------------------------------------------------------------------
@pytest.mark.parametrize("operation", ["get", "del", "deploy"])
@pytest.mark.parametrize(
    ("version", "got"),
    [(["x"], "a list"), (5, "a number (5)"), (True, "true"), ({"v": "1"}, "an object")],
)
def test_a_wrong_typed_version_is_refused_naming_it(
    operation: str, version: object, got: str
) -> None:
    message = refusal(
        parse_model_request, WADM_MODELS[operation], body({"version": version}), operation
    )
    assert message == f"invalid model.{operation} request: version: expected a string, got {got}"


@pytest.mark.parametrize("payload", [b"", b"  ", b"{}", b'{"version": null}', b'{"other": 1}'])
def test_no_version_is_an_empty_body_an_absent_or_null_version(payload: bytes) -> None:
    # As wadm's serde: an empty body is allowed and unknown fields are ignored.
    assert parse_model_request(DeleteModelRequest, payload, "del").version is None


def test_a_wadm_body_that_is_not_an_object_is_refused() -> None:
    assert refusal(parse_model_request, DeployModelRequest, b'["v1"]', "deploy") == (
        "invalid model.deploy request: expected a JSON object, got a list"
    )
    assert "not valid JSON" in refusal(parse_model_request, UndeployModelRequest, b"{", "undeploy")


def test_an_empty_version_names_no_version() -> None:
    # Only an absent or null version means "all" (delete) or "the newest" (deploy, get).
    stored = StoredManifest({"v1": {}, "v2": {}}, "v1")
    assert stored.delete("") == (stored, False)
    assert stored.delete("latest") == (stored, False)
    assert stored.resolve("") is None
    assert stored.resolve("latest") == stored.resolve(None) == "v2"
    assert stored.delete(None) == (None, True)


# --- the control interface ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("count", "problem"),
    [
        ("0", 'expected a whole number, got a string ("0")'),
        (-1, "expected a number at least 0, got a number (-1)"),
        (2**32, "expected a number at most 4294967295, got a number (4294967296)"),
        (1.0, "expected a whole number, got a number (1.0)"),
        (True, "expected a whole number, got true"),
        (None, "expected a whole number, got null"),
    ],
)
def test_scale_count_must_be_a_u32(count: object, problem: str) -> None:
    payload = body({**VALID_CTL["component.scale"], "count": count})
    message = refusal(parse_request, ScaleComponentCommand, payload)
    assert message == f"invalid component.scale request: count: {problem}"


def test_scale_accepts_what_wash_and_wadm_send() -> None:
    command = parse_request(
        ScaleComponentCommand,
        body({**VALID_CTL["component.scale"], "annotations": None, "max_linear_memory": None}),
    )
    assert (command.count, command.annotations) == (3, None)
    assert parse_request(ScaleComponentCommand, b'{"component_id": "c"}').count == 0


def test_link_interfaces_must_be_a_list_of_strings() -> None:
    link = VALID_CTL["link.put"]
    assert refusal(parse_request, Link, body({**link, "interfaces": "store"})) == (
        'invalid link.put request: interfaces: expected a list, got a string ("store")'
    )
    assert "interfaces[1]: expected a string, got a number (2)" in refusal(
        parse_request, Link, body({**link, "interfaces": ["store", 2]})
    )


def test_every_bad_field_is_named_and_unknown_fields_are_refused() -> None:
    message = refusal(
        parse_request,
        StartProviderCommand,
        body({"provider_id": 1, "provider_ref": "x", "annotations": {"k": 2}, "colour": "red"}),
    )
    assert names_field(message, "provider_id")
    assert "annotations.k: expected a string, got a number (2)" in message
    assert "colour: unknown field" in message


def test_config_values_must_be_strings() -> None:
    assert refusal(parse_config, b'{"url": "redis://x", "port": 6379}') == (
        "invalid config.put body (config data should be a map of string -> string): "
        "port: expected a string, got a number (6379)"
    )
    assert "expected an object, got a list" in refusal(parse_config, b'["a"]')
    assert parse_config(b"") == {}


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_wrong_typed_field_is_refused_naming_it(data: st.DataObject) -> None:
    """A valid request with one known field replaced by a value of another JSON kind."""
    table = {**{("wadm", k): v for k, v in WADM_FIELDS.items()}}
    table |= {("ctl", k): v for k, v in CTL_FIELDS.items()}
    surface, operation = data.draw(st.sampled_from(sorted(table)))
    field = data.draw(st.sampled_from(sorted(table[surface, operation])))
    value = data.draw(wrong_value(table[surface, operation][field]))
    if surface == "wadm":
        payload = body({"version": "v1", field: value})
        message = refusal(parse_model_request, WADM_MODELS[operation], payload, operation)
    else:
        payload = body({**VALID_CTL[operation], field: value})
        message = refusal(parse_request, CTL_MODELS[operation], payload)
    assert names_field(message, field), message


@settings(max_examples=100, deadline=None)
@given(
    values=st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=4),
    key=st.text(alphabet="abcxyz_", min_size=1, max_size=8),
    value=wrong_value({"string"}),
)
def test_any_non_string_config_value_is_refused_naming_its_key(
    values: dict[str, str], key: str, value: object
) -> None:
    assert parse_config(body(values)) == values
    message = refusal(parse_config, body({**values, key: value}))
    assert names_field(message, key), message


# --- what providers receive -----------------------------------------------------------------
def host_data(**fields: object) -> dict[str, object]:
    return {
        "host_id": "NHOST",
        "lattice_rpc_prefix": "default",
        "lattice_rpc_url": "nats://127.0.0.1:4222",
        "provider_key": "app-kv",
        "instance_id": "i-1",
        **fields,
    }


def stdin_line(data: dict[str, object]) -> bytes:
    return base64.b64encode(json.dumps(data).encode()) + b"\r\n"


def test_host_data_round_trips_and_refuses_wrong_types() -> None:
    good = HostData.decode(stdin_line(host_data(config={"a": "b"})))
    assert HostData.decode(good.encode()) == good
    assert refusal(HostData.decode, stdin_line(host_data(lattice_rpc_url=4222))) == (
        "invalid HostData on stdin: lattice_rpc_url: expected a string, got a number (4222)"
    )
    message = refusal(
        HostData.decode,
        stdin_line(host_data(link_definitions=[{**VALID_CTL["link.put"], "interfaces": "store"}])),
    )
    assert "link_definitions[0].interfaces: expected a list" in message
    assert "not base64" in refusal(HostData.decode, b"{not base64}")


def test_link_and_config_pushes_are_parsed_strictly() -> None:
    link = {**VALID_CTL["link.put"], "source_config": {}, "target_config": {"url": "redis://x"}}
    assert InterfaceLinkDefinition.parse(body(link)).target_config == {"url": "redis://x"}
    assert "target_config.url: expected a string, got a number (1)" in refusal(
        InterfaceLinkDefinition.parse, body({**link, "target_config": {"url": 1}})
    )
    assert names_field(
        refusal(InterfaceLinkDefinition.parse, body({**link, "source_secrets": "x"})),
        "source_secrets",
    )
    assert "host_id: expected a string" in refusal(ShutdownRequest.parse, b'{"host_id": 7}')
    assert ShutdownRequest.parse(b"").host_id == ""
    assert "a: expected a string" in refusal(parse_config_update, b'{"a": false}')


def test_a_provider_given_bad_host_data_exits_with_one_line_naming_the_field() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "host_agent.providers.keyvalue_inmemory"],
        input=stdin_line(host_data(provider_key=["app-kv"])),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    lines = result.stderr.decode().strip().splitlines()
    assert lines == [
        "provider: invalid HostData on stdin: provider_key: expected a string, got a list"
    ]


SECRET = "s3cret-" + "x" * 40  # longer than the 37 characters a quoted string is cut to


def test_bodies_that_carry_secrets_never_quote_a_string_in_a_refusal() -> None:
    """A misplaced string in registry.put, HostData or a link push may be the secret
    itself: the refusal names the field and says "a string", never what it was."""
    refusals = [
        refusal(parse_registry_credentials, body({"ghcr.io": f"ci:{SECRET}"})),
        refusal(parse_registry_credentials, body({"ghcr.io": {"username": SECRET}})),
        refusal(HostData.decode, stdin_line(host_data(secrets=SECRET))),
        refusal(HostData.decode, stdin_line(host_data(otel_config=SECRET))),
        refusal(
            InterfaceLinkDefinition.parse,
            body({**VALID_CTL["link.put"], "target_secrets": SECRET}),
        ),
    ]
    for message in refusals:
        assert SECRET[:10] not in message
    assert "ghcr.io: expected a JSON object, got a string" in refusals[0]
    assert "secrets: expected an object, got a string" in refusals[2]
    assert "target_secrets: expected a list, got a string" in refusals[4]
