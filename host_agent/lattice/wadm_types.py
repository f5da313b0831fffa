"""The wadm API's JSON shapes (wadm-types 0.7, as wadm 0.20 and wash 0.36 use them).

Defined once here; the controller parses requests and builds replies with them, and
clients (``WadmClient``, the Pulumi provider, tests) read replies back through them.
Field names and enum spellings are wadm's (snake_case, lowercase).

Requests are parsed strictly from their JSON text, as wadm's serde does: ``{"version":
["x"]}`` or ``{"version": 5}`` is refused naming ``version``, never read as "no version"
(which for ``model.del`` means every version). Like wadm, unknown fields are ignored and
an empty body means "no version".
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from host_agent.lattice.strict import StrictModel, parse_json

# The version keyword wadm reads as "the newest stored version" (and refuses as a name).
LATEST_VERSION = "latest"


# Requests -------------------------------------------------------------------------------
class GetModelRequest(StrictModel):
    """``model.get.{name}``: one version, or the newest when absent or null."""

    version: str | None = None


class DeleteModelRequest(StrictModel):
    """``model.del.{name}``: one version, or every version when absent or null."""

    version: str | None = None


class DeployModelRequest(StrictModel):
    """``model.deploy.{name}``: a version, or the newest when absent, null or ``latest``."""

    version: str | None = None


class UndeployModelRequest(StrictModel):
    """``model.undeploy.{name}``: no fields (reserved by wadm), but the body must be an object."""


RequestT = TypeVar("RequestT", bound=StrictModel)


def parse_model_request(model: type[RequestT], body: bytes, operation: str) -> RequestT:
    """A wadm API request body; empty means "no fields given", as in wadm."""
    if not body.strip():
        return model()
    return parse_json(model, body, f"model.{operation} request")


# Replies --------------------------------------------------------------------------------


class StatusType(StrEnum):
    WAITING = "waiting"
    UNDEPLOYED = "undeployed"
    RECONCILING = "reconciling"
    DEPLOYED = "deployed"
    FAILED = "failed"
    UNHEALTHY = "unhealthy"


# wadm's `impl Add for StatusType`: the first kind present in this order wins.
_PRECEDENCE = (
    StatusType.FAILED,
    StatusType.UNDEPLOYED,
    StatusType.WAITING,
    StatusType.RECONCILING,
    StatusType.UNHEALTHY,
)


def aggregate_status(kinds: list[StatusType]) -> StatusType:
    """The application's status from its scalers' (empty means undeployed)."""
    if not kinds:
        return StatusType.UNDEPLOYED
    for kind in _PRECEDENCE:
        if kind in kinds:
            return kind
    return StatusType.DEPLOYED


class _Shape(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=False).encode()


class StatusInfo(_Shape):
    type: StatusType = StatusType.UNDEPLOYED
    message: str = ""


class ScalerStatus(_Shape):
    id: str
    kind: str
    name: str
    status: StatusInfo


class Status(_Shape):
    status: StatusInfo = Field(default_factory=StatusInfo)
    scalers: list[ScalerStatus] = Field(default_factory=list)
    # Deprecated in wadm 0.14 but still serialized (always empty).
    version: str = ""
    components: list[Any] = Field(default_factory=list)


class ModelSummary(_Shape):
    name: str
    version: str
    description: str | None
    deployed_version: str | None
    detailed_status: Status
    status: StatusType
    status_message: str | None


class PutModelResponse(_Shape):
    result: str  # error | created | newversion
    total_versions: int = 0
    current_version: str = ""
    message: str = ""
    name: str = ""


class GetModelResponse(_Shape):
    result: str  # error | success | notfound
    message: str = ""
    manifest: dict[str, Any] | None = None

    def to_json(self) -> bytes:  # wadm omits `manifest` when there is none
        return self.model_dump_json(exclude_none=True).encode()


class ListModelsResponse(_Shape):
    result: str = "success"
    message: str = "Successfully fetched list of applications"
    models: list[ModelSummary] = Field(default_factory=list)


class VersionInfo(_Shape):
    version: str
    deployed: bool


class VersionResponse(_Shape):
    result: str
    message: str = ""
    versions: list[VersionInfo] = Field(default_factory=list)


class DeleteModelResponse(_Shape):
    result: str  # deleted | noop | error
    message: str = ""
    undeploy: bool = False


class DeployModelResponse(_Shape):
    result: str  # acknowledged | notfound | error
    message: str = ""
    name: str = ""
    version: str | None = None


class StatusResponse(_Shape):
    result: str  # ok | notfound | error
    message: str = ""
    status: Status | None = None

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class ReplyOutcome(StrictModel):
    """What every wadm reply starts with: ``result`` (``error`` on failure) and ``message``."""

    result: str
    message: str = ""


def error_reply(message: str) -> bytes:
    """wadm's generic error for a bad subject, body or storage failure."""
    return _ErrorReply(message=message).to_json()


class _ErrorReply(_Shape):
    result: str = "error"
    message: str
