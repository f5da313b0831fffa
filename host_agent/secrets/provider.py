"""A provider's side of secrets (wasmcloud-provider-sdk 0.11's shapes): its HostData
``secrets`` and a link's ``source_secrets``/``target_secrets``, sealed by the host's
xkey (``host_xkey_public_key``) to the provider's (``provider_xkey_private_key``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import RootModel, ValidationError

from host_agent.lattice.strict import describe_errors
from host_agent.providers.contract import HostData, InterfaceLinkDefinition
from host_agent.secrets.xkeys import XKey, XKeyError


class ProviderSecretsError(ValueError):
    """Secrets a provider was handed but cannot read; names the link, never a value."""


class _StringValue(RootModel[dict[str, Any]]):
    pass


def string_secrets(values: Mapping[str, Any], what: str) -> dict[str, str]:
    """``{"name": {"kind": "String", "value": "..."}}`` -> ``{"name": "..."}``; bytes
    secrets are left out (the built-in providers take strings only)."""
    strings = {}
    for name, value in values.items():
        if not isinstance(value, dict) or value.get("kind") not in ("String", "Bytes"):
            raise ProviderSecretsError(f"{what}: secret {name!r} is not a SecretValue object")
        if value["kind"] == "String":
            if not isinstance(value.get("value"), str):
                raise ProviderSecretsError(f"{what}: secret {name!r}: value must be a string")
            strings[name] = value["value"]
    return strings


def host_secrets(host: HostData) -> dict[str, str]:
    """The provider's own secrets (HostData ``secrets``) as strings."""
    return string_secrets(host.secrets, "HostData secrets")


def link_secrets(link: InterfaceLinkDefinition, host: HostData, side: str) -> dict[str, str]:
    """A link's ``source`` or ``target`` secrets, opened with this provider's xkey."""
    sealed = link.source_secrets if side == "source" else link.target_secrets
    if not sealed:
        return {}
    what = f"link {link.source_id} -> {link.target} {side}_secrets"
    try:
        own = XKey.from_seed(host.provider_xkey_private_key, "provider_xkey_private_key")
        sender = XKey.from_public_key(host.host_xkey_public_key, "host_xkey_public_key")
        plain = own.open(bytes(sealed), sender)
    except XKeyError as error:
        raise ProviderSecretsError(f"{what}: {error}") from None
    try:
        values = _StringValue.model_validate_json(plain).root
    except ValidationError as error:
        raise ProviderSecretsError(
            f"{what}: {describe_errors(error, quote_strings=False)}"
        ) from None
    return string_secrets(values, what)
