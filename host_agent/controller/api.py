"""The wadm API (``wadm.api.{lattice}.model.*``): one method per operation.

Requests and replies use wadm's shapes (``host_agent.lattice.wadm_types``) and, where
wash shows them to people, wadm's wording. Request bodies are parsed strictly: a field of
the wrong type is refused naming the field, and nothing is changed. The API only changes
stored state; reconciliation notices the change by watching the manifests bucket,
whichever controller served the request.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import nats.js.errors

from host_agent.controller.storage import ManifestStore, StatusStore
from host_agent.lattice.stored_manifest import StoreConflict, StoredManifest, new_ulid
from host_agent.lattice.strict import BadRequest
from host_agent.lattice.subjects import WADM_API_PREFIX
from host_agent.lattice.wadm_types import (
    DeleteModelRequest,
    DeleteModelResponse,
    DeployModelRequest,
    DeployModelResponse,
    GetModelRequest,
    GetModelResponse,
    ListModelsResponse,
    ModelSummary,
    PutModelResponse,
    Status,
    StatusInfo,
    StatusResponse,
    StatusType,
    UndeployModelRequest,
    VersionInfo,
    VersionResponse,
    error_reply,
    parse_model_request,
)
from host_agent.model.issues import ManifestError
from host_agent.model.loader import parse_manifest, parse_manifest_text
from host_agent.model.manifest import VERSION_ANNOTATION, Manifest
from host_agent.model.naming import MANIFEST_NAME_PATTERN
from host_agent.telemetry import controller as telemetry

log = logging.getLogger("host_agent.controller.api")

UNDEPLOYED = Status(status=StatusInfo(type=StatusType.UNDEPLOYED))


def parse_api_subject(subject: str, lattice: str) -> tuple[str, str | None]:
    """``wadm.api.{lattice}.model.{operation}[.{name}]`` -> (operation, name)."""
    head = f"{WADM_API_PREFIX}.{lattice}.model."
    if not subject.startswith(head):
        raise ValueError(f"unsupported subject {subject}; expected {head}<operation>[.<name>]")
    tokens = subject[len(head) :].split(".")
    if len(tokens) > 2 or not tokens[0]:
        raise ValueError(f"unsupported subject {subject}: at most one name after the operation")
    return tokens[0], tokens[1] if len(tokens) == 2 else None


# JetStream's "insufficient resources": the server's or the account's store limit is reached.
JETSTREAM_INSUFFICIENT_RESOURCES = 10023


def storage_failure(exc: Exception) -> str:
    """What the caller is told when storing failed: a full JetStream store in plain words
    with the fix (seen in tests/faults/test_jetstream_full.py), anything else as internal."""
    if (
        isinstance(exc, nats.js.errors.APIError)
        and exc.err_code == JETSTREAM_INSUFFICIENT_RESOURCES
    ):
        return (
            "the lattice's JetStream store is full (nats-server answered 'insufficient "
            "resources'), so nothing was stored: free space (delete or purge streams the "
            "lattice does not need) or raise jetstream max_file_store in nats-server's "
            "configuration, then try again"
        )
    return f"internal error: {exc}"


class WadmApi:
    def __init__(self, manifests: ManifestStore, statuses: StatusStore) -> None:
        self.manifests = manifests
        self.statuses = statuses

    async def handle(self, subject: str, body: bytes) -> bytes:
        try:
            operation, name = parse_api_subject(subject, self.manifests.lattice)
            if name is not None and not MANIFEST_NAME_PATTERN.match(name):
                raise ValueError(f"invalid application name {name!r}: use letters, digits, - or _")
            match operation, name:
                case "put", None:
                    return await self.put(body)
                case "get", None:
                    return (await self.list_models()).to_json()
                case "list", None:  # deprecated, but what wash 0.36 `app list` sends
                    models = await self.list_models()
                    return json.dumps([m.model_dump(mode="json") for m in models.models]).encode()
                case "get", str():
                    get = parse_model_request(GetModelRequest, body, operation)
                    return await self.get(name, get.version)
                case "versions", str():
                    return await self.versions(name)
                case "del", str():
                    delete = parse_model_request(DeleteModelRequest, body, operation)
                    return await self.delete(name, delete.version)
                case "deploy", str():
                    deploy = parse_model_request(DeployModelRequest, body, operation)
                    answer = await self.deploy(name, deploy.version)
                    telemetry.deploy_requested(name, answer)
                    return answer
                case "undeploy", str():
                    parse_model_request(UndeployModelRequest, body, operation)
                    return await self.undeploy(name)
                case "status", str():
                    return await self.status(name)
                case "history", str():
                    return error_reply("history is not currently supported; use versions")
            return error_reply(f"unsupported operation {operation!r} on {subject}")
        except (BadRequest, ValueError) as exc:  # BadRequest names the field; nothing changed
            return error_reply(str(exc))
        except Exception as exc:  # storage failures must still answer the caller
            log.exception("wadm API request on %s failed", subject)
            return error_reply(storage_failure(exc))

    # ------------------------------------------------------------------------------
    async def put(self, body: bytes) -> bytes:
        try:
            manifest = parse_manifest_text(body, "manifest").manifest
        except ManifestError as exc:
            problems = "; ".join(str(issue) for issue in exc.issues)
            return PutModelResponse(
                result="error", message=f"invalid manifest: {problems}"
            ).to_json()
        version = manifest.version or new_ulid()
        data = manifest.to_data()
        data.setdefault("metadata", {}).setdefault("annotations", {})[VERSION_ANNOTATION] = version
        try:
            stored = await self.manifests.update(
                manifest.name, lambda s: (s or StoredManifest()).put(version, data)
            )
        except StoreConflict as exc:
            return PutModelResponse(result="error", message=str(exc), name=manifest.name).to_json()
        assert stored is not None
        return PutModelResponse(
            result="created" if len(stored.versions) == 1 else "newversion",
            total_versions=len(stored.versions),
            current_version=version,
            message=f"Successfully put manifest {manifest.name} {version}",
            name=manifest.name,
        ).to_json()

    async def list_models(self) -> ListModelsResponse:
        models = []
        for name in await self.manifests.names():
            stored = await self.manifests.get(name)
            if stored is None or stored.latest_version is None:
                continue
            latest = stored.manifests[stored.latest_version]
            annotations = latest.get("metadata", {}).get("annotations", {})
            status = await self.current_status(name, stored)
            models.append(
                ModelSummary(
                    name=name,
                    version=stored.latest_version,
                    description=annotations.get("description"),
                    deployed_version=stored.deployed_version,
                    detailed_status=status,
                    status=status.status.type
                    if status.status.type is not StatusType.WAITING
                    else StatusType.UNDEPLOYED,
                    status_message=status.status.message or None,
                )
            )
        return ListModelsResponse(models=models)

    async def current_status(self, name: str, stored: StoredManifest) -> Status:
        if stored.deployed_version is None:
            return UNDEPLOYED
        return await self.statuses.latest(name) or Status(
            status=StatusInfo(type=StatusType.RECONCILING, message="Deployment starting")
        )

    async def get(self, name: str, version: str | None) -> bytes:
        stored = await self.manifests.get(name)
        chosen = stored.resolve(version) if stored else None
        if stored is None or chosen is None:
            what = f"{name} version {version}" if version else name
            return GetModelResponse(
                result="notfound", message=f"Model with the name {what} not found"
            ).to_json()
        return GetModelResponse(
            result="success",
            message=f"Successfully fetched model {name} {chosen}",
            manifest=stored.manifests[chosen],
        ).to_json()

    async def versions(self, name: str) -> bytes:
        stored = await self.manifests.get(name)
        if stored is None:
            return VersionResponse(result="notfound", message=_not_found(name)).to_json()
        return VersionResponse(
            result="success",
            message=f"Successfully fetched versions for model {name}",
            versions=[
                VersionInfo(version=v, deployed=v == stored.deployed_version)
                for v in stored.versions
            ],
        ).to_json()

    async def delete(self, name: str, version: str | None) -> bytes:
        outcome: dict[str, Any] = {"found": False, "undeployed": False}

        def change(stored: StoredManifest | None) -> StoredManifest | None:
            if stored is None:
                return None
            outcome["found"] = version is None or version in stored.manifests
            left, outcome["undeployed"] = stored.delete(version)
            return left

        await self.manifests.update(name, change)
        if not outcome["found"]:
            which = "all" if version is None else repr(version)
            return DeleteModelResponse(
                result="noop", message=f"Model {name} (version {which}) not found"
            ).to_json()
        what = f"all versions of {name}" if version is None else f"version {version} of {name}"
        undeployed = bool(outcome["undeployed"])
        note = "; it was deployed, so it is being undeployed" if undeployed else ""
        return DeleteModelResponse(
            result="deleted", message=f"Successfully deleted {what}{note}", undeploy=undeployed
        ).to_json()

    async def deploy(self, name: str, version: str | None) -> bytes:
        stored = await self.manifests.get(name)
        if stored is None:
            return DeployModelResponse(
                result="notfound", message=_not_found(name), name=name
            ).to_json()
        chosen = stored.resolve(version)
        if chosen is None:
            shown = version or '""'
            return DeployModelResponse(
                result="error",
                message=f"Version {shown} of {name} not found; stored versions: "
                + ", ".join(stored.versions),
                name=name,
            ).to_json()
        clash = await self._id_clash(name, stored.manifests[chosen])
        if clash:
            return DeployModelResponse(result="error", message=clash, name=name).to_json()
        await self.manifests.update(name, lambda s: s.deploy(chosen) if s else None)
        return DeployModelResponse(
            result="acknowledged",
            message=f"Successfully deployed model {name} {chosen}",
            name=name,
            version=chosen,
        ).to_json()

    async def _id_clash(self, name: str, data: dict[str, Any]) -> str | None:
        """wadm refuses to deploy a component id another deployed application owns."""
        mine = _component_ids(parse_manifest(data).manifest)
        for other in await self.manifests.names():
            if other == name:
                continue
            stored = await self.manifests.get(other)
            deployed = stored.deployed_manifest() if stored else None
            if deployed is None:
                continue
            for component_id in mine & _component_ids(parse_manifest(deployed).manifest):
                return (
                    f"Component identifier '{component_id}' is already deployed in a "
                    f"different application '{other}'."
                )
        return None

    async def undeploy(self, name: str) -> bytes:
        stored = await self.manifests.get(name)
        if stored is None:
            return DeployModelResponse(
                result="notfound", message=_not_found(name), name=name
            ).to_json()
        if stored.deployed_version is None:
            message = f"Application {name} was already undeployed"
        else:
            await self.manifests.update(name, lambda s: s.undeploy() if s else None)
            message = f"Successfully undeployed model {name}"
        return DeployModelResponse(result="acknowledged", message=message, name=name).to_json()

    async def status(self, name: str) -> bytes:
        stored = await self.manifests.get(name)
        if stored is None:
            return StatusResponse(result="notfound", message=_not_found(name)).to_json()
        status = await self.current_status(name, stored)
        return StatusResponse(
            result="ok", message=f"Successfully fetched status for {name}", status=status
        ).to_json()


def _component_ids(manifest: Manifest) -> set[str]:
    return {c.component_id(manifest.name) for c in manifest.spec.components}


def _not_found(name: str) -> str:
    return f"Model with the name {name} not found"
