"""JetStream KV helpers shared by the host and the controller: open-or-create a bucket,
read-modify-write a JSON value under optimistic concurrency, and follow a bucket (for good:
``keep_watching``).

Replicas: a bucket made here gets ``replicas`` copies (1 by default, as wasmCloud 1.4.2
hosts and wadm 0.20 make theirs). A lattice on a cluster has its buckets made before
anything opens them (``ensure_kv``), with replicas matching the cluster; opening an
existing bucket keeps its settings, as upstream does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import DEFAULT_PREFIX, KeyValueConfig, StorageType
from nats.js.errors import (
    BucketNotFoundError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue

MISSING_KEY = (KeyNotFoundError, KeyDeletedError)
_UPDATE_ATTEMPTS = 8


def kv_stream(bucket: str) -> str:
    """The stream that holds a KV bucket (JetStream's naming)."""
    return f"KV_{bucket}"


async def open_kv(js: JetStreamContext, name: str, replicas: int = 1, **config: Any) -> KeyValue:
    """The bucket, created on disk (file storage, history 1, ``replicas`` copies) if it
    does not exist yet; an existing bucket is opened as it is. Through a JetStream
    domain, its writes go through the domain (see ``_DomainWrites``)."""
    try:
        kv = await js.key_value(name)
    except BucketNotFoundError:
        settings = {"history": 1, "storage": StorageType.FILE, **config}
        kv = await js.create_key_value(KeyValueConfig(bucket=name, replicas=replicas, **settings))
    if js._prefix != DEFAULT_PREFIX:
        kv._js = _DomainWrites(js)  # type: ignore[assignment]
    return kv


class _DomainWrites:
    """The JetStream context a bucket in a JetStream domain writes through.

    A leaf node's connection to a hub in a JetStream domain refuses ``$KV.>``, so a
    client on the leaf cannot write a key on its bucket's own subject (no responders).
    The hub takes the write as ``$JS.<domain>.API.$KV.<bucket>.<key>`` instead (what the
    Go and Rust clients send in a domain); nats-py's KeyValue does not, so its publishes
    are prefixed here. Everything else is the context itself."""

    def __init__(self, js: JetStreamContext) -> None:
        self._context = js

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def publish(self, subject: str, payload: bytes = b"", **options: Any) -> Any:
        if subject.startswith("$KV."):
            subject = f"{self._context._prefix}.{subject}"
        return await self._context.publish(subject, payload, **options)


async def ensure_kv(js: JetStreamContext, name: str, replicas: int, **config: Any) -> KeyValue:
    """The bucket with at least ``replicas`` copies: made so, or an existing bucket's
    replicas raised (``ensure_replicas``)."""
    kv = await open_kv(js, name, replicas, **config)
    await ensure_replicas(js, kv._stream, replicas)
    return kv


async def ensure_replicas(js: JetStreamContext, stream: str, replicas: int) -> int:
    """Raise the stream's replicas to ``replicas`` (JetStream copies its data to the new
    peers); never lowers them. The replicas it has now."""
    info = await js.stream_info(stream)
    have = info.config.num_replicas or 1
    if have < replicas:
        await js.update_stream(replace(info.config, num_replicas=replicas))
        return replicas
    return have


async def follow(kv: KeyValue) -> AsyncIterator[KeyValue.Entry]:
    """Every change to the bucket from now on, through ONE watcher (one consumer).

    nats-py's watcher stops its ``async for`` at the "initial values done" marker, and a
    caller that re-watches in a loop creates a new consumer each time (thousands a minute,
    each kept by the server). Reading ``updates()`` skips the marker instead.
    """
    watcher = await kv.watchall(include_history=False)
    try:
        while True:
            entry = await watcher.updates(timeout=None)  # type: ignore[no-untyped-call]
            if entry is not None:
                yield entry
    finally:
        with contextlib.suppress(Exception):  # the connection may be closing already
            await watcher.stop()  # type: ignore[no-untyped-call]


async def keep_watching(
    what: str, watch: Callable[[], Awaitable[None]], log: logging.Logger
) -> None:
    """Run ``watch`` (a loop over ``follow``) for good: when it breaks (NATS away, the
    watcher's consumer gone), say so on ``log`` and start it again a second later."""
    while True:
        try:
            await watch()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("%s watch interrupted; resubscribing", what, exc_info=True)
            await asyncio.sleep(1.0)


async def kv_keys(kv: KeyValue) -> list[str]:
    """The bucket's keys, read from its stream's per-subject state.

    nats-py's ``KeyValue.keys()`` sometimes finds no keys at all while there are some
    (about one call in a thousand here): its watcher announces "initial values done" when
    consumer info reports nothing pending before the client has counted the delivery.
    Deleted or purged keys are listed too (their marker is the last message on the
    subject); readers skip them as missing.
    """
    info = await kv._js.stream_info(kv._stream, subjects_filter=f"{kv._pre}>")
    return sorted(subject[len(kv._pre) :] for subject in info.state.subjects or {})


async def read_json(kv: KeyValue, key: str) -> tuple[Any, int | None]:
    """(decoded value, revision), or (None, None) when the key is absent."""
    try:
        entry = await kv.get(key)
    except MISSING_KEY:
        return None, None
    return json.loads(entry.value or b"null"), entry.revision


async def update_json(kv: KeyValue, key: str, change: Callable[[Any], Any]) -> Any:
    """Apply ``change(current or None)`` and write the result only if nobody wrote the key
    in between (another host or controller may); retried on conflict. A ``None`` result
    deletes the key. Returns what was written."""
    for _ in range(_UPDATE_ATTEMPTS):
        current, revision = await read_json(kv, key)
        new = change(current)
        try:
            if new is None:
                if revision is not None:
                    await kv.delete(key, last=revision)
            elif revision is None:
                await kv.create(key, json.dumps(new).encode())
            else:
                await kv.update(key, json.dumps(new).encode(), last=revision)
            return new
        except KeyWrongLastSequenceError:
            continue
    raise RuntimeError(f"could not update {key}: too many concurrent writers")
