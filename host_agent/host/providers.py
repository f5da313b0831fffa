"""Provider processes on this host: start with HostData on stdin, push links, stop.

Like the Rust host: the process gets a cleared environment and one base64 JSON line
on stdin, which carries the host's NATS URL and NATS user (JWT and seed), so a provider
reaches the lattice wherever, and as whoever, the host does; `provider_started` is
published once it is spawned; links where it is source or target are pushed on
`linkdefs.put`/`linkdefs.del` as they change in the lattice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NatsClient

from host_agent.host.caller import GrantKeeper, new_caller_seed
from host_agent.host.links import LinkIndex, LinkKey, ResolvedLink, provider_link_changes
from host_agent.host.state import HostState, ProviderRecord
from host_agent.lattice.connection import ClientTls, NatsCredentials
from host_agent.lattice.protocol import Link, StartProviderCommand
from host_agent.providers.builtin import BuiltinProvider, UnknownProvider, resolve_provider
from host_agent.providers.contract import (
    CALLER_GRANT,
    CONFIG_UPDATE,
    HEALTH,
    LINK_DEL,
    LINK_PUT,
    SHUTDOWN,
    CallerGrant,
    HealthCheckRequest,
    HostData,
    InterfaceLinkDefinition,
    provider_subject,
)
from host_agent.secrets.client import SecretsError
from host_agent.secrets.host import HostSecrets, SecretValues, split_config_names
from host_agent.secrets.xkeys import XKey
from host_agent.telemetry.config import TelemetryConfig

log = logging.getLogger("host_agent.providers")

Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
ConfigReader = Callable[[list[str]], Awaitable[dict[str, str]]]
# A stop is answered within wash's default 2 s request timeout, whatever the provider
# does: it has SHUTDOWN_ACK seconds to acknowledge the shutdown request (upstream waits
# 300 ms, then kills) and, once it has, EXIT_GRACE more to exit; then it is killed. One
# that does not acknowledge is hung, and is killed at once.
SHUTDOWN_ACK = 0.75
EXIT_GRACE = 0.75
READY_TIMEOUT = 30.0  # seconds a new provider has to answer its first health check
PASSED_ENV = ("RUST_LOG", "PYTHONPATH")  # the Rust host passes RUST_LOG only


@dataclass
class RunningProvider:
    record: ProviderRecord
    builtin: BuiltinProvider
    process: asyncio.subprocess.Process
    pushed: dict[LinkKey, ResolvedLink] = field(default_factory=dict)
    stopping: bool = False
    # Link pushes wait until the provider answers a health check: a message published
    # before it subscribed would be lost (Python providers take ~0.5 s to start).
    ready: bool = False
    grants: GrantKeeper | None = None  # its link grants (per-link authorization)
    xkey: XKey | None = None  # its public xkey: link secrets are sealed to it
    # Its own merged config (the start command's names), as last sent: HostData, then
    # config.update when one of those configs changes.
    config: dict[str, str] = field(default_factory=dict)
    # One sync at a time: the link watch and the config watch both sync it, and of two
    # interleaved syncs one that read a config before it changed could push the old
    # values after the other pushed the new ones (or both push the same change).
    syncing: asyncio.Lock = field(default_factory=asyncio.Lock)


def links_naming_config(links: Iterable[Link], name: str) -> list[Link]:
    """The links whose source_config or target_config names config ``name`` (a secret
    reference is named there too): those whose resolved values a change to it can alter."""
    return [link for link in links if name in link.source_config or name in link.target_config]


def link_definition(
    resolved: ResolvedLink, host_xkey: XKey | None = None, provider_xkey: XKey | None = None
) -> InterfaceLinkDefinition:
    """What a provider is told; link secrets sealed by the host's xkey to the provider's."""
    link = resolved.link
    source_secrets = target_secrets = None
    if host_xkey is not None and provider_xkey is not None:
        source_secrets = resolved.source_secrets.sealed_for(host_xkey, provider_xkey)
        target_secrets = resolved.target_secrets.sealed_for(host_xkey, provider_xkey)
    return InterfaceLinkDefinition(
        source_id=link.source_id,
        target=link.target,
        name=link.name,
        wit_namespace=link.wit_namespace,
        wit_package=link.wit_package,
        interfaces=list(link.interfaces),
        source_config=resolved.source_config,
        target_config=resolved.target_config,
        source_secrets=source_secrets,
        target_secrets=target_secrets,
    )


class ProviderSupervisor:
    def __init__(
        self,
        state: HostState,
        nc: NatsClient,
        nats_url: str,
        publish: Publish,
        read_configs: ConfigReader,
        credentials: NatsCredentials | None = None,
        *,
        link_grants: bool = False,
        secrets: HostSecrets | None = None,
        tls: ClientTls | None = None,
        telemetry: TelemetryConfig | None = None,
    ) -> None:
        self.state = state
        self.telemetry = telemetry or TelemetryConfig()
        # Providers connect with the host's own TLS settings, as with its NATS user.
        self.tls = tls
        self.secrets = secrets
        self.link_grants = link_grants
        self.nc = nc
        self.nats_url = nats_url
        self.credentials = credentials
        self.publish = publish
        self.read_configs = read_configs
        self.running: dict[str, RunningProvider] = {}
        self.links = LinkIndex()
        self._tasks: set[asyncio.Task[None]] = set()

    async def resolve(self, link: Link) -> ResolvedLink:
        """The link with its config values and secrets; SecretsError naming a secret
        that cannot be fetched."""
        source_names, source_secrets = split_config_names(link.source_config)
        target_names, target_secrets = split_config_names(link.target_config)
        return ResolvedLink(
            link,
            await self.read_configs(source_names),
            await self.read_configs(target_names),
            await self._secrets(source_secrets),
            await self._secrets(target_secrets),
        )

    async def _secrets(self, names: list[str]) -> SecretValues:
        if not names:
            return SecretValues()
        if self.secrets is None:
            raise SecretsError(f"{names[0]}: this host has no secrets client")
        return await self.secrets.fetch(names)

    async def _resolve_links(
        self, provider_id: str, pushed: dict[LinkKey, ResolvedLink] | None = None
    ) -> list[ResolvedLink]:
        """The provider's links; as upstream, one whose secrets cannot be fetched is
        left out (logged, named), not pushed without them. One the provider already has
        keeps what it has: a backend that is briefly unreachable must not unlink it."""
        resolved = []
        for link in self.links.involving(provider_id):
            try:
                resolved.append(await self.resolve(link))
            except SecretsError as error:
                key = (link.source_id, link.target, link.name, link.wit_namespace, link.wit_package)
                kept = (pushed or {}).get(key)
                if kept is not None and kept.link == link:
                    resolved.append(kept)
                    log.warning("link %s -> %s kept as pushed: %s", *key[:2], error)
                else:
                    log.warning("link %s -> %s left out: %s", *key[:2], error)
        return resolved

    async def start(self, command: StartProviderCommand) -> None:
        try:
            builtin = resolve_provider(command.provider_ref)
        except UnknownProvider as error:
            await self._start_failed(command, str(error))
            return
        config_names, secret_names = split_config_names(command.config)
        try:
            secrets = await self._secrets(secret_names)
        except SecretsError as error:
            await self._start_failed(command, str(error))
            return
        provider_xkey = XKey.generate()
        links = await self._resolve_links(command.provider_id)
        caller_seed = new_caller_seed() if self.link_grants else ""
        host_xkey = self.secrets.xkey if self.secrets is not None else None
        host_data = HostData(
            host_id=self.state.host_id,
            lattice_rpc_prefix=self.state.lattice,
            lattice_rpc_url=self.nats_url,
            lattice_rpc_user_jwt=self.credentials.jwt if self.credentials else "",
            lattice_rpc_user_seed=self.credentials.seed if self.credentials else "",
            provider_key=command.provider_id,
            instance_id=str(uuid.uuid4()),
            link_definitions=[link_definition(link, host_xkey, provider_xkey) for link in links],
            config=await self.read_configs(config_names),
            secrets=secrets.plain(),
            provider_xkey_private_key=provider_xkey.seed if host_xkey else "",
            host_xkey_public_key=host_xkey.public_key if host_xkey else "",
            wrpc_caller_seed=caller_seed,
            lattice_rpc_tls_ca_pem=self.tls.ca_pem if self.tls else "",
            lattice_rpc_tls_cert_pem=(self.tls.cert_pem or "") if self.tls else "",
            lattice_rpc_tls_key_pem=(self.tls.key_pem or "") if self.tls else "",
            otel_config=self.telemetry.otel_config(),
        )
        env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", builtin.module, stdin=asyncio.subprocess.PIPE, env=env
            )
        except OSError as error:
            await self._start_failed(command, f"could not spawn {builtin.module}: {error}")
            return
        assert process.stdin is not None
        process.stdin.write(host_data.encode())
        await process.stdin.drain()
        process.stdin.close()
        annotations = command.annotations or {}
        record = ProviderRecord(
            command.provider_id, command.provider_ref, annotations, list(command.config)
        )
        running = RunningProvider(record, builtin, process, {link.key: link for link in links})
        running.config = host_data.config
        running.xkey = XKey.from_public_key(provider_xkey.public_key)
        if caller_seed:
            running.grants = self._grant_keeper(command.provider_id, caller_seed)
        self.running[command.provider_id] = running
        self.state.providers[command.provider_id] = record
        for work in (self._watch_exit(running), self._when_ready(running)):
            task = asyncio.get_running_loop().create_task(work)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        log.info("provider %s started (%s, pid %d)", record.id, builtin.name, process.pid)
        await self.publish(
            "provider_started",
            {
                "host_id": self.state.host_id,
                "image_ref": command.provider_ref,
                "provider_id": command.provider_id,
                "annotations": annotations,
                "instance_id": host_data.instance_id,
                "public_key": command.provider_id,
                "link_name": "default",
            },
        )

    async def _when_ready(self, running: RunningProvider) -> None:
        subject = provider_subject(self.state.lattice, running.record.id, HEALTH)
        # Addressed to this host's instance: another host's instance of the same provider
        # id would answer an empty request at once, before ours listens for links.
        ours = HealthCheckRequest(host_id=self.state.host_id).model_dump_json().encode()
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT
        while not running.stopping and asyncio.get_running_loop().time() < deadline:
            try:
                await self.nc.request(subject, ours, timeout=0.5)
            except Exception:
                await asyncio.sleep(0.1)
                continue
            running.ready = True
            if running.grants is not None:
                running.grants.start()  # the provider listens on caller.grant by now
            await self._sync_links(running)
            await self._update_config(running)  # a config changed while it was starting
            await self.publish(
                "health_check_passed",
                {"host_id": self.state.host_id, "provider_id": running.record.id},
            )
            return
        if not running.stopping:
            log.warning("provider %s did not answer health checks", running.record.id)

    def _grant_keeper(self, provider_id: str, caller_seed: str) -> GrantKeeper:
        subject = provider_subject(self.state.lattice, provider_id, CALLER_GRANT)

        async def deliver(jwt: str) -> None:
            push = CallerGrant(host_id=self.state.host_id, jwt=jwt)
            await self.nc.publish(subject, push.model_dump_json().encode())

        return GrantKeeper(
            self.nc,
            self.state.lattice,
            self.state.identity.seed,
            caller_seed,
            lambda: [provider_id],
            deliver,
            f"provider {provider_id}",
        )

    async def _start_failed(self, command: StartProviderCommand, error: str) -> None:
        log.warning("provider %s failed to start: %s", command.provider_id, error)
        await self.publish(
            "provider_start_failed",
            {
                "provider_ref": command.provider_ref,
                "provider_id": command.provider_id,
                "error": error,
                "link_name": "default",
            },
        )

    async def _watch_exit(self, running: RunningProvider) -> None:
        code = await running.process.wait()
        if running.stopping:
            return
        # An unexpected exit: drop it from the inventory so wadm (or a user) restarts it.
        log.warning("provider %s exited unexpectedly with code %s", running.record.id, code)
        self.running.pop(running.record.id, None)
        self.state.providers.pop(running.record.id, None)
        if running.grants is not None:
            await running.grants.stop()
        await self._stopped(running, f"exited with code {code}")

    async def _stopped(self, running: RunningProvider, reason: str) -> None:
        await self.publish(
            "provider_stopped",
            {
                "host_id": self.state.host_id,
                "provider_id": running.record.id,
                "annotations": running.record.annotations,
                "reason": reason,
                "instance_id": running.record.id,
                "public_key": running.record.id,
                "link_name": "default",
            },
        )

    async def stop(self, provider_id: str, *, announce: bool = True) -> bool:
        running = self.running.pop(provider_id, None)
        self.state.providers.pop(provider_id, None)
        if running is None:
            return False
        running.stopping = True
        if running.grants is not None:
            await running.grants.stop()
        subject = provider_subject(self.state.lattice, provider_id, SHUTDOWN)
        acknowledged = False
        with contextlib.suppress(Exception):
            payload = json.dumps({"host_id": self.state.host_id}).encode()
            await self.nc.request(subject, payload, timeout=SHUTDOWN_ACK)
            acknowledged = True
        if acknowledged:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(running.process.wait(), EXIT_GRACE)
        if running.process.returncode is None:
            log.warning(
                "provider %s did not %s in time: killed",
                provider_id,
                "exit" if acknowledged else "acknowledge its shutdown request",
            )
            with contextlib.suppress(ProcessLookupError):  # it exited just now
                running.process.kill()
            await running.process.wait()
        if announce:
            await self._stopped(running, "stop")
        return True

    async def stop_all(self) -> None:
        # The Rust host sends no per-provider events when the whole host stops.
        await asyncio.gather(*(self.stop(pid, announce=False) for pid in list(self.running)))

    async def links_changed(self, links: list[Link]) -> None:
        """Push link puts/deletes to every local provider whose links changed."""
        self.links = LinkIndex(links)
        for running in list(self.running.values()):
            if running.ready:
                if running.grants is not None:
                    running.grants.changed()
                await self._sync_links(running)

    async def config_changed(self, name: str) -> None:
        """Named config ``name`` was put or deleted: each ready local provider that has a
        link naming it is synced again, so a link whose values changed is put again once,
        with them resolved anew (a deleted config resolves to nothing, as at link time);
        its other links, equal to what it has, are not. A provider whose own config names
        it gets its merged config anew on config.update.

        Upstream 1.4.2 follows a provider's own named configs (one KV watch per name,
        merged into a ConfigBundle) and publishes the merged map on config.update when it
        changes, but resolves link configs only when a link is new to the host: there, a
        link whose config changes under the same name keeps its old values until it is
        deleted and put again. Our controller keeps an application's config names across
        updates, so the host delivers such links again instead."""
        affected = links_naming_config(self.links.links, name)
        for running in list(self.running.values()):
            if not running.ready or running.stopping:
                continue
            provider_id = running.record.id
            if any(provider_id in (link.source_id, link.target) for link in affected):
                await self._sync_links(running)
            if name in running.record.config:
                await self._update_config(running)

    async def _update_config(self, running: RunningProvider) -> None:
        names = split_config_names(running.record.config)[0]
        if not names:
            return
        async with running.syncing:
            merged = await self.read_configs(names)
            if merged != running.config:
                running.config = merged
                subject = provider_subject(self.state.lattice, running.record.id, CONFIG_UPDATE)
                log.info("config.update to provider %s", running.record.id)
                await self.nc.publish(subject, json.dumps(merged).encode())

    async def _sync_links(self, running: RunningProvider) -> None:
        async with running.syncing:
            provider_id = running.record.id
            wanted = await self._resolve_links(provider_id, running.pushed)
            changes = provider_link_changes(running.pushed, wanted)
            for resolved in changes.put:
                await self._push(running, LINK_PUT, resolved)
                running.pushed[resolved.key] = resolved
            for resolved in changes.delete:
                await self._push(running, LINK_DEL, resolved)
                running.pushed.pop(resolved.key, None)

    async def _push(self, running: RunningProvider, operation: str, resolved: ResolvedLink) -> None:
        provider_id = running.record.id
        subject = provider_subject(self.state.lattice, provider_id, operation)
        link = resolved.link
        log.info("%s %s -> %s to provider %s", operation, link.source_id, link.target, provider_id)
        host_xkey = self.secrets.xkey if self.secrets is not None else None
        definition = link_definition(resolved, host_xkey, running.xkey)
        await self.nc.publish(subject, definition.model_dump_json().encode())
