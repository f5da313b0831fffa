"""Control-interface handlers: one async method per operation, each returning the reply.

Handlers never raise to the caller: any failure becomes ``success: false`` with a message,
so a malformed request cannot take the host down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from host_agent.host.artifacts import (
    ArtifactError,
    OciOptions,
    fetch_component_bytes,
    max_component_size_from_env,
)
from host_agent.host.claims import claims_entry, stored_json
from host_agent.host.components import ComponentHost, ComponentStartError
from host_agent.host.lattice_providers import LatticeProviders
from host_agent.host.providers import ProviderSupervisor
from host_agent.host.state import ComponentRecord, HostState
from host_agent.host.store import LatticeStore, LinkConflict
from host_agent.lattice.protocol import (
    BadRequest,
    ComponentAuctionRequest,
    DeleteLinkRequest,
    HostLabel,
    Link,
    ProviderAuctionRequest,
    RegistryCredential,
    ScaleComponentCommand,
    StartProviderCommand,
    StopHostCommand,
    StopProviderCommand,
    UpdateComponentCommand,
    component_auction_ack,
    ctl_reply,
    parse_config,
    parse_registry_credentials,
    parse_request,
    provider_auction_ack,
)
from host_agent.lattice.subjects import CtlSubjects
from host_agent.providers.builtin import BuiltinProvider, UnknownProvider, resolve_provider
from host_agent.runtime.image import ComponentLoadError
from host_agent.runtime.provider_versions import link_problem
from host_agent.secrets.client import SecretsError
from host_agent.secrets.host import SecretValues, split_config_names
from host_agent.telemetry import ctl as ctl_telemetry

log = logging.getLogger("host_agent.ctl")

Publish = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass
class HostOptions:
    allow_file_load: bool = False
    max_component_size: int = field(default_factory=max_component_size_from_env)
    nats_url: str = "nats://127.0.0.1:4222"
    oci: OciOptions = field(default_factory=OciOptions.from_env)


class CtlHandlers:
    def __init__(
        self,
        state: HostState,
        store: LatticeStore,
        subjects: CtlSubjects,
        options: HostOptions,
        publish: Publish,
        request_stop: Callable[[], None],
        components: ComponentHost,
        providers: ProviderSupervisor,
        lattice_providers: LatticeProviders | None = None,
    ) -> None:
        self.components = components
        self.providers = providers
        self.state = state
        # What other hosts run, from their events (Host follows them).
        self.lattice_providers = lattice_providers or LatticeProviders(state.host_id)
        components.provider_of = self.provider_of  # link ends judged as providers
        components.links_from = store.links_from
        self.store = store
        self.subjects = subjects
        self.options = options
        self.publish = publish
        self.request_stop = request_stop
        self._background: set[asyncio.Task[None]] = set()

    async def handle(self, subject: str, payload: bytes) -> bytes | None:
        """The reply for one request, or None where the protocol sends none (auctions)."""
        tokens = self.subjects.operation(subject)
        try:
            return await self._dispatch(tokens, payload)
        except BadRequest as exc:
            return ctl_reply(False, str(exc))
        except Exception as exc:  # a bug or a lost NATS connection must not kill the host
            log.exception("control request on %s failed", subject)
            return ctl_reply(False, f"internal error handling {'.'.join(tokens)}: {exc}")

    async def _dispatch(self, tokens: list[str], payload: bytes) -> bytes | None:
        match tokens:
            case ["host", "ping"]:
                return ctl_reply(True, "", self.state.host_info(self.options.nats_url))
            case ["host", "get", _]:
                return ctl_reply(True, "", self.state.inventory())
            case ["host", "stop", _]:
                return self.stop_host(parse_request(StopHostCommand, payload))
            case ["component", "scale", _]:
                return self.scale_component(parse_request(ScaleComponentCommand, payload))
            case ["component", "update", _]:
                return await self.update_component(parse_request(UpdateComponentCommand, payload))
            case ["provider", "start", _]:
                return self.start_provider(parse_request(StartProviderCommand, payload))
            case ["provider", "stop", _]:
                return await self.stop_provider(parse_request(StopProviderCommand, payload))
            case ["label", "put", _]:
                return await self.put_label(parse_request(HostLabel, payload))
            case ["label", "del", _]:
                return await self.delete_label(parse_request(HostLabel, payload))
            case ["link", "put"]:
                return await self.put_link(parse_request(Link, payload))
            case ["link", "del"]:
                return await self.delete_link(parse_request(DeleteLinkRequest, payload))
            case ["link", "get"]:
                return ctl_reply(True, "", await self.store.get_links())
            case ["claims", "get"]:
                entries = [claims_entry(value) for value in await self.store.get_claims()]
                return ctl_reply(True, "", [entry for entry in entries if entry is not None])
            case ["config", "put", name]:
                return await self.put_config(name, parse_config(payload))
            case ["config", "get", name]:
                values = await self.store.get_config(name)
                if values is None:
                    return ctl_reply(True, "Configuration not found")
                return ctl_reply(True, "", values)
            case ["config", "del", name]:
                await self.store.delete_config(name)
                await self.publish("config_deleted", {"config_name": name})
                return ctl_reply(True, "successfully deleted config")
            case ["registry", "put"]:
                return self.put_registries(parse_registry_credentials(payload))
            case ["component", "auction"]:
                return self.component_auction(parse_request(ComponentAuctionRequest, payload))
            case ["provider", "auction"]:
                return self.provider_auction(parse_request(ProviderAuctionRequest, payload))
            case _:
                return ctl_reply(False, "unsupported subject")

    # auctions and registries -----------------------------------------------------------
    def component_auction(self, request: ComponentAuctionRequest) -> bytes | None:
        """Bid (reply) when this host's labels satisfy every constraint; stay silent
        otherwise. 1.4.2 also means to skip hosts already running the component id, but
        its request getter returns the image ref for the id, so in effect it bids on the
        constraints alone; so does this host (a scale to a host that runs it resizes)."""
        if not self.state.satisfies(request.constraints):
            return None
        return ctl_reply(True, "", component_auction_ack(request, self.state.host_id))

    def provider_auction(self, request: ProviderAuctionRequest) -> bytes | None:
        """Bid when the labels satisfy the constraints and this host does not already run
        a provider with that id (a second start of the same id would be refused)."""
        if not self.state.satisfies(request.constraints):
            return None
        if request.provider_id in self.state.providers:
            return None
        return ctl_reply(True, "", provider_auction_ack(request, self.state.host_id))

    def put_registries(self, credentials: dict[str, RegistryCredential]) -> bytes:
        self.state.put_registry_credentials(credentials)
        log.info("updated registry credentials for %s", ", ".join(sorted(credentials)) or "none")
        return ctl_reply(True, "successfully put registries")

    # host ---------------------------------------------------------------------------
    def stop_host(self, command: StopHostCommand) -> bytes:
        if command.host_id and command.host_id != self.state.host_id:
            return ctl_reply(
                False, f"host_id {command.host_id} does not match this host ({self.state.host_id})"
            )
        self.request_stop()
        return ctl_reply(True, "successfully handled stop host")

    # components ---------------------------------------------------------------------
    def scale_component(self, command: ScaleComponentCommand) -> bytes:
        """Acknowledge now and report the outcome as an event, like the real host. A scale
        that names another image than the one this component runs does not replace it (the
        1.4.2 host's rule): the component is resized on its running image and the reply
        says so; with ``allow_update`` it is moved to the new image afterwards, as by
        ``component.update``. The reply texts are 1.4.2's, which clients may show or match."""
        record = self.state.components.get(command.component_id)
        moved = record is not None and record.image_ref != command.component_ref
        message = ""
        if record is not None and moved and not command.allow_update:
            message = (
                "Requested to scale existing component to a different image reference: "
                f"{record.image_ref} != {command.component_ref}. The component will be scaled "
                "but the image reference will not be updated. If you meant to update this "
                "component to a new image ref, use the update command."
            )
            log.warning("%s", message)
        elif record is not None and moved:
            message = (
                "Requested to scale existing component, with a changed image reference: "
                f"{record.image_ref} != {command.component_ref}. The component will be scaled, "
                "and the image reference will be updated afterwards."
            )
        component = {"wasmcloud.component.id": command.component_id}
        if record is not None and moved and command.count > 0:
            self._spawn(self._scale_running(command, record), "scale component", component)
        else:
            self._spawn(self._scale(command), "scale component", component)
        return ctl_reply(True, message)

    async def _fetch(self, ref: str) -> bytes:
        return await fetch_component_bytes(
            ref,
            allow_file_load=self.options.allow_file_load,
            max_size=self.options.max_component_size,
            oci=self.options.oci,
            registry_credential=self.state.registry_credential,
        )

    async def _run_wasm(self, component_id: str, wasm: bytes, count: int) -> None:
        """Compile ``wasm`` and run it as ``component_id`` with up to ``count`` instances.
        A signed component's claims are stored lattice-wide, so any host answers
        claims.get."""
        image = await self.components.load(wasm)
        claims = self.components.claims.get(image.digest)
        if claims is not None:
            await self.store.put_claims(claims.subject, stored_json(claims))
        await self.components.run(component_id, image, count)

    def _component_event(
        self,
        component_id: str,
        image_ref: str,
        annotations: dict[str, str],
        max_instances: int,
        error: str | None = None,
    ) -> dict[str, Any]:
        """The body of ``component_scaled`` (and, with ``error``, ``_scale_failed``)."""
        event: dict[str, Any] = {
            "annotations": annotations,
            "host_id": self.state.host_id,
            "image_ref": image_ref,
            "component_id": component_id,
            "max_instances": max_instances,
        }
        if error is not None:
            event["error"] = error
        return event

    async def _scale(self, command: ScaleComponentCommand) -> None:
        wid = command.component_id
        record = self.state.components.get(wid)
        annotations = command.annotations or (record.annotations if record else {})
        image_ref = command.component_ref or (record.image_ref if record else "")
        if command.count == 0:
            self.state.components.pop(wid, None)
            await self.components.stop(wid)
            self.components.secrets.pop(wid, None)
            if record is not None:  # the event names what was stopped, as 1.4.2's does
                annotations, image_ref = record.annotations, record.image_ref
            await self.publish(
                "component_scaled", self._component_event(wid, image_ref, annotations, 0)
            )
            return
        try:
            secrets = await self._check_secrets(command.config)
            wasm = await self._fetch(command.component_ref)
            self.components.secrets[wid] = secrets.plain()
            started = time.monotonic()
            await self._run_wasm(wid, wasm, command.count)
            log.info(
                "component %s running with up to %d instances (ready in %.2fs)",
                command.component_id,
                command.count,
                time.monotonic() - started,
            )
        except (
            ArtifactError,
            OSError,
            ComponentLoadError,
            ComponentStartError,
            SecretsError,
        ) as exc:
            log.warning("cannot run %s: %s", wid, exc)
            ctl_telemetry.work_failed(str(exc))
            await self.publish(
                "component_scale_failed",
                self._component_event(wid, image_ref, annotations, command.count, str(exc)),
            )
            return
        self.state.components[command.component_id] = ComponentRecord(
            command.component_id,
            command.component_ref,
            command.count,
            annotations,
            list(command.config),
        )
        await self.publish(
            "component_scaled", self._component_event(wid, image_ref, annotations, command.count)
        )

    async def _scale_running(self, command: ScaleComponentCommand, record: ComponentRecord) -> None:
        """A scale naming another image than the running one. As in 1.4.2, the named image
        is fetched first (a fetch that fails is ``component_scale_failed`` and changes
        nothing); the component is then resized on the image it runs, and its
        ``component_scaled`` event names that image. With ``allow_update`` it then moves
        to the new image."""
        wid = command.component_id
        try:
            await self._fetch(command.component_ref)
            running = self.components.running.get(wid)
            resize = command.count != record.max_instances or list(command.config) != record.config
            if running is not None and resize:
                await self.components.run(wid, running.image, command.count)
        except (ArtifactError, OSError, ComponentLoadError, ComponentStartError) as exc:
            log.warning("cannot scale %s: %s", wid, exc)
            labels = command.annotations or record.annotations
            await self.publish(
                "component_scale_failed",
                self._component_event(wid, command.component_ref, labels, command.count, str(exc)),
            )
            return
        record.max_instances = command.count
        record.config = list(command.config)
        await self.publish(
            "component_scaled",
            self._component_event(wid, record.image_ref, record.annotations, record.max_instances),
        )
        if command.allow_update:
            await self._update(wid, command.component_ref, command.annotations)

    async def update_component(self, command: UpdateComponentCommand) -> bytes:
        record = self.state.components.get(command.component_id)
        if record is None:
            return ctl_reply(False, f"component {command.component_id} not found")
        if record.image_ref == command.new_component_ref:
            return ctl_reply(
                True,
                f"component {command.component_id} already updated to {command.new_component_ref}",
            )
        old_ref = record.image_ref
        self._spawn(
            self._update(command.component_id, command.new_component_ref, command.annotations),
            "update component",
            {"wasmcloud.component.id": command.component_id},
        )
        return ctl_reply(
            True,
            f"component {command.component_id} updating from {old_ref} to "
            f"{command.new_component_ref}",
        )

    async def _update(self, wid: str, new_ref: str, annotations: dict[str, str] | None) -> None:
        """Move a running component to ``new_ref`` with the same instance count: the new
        image serves before the old one's instances close. 1.4.2 only logs a failed update;
        here it is also ``component_scale_failed``, so whoever asked learns why."""
        record = self.state.components.get(wid)
        if record is None or record.image_ref == new_ref:
            return
        labels = annotations or record.annotations
        try:
            await self._run_wasm(wid, await self._fetch(new_ref), record.max_instances)
        except (ArtifactError, OSError, ComponentLoadError, ComponentStartError) as exc:
            log.warning("cannot update %s to %s: %s", wid, new_ref, exc)
            await self.publish(
                "component_scale_failed",
                self._component_event(wid, new_ref, labels, record.max_instances, str(exc)),
            )
            return
        log.info("component %s updated from %s to %s", wid, record.image_ref, new_ref)
        record.image_ref, record.annotations = new_ref, labels
        await self.publish(
            "component_scaled", self._component_event(wid, new_ref, labels, record.max_instances)
        )

    # providers ----------------------------------------------------------------------
    def start_provider(self, command: StartProviderCommand) -> bytes:
        if command.provider_id in self.state.providers:
            return ctl_reply(False, "provider with that ID is already running")
        provider = {"wasmcloud.provider.id": command.provider_id}
        self._spawn(self._start_provider(command), "start provider", provider)
        return ctl_reply(True, "successfully started provider")

    async def _start_provider(self, command: StartProviderCommand) -> None:
        await self.providers.start(command)

    async def stop_provider(self, command: StopProviderCommand) -> bytes:
        if command.provider_id not in self.state.providers:
            return ctl_reply(False, "provider with that ID is not running")
        await self.providers.stop(command.provider_id)
        return ctl_reply(True, "successfully stopped provider")

    # labels -------------------------------------------------------------------------
    async def put_label(self, label: HostLabel) -> bytes:
        self.state.labels[label.key] = label.value
        await self._labels_changed()
        return ctl_reply(True, "successfully put label")

    async def delete_label(self, label: HostLabel) -> bytes:
        if self.state.labels.pop(label.key, None) is None:
            return ctl_reply(True, "successfully deleted label (no such label)")
        await self._labels_changed()
        return ctl_reply(True, "successfully deleted label")

    async def _labels_changed(self) -> None:
        await self.publish(
            "labels_changed", {"host_id": self.state.host_id, "labels": dict(self.state.labels)}
        )

    # links and config ---------------------------------------------------------------
    async def put_link(self, link: Link) -> bytes:
        # Under the lock a component start checks with: see ComponentHost.link_check.
        async with self.components.link_check:
            reply = await self._put_link(link)
        return reply

    def provider_of(self, provider_id: str) -> BuiltinProvider | None:
        """The built-in ``provider_id`` runs, here or on another host (None if unknown)."""
        record = self.state.providers.get(provider_id)
        if record is None:
            return self.lattice_providers.provider(provider_id)
        try:
            return resolve_provider(record.image_ref)
        except UnknownProvider:  # not started: it never ran here
            return None

    async def _put_link(self, link: Link) -> bytes:
        images = self.components.images  # only what runs here: see link_problem
        source, target = images.get(link.source_id), images.get(link.target)
        mismatch = link_problem(source, target, link, self.provider_of)
        if mismatch is not None:
            return await self._link_failed(link, mismatch)
        for name in [*link.source_config, *link.target_config]:
            if await self.store.get_config(name) is None:
                return await self._link_failed(
                    link, f"config {name!r} does not exist; put it first (config.put.{name})"
                )
        try:
            await self._check_secrets([*link.source_config, *link.target_config])
        except SecretsError as exc:
            return await self._link_failed(link, str(exc))
        try:
            await self.store.put_link(link)
        except LinkConflict as exc:
            return await self._link_failed(link, str(exc))
        await self.publish("linkdef_set", link.model_dump())
        return ctl_reply(True, "successfully set link")

    async def _check_secrets(self, config_names: list[str]) -> SecretValues:
        """The values of the secret references among ``config_names``; SecretsError
        naming the first one that cannot be fetched. For a link this is ours: a 1.4.2
        host checks only that the reference exists and leaves a link without its secrets
        out of the provider's links, so wadm would report the application deployed
        without them."""
        names = split_config_names(config_names)[1]
        if not names:
            return SecretValues()
        if self.providers.secrets is None:
            raise SecretsError(f"{names[0]}: this host has no secrets client")
        return await self.providers.secrets.fetch(names)

    async def _link_failed(self, link: Link, error: str) -> bytes:
        await self.publish("linkdef_set_failed", {**link.model_dump(), "error": error})
        return ctl_reply(False, error)

    async def delete_link(self, request: DeleteLinkRequest) -> bytes:
        removed = await self.store.delete_link(request)
        event: dict[str, Any] = request.model_dump()
        if removed:
            event |= {"target": removed["target"], "interfaces": removed["interfaces"]}
        await self.publish("linkdef_deleted", event)
        return ctl_reply(True, "successfully deleted link")

    async def put_config(self, name: str, values: dict[str, str]) -> bytes:
        await self.store.put_config(name, values)
        await self.publish("config_set", {"config_name": name})
        return ctl_reply(True, "successfully put config")

    # --------------------------------------------------------------------------------
    def _spawn(self, work: Awaitable[None], what: str, attributes: dict[str, Any]) -> None:
        """Run ``work`` after the reply; within a traced request, as ``what``'s span."""

        async def guarded() -> None:
            try:
                with ctl_telemetry.background_span(what, attributes):
                    await work
            except Exception:
                log.exception("background control work failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def wait_background(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
