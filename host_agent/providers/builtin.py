"""Which provider references this host can start, and what each serves.

Nothing here pulls OCI images: the well-known wasmCloud provider images are mapped to
built-in Python providers that speak the same host contract and wRPC interfaces, so a
tutorial manifest naming `ghcr.io/wasmcloud/keyvalue-redis:0.28.1` runs unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnknownProvider(ValueError):
    pass


@dataclass(frozen=True)
class BuiltinProvider:
    name: str
    module: str  # run as `python -m <module>`
    exports: tuple[str, ...]  # interfaces it serves to components, with versions
    summary: str


KEYVALUE = ("wasi:keyvalue/store@0.2.0-draft", "wasi:keyvalue/atomics@0.2.0-draft")

BUILTINS = {
    provider.name: provider
    for provider in (
        BuiltinProvider(
            "http-server",
            "host_agent.providers.http_server",
            (),
            "serves HTTP on each link's source_config `address` and calls the linked component",
        ),
        BuiltinProvider(
            "keyvalue-redis",
            "host_agent.providers.keyvalue_redis",
            KEYVALUE,
            "wasi:keyvalue in Redis; target_config `url` (default redis://127.0.0.1:6379)",
        ),
        BuiltinProvider(
            "keyvalue-nats",
            "host_agent.providers.keyvalue_nats",
            KEYVALUE,
            "wasi:keyvalue in a JetStream KV bucket; target_config `bucket` (optional)",
        ),
        BuiltinProvider(
            "keyvalue-inmemory",
            "host_agent.providers.keyvalue_inmemory",
            KEYVALUE,
            "wasi:keyvalue in the provider's memory (lost when it stops)",
        ),
    )
}

_PREFIXES = ("builtin:", "builtin://", "ghcr.io/wasmcloud/", "wasmcloud.azurecr.io/")


def resolve_provider(ref: str) -> BuiltinProvider:
    """`ghcr.io/wasmcloud/http-server:0.23.0` or `builtin:http-server` -> its provider."""
    name = ref
    for prefix in sorted(_PREFIXES, key=len, reverse=True):
        if ref.startswith(prefix):
            name = ref[len(prefix) :]
            break
    else:
        name = ""
    name = name.split("@", 1)[0].split(":", 1)[0].rsplit("/", 1)[-1]
    if name in BUILTINS:
        return BUILTINS[name]
    known = ", ".join(f"builtin:{n}" for n in BUILTINS)
    raise UnknownProvider(
        f"no provider implementation for {ref!r} on this host; it runs the built-in "
        f"providers {known} (also reachable as ghcr.io/wasmcloud/<name>:<tag>)"
    )
