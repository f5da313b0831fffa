"""The host <-> provider contract of wasmCloud 1.x: HostData on stdin and link definitions.

Defined once here; the host writes these shapes and the provider SDK reads them. Both are
parsed strictly from their JSON (wasmcloud-core's serde types are the reference): a field
of the wrong type is refused naming the field, never read as a default. As in serde,
unknown fields are ignored, so a newer host's extra fields do not break a provider.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, ClassVar, Self

from pydantic import Field

from host_agent.lattice.protocol import ConfigValues
from host_agent.lattice.strict import BadRequest, StrictModel, parse_json

# Encrypted secret bytes (serde's Vec<u8>: a JSON list of numbers).
SecretBytes = list[Annotated[int, Field(ge=0, le=255)]]


class InterfaceLinkDefinition(StrictModel):
    """A link as a provider sees it: config names already resolved to values."""

    source_id: str
    target: str
    name: str = "default"
    wit_namespace: str
    wit_package: str
    interfaces: list[str]
    source_config: dict[str, str] = Field(default_factory=dict)
    target_config: dict[str, str] = Field(default_factory=dict)
    source_secrets: SecretBytes | None = None
    target_secrets: SecretBytes | None = None

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.source_id, self.target, self.name, self.wit_namespace, self.wit_package)

    @classmethod
    def parse(cls, payload: bytes) -> InterfaceLinkDefinition:
        """A link pushed on ``linkdefs.put``/``.del``, or ``BadRequest`` naming the field."""
        return parse_json(cls, payload, "link definition", quote_strings=False)


class HostData(StrictModel):
    host_id: str
    lattice_rpc_prefix: str
    link_name: str = "default"
    lattice_rpc_user_jwt: str = ""
    lattice_rpc_user_seed: str = Field(default="", repr=False)  # secret: never in a repr
    lattice_rpc_url: str
    provider_key: str
    env_values: dict[str, str] = Field(default_factory=dict)
    instance_id: str
    link_definitions: list[InterfaceLinkDefinition] = Field(default_factory=list)
    cluster_issuers: list[str] = Field(default_factory=list)
    config: dict[str, str] = Field(default_factory=dict)
    # Opaque to the built-in providers (secret values, OpenTelemetry settings): any JSON
    # object is accepted, but the field itself must be an object.
    secrets: dict[str, Any] = Field(default_factory=dict)
    host_xkey_public_key: str = ""
    provider_xkey_private_key: str = Field(default="", repr=False)
    default_rpc_timeout_ms: int | None = Field(default=2000, ge=0)
    structured_logging: bool = False
    log_level: str | None = "info"
    otel_config: dict[str, Any] = Field(default_factory=lambda: {"enable_observability": False})
    # Ours (per-link authorization): the seed of the provider's caller user; its grant JWTs
    # arrive on `caller.grant`. Empty: calls go out on the lattice_rpc user.
    wrpc_caller_seed: str = Field(default="", repr=False)
    # Ours (TLS towards NATS, PEM text; empty: none): the CA the server's certificate must
    # chain to, and the client certificate and key of mutual TLS (the host's own).
    lattice_rpc_tls_ca_pem: str = ""
    lattice_rpc_tls_cert_pem: str = ""
    lattice_rpc_tls_key_pem: str = Field(default="", repr=False)

    def encode(self) -> bytes:
        """The stdin line: base64(JSON) + CRLF, as the real host writes it."""
        return base64.b64encode(self.model_dump_json().encode()) + b"\r\n"

    @classmethod
    def decode(cls, line: bytes) -> HostData:
        """Read the stdin line, or raise ``BadRequest`` naming what is wrong."""
        try:
            text = base64.b64decode(line.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"invalid HostData on stdin: not base64 ({exc})") from None
        return parse_json(cls, text, "HostData on stdin", quote_strings=False)


class HostAddressedRequest(StrictModel):
    """A request a host sends to the provider instance it started. The same provider id
    may run on several hosts, all subscribed to the same subject, so the body names the
    asking host and only that host's instance acts; an empty body (what upstream hosts send
    for health checks) is for every instance."""

    host_id: str = ""
    what: ClassVar[str]  # names the body in errors

    @classmethod
    def parse(cls, payload: bytes) -> Self:
        return parse_json(cls, payload or b"{}", cls.what)

    def for_host(self, host_id: str) -> bool:
        return not self.host_id or self.host_id == host_id


class ShutdownRequest(HostAddressedRequest):
    """The body of ``default.shutdown``: only the instance of the asking host stops."""

    what = "shutdown request"


class HealthCheckRequest(HostAddressedRequest):
    """The body of ``health``. Ours names the host: the readiness check after a start must
    hear from the instance this host started, not from one already running elsewhere
    (links pushed before the new instance subscribed would be lost)."""

    what = "health check request"


class CallerGrant(HostAddressedRequest):
    """The body of ``caller.grant``: a new link grant (user JWT) for the provider's caller
    key; only the instance the named host started takes it."""

    what = "link grant"
    jwt: str = Field(min_length=1)


def parse_config_update(payload: bytes) -> dict[str, str]:
    """The body of ``config.update``: the provider's merged config, string -> string."""
    return parse_json(ConfigValues, payload or b"{}", "config update").root


def provider_subject(lattice: str, provider_id: str, operation: str) -> str:
    """`wasmbus.rpc.{lattice}.{provider_id}.{operation}` (health, linkdefs.put, ...)."""
    return f"wasmbus.rpc.{lattice}.{provider_id}.{operation}"


SHUTDOWN = "default.shutdown"
HEALTH = "health"
LINK_PUT = "linkdefs.put"
LINK_DEL = "linkdefs.del"
CONFIG_UPDATE = "config.update"
CALLER_GRANT = "caller.grant"
