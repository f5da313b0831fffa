"""JSON shapes of control-interface requests and replies (control-interface crate, 1.4.2).

Requests are parsed strictly from their JSON text: a field of the wrong type (``"count":
"0"``), a negative count, an unknown field or a missing id is refused with a message that
names the field, and the host changes nothing. Upstream's serde types are the reference;
unknown fields are refused here (upstream ignores them) so a typo in a hand-written
request is not silently ignored.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel

from host_agent.lattice.strict import BadRequest, parse_json

DEFAULT_LINK_NAME = "default"
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1

__all__ = ["BadRequest"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    # The operation whose body this is, for errors ("invalid component.scale request").
    operation: ClassVar[str]


class ScaleComponentCommand(_Request):
    operation = "component.scale"

    component_id: str = Field(min_length=1)
    component_ref: str = ""
    annotations: dict[str, str] | None = None
    count: int = Field(default=0, ge=0, le=U32_MAX)  # serde: u32 `max_instances`
    # Accepted (newer control-interface clients send it) but not enforced by this host.
    max_linear_memory: int | None = Field(default=None, ge=0, le=U64_MAX)
    host_id: str = ""
    config: list[str] = Field(default_factory=list)
    allow_update: bool = False


class UpdateComponentCommand(_Request):
    operation = "component.update"

    component_id: str = Field(min_length=1)
    new_component_ref: str = Field(min_length=1)
    host_id: str = ""
    annotations: dict[str, str] | None = None


class StartProviderCommand(_Request):
    operation = "provider.start"

    provider_id: str = Field(min_length=1)
    provider_ref: str = Field(min_length=1)
    host_id: str = ""
    config: list[str] = Field(default_factory=list)
    annotations: dict[str, str] | None = None


class StopProviderCommand(_Request):
    operation = "provider.stop"

    provider_id: str = Field(min_length=1)
    host_id: str = ""


class StopHostCommand(_Request):
    operation = "host.stop"

    host_id: str = ""
    timeout: int | None = Field(default=None, ge=0, le=U64_MAX)  # serde: Option<u64>


class HostLabel(_Request):
    operation = "label"

    key: str = Field(min_length=1)
    value: str = ""


class Link(_Request):
    operation = "link.put"

    source_id: str = Field(min_length=1)
    target: str = Field(min_length=1)
    name: str = DEFAULT_LINK_NAME
    wit_namespace: str = Field(min_length=1)
    wit_package: str = Field(min_length=1)
    interfaces: list[str]
    source_config: list[str] = Field(default_factory=list)
    target_config: list[str] = Field(default_factory=list)

    def key(self) -> tuple[str, str, str, str]:
        """Links are unique per (source, namespace, package, link name)."""
        return (self.source_id, self.wit_namespace, self.wit_package, self.name)


class DeleteLinkRequest(_Request):
    operation = "link.del"

    source_id: str = Field(min_length=1)
    name: str = DEFAULT_LINK_NAME
    wit_namespace: str = Field(min_length=1)
    wit_package: str = Field(min_length=1)


class ConfigValues(RootModel[dict[str, str]]):
    """The ``config.put`` body: a flat JSON object of string -> string."""

    model_config = ConfigDict(strict=True)


RequestT = TypeVar("RequestT", bound=_Request)


def parse_request(model: type[RequestT], payload: bytes) -> RequestT:
    """A control request from its JSON body (empty means ``{}``), or ``BadRequest``."""
    return parse_json(model, payload or b"{}", f"{model.operation} request")


def parse_config(payload: bytes) -> dict[str, str]:
    what = "config.put body (config data should be a map of string -> string)"
    return parse_json(ConfigValues, payload or b"{}", what).root


def ctl_reply(success: bool, message: str = "", response: Any = None) -> bytes:
    """The ``CtlResponse`` envelope; ``response`` is omitted (never null) when absent."""
    body: dict[str, Any] = {"success": success, "message": message}
    if response is not None:
        body["response"] = response
    return json.dumps(body).encode()
