"""Wire shapes of wasmCloud's secrets API v1alpha1 (wasmcloud-secrets-types, host 1.4.2).

Pure. A secret *reference* is a config entry named ``SECRET_...`` in ``CONFIGDATA`` that
wadm writes from a manifest's ``secrets`` (name, type, backend, key, field, version,
policy as a JSON string); the host reads it, asks the named backend on
``wasmcloud.secrets.v1alpha1.<backend>.get`` with a request sealed to the backend's
xkey, and the answer comes back sealed to the host's. Every body is parsed strictly and
no error message ever quotes a string from a body that may carry a secret.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from typing import Annotated, Any

import nkeys
from pydantic import Field

from host_agent.lattice.strict import BadRequest, StrictModel, parse_json
from host_agent.lattice.subjects import secrets_subject as secrets_subject
from host_agent.lattice.subjects import secrets_wildcard as secrets_wildcard
from host_agent.model.naming import SECRET_PREFIX as SECRET_PREFIX
from host_agent.model.naming import is_secret_reference as is_secret_reference
from host_agent.model.naming import normalize_name

DEFAULT_BACKEND = "nats-kv"
SECRET_TYPE = "secret.wasmcloud.dev/v1alpha1"
POLICY_PROPERTIES_TYPE = "properties.secret.wasmcloud.dev/v1alpha1"
HOST_XKEY_HEADER = "WasmCloud-Host-Xkey"
RESPONSE_XKEY_HEADER = "Server-Response-Xkey"

Bytes = list[Annotated[int, Field(ge=0, le=255)]]  # serde's Vec<u8>


def secret_config_name(app: str, secret: str) -> str:
    """The config name wadm 0.20 gives a manifest secret: ``SECRET_<app>-<secret>``."""
    return f"{SECRET_PREFIX}_{normalize_name(app)}-{normalize_name(secret)}"


def reference_values(
    name: str,
    backend: str,
    key: str,
    field: str | None,
    version: str | None,
    policy_properties: dict[str, str],
) -> dict[str, str]:
    """The config map wadm puts for a secret reference (SecretConfig as a string map)."""
    values = {"name": name, "type": SECRET_TYPE, "backend": backend, "key": key}
    if field is not None:
        values["field"] = field
    if version is not None:
        values["version"] = version
    policy = {"type": POLICY_PROPERTIES_TYPE, "properties": policy_properties}
    values["policy"] = json.dumps(policy, separators=(",", ":"), sort_keys=True)
    return values


class SecretReference(StrictModel):
    """A ``SECRET_`` config entry as the host reads it back (SecretConfig)."""

    name: str
    backend: str
    key: str
    field: str | None = None
    version: str | None = None
    policy: str
    type: str

    @classmethod
    def from_config(cls, config_name: str, values: dict[str, str]) -> SecretReference:
        text = json.dumps(values).encode()
        what = f"secret reference {config_name}"
        reference = parse_json(cls, text, what, quote_strings=False)
        if reference.type != SECRET_TYPE:
            raise BadRequest(f"{what}: type must be {SECRET_TYPE}")
        try:
            json.loads(reference.policy)
        except json.JSONDecodeError:
            raise BadRequest(f"{what}: policy is not a JSON string") from None
        return reference


class Application(StrictModel):
    name: str | None = None
    policy: str = ""


class Context(StrictModel):
    entity_jwt: str = ""
    host_jwt: str = ""
    application: Application = Field(default_factory=Application)


class SecretRequest(StrictModel):
    key: str
    field: str | None = None
    version: str | None = None
    context: Context

    @classmethod
    def parse(cls, payload: bytes) -> SecretRequest:
        return parse_json(cls, payload, "secret request", quote_strings=False)


class Secret(StrictModel):
    version: str
    string_secret: str | None = Field(default=None, repr=False)
    binary_secret: Bytes | None = Field(default=None, repr=False)


# GetSecretError as serde writes it: a unit variant is a string, one with a value an
# object {"Variant": "text"}.
GetSecretErrorWire = str | dict[str, str]


class SecretResponse(StrictModel):
    secret: Secret | None = None
    error: GetSecretErrorWire | None = None

    @classmethod
    def parse(cls, payload: bytes) -> SecretResponse:
        return parse_json(cls, payload, "secret response", quote_strings=False)

    def dump(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


_ERROR_TEXT = {
    "SecretNotFound": "Secret not found",
    "InvalidXKey": "Invalid XKey",
    "EncryptionError": "Error encrypting secret",
    "DecryptionError": "Error decrypting secret",
    "Unauthorized": "Error fetching secret: unauthorized",
    "InvalidRequest": "Invalid request",
    "InvalidPayload": "Invalid payload",
    "InvalidHeaders": "Invalid headers",
}


def error_text(error: GetSecretErrorWire) -> str:
    """GetSecretError's Display text (thiserror's messages in secrets-types)."""
    if isinstance(error, str):
        return _ERROR_TEXT.get(error, error)
    (variant, detail), *_ = error.items() or [("Other", "")]
    return f"{variant}: {detail}"


class PutSecretRequest(StrictModel):
    """Ours as upstream's nats-kv ``put_secret``: sealed to the backend's transit xkey."""

    key: str = Field(min_length=1)
    version: str = ""
    string_secret: str | None = Field(default=None, repr=False)
    binary_secret: Bytes | None = Field(default=None, repr=False)

    @classmethod
    def parse(cls, payload: bytes) -> PutSecretRequest:
        return parse_json(cls, payload, "put_secret request", quote_strings=False)


class PutSecretResponse(StrictModel):
    revision: int = 0
    error: GetSecretErrorWire | None = None


class DeleteSecretRequest(StrictModel):
    """Ours (upstream's backend has no delete): remove a secret and its history."""

    key: str = Field(min_length=1)


def secret_value(secret: Secret) -> dict[str, Any]:
    """wasmcloud-core's SecretValue as HostData and link secrets carry it:
    ``{"kind": "String", "value": "..."}`` or ``{"kind": "Bytes", "value": [..]}``."""
    if secret.string_secret is not None:
        return {"kind": "String", "value": secret.string_secret}
    if secret.binary_secret is not None:
        return {"kind": "Bytes", "value": list(secret.binary_secret)}
    raise BadRequest("secret response: the secret has neither string_secret nor binary_secret")


def self_signed_host_jwt(host_id: str, friendly_name: str, now: int | None = None) -> str:
    """A wascap host token signed by a throwaway account key, as host 1.4.2 makes one
    (``self_signed: true``): it names the host, it proves nothing; NATS permissions decide
    who may ask the backend."""
    issuer = nkeys.from_seed(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT))
    issued = int(time.time()) if now is None else now
    claims = {
        "jti": uuid.uuid4().hex,
        "iat": issued,
        "iss": issuer.public_key.decode(),
        "sub": host_id,
        "wascap": {"name": friendly_name, "tags": {"self_signed": "true"}},
        "wascap_revision": 3,
    }

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    header = b64(json.dumps({"typ": "jwt", "alg": "Ed25519"}).encode())
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = issuer.sign(f"{header}.{body}".encode())
    return f"{header}.{body}.{b64(signature)}"
