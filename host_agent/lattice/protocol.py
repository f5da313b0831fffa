"""JSON shapes of control-interface requests and replies (control-interface crate, 1.4.2).

Requests are parsed strictly: unknown fields and missing ids are refused with a message
that names them, so a typo in a hand-written request is not silently ignored.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_LINK_NAME = "default"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ScaleComponentCommand(_Request):
    component_id: str = Field(min_length=1)
    component_ref: str = ""
    annotations: dict[str, str] | None = None
    count: int = Field(default=0, ge=0)
    host_id: str = ""
    config: list[str] = Field(default_factory=list)
    allow_update: bool = False


class UpdateComponentCommand(_Request):
    component_id: str = Field(min_length=1)
    new_component_ref: str = Field(min_length=1)
    host_id: str = ""
    annotations: dict[str, str] | None = None


class StartProviderCommand(_Request):
    provider_id: str = Field(min_length=1)
    provider_ref: str = Field(min_length=1)
    host_id: str = ""
    config: list[str] = Field(default_factory=list)
    annotations: dict[str, str] | None = None


class StopProviderCommand(_Request):
    provider_id: str = Field(min_length=1)
    host_id: str = ""


class StopHostCommand(_Request):
    host_id: str = ""
    timeout: int | None = None


class HostLabel(_Request):
    key: str = Field(min_length=1)
    value: str = ""


class Link(_Request):
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
    source_id: str = Field(min_length=1)
    name: str = DEFAULT_LINK_NAME
    wit_namespace: str = Field(min_length=1)
    wit_package: str = Field(min_length=1)


class BadRequest(ValueError):
    """A control request that cannot be parsed; the message is sent back to the client."""


RequestT = TypeVar("RequestT", bound=BaseModel)


def parse_request(model: type[RequestT], payload: bytes) -> RequestT:
    try:
        data = json.loads(payload or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg'].lower()}"
            for e in exc.errors()
        )
        raise BadRequest(f"invalid {model.__name__}: {problems}") from None


def parse_config(payload: bytes) -> dict[str, str]:
    try:
        data = json.loads(payload or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"config is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise BadRequest("config data should be a map of string -> string")
    return data


def ctl_reply(success: bool, message: str = "", response: Any = None) -> bytes:
    """The ``CtlResponse`` envelope; ``response`` is omitted (never null) when absent."""
    body: dict[str, Any] = {"success": success, "message": message}
    if response is not None:
        body["response"] = response
    return json.dumps(body).encode()
