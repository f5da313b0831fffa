"""Render a nats-server config file (pure): one node of a cluster, or a leaf node.

The settings are a strict pydantic model (a field of the wrong type is refused with its
name); ``render`` writes nats-server's config syntax with every string JSON-quoted, so
no value can break out of its field. tests/integration/test_provision_nats_config.py has
the real nats-server check what this renders.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
Name = Annotated[str, Field(strict=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
# host:port, the host a name or an address (IPv6 in brackets).
HostPort = Annotated[
    str, Field(strict=True, pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$")
]
Bytes = Annotated[int, Field(strict=True, ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ClusterSettings(_Strict):
    """The routes between the core nodes: every node lists the others' cluster ports."""

    name: Name
    port: Port = 6222
    routes: list[HostPort] = []


class JetStreamSettings(_Strict):
    store_dir: Annotated[str, Field(strict=True, pattern=r"^/[^\n\"]*$")]
    max_memory_store: Bytes = 256 * 1024 * 1024
    max_file_store: Bytes = 10 * 1024 * 1024 * 1024
    domain: Name | None = None


class LeafRemote(_Strict):
    """A hub this node connects to as a leaf (``nats-leaf://host:port``)."""

    urls: list[HostPort] = Field(min_length=1)


class LeafNodeSettings(_Strict):
    listen_port: Port | None = None  # accept leaf connections (a core node)
    remotes: list[LeafRemote] = []  # connect to hubs (an edge node)

    @model_validator(mode="after")
    def _something(self) -> LeafNodeSettings:
        if self.listen_port is None and not self.remotes:
            raise ValueError("leafnodes: give a listen_port, remotes, or both")
        return self


class NatsServerSettings(_Strict):
    server_name: Name
    host: Annotated[str, Field(strict=True, pattern=r"^[0-9A-Fa-f.:]+$")]  # listen address
    client_port: Port = 4222
    monitoring_port: Port | None = 8222
    cluster: ClusterSettings | None = None
    jetstream: JetStreamSettings | None = None
    leafnodes: LeafNodeSettings | None = None

    @model_validator(mode="after")
    def _ports_differ(self) -> NatsServerSettings:
        ports = {"client_port": self.client_port}
        if self.monitoring_port is not None:
            ports["monitoring_port"] = self.monitoring_port
        if self.cluster is not None:
            ports["cluster.port"] = self.cluster.port
        if self.leafnodes is not None and self.leafnodes.listen_port is not None:
            ports["leafnodes.listen_port"] = self.leafnodes.listen_port
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if port in seen:
                raise ValueError(f"{name} and {seen[port]} are both {port}; give each its own")
            seen[port] = name
        return self


def _q(value: str) -> str:
    return json.dumps(value)


def _listen(host: str, port: int) -> str:
    return _q(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


def render(settings: NatsServerSettings) -> str:
    s = settings
    lines = [
        "# Written by pulumi-wasmcloud; changes here are replaced on the next `up`.",
        f"server_name: {_q(s.server_name)}",
        f"listen: {_listen(s.host, s.client_port)}",
    ]
    if s.monitoring_port is not None:
        lines.append(f"http: {_listen(s.host, s.monitoring_port)}")
    if s.jetstream is not None:
        js = s.jetstream
        lines += [
            "jetstream {",
            f"  store_dir: {_q(js.store_dir)}",
            f"  max_memory_store: {js.max_memory_store}",
            f"  max_file_store: {js.max_file_store}",
        ]
        if js.domain is not None:
            lines.append(f"  domain: {_q(js.domain)}")
        lines.append("}")
    if s.cluster is not None:
        routes = ", ".join(_q(f"nats-route://{r}") for r in s.cluster.routes)
        lines += [
            "cluster {",
            f"  name: {_q(s.cluster.name)}",
            f"  listen: {_listen(s.host, s.cluster.port)}",
            f"  routes: [{routes}]",
            "}",
        ]
    if s.leafnodes is not None:
        leaf = s.leafnodes
        lines.append("leafnodes {")
        if leaf.listen_port is not None:
            lines.append(f"  listen: {_listen(s.host, leaf.listen_port)}")
        if leaf.remotes:
            lines.append("  remotes: [")
            for remote in leaf.remotes:
                urls = ", ".join(_q(f"nats-leaf://{u}") for u in remote.urls)
                lines.append(f"    {{ urls: [{urls}] }}")
            lines.append("  ]")
        lines.append("}")
    return "\n".join(lines) + "\n"
