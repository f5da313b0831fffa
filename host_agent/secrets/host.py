"""How a host resolves secret references and hands values to what it runs (host 1.4.2).

An entity's config names that start with ``SECRET`` are secret references (config
entries wadm wrote from the manifest); the host reads each, asks its backend, and:
  - a provider gets them in HostData ``secrets`` (``{"kind": "String", "value": ...}``
    per reference name), and a link's ``source_secrets``/``target_secrets`` sealed with
    the host's xkey to the provider's own xkey (its seed in HostData), so link pushes on
    NATS carry no plaintext;
  - anything missing (reference or value) fails the start, naming the secret: the
    controller reports it in the application's status.
Only the references an entity's own config lists are fetched for it: the manifest is the
grant.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NatsClient

from host_agent.lattice.strict import BadRequest
from host_agent.lattice.subjects import SECRETS_SUBJECT_PREFIX
from host_agent.secrets.client import SecretsClient, SecretsError
from host_agent.secrets.protocol import (
    Application,
    Context,
    SecretReference,
    SecretRequest,
    is_secret_reference,
    secret_value,
    self_signed_host_jwt,
)
from host_agent.secrets.xkeys import XKey

ConfigEntryReader = Callable[[str], Awaitable[dict[str, str] | None]]


def split_config_names(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(config names, secret reference names), each in the order given."""
    names = list(names)
    return (
        [n for n in names if not is_secret_reference(n)],
        [n for n in names if is_secret_reference(n)],
    )


@dataclass(frozen=True)
class SecretValues:
    """Revealed values by reference name (SecretValue JSON shapes). Never in a repr."""

    values: Mapping[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return bool(self.values)

    def plain(self) -> dict[str, dict[str, Any]]:
        return {name: dict(value) for name, value in self.values.items()}

    def sealed_for(self, host_xkey: XKey, provider_public: XKey) -> list[int] | None:
        """serde_json of the map, sealed to the provider (None when empty, as upstream)."""
        if not self.values:
            return None
        return list(host_xkey.seal(json.dumps(self.plain()).encode(), provider_public))


class HostSecrets:
    def __init__(
        self,
        nc: NatsClient,
        read_entry: ConfigEntryReader,
        host_id: str,
        friendly_name: str,
        prefix: str = SECRETS_SUBJECT_PREFIX,
    ) -> None:
        self.nc = nc
        self.read_entry = read_entry
        self.prefix = prefix
        self.xkey = XKey.generate()  # the host's: seals link secrets to providers
        self.host_jwt = self_signed_host_jwt(host_id, friendly_name)
        self._clients: dict[str, SecretsClient] = {}

    # Per request to a backend: a host answers link.put and start requests within the
    # controller's 2 s, so a backend that does not answer must fail sooner, naming it.
    REQUEST_TIMEOUT = 0.8

    def _client(self, backend: str) -> SecretsClient:
        client = self._clients.get(backend)
        if client is None:
            client = self._clients[backend] = SecretsClient(
                self.nc, backend, self.prefix, self.REQUEST_TIMEOUT
            )
        return client

    async def fetch(
        self, names: Iterable[str], *, entity_jwt: str = "", application: str | None = None
    ) -> SecretValues:
        """The values of the secret references ``names``; SecretsError naming the first
        one that is missing or refused."""
        values: dict[str, dict[str, Any]] = {}
        for config_name in names:
            entry = await self.read_entry(config_name)
            if not entry:
                raise SecretsError(
                    f"secret reference {config_name} not found in the config store "
                    "(deploy the application that defines it, or fix the name)"
                )
            try:
                reference = SecretReference.from_config(config_name, entry)
            except BadRequest as error:
                raise SecretsError(str(error)) from None
            what = (
                f"secret {reference.name!r} (key {reference.key!r} in backend "
                f"{reference.backend!r})"
            )
            request = SecretRequest(
                key=reference.key,
                field=reference.field,
                version=reference.version,
                context=Context(
                    entity_jwt=entity_jwt,
                    host_jwt=self.host_jwt,
                    application=Application(name=application, policy=reference.policy),
                ),
            )
            try:
                secret = await self._client(reference.backend).get(request, what)
            except SecretsError as error:
                if str(error).startswith(what):
                    raise
                raise SecretsError(f"{what}: {error}") from None
            try:
                values[reference.name] = secret_value(secret)
            except BadRequest:
                raise SecretsError(f"{what}: the backend returned no value") from None
        return SecretValues(values)
