"""Which http-server listeners an Application's ``up`` waits for, and the wait.

The http-server provider opens a listener when it receives its link to a component (the
link's source_config ``address``, default 127.0.0.1:8000, as LinkSettings in
host_agent/providers/http_server.py reads it). The controller stores the link once the
application is deployed, and the provider takes it a moment later: without this wait,
``up`` could return while a ``curl`` at the address is still refused.

Only a local lattice is waited for: one whose NATS the Pulumi host reaches on loopback
and that is not a lattice on machines (those give a ``clientTls`` pair). A local Lattice's
nats-server listens on loopback only, so its hosts, and the http-server providers they
start, run on this machine, and a loopback address they listen on is this machine's too.
A lattice on machines (SSH, EC2) listens on the machines' own loopback or interfaces,
which the Pulumi host must not (and often cannot) dial: for those, ``up`` returns as it
did, once the application is deployed and its links stored. Of a local lattice's
addresses, only loopback ones (and the wildcard, reached through loopback) are dialled:
the effect never connects anywhere but this machine's loopback.

``http_addresses`` is the pure part (tests/unit/test_http_listeners.py);
``until_listening`` the wait, with ``accepts`` (one TCP connect) as its only effect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from host_agent.local.supervisor import listening_async
from host_agent.model.manifest import Manifest
from host_agent.model.naming import is_secret_reference
from host_agent.providers.builtin import UnknownProvider, resolve_provider
from host_agent.providers.http_address import DEFAULT_ADDRESS, split_address

POLL_S = 0.1  # another process's listener sends no event: it is dialled again this often


@dataclass(frozen=True)
class HttpAddress:
    """One address an http-server link listens on, and where this machine dials it."""

    provider: str  # the manifest's http-server component (its name)
    target: str  # the component the link hands requests to
    address: str  # as the link's source_config gives it
    host: str  # the loopback address dialled
    port: int


def local_lattice(nats_url: Any, client_tls: Any) -> bool:
    """Whether the lattice runs on this machine: every NATS URL is on loopback, and it is
    not a lattice on machines (whose tooling user comes with a ``clientTls`` pair)."""
    if isinstance(client_tls, Mapping) and client_tls:
        return False
    if not isinstance(nats_url, str) or not nats_url.strip():
        return False
    for url in nats_url.split(","):
        url = url.strip()
        host = urlparse(url if "://" in url else f"nats://{url}").hostname
        if host is None or _loopback(host, wildcard=False) is None:
            return False
    return True


def _loopback(host: str, wildcard: bool) -> str | None:
    """The loopback address to dial for ``host`` (``localhost``, 127.0.0.0/8, ``::1``;
    with ``wildcard``, 0.0.0.0 and ``::`` too, which listen on loopback as well), or None
    for any other address."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: where it points is not this function's to find out
    if ip.is_loopback:
        return str(ip)
    if wildcard and ip.is_unspecified:
        return "127.0.0.1" if ip.version == 4 else "::1"
    return None


def named_source_configs(manifest: Manifest) -> list[str]:
    """The named configs (no inline properties: they must exist in the lattice) that
    http-server links take their source_config from, to read before ``http_addresses``."""
    names = []
    for provider in _http_servers(manifest):
        for trait in provider.link_traits:
            names += [
                config.name
                for config in trait.properties.effective_source_config
                if config.properties is None and not is_secret_reference(config.name)
            ]
    return sorted(set(names))


def http_addresses(
    manifest: Manifest,
    running: Mapping[str, Mapping[str, int]],
    named: Mapping[str, Mapping[str, str]],
) -> tuple[list[HttpAddress], list[str]]:
    """(addresses to wait for, refusals) of the manifest's http-server links on a local
    lattice. ``running``: component name -> {host: instances} as the lattice runs it (an
    http-server no host runs opens nothing); ``named``: the values of the named configs
    the links use. The source_config is merged in order, later values winning, as the
    host hands it to the provider. An address that is not loopback (nor the wildcard) is
    not waited for; one the provider would refuse (not host:port) is a refusal."""
    found: dict[tuple[str, int], HttpAddress] = {}
    refusals = []
    for provider in _http_servers(manifest):
        if not any(running.get(provider.name, {}).values()):
            continue
        for trait in provider.link_traits:
            link = trait.properties
            if (link.namespace, link.package) != ("wasi", "http"):
                continue
            values: dict[str, str] = {}
            for config in link.effective_source_config:
                if config.properties is not None:
                    values.update(config.properties)
                elif not is_secret_reference(config.name):
                    values.update(named.get(config.name) or {})
            address = values.get("address", DEFAULT_ADDRESS)
            target = link.target.name
            parsed = split_address(address)
            if parsed is None:
                refusals.append(
                    f"the http-server link from {provider.name} to {target}: source_config "
                    f"address {address!r} is not host:port, so the provider opens no "
                    f'listener; write e.g. address: "{DEFAULT_ADDRESS}"'
                )
                continue
            dial = _loopback(parsed[0], wildcard=True)
            if parsed[1] == 0:
                continue  # a port the system picks: nothing here knows which to dial
            if dial is not None and (dial, parsed[1]) not in found:
                found[(dial, parsed[1])] = HttpAddress(
                    provider.name, target, address, dial, parsed[1]
                )
    return list(found.values()), refusals


def _http_servers(manifest: Manifest) -> list[Any]:
    servers = []
    for component in manifest.spec.components:
        image = component.properties.image
        if not component.is_capability or image is None:
            continue
        try:
            if resolve_provider(image).name == "http-server":
                servers.append(component)
        except UnknownProvider:
            continue  # the manifest's check refuses it; nothing of ours listens
    return servers


async def accepts(host: str, port: int) -> bool:
    """One TCP connect to ``host:port``, a loopback address (the only effect here)."""
    return await listening_async(port, host, timeout=2)


async def until_listening(
    addresses: Sequence[HttpAddress],
    timeout: float,
    progress: Callable[[list[HttpAddress], float], Awaitable[None]],
    connect: Callable[[str, int], Awaitable[bool]] = accepts,
) -> list[HttpAddress]:
    """Dial each address until it accepts or ``timeout`` passes; the addresses still
    refused then (empty: all listen). ``progress`` hears the ones refused, with the
    seconds waited, after each round that leaves some."""
    pending = list(addresses)
    started = time.monotonic()
    while pending:
        pending = [a for a in pending if not await connect(a.host, a.port)]
        waited = time.monotonic() - started
        if not pending or waited > timeout:
            break
        await progress(pending, waited)
        await asyncio.sleep(POLL_S)
    return pending
