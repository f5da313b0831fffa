"""Application secrets, the pure parts: xkeys and their boxes, the reference wadm writes,
what the controller asks of hosts, and what a provider can open."""

from __future__ import annotations

import json
from typing import Any

import nkeys
import pytest

from host_agent.controller.reconcile import (
    DeleteConfig,
    PutConfig,
    PutLink,
    StartProvider,
    reconcile,
)
from host_agent.controller.reconcile import owned_by as owned_by_
from host_agent.controller.view import HostRecord, LatticeView
from host_agent.lattice.strict import BadRequest
from host_agent.lattice.wadm_types import StatusType
from host_agent.model import ManifestError, parse_manifest
from host_agent.providers.contract import HostData, InterfaceLinkDefinition
from host_agent.secrets.access import backend_access, host_access, tooling_access
from host_agent.secrets.host import SecretValues, split_config_names
from host_agent.secrets.protocol import (
    SecretReference,
    SecretResponse,
    reference_values,
    secret_config_name,
    secrets_subject,
)
from host_agent.secrets.provider import ProviderSecretsError, host_secrets, link_secrets
from host_agent.secrets.xkeys import XKey, XKeyError

PASSWORD = "correct horse battery staple"


# xkeys -------------------------------------------------------------------------------
def test_xkeys_are_nkeys_curve_keys_and_boxes_open_only_for_the_recipient() -> None:
    host, backend, stranger = XKey.generate(), XKey.generate(), XKey.generate()
    assert host.public_key.startswith("X") and len(host.public_key) == 56
    assert host.seed.startswith("SX") and len(host.seed) == 58
    assert XKey.from_seed(host.seed).public_key == host.public_key
    sealed = host.seal(PASSWORD.encode(), XKey.from_public_key(backend.public_key))
    assert sealed.startswith(b"xkv1") and PASSWORD.encode() not in sealed
    assert backend.open(sealed, XKey.from_public_key(host.public_key)) == PASSWORD.encode()
    with pytest.raises(XKeyError, match="does not open"):
        stranger.open(sealed, host)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(XKeyError, match="does not open"):
        backend.open(tampered, host)
    assert host.seed not in repr(host)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (nkeys.encode_seed(bytes(32), nkeys.PREFIX_BYTE_USER).decode(), "not a curve key seed"),
        ("SXnot-base32!", "not an nkey"),
    ],
)
def test_a_seed_that_is_not_a_curve_seed_is_refused_by_name(text: str, problem: str) -> None:
    with pytest.raises(XKeyError, match=f"ENCRYPTION_XKEY_SEED is {problem}"):
        XKey.from_seed(text, "ENCRYPTION_XKEY_SEED")


def test_a_public_only_key_cannot_seal() -> None:
    public = XKey.from_public_key(XKey.generate().public_key)
    with pytest.raises(XKeyError, match="only a public key"):
        public.seal(b"x", XKey.generate())


# the reference wadm writes ------------------------------------------------------------
def test_secret_reference_is_wadms_secret_config_map() -> None:
    assert secret_config_name("My App", "db.pw") == "SECRET_my_app-db_pw"
    values = reference_values("db", "nats-kv", "app/db", None, "3", {"team": "a"})
    assert values == {
        "name": "db",
        "type": "secret.wasmcloud.dev/v1alpha1",
        "backend": "nats-kv",
        "key": "app/db",
        "version": "3",
        "policy": '{"properties":{"team":"a"},"type":"properties.secret.wasmcloud.dev/v1alpha1"}',
    }
    reference = SecretReference.from_config("SECRET_x", values)
    assert (reference.backend, reference.key, reference.version) == ("nats-kv", "app/db", "3")
    assert secrets_subject("nats-kv", "get") == "wasmcloud.secrets.v1alpha1.nats-kv.get"
    assert split_config_names(["a", "SECRET_b", "c"]) == (["a", "c"], ["SECRET_b"])


def test_a_malformed_reference_is_refused_naming_the_field_not_quoting_it() -> None:
    values: dict[str, Any] = reference_values("db", "nats-kv", "k", None, None, {})
    values["key"] = ["hunter2"]
    with pytest.raises(BadRequest, match="key: expected a string, got a list") as caught:
        SecretReference.from_config("SECRET_x", values)
    assert "hunter2" not in str(caught.value)
    values["key"] = "k"
    del values["backend"]
    with pytest.raises(BadRequest, match="backend: required but missing"):
        SecretReference.from_config("SECRET_x", values)
    values["backend"] = "nats-kv"
    values["type"] = "config"
    with pytest.raises(BadRequest, match=r"SECRET_x: type must be secret\.wasmcloud\.dev/v1alpha1"):
        SecretReference.from_config("SECRET_x", values)


def test_secret_response_parses_upstreams_error_shapes() -> None:
    assert SecretResponse.parse(b'{"error":"SecretNotFound"}').error == "SecretNotFound"
    assert SecretResponse.parse(b'{"error":{"UpstreamError":"x"}}').error == {"UpstreamError": "x"}
    with pytest.raises(BadRequest, match=r"secret\.version"):
        SecretResponse.parse(b'{"secret":{"version":3,"string_secret":"s3cr3t"}}')


# the controller -----------------------------------------------------------------------
def app_with_secrets(policy: str = "vault") -> dict[str, Any]:
    secret = {"name": "password", "properties": {"policy": policy, "key": "redis/pw"}}
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "shop", "annotations": {"version": "v1"}},
        "spec": {
            "policies": [
                {
                    "name": "vault",
                    "type": "policy.secret.wasmcloud.dev/v1alpha1",
                    "properties": {"backend": "nats-kv", "team": "payments"},
                }
            ],
            "components": [
                {
                    "name": "counter",
                    "type": "component",
                    "properties": {"image": "file:///counter.wasm"},
                    "traits": [
                        {"type": "spreadscaler", "properties": {"instances": 1}},
                        {
                            "type": "link",
                            "properties": {
                                "namespace": "wasi",
                                "package": "keyvalue",
                                "interfaces": ["atomics"],
                                "target": {"name": "kv", "secrets": [secret]},
                            },
                        },
                    ],
                },
                {
                    "name": "kv",
                    "type": "capability",
                    "properties": {"image": "builtin:keyvalue-inmemory", "secrets": [secret]},
                },
            ],
        },
    }


def test_manifest_secrets_become_secret_references_on_commands() -> None:
    manifest = parse_manifest(app_with_secrets()).manifest
    view = LatticeView()
    view.hosts["H1"] = HostRecord("H1", {})
    result = reconcile("shop", manifest, owned_by_([manifest]), view, [], {}, now=0.0)
    [put] = [c for c in result.commands if isinstance(c, PutConfig)]
    assert put.name == "SECRET_shop-password"
    assert put.values["backend"] == "nats-kv" and put.values["key"] == "redis/pw"
    assert json.loads(put.values["policy"])["properties"] == {"team": "payments"}
    [start] = [c for c in result.commands if isinstance(c, StartProvider)]
    assert start.config == ["SECRET_shop-password"]
    [link] = [c for c in result.commands if isinstance(c, PutLink)]
    assert link.link["target_config"] == ["SECRET_shop-password"]
    assert "SecretScaler" in {s.kind for s in result.scalers}


def test_a_refused_link_fails_its_scaler_with_the_hosts_reason() -> None:
    manifest = parse_manifest(app_with_secrets()).manifest
    view = LatticeView()
    view.hosts["H1"] = HostRecord("H1", {})
    reason = "secret 'password' (key 'redis/pw' in backend 'nats-kv'): backend has no secret"
    view.link_failures[("shop-counter", "wasi", "keyvalue", "default")] = reason
    result = reconcile("shop", manifest, owned_by_([manifest]), view, [], {}, now=0.0)
    [link] = [s for s in result.scalers if s.kind == "LinkScaler"]
    assert link.status.type is StatusType.FAILED and reason in link.status.message


def test_a_link_secret_naming_an_unknown_policy_is_refused_with_its_path() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(app_with_secrets(policy="nope"))
    paths = [str(issue) for issue in caught.value.issues]
    assert any("traits[1].properties.target.secrets[0].properties.policy" in p for p in paths)
    assert any("components[1].properties.secrets[0].properties.policy" in p for p in paths)


# the provider's side ------------------------------------------------------------------
def host_data(provider: XKey, host: XKey) -> HostData:
    return HostData(
        host_id="N1",
        lattice_rpc_prefix="default",
        lattice_rpc_url="nats://127.0.0.1:4222",
        provider_key="kv",
        instance_id="i",
        secrets={"password": {"kind": "String", "value": PASSWORD}},
        provider_xkey_private_key=provider.seed,
        host_xkey_public_key=host.public_key,
    )


def sealed_link(sealed: list[int] | None) -> InterfaceLinkDefinition:
    return InterfaceLinkDefinition(
        source_id="counter",
        target="kv",
        wit_namespace="wasi",
        wit_package="keyvalue",
        interfaces=["atomics"],
        target_secrets=sealed,
    )


def test_a_provider_opens_link_secrets_the_host_sealed_to_it_and_no_other_can() -> None:
    host, provider, other = XKey.generate(), XKey.generate(), XKey.generate()
    values = SecretValues({"url": {"kind": "String", "value": "redis://:pw@h"}})
    assert "redis://" not in repr(values)
    sealed = values.sealed_for(host, XKey.from_public_key(provider.public_key))
    link = sealed_link(sealed)
    assert b"redis://" not in bytes(sealed or [])
    assert link_secrets(link, host_data(provider, host), "target") == {"url": "redis://:pw@h"}
    assert link_secrets(link, host_data(provider, host), "source") == {}
    assert host_secrets(host_data(provider, host)) == {"password": PASSWORD}
    with pytest.raises(ProviderSecretsError, match="link counter -> kv target_secrets"):
        link_secrets(link, host_data(other, host), "target")
    assert PASSWORD not in repr(host_data(provider, host).model_dump(exclude={"secrets"}))


def test_secrets_permissions_by_role() -> None:
    assert host_access().pub_allow == (
        "wasmcloud.secrets.v1alpha1.*.get",
        "wasmcloud.secrets.v1alpha1.*.server_xkey",
    )
    assert not any(s.endswith(".get") for s in tooling_access().pub_allow)
    backend = backend_access("nats-kv", "core")
    assert backend.sub_allow[0] == "wasmcloud.secrets.v1alpha1.nats-kv.>"
    assert backend.allow_responses
    # Both API forms in a domain (a node of the domain maps one to the other first).
    for api in ("$JS.core.API", "$JS.API"):
        assert f"{api}.*.*.KV_WASMCLOUD_SECRETS" in backend.pub_allow


def test_undeploy_removes_the_secret_references_the_app_made() -> None:
    manifest = parse_manifest(app_with_secrets()).manifest
    view = LatticeView()
    view.hosts["H1"] = HostRecord("H1", {})
    configs = {"SECRET_shop-password": {"name": "password"}, "SECRET_other-x": {"name": "x"}}
    result = reconcile("shop", None, owned_by_([manifest]), view, [], configs, now=0.0)
    deleted = [c.name for c in result.commands if isinstance(c, DeleteConfig)]
    assert deleted == ["SECRET_shop-password"]  # another application's stays
