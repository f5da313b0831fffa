"""A small async client for the control interface (used by tests, the controller and the
Pulumi provider). Each method is one request; failures raise ``CtlError`` with the host's
message."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from pydantic import ValidationError

from host_agent.lattice.protocol import DEFAULT_LINK_NAME, CtlReply, PingedHost
from host_agent.lattice.strict import BadRequest, describe_errors, parse_json
from host_agent.lattice.subjects import DEFAULT_CTL_PREFIX, DEFAULT_LATTICE, CtlSubjects

log = logging.getLogger(__name__)


class CtlError(RuntimeError):
    """The host answered ``success: false`` (the message says why), or its reply was not
    a control reply (the message names the field)."""


@dataclass(frozen=True)
class HostReading:
    """One host as one read of the lattice found it, as wire data: its ping reply and
    its ``host.get`` inventory, or why the inventory could not be had."""

    ping: dict[str, Any]
    inventory: dict[str, Any] | None
    error: str = ""

    @property
    def host_id(self) -> str:
        return str(self.ping["id"])


class CtlClient:
    def __init__(
        self,
        nc: NatsClient,
        lattice: str = DEFAULT_LATTICE,
        prefix: str = DEFAULT_CTL_PREFIX,
        timeout: float = 2.0,
        headers: Callable[[], dict[str, str] | None] | None = None,
    ) -> None:
        self.nc = nc
        # Headers for each request, e.g. the controller's trace context (the protocol
        # layer does not know about telemetry: the caller that traces passes this).
        self._headers = headers
        self.subjects = CtlSubjects(lattice, prefix)
        self.timeout = timeout

    async def request(self, subject: str, body: Any = None) -> Any:
        """Send one request; return its ``response`` (None when there is none). Sent
        with ``headers`` (the controller passes its trace context), each request carries
        them, so the host's work for a traced command joins the trace."""
        headers = self._headers() if self._headers is not None else None
        msg = await self.nc.request(subject, _payload(body), timeout=self.timeout, headers=headers)
        return _unwrap(msg, subject)

    async def gather(self, subject: str, body: Any = None, wait: float = 1.0) -> list[Msg]:
        """Publish one request and collect every reply for ``wait`` seconds (scatter/gather:
        pings and auctions, where each host answers or stays silent)."""
        inbox = self.nc.new_inbox()
        replies: list[Msg] = []
        sub = await self.nc.subscribe(inbox)
        try:
            await self.nc.publish(subject, _payload(body), reply=inbox)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while (remaining := deadline - loop.time()) > 0:
                try:
                    msg = await sub.next_msg(timeout=remaining)
                except TimeoutError:
                    break
                if not msg.data:
                    break  # "no responders" status, or wash's end-of-replies marker
                replies.append(msg)
        finally:
            await sub.unsubscribe()
        return replies

    async def ping_hosts(self, wait: float = 1.0) -> list[dict[str, Any]]:
        """Every host answers a ping: gather replies for ``wait`` seconds."""
        subject = self.subjects.host_ping()
        hosts: list[dict[str, Any]] = []
        for msg in await self.gather(subject, b"", wait):
            try:
                host = _unwrap(msg, subject)
                PingedHost.model_validate(host)
            except ValidationError as exc:
                # One bad reply must not hide the hosts that answered properly.
                log.warning("ignoring a host.ping reply: %s", describe_errors(exc))
                continue
            except CtlError as exc:
                log.warning("ignoring a host.ping reply: %s", exc)
                continue
            hosts.append(host)
        return sorted(hosts, key=lambda h: h["id"])

    async def read_hosts(self, wait: float = 0.5) -> list[HostReading]:
        """Every host that answers a ping within ``wait`` seconds, with its inventory:
        the read a new controller leader and the Pulumi provider both start from."""
        readings = []
        for host in await self.ping_hosts(wait):
            try:
                inventory = await self.get_inventory(str(host["id"]))
            except (CtlError, nats.errors.Error, TimeoutError) as exc:
                readings.append(HostReading(host, None, str(exc) or type(exc).__name__))
            else:
                readings.append(HostReading(host, inventory))
        return readings

    async def get_inventory(self, host_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(self.subjects.host_get(host_id))
        return result

    async def put_label(self, host_id: str, key: str, value: str) -> None:
        await self.request(self.subjects.label_put(host_id), {"key": key, "value": value})

    async def delete_label(self, host_id: str, key: str) -> None:
        await self.request(self.subjects.label_del(host_id), {"key": key})

    async def scale_component(
        self,
        host_id: str,
        component_id: str,
        component_ref: str,
        count: int,
        annotations: dict[str, str] | None = None,
        config: list[str] | None = None,
    ) -> None:
        await self.request(
            self.subjects.component_scale(host_id),
            {
                "component_id": component_id,
                "component_ref": component_ref,
                "count": count,
                "host_id": host_id,
                "annotations": annotations or {},
                "config": config or [],
                "allow_update": False,  # as wadm 0.20's control client always sends it
            },
        )

    async def start_provider(
        self,
        host_id: str,
        provider_id: str,
        provider_ref: str,
        annotations: dict[str, str] | None = None,
        config: list[str] | None = None,
    ) -> None:
        await self.request(
            self.subjects.provider_start(host_id),
            {
                "provider_id": provider_id,
                "provider_ref": provider_ref,
                "host_id": host_id,
                "annotations": annotations or {},
                "config": config or [],
            },
        )

    async def stop_provider(self, host_id: str, provider_id: str) -> None:
        await self.request(
            self.subjects.provider_stop(host_id), {"provider_id": provider_id, "host_id": host_id}
        )

    async def put_link(self, link: dict[str, Any]) -> None:
        await self.request(self.subjects.link_put(), link)

    async def get_links(self) -> list[dict[str, Any]]:
        links: list[dict[str, Any]] = await self.request(self.subjects.link_get())
        return links

    async def delete_link(
        self, source_id: str, namespace: str, package: str, name: str = DEFAULT_LINK_NAME
    ) -> None:
        await self.request(
            self.subjects.link_del(),
            {
                "source_id": source_id,
                "wit_namespace": namespace,
                "wit_package": package,
                "name": name,
            },
        )

    async def put_config(self, name: str, values: dict[str, str]) -> None:
        await self.request(self.subjects.config_put(name), values)

    async def get_config(self, name: str) -> dict[str, str] | None:
        values: dict[str, str] | None = await self.request(self.subjects.config_get(name))
        return values

    async def delete_config(self, name: str) -> None:
        await self.request(self.subjects.config_del(name))

    async def stop_host(self, host_id: str) -> None:
        await self.request(self.subjects.host_stop(host_id), {"host_id": host_id})


def _payload(body: Any) -> bytes:
    """A request body: bytes as given, anything else as JSON (no body: ``{}``)."""
    return body if isinstance(body, bytes) else json.dumps({} if body is None else body).encode()


def _unwrap(msg: Msg, asked: str) -> Any:
    """The ``response`` of a ``CtlResponse`` reply, or ``CtlError``: the host's message
    when it answered ``success: false``, the field when the reply is malformed."""
    try:
        reply = parse_json(CtlReply, msg.data, f"reply to {asked}")
    except BadRequest as exc:
        raise CtlError(str(exc)) from None
    if not reply.success:
        raise CtlError(reply.message or "request failed without a message")
    return reply.response
