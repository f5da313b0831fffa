"""Which provider references this host can start, and what each serves.

Nothing here pulls OCI images: the well-known wasmCloud provider images are mapped to
built-in Python providers that speak the same host contract and wRPC interfaces, so a
tutorial manifest naming `ghcr.io/wasmcloud/keyvalue-redis:0.28.1` runs unchanged.

A reference is only accepted when what it names would serve the interfaces, at the WIT
versions, that the built-in provider serves: an upstream release line that speaks another
WIT (wasmCloud 0.x's smithy contracts, a future major version) is refused rather than
silently replaced by something else. `provider_reference_problem` is the pure check; the
host's provider start and the manifest validation (controller `model.put`, Pulumi
`Application` check) both call it, so a bad reference is refused up front where it can be.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Version = tuple[int, int, int]


class UnknownProvider(ValueError):
    pass


@dataclass(frozen=True)
class UpstreamReleases:
    """The upstream image tags ``first <= tag < before`` serve the same WIT as our built-in."""

    first: Version
    before: Version
    # What releases before `first` are, for the refusal (they speak another contract).
    earlier: str
    example: str  # a tag that works, for the fix

    def covers(self, version: Version) -> bool:
        return self.first <= version < self.before


@dataclass(frozen=True)
class BuiltinProvider:
    name: str
    module: str  # run as `python -m <module>`
    exports: tuple[str, ...]  # interfaces it serves to components, with versions
    summary: str
    # None: there is no upstream image of this name, only `builtin:<name>`.
    upstream: UpstreamReleases | None = None
    # Interfaces it calls on components (they export them), with versions.
    calls: tuple[str, ...] = ()

    @property
    def interfaces(self) -> tuple[str, ...]:
        """Every interface between it and a component, either way, with its version:
        what a link to or from it is judged by (runtime/provider_versions.py)."""
        return self.exports + self.calls

    @property
    def serves(self) -> str:
        if self.exports:
            return ", ".join(self.exports)
        # http-server exports nothing to components: it calls their incoming-handler.
        return "HTTP to components' " + ", ".join(self.calls)


KEYVALUE = ("wasi:keyvalue/store@0.2.0-draft", "wasi:keyvalue/atomics@0.2.0-draft")
BLOBSTORE = ("wasi:blobstore/blobstore@0.2.0-draft (wrpc:blobstore/blobstore@0.2.0)",)
# wasmCloud 1.x moved providers to wRPC with WASI 0.2 WIT; the first release of each in that
# line follows the last 0.x release (capability-providers' httpserver 0.19, kvredis 0.23).
# A new major version may change WIT, so it is refused until it is checked and added here.
_NEXT_MAJOR = (1, 0, 0)

BUILTINS = {
    provider.name: provider
    for provider in (
        BuiltinProvider(
            "http-server",
            "host_agent.providers.http_server",
            (),
            "serves HTTP on each link's source_config `address` and calls the linked component",
            UpstreamReleases(
                (0, 20, 0),
                _NEXT_MAJOR,
                "wasmCloud 0.x's wasmcloud:httpserver contract",
                "0.23.0",
            ),
            calls=("wasi:http/incoming-handler@0.2.0",),
        ),
        BuiltinProvider(
            "keyvalue-redis",
            "host_agent.providers.keyvalue_redis",
            KEYVALUE,
            "wasi:keyvalue in Redis; target_config `url` (default redis://127.0.0.1:6379)",
            UpstreamReleases(
                (0, 24, 0),
                _NEXT_MAJOR,
                "wasmCloud 0.x's wasmcloud:keyvalue contract",
                "0.28.1",
            ),
        ),
        BuiltinProvider(
            "keyvalue-nats",
            "host_agent.providers.keyvalue_nats",
            KEYVALUE,
            "wasi:keyvalue in a JetStream KV bucket; target_config `bucket` (optional)",
            UpstreamReleases((0, 1, 0), _NEXT_MAJOR, "", "0.3.1"),
        ),
        BuiltinProvider(
            "http-client",
            "host_agent.providers.http_client",
            ("wasi:http/outgoing-handler@0.2.0",),
            "components' outgoing HTTP; link target_config timeouts (*_timeout_ms), max_body_bytes",
            UpstreamReleases((0, 9, 0), _NEXT_MAJOR, "", "0.12.1"),
        ),
        BuiltinProvider(
            "messaging-nats",
            "host_agent.providers.messaging_nats",
            ("wasmcloud:messaging/consumer@0.2.0", "wasmcloud:messaging/handler@0.2.0"),
            "wasmcloud:messaging on NATS; link config `cluster_uris`, source_config "
            "`subscriptions`",
            UpstreamReleases(
                (0, 20, 0), _NEXT_MAJOR, "an unversioned wasmcloud:messaging WIT", "0.23.1"
            ),
        ),
        BuiltinProvider(
            "messaging-kafka",
            "host_agent.providers.messaging_kafka",
            ("wasmcloud:messaging/consumer@0.2.0", "wasmcloud:messaging/handler@0.2.0"),
            "wasmcloud:messaging on Kafka; link target_config `hosts`, `topic`, `consumer_group`",
            UpstreamReleases((0, 4, 0), _NEXT_MAJOR, "wasmCloud 0.x's messaging contract", "0.6.1"),
        ),
        BuiltinProvider(
            "keyvalue-inmemory",
            "host_agent.providers.keyvalue_inmemory",
            KEYVALUE,
            "wasi:keyvalue in the provider's memory (lost when it stops)",
        ),
        BuiltinProvider(
            "sqldb-postgres",
            "host_agent.providers.sqldb_postgres",
            ("wasmcloud:postgres/query@0.1.1-draft", "wasmcloud:postgres/prepared@0.1.1-draft"),
            "wasmcloud:postgres on PostgreSQL; target_config POSTGRES_*, secret POSTGRES_PASSWORD",
            UpstreamReleases((0, 5, 0), _NEXT_MAJOR, "wasmcloud:postgres@0.1.0-draft", "0.7.2"),
        ),
        # blobstore-fs/-s3 releases before these served wrpc:blobstore@0.1.0.
        BuiltinProvider(
            "blobstore-fs",
            "host_agent.providers.blobstore_fs",
            BLOBSTORE,
            "wasi:blobstore in a directory; target_config ROOT (default /tmp/<component id>)",
            UpstreamReleases((0, 9, 0), _NEXT_MAJOR, "wrpc:blobstore@0.1.0", "0.10.1"),
        ),
        BuiltinProvider(
            "blobstore-s3",
            "host_agent.providers.blobstore_s3",
            BLOBSTORE,
            "wasi:blobstore in S3 buckets; target_config config_json (secret) and alias_*",
            UpstreamReleases((0, 10, 0), _NEXT_MAJOR, "wrpc:blobstore@0.1.0", "0.11.1"),
        ),
    )
}

_BUILTIN_PREFIXES = ("builtin://", "builtin:")
_UPSTREAM_PREFIXES = ("ghcr.io/wasmcloud/", "wasmcloud.azurecr.io/")
# A release tag: 0.23.0, v0.23.0, 0.23.0-rc.1 (a pre-release is checked as its release).
_RELEASE_TAG = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?")


def supported_references() -> str:
    """What a provider reference may name, for refusals."""
    parts = []
    for provider in BUILTINS.values():
        upstream = provider.upstream
        if upstream is None:
            parts.append(f"builtin:{provider.name}")
        else:
            first = ".".join(map(str, upstream.first))
            before = ".".join(map(str, upstream.before))
            parts.append(
                f"builtin:{provider.name} or ghcr.io/wasmcloud/{provider.name}:<tag> "
                f"with {first} <= tag < {before}"
            )
    return "; ".join(parts)


def _split_name_tag(rest: str) -> tuple[str, str | None, bool]:
    """``keyvalue-redis:0.28.1@sha256:..`` -> (name, tag or None, has_digest)."""
    name_tag, digest_sep, _ = rest.partition("@")
    name, tag_sep, tag = name_tag.partition(":")
    return name, (tag if tag_sep else None), bool(digest_sep)


def resolve_provider(ref: str) -> BuiltinProvider:
    """`ghcr.io/wasmcloud/http-server:0.23.0` or `builtin:http-server` -> its provider.

    Raises UnknownProvider, with a sentence naming what is supported, for a name we do not
    serve and for an upstream tag whose release line serves other WIT than ours.
    """
    if not isinstance(ref, str) or not ref:
        raise UnknownProvider(
            f"a provider reference must be a non-empty string; supported: {supported_references()}"
        )
    for prefix in _BUILTIN_PREFIXES:
        if ref.startswith(prefix):
            name, tag, has_digest = _split_name_tag(ref[len(prefix) :])
            provider = BUILTINS.get(name)
            if provider is None:
                break
            if tag is not None or has_digest:
                raise UnknownProvider(
                    f"provider reference {ref!r}: a built-in provider has no tags or digests "
                    f"(it is the one this host ships); write builtin:{name}"
                )
            return provider
    else:
        for prefix in _UPSTREAM_PREFIXES:
            if ref.startswith(prefix):
                return _resolve_upstream(ref, ref[len(prefix) :])
    raise UnknownProvider(
        f"no provider implementation for {ref!r} on this host; supported: {supported_references()}"
    )


def _resolve_upstream(ref: str, rest: str) -> BuiltinProvider:
    name, tag, _ = _split_name_tag(rest)
    provider = BUILTINS.get(name)
    if provider is None:
        raise UnknownProvider(
            f"no provider implementation for {ref!r} on this host; supported: "
            f"{supported_references()}"
        )
    upstream = provider.upstream
    if upstream is None:
        raise UnknownProvider(
            f"provider reference {ref!r}: {name} has no upstream image, it is built in; "
            f"write builtin:{name}"
        )
    working = f"ghcr.io/wasmcloud/{name}:{upstream.example}"
    match = _RELEASE_TAG.fullmatch(tag or "")
    if match is None:
        what = f"tag {tag!r}" if tag else "no tag"
        raise UnknownProvider(
            f"provider reference {ref!r} has {what}, so which WIT it serves cannot be known; "
            f"name a release, e.g. {working} (or write builtin:{name})"
        )
    version: Version = (int(match[1]), int(match[2]), int(match[3]))
    if not upstream.covers(version):
        first = ".".join(map(str, upstream.first))
        before = ".".join(map(str, upstream.before))
        if version < upstream.first and upstream.earlier:
            serves = f"releases before {first} serve {upstream.earlier}"
        else:
            serves = f"only releases {first} <= tag < {before} are known to serve it"
        raise UnknownProvider(
            f"provider reference {ref!r}: this lattice's {name} serves {provider.serves}, and "
            f"{serves}; use a tag from {first} up to before {before}, e.g. {working} "
            f"(or write builtin:{name})"
        )
    return provider


def provider_reference_problem(ref: str) -> str | None:
    """Why a provider reference would be refused by our hosts, or None when it runs."""
    try:
        resolve_provider(ref)
    except UnknownProvider as error:
        return str(error)
    return None
