"""The host <-> provider contract of wasmCloud 1.x: HostData on stdin and link definitions.

Defined once here; the host writes these shapes and the provider SDK reads them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class InterfaceLinkDefinition(BaseModel):
    """A link as a provider sees it: config names already resolved to values."""

    model_config = ConfigDict(extra="ignore")

    source_id: str
    target: str
    name: str = "default"
    wit_namespace: str
    wit_package: str
    interfaces: list[str]
    source_config: dict[str, str] = Field(default_factory=dict)
    target_config: dict[str, str] = Field(default_factory=dict)
    source_secrets: Any = None
    target_secrets: Any = None

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.source_id, self.target, self.name, self.wit_namespace, self.wit_package)


class HostData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    host_id: str
    lattice_rpc_prefix: str
    link_name: str = "default"
    lattice_rpc_user_jwt: str = ""
    lattice_rpc_user_seed: str = ""
    lattice_rpc_url: str
    provider_key: str
    env_values: dict[str, str] = Field(default_factory=dict)
    instance_id: str
    link_definitions: list[InterfaceLinkDefinition] = Field(default_factory=list)
    cluster_issuers: list[str] = Field(default_factory=list)
    config: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, Any] = Field(default_factory=dict)
    host_xkey_public_key: str = ""
    provider_xkey_private_key: str = ""
    default_rpc_timeout_ms: int = 2000
    structured_logging: bool = False
    log_level: str = "info"
    otel_config: dict[str, Any] = Field(default_factory=lambda: {"enable_observability": False})

    def encode(self) -> bytes:
        """The stdin line: base64(JSON) + CRLF, as the real host writes it."""
        return base64.b64encode(self.model_dump_json().encode()) + b"\r\n"

    @classmethod
    def decode(cls, line: bytes) -> HostData:
        return cls.model_validate(json.loads(base64.b64decode(line.strip())))


def provider_subject(lattice: str, provider_id: str, operation: str) -> str:
    """`wasmbus.rpc.{lattice}.{provider_id}.{operation}` (health, linkdefs.put, ...)."""
    return f"wasmbus.rpc.{lattice}.{provider_id}.{operation}"


SHUTDOWN = "default.shutdown"
HEALTH = "health"
LINK_PUT = "linkdefs.put"
LINK_DEL = "linkdefs.del"
CONFIG_UPDATE = "config.update"
