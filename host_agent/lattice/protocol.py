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

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from host_agent.lattice.strict import BadRequest, describe_errors, parse_json

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


class CtlReply(BaseModel):
    """The ``CtlResponse`` envelope every control reply comes in, read strictly (a
    ``"success": "true"`` is refused, not read as a failure or a success)."""

    model_config = ConfigDict(strict=True)

    success: bool
    message: str = ""
    response: Any = None


class PingedHost(BaseModel):
    """What a reader needs from a ``host.ping`` response: the host's id (the rest of the
    host's description is kept as sent)."""

    model_config = ConfigDict(strict=True)

    id: str = Field(min_length=1)


class _Reported(BaseModel):
    # What hosts report: strict types, unknown fields ignored (hosts add fields).
    model_config = ConfigDict(strict=True)


class ReportedProvider(_Reported):
    # control-interface 2.2 makes image_ref and annotations Options: null is "none".
    id: str = Field(min_length=1)
    image_ref: str | None = None
    annotations: dict[str, str] | None = None

    @property
    def ref(self) -> str:
        return self.image_ref or ""

    @property
    def annotation_map(self) -> dict[str, str]:
        """The annotations (none: empty)."""
        return dict(self.annotations or {})


class ReportedComponent(ReportedProvider):
    max_instances: int = Field(default=0, ge=0, le=U32_MAX)


class InventoryReport(_Reported):
    """What a host runs, as its ``host.get`` reply and its heartbeats say (the fields the
    controller and the provider's lattice read use). A component without an id or a
    count of ``"5"`` is refused naming the field, never read as 0 or dropped."""

    host_id: str = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    components: list[ReportedComponent] = Field(default_factory=list)
    providers: list[ReportedProvider] = Field(default_factory=list)

    @classmethod
    def parse(cls, data: Any, what: str = "host inventory") -> InventoryReport:
        """``data`` (decoded JSON) checked strictly, or ``BadRequest`` naming the field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise BadRequest(f"invalid {what}: {describe_errors(exc)}") from None


def ctl_reply(success: bool, message: str = "", response: Any = None) -> bytes:
    """The ``CtlResponse`` envelope; ``response`` is omitted (never null) when absent."""
    body: dict[str, Any] = {"success": success, "message": message}
    if response is not None:
        body["response"] = response
    return json.dumps(body).encode()


# Auctions, claims and registry credentials (control-interface 2.2, host 1.4.2) -------
class ComponentAuctionRequest(_Request):
    """``component.auction``: which hosts could run this component?"""

    operation = "component.auction"

    component_ref: str = ""
    component_id: str = Field(min_length=1)
    constraints: dict[str, str]  # required by serde: labels a bidding host must have


class ProviderAuctionRequest(_Request):
    """``provider.auction``: which hosts could start this provider?"""

    operation = "provider.auction"

    provider_ref: str = ""
    provider_id: str = Field(min_length=1)
    constraints: dict[str, str]


def component_auction_ack(request: ComponentAuctionRequest, host_id: str) -> dict[str, Any]:
    """``ComponentAuctionAck``: a host's bid."""
    return {
        "component_ref": request.component_ref,
        "component_id": request.component_id,
        "host_id": host_id,
        "constraints": dict(request.constraints),
    }


def provider_auction_ack(request: ProviderAuctionRequest, host_id: str) -> dict[str, Any]:
    """``ProviderAuctionAck``: a host's bid."""
    return {
        "host_id": host_id,
        "provider_ref": request.provider_ref,
        "provider_id": request.provider_id,
        "constraints": dict(request.constraints),
    }


REGISTRY_TYPES = ("oci",)


class RegistryCredential(_Request):
    """One registry's credentials in a ``registry.put`` body. Upstream reads an unknown
    ``registryType`` or a half-given user/password as anonymous OCI access (with a log
    warning); here either is refused, naming the field, so a typo never means "no auth".
    Secrets are left out of the repr."""

    # serde renames the type to `registryType` and accepts only that spelling.
    model_config = ConfigDict(extra="forbid", validate_by_name=False, strict=True)
    operation = "registry.put"

    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    token: str | None = Field(default=None, repr=False)
    registry_type: str = Field(default="oci", alias="registryType")

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> RegistryCredential:
        def refuse(message: str) -> PydanticCustomError:
            return PydanticCustomError("registry_credential", message)

        if self.registry_type not in REGISTRY_TYPES:
            raise refuse(f'registryType "{self.registry_type}" is not supported; use "oci"')
        basic = (self.username is not None, self.password is not None)
        if basic == (True, False):
            raise refuse("password is missing: username and password go together")
        if basic == (False, True):
            raise refuse("username is missing: username and password go together")
        if all(basic) and self.token is not None:
            raise refuse("token and username/password both given: give one way to log in")
        return self

    @property
    def auth(self) -> str:
        """``basic``, ``token`` or ``anonymous``: how a registry client should log in."""
        if self.username is not None:
            return "basic"
        return "token" if self.token is not None else "anonymous"


class RegistryCredentials(RootModel[dict[str, RegistryCredential]]):
    """The ``registry.put`` body: registry host name -> credentials."""

    model_config = ConfigDict(strict=True)


def parse_registry_credentials(payload: bytes) -> dict[str, RegistryCredential]:
    what = "registry.put body (a map of registry -> {username, password, token, registryType})"
    # Refusals never quote a string here: a misplaced one may be a password or token (a
    # credential sent as "user:password"), and the reply goes to every host's caller.
    return parse_json(RegistryCredentials, payload or b"{}", what, quote_strings=False).root
