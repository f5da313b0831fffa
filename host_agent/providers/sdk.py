"""The provider side of the host contract: read HostData, connect, answer the host.

A provider implements `ProviderHandler`; `run_provider` does the rest, the way
wasmCloud's provider SDK does: health and shutdown requests, link definitions pushed
by the host (and those present at start), config updates. A provider also exits when
the host process that started it is gone, so a killed host leaves no orphans.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from typing import Protocol

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from host_agent.lattice import event_loop
from host_agent.lattice.connection import (
    AddressError,
    ClientTls,
    ConnectionRefused,
    CredentialsError,
    NatsAddress,
    NatsCredentials,
    TlsConfigError,
    connect_nats,
    settle,
)
from host_agent.lattice.strict import BadRequest
from host_agent.providers.contract import (
    CALLER_GRANT,
    CONFIG_UPDATE,
    HEALTH,
    LINK_DEL,
    LINK_PUT,
    SHUTDOWN,
    CallerGrant,
    HealthCheckRequest,
    HostAddressedRequest,
    HostData,
    InterfaceLinkDefinition,
    ShutdownRequest,
    parse_config_update,
    provider_subject,
)
from host_agent.security.grants import GrantError, caller_public_key
from host_agent.security.jwt import JwtError, decode_claims
from host_agent.telemetry import otel as telemetry
from host_agent.telemetry.config import TelemetryConfigError, from_otel_config
from host_agent.wrpc.granted import GrantedClient
from host_agent.wrpc.transport import WrpcClient

log = logging.getLogger("host_agent.provider")


class ProviderHandler(Protocol):
    async def start(self, host: HostData, nc: NatsClient) -> None: ...
    async def link_put(self, link: InterfaceLinkDefinition) -> None: ...
    async def link_del(self, link: InterfaceLinkDefinition) -> None: ...
    async def health(self) -> tuple[bool, str]: ...
    async def stop(self) -> None: ...


class CallingProvider(ProviderHandler, Protocol):
    """A provider that makes wRPC calls (e.g. http-server): it gets the client its calls
    go out on, which under per-link authorization is its link grant's connection."""

    def use_caller(self, client: WrpcClient) -> None: ...


async def _watch_parent(stop: asyncio.Event) -> None:
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            log.warning("host process is gone; provider exiting")
            stop.set()


def rpc_credentials(host: HostData) -> NatsCredentials | None:
    """The NATS user the host passed (its own, as the real host does), or None."""
    jwt, seed = host.lattice_rpc_user_jwt, host.lattice_rpc_user_seed
    if not jwt and not seed:
        return None
    if not jwt or not seed:
        raise CredentialsError(
            "HostData: lattice_rpc_user_jwt and lattice_rpc_user_seed must both be given "
            "(a NATS user) or both be empty"
        )
    try:
        return NatsCredentials(jwt, seed)
    except CredentialsError as exc:
        raise CredentialsError(f"HostData lattice_rpc_user_jwt/seed: {exc}") from None


def rpc_tls(host: HostData) -> ClientTls | None:
    """The TLS settings the host passed (its own CA and client certificate), or None."""
    ca, cert, key = (
        host.lattice_rpc_tls_ca_pem,
        host.lattice_rpc_tls_cert_pem,
        host.lattice_rpc_tls_key_pem,
    )
    if not ca and not cert and not key:
        return None
    if not ca:
        raise TlsConfigError(
            "HostData: lattice_rpc_tls_cert_pem/key_pem need lattice_rpc_tls_ca_pem (the CA "
            "that signed the server's certificate)"
        )
    if bool(cert) != bool(key):
        raise TlsConfigError(
            "HostData: lattice_rpc_tls_cert_pem and lattice_rpc_tls_key_pem must both be "
            "given (a client certificate and its key) or both be empty"
        )
    try:
        return ClientTls(ca, cert or None, key or None)
    except TlsConfigError as exc:
        raise TlsConfigError(f"HostData lattice_rpc_tls_*: {exc}") from None


async def serve(handler: ProviderHandler, host: HostData) -> None:
    credentials = rpc_credentials(host)
    tls = rpc_tls(host)
    fix = (
        "the host passed no NATS user in HostData (lattice_rpc_user_jwt/seed are empty); "
        "start the host with the lattice's credentials (WASMCLOUD_NATS_CREDS, or "
        "WASMCLOUD_NATS_JWT and WASMCLOUD_NATS_SEED)"
        if credentials is None
        else "the NATS user the host passed in HostData is not accepted by this server"
    )
    nc = await connect_nats(
        NatsAddress.parse(host.lattice_rpc_url),
        credentials,
        who=f"provider {host.provider_key}",
        fix=fix,
        tls=tls,
        name=f"provider {host.provider_key}",
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
    )
    stop = asyncio.Event()

    def subject(operation: str) -> str:
        return provider_subject(host.lattice_rpc_prefix, host.provider_key, operation)

    async def addressed_here(msg: Msg, request: type[HostAddressedRequest]) -> bool:
        """Whether a host-addressed request is for this instance (a malformed one is
        refused); another host asks its own instance of the same provider id."""
        try:
            return request.parse(msg.data).for_host(host.host_id)
        except BadRequest as error:
            await refuse(msg, error)
            return False

    async def on_health(msg: Msg) -> None:
        if not await addressed_here(msg, HealthCheckRequest):
            return
        healthy, message = await handler.health()
        await msg.respond(json.dumps({"healthy": healthy, "message": message}).encode())

    async def refuse(msg: Msg, error: BadRequest) -> None:
        # Pushes are published without a reply subject; the log is where a refusal shows.
        log.warning("refused a message on %s: %s", msg.subject, error)
        if msg.reply:
            await msg.respond(str(error).encode())

    async def on_shutdown(msg: Msg) -> None:
        if not await addressed_here(msg, ShutdownRequest):
            return
        if msg.reply:
            await msg.respond(b"shutting down")
        stop.set()

    async def on_link(msg: Msg) -> None:
        try:
            link = InterfaceLinkDefinition.parse(msg.data)
        except BadRequest as error:
            await refuse(msg, error)
            return
        try:
            if msg.subject.endswith(LINK_PUT):
                await handler.link_put(link)
            else:
                await handler.link_del(link)
        except Exception:
            log.exception("link update failed")

    async def on_config(msg: Msg) -> None:
        try:
            values = parse_config_update(msg.data)
        except BadRequest as error:
            await refuse(msg, error)
            return
        log.info(
            "config update received (%d values); built-in providers read config at link time",
            len(values),
        )

    await nc.subscribe(subject(SHUTDOWN), cb=on_shutdown)
    await nc.subscribe(subject(LINK_PUT), cb=on_link)
    await nc.subscribe(subject(LINK_DEL), cb=on_link)
    await nc.subscribe(subject(CONFIG_UPDATE), cb=on_config)
    caller = await _granted_caller(host, nc, subject(CALLER_GRANT))
    await handler.start(host, nc)
    if caller is not None and hasattr(handler, "use_caller"):
        handler.use_caller(caller)
    for link in host.link_definitions:
        await handler.link_put(link)
    # Answer health checks only once serving: the host pushes links and the controller
    # reports "deployed" on the first passed check, so healthy must mean ready.
    await nc.subscribe(subject(HEALTH), cb=on_health)
    await settle(nc)
    log.info("provider %s ready", host.provider_key)
    watcher = asyncio.create_task(_watch_parent(stop))
    try:
        await stop.wait()
    finally:
        watcher.cancel()
        await handler.stop()
        if caller is not None:
            await caller.close()
        with contextlib.suppress(Exception):
            await nc.drain()


async def _granted_caller(host: HostData, nc: NatsClient, subject: str) -> GrantedClient | None:
    """With a caller seed in HostData, the client of the provider's outgoing calls: it
    connects as each link grant the host pushes on ``caller.grant`` for this instance."""
    if not host.wrpc_caller_seed:
        return None
    who = f"provider {host.provider_key}"

    async def connect(credentials: NatsCredentials) -> NatsClient:
        return await connect_nats(
            NatsAddress.parse(host.lattice_rpc_url),
            credentials,
            who=f"{who} (outgoing wRPC calls)",
            fix="the link grant the controller signed is not accepted by this server",
            tls=rpc_tls(host),
            name=f"provider {host.provider_key} calls",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
        )

    try:
        caller_key = caller_public_key(host.wrpc_caller_seed)
    except GrantError:
        raise CredentialsError("HostData wrpc_caller_seed is not a user nkey seed") from None
    caller = GrantedClient(host.lattice_rpc_prefix, host.wrpc_caller_seed, connect, who)

    async def on_grant(msg: Msg) -> None:
        try:
            grant = CallerGrant.parse(msg.data)
            if not grant.for_host(host.host_id):
                return
            if decode_claims(grant.jwt, "link grant").get("sub") != caller_key:
                return  # another instance's grant (same provider id, another host)
            await caller.install(grant.jwt)
        except (BadRequest, JwtError) as error:
            log.warning("refused a link grant: %s", error)
        except Exception as error:  # keep the old grant; the host sends the next one
            log.warning("could not use a new link grant: %s", error)

    await nc.subscribe(subject, cb=on_grant)
    return caller


def run_provider(handler: ProviderHandler) -> None:
    """Entry point of a provider process: HostData arrives as one line on stdin."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    line = sys.stdin.buffer.readline()
    if not line.strip():
        sys.exit(
            "provider: expected HostData (base64 JSON) on stdin; providers are started "
            "by a host (provider.start), not by hand"
        )
    try:
        host = HostData.decode(line)
    except BadRequest as error:
        sys.exit(f"provider: {error}")  # one line on stderr, exit status 1
    try:
        # Telemetry as the host's otel_config says (the host's own settings, as upstream).
        telemetry.configure(
            from_otel_config(host.otel_config),
            _service_name(),
            {
                "service.instance.id": host.instance_id,
                "wasmcloud.provider.id": host.provider_key,
                "wasmcloud.host.id": host.host_id,
                "wasmcloud.lattice": host.lattice_rpc_prefix,
            },
        )
    except TelemetryConfigError as error:
        sys.exit(f"provider {host.provider_key}: {error}")
    try:
        event_loop.run(serve(handler, host))
    except (AddressError, ConnectionRefused, CredentialsError, TlsConfigError) as error:
        sys.exit(f"provider {host.provider_key}: {error}")
    finally:
        telemetry.shutdown()


def _service_name() -> str:
    """The built-in provider's name (``http-server`` for host_agent.providers.http_server):
    its OpenTelemetry service name."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    module = spec.name.rsplit(".", 1)[-1] if spec is not None else ""
    return module.replace("_", "-") or "wasmcloud-provider"
