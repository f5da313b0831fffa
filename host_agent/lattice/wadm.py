"""A small async client for the wadm API (used by tests, ``wasmcloud up`` and the Pulumi
provider). Replies come back as the typed shapes in ``lattice.wadm_types``."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from nats.aio.client import Client as NatsClient
from pydantic import BaseModel, ValidationError

from host_agent.lattice.strict import describe_errors
from host_agent.lattice.subjects import DEFAULT_LATTICE, wadm_api_subject
from host_agent.lattice.wadm_types import (
    DeleteModelResponse,
    DeployModelResponse,
    GetModelResponse,
    ListModelsResponse,
    PutModelResponse,
    ReplyOutcome,
    StatusResponse,
    VersionResponse,
)

Reply = TypeVar("Reply", bound=BaseModel)


class WadmError(RuntimeError):
    """The controller answered ``result: error``; the message says why."""


class WadmClient:
    def __init__(self, nc: NatsClient, lattice: str = DEFAULT_LATTICE, timeout: float = 5.0):
        self.nc = nc
        self.lattice = lattice
        self.timeout = timeout

    async def _call(
        self, shape: type[Reply], operation: str, name: str | None = None, body: Any = None
    ) -> Reply:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
        msg = await self.nc.request(
            wadm_api_subject(self.lattice, operation, name), payload, timeout=self.timeout
        )
        try:
            outcome = ReplyOutcome.model_validate_json(msg.data, strict=True)
            if outcome.result == "error":
                raise WadmError(outcome.message or f"wadm {operation} failed")
            return shape.model_validate_json(msg.data, strict=True)
        except ValidationError as exc:
            raise WadmError(
                f"the controller's {operation} reply is malformed: {describe_errors(exc)}"
            ) from None

    async def put(self, manifest: str | bytes | dict[str, Any]) -> PutModelResponse:
        body = (
            manifest
            if isinstance(manifest, bytes)
            else (manifest.encode() if isinstance(manifest, str) else json.dumps(manifest).encode())
        )
        return await self._call(PutModelResponse, "put", body=body)

    async def deploy(self, name: str, version: str | None = None) -> DeployModelResponse:
        return await self._call(DeployModelResponse, "deploy", name, {"version": version})

    async def undeploy(self, name: str) -> DeployModelResponse:
        return await self._call(DeployModelResponse, "undeploy", name)

    async def delete(self, name: str, version: str | None = None) -> DeleteModelResponse:
        return await self._call(DeleteModelResponse, "del", name, {"version": version})

    async def get(self, name: str, version: str | None = None) -> GetModelResponse:
        return await self._call(GetModelResponse, "get", name, {"version": version})

    async def versions(self, name: str) -> VersionResponse:
        return await self._call(VersionResponse, "versions", name)

    async def list(self) -> ListModelsResponse:
        return await self._call(ListModelsResponse, "get")

    async def status(self, name: str) -> StatusResponse:
        return await self._call(StatusResponse, "status", name)
