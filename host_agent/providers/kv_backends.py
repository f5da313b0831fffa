"""Key-value stores behind the built-in keyvalue providers: in-memory, Redis, NATS KV.

All three store counters as decimal text, so `increment` and `get` agree and a value
written by one component reads the same through any of them.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import redis.asyncio as aioredis
from nats.aio.client import Client as NatsClient
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from host_agent.interfaces.keyvalue import KeyValueError
from host_agent.lattice.jetstream import kv_keys, open_kv
from host_agent.redaction import redact_text, redact_url

PAGE = 1000  # keys per list-keys page


class KeyValueBackend(Protocol):
    async def get(self, bucket: str, key: str) -> bytes | None: ...
    async def set(self, bucket: str, key: str, value: bytes) -> None: ...
    async def delete(self, bucket: str, key: str) -> None: ...
    async def exists(self, bucket: str, key: str) -> bool: ...
    async def list_keys(self, bucket: str, cursor: int | None) -> tuple[list[str], int | None]: ...
    async def increment(self, bucket: str, key: str, delta: int) -> int: ...
    async def close(self) -> None: ...


def _as_int(value: bytes | None, key: str) -> int:
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        raise KeyValueError("other", f"value of {key!r} is not an integer") from None


def _page(keys: list[str], cursor: int | None) -> tuple[list[str], int | None]:
    start = cursor or 0
    end = start + PAGE
    return keys[start:end], (end if end < len(keys) else None)


class InMemoryBackend:
    def __init__(self) -> None:
        self._buckets: dict[str, dict[str, bytes]] = {}

    def _bucket(self, bucket: str) -> dict[str, bytes]:
        return self._buckets.setdefault(bucket, {})

    async def get(self, bucket: str, key: str) -> bytes | None:
        return self._bucket(bucket).get(key)

    async def set(self, bucket: str, key: str, value: bytes) -> None:
        self._bucket(bucket)[key] = value

    async def delete(self, bucket: str, key: str) -> None:
        self._bucket(bucket).pop(key, None)

    async def exists(self, bucket: str, key: str) -> bool:
        return key in self._bucket(bucket)

    async def list_keys(self, bucket: str, cursor: int | None) -> tuple[list[str], int | None]:
        return _page(sorted(self._bucket(bucket)), cursor)

    async def increment(self, bucket: str, key: str, delta: int) -> int:
        items = self._bucket(bucket)
        value = _as_int(items.get(key), key) + delta
        items[key] = str(value).encode()
        return value

    async def close(self) -> None:
        return None


class RedisBackend:
    """Keys live directly in the Redis database named by the URL, as in wasmCloud's
    keyvalue-redis; the bucket name is not part of the key."""

    def __init__(self, url: str, password: str | None = None) -> None:
        self._url = url
        # What messages show: the URL without its password (it reaches the component,
        # the HTTP caller and the logs).
        self.url = redact_url(url)
        try:
            self._redis = aioredis.Redis.from_url(
                url,
                # A password secret, used when the URL carries none (it stays out of the
                # URL, so out of every message).
                password=password,
                socket_connect_timeout=2,
                socket_timeout=5,
                # A restarted redis-server leaves pooled connections closed: reconnect and
                # retry, so the first call after the restart does not fail.
                retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
            )
        except ValueError as error:
            raise ValueError(
                f"redis url {self.url} is not valid: {redact_text(str(error), url)}"
            ) from None

    async def _call(self, op: str, *args: object) -> object:
        try:
            return await self._redis.execute_command(op, *args)  # type: ignore[no-untyped-call]
        except (RedisError, OSError) as error:
            reason = redact_text(str(error), self._url)
            raise KeyValueError("other", f"redis at {self.url} failed: {reason}") from None

    async def get(self, bucket: str, key: str) -> bytes | None:
        value = await self._call("GET", key)
        return bytes(value) if isinstance(value, bytes | bytearray) else None

    async def set(self, bucket: str, key: str, value: bytes) -> None:
        await self._call("SET", key, value)

    async def delete(self, bucket: str, key: str) -> None:
        await self._call("DEL", key)

    async def exists(self, bucket: str, key: str) -> bool:
        return bool(await self._call("EXISTS", key))

    async def list_keys(self, bucket: str, cursor: int | None) -> tuple[list[str], int | None]:
        reply = await self._call("SCAN", cursor or 0, "COUNT", PAGE)
        assert isinstance(reply, list | tuple)
        next_cursor = int(reply[0])
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in reply[1]]
        return keys, (next_cursor or None)

    async def increment(self, bucket: str, key: str, delta: int) -> int:
        value = await self._call("INCRBY", key, delta)
        assert isinstance(value, int)
        return value

    async def close(self) -> None:
        await self._redis.aclose()


class NatsKvBackend:
    """One JetStream KV bucket per wasi:keyvalue bucket name (created on first use).

    ``js_domain`` is the link's `js_domain` (as upstream keyvalue-nats reads it): a host at
    the edge reaches the core's JetStream through it. A new bucket gets as many replicas as
    the stream ``replicas_like`` has (the lattice's own data, which the Lattice sized to its
    cluster), so an application's data survives what the lattice's does; 1 without it."""

    def __init__(
        self,
        nc: NatsClient,
        bucket_override: str | None = None,
        js_domain: str | None = None,
        replicas_like: str | None = None,
    ) -> None:
        self._js = nc.jetstream(domain=js_domain)
        self._override = bucket_override
        self._replicas_like = replicas_like
        self._buckets: dict[str, KeyValue] = {}

    async def _replicas(self) -> int:
        if self._replicas_like is None:
            return 1
        try:
            info = await self._js.stream_info(self._replicas_like)
        except NotFoundError:
            return 1
        return info.config.num_replicas or 1

    async def _kv(self, bucket: str) -> KeyValue:
        name = self._override or bucket or "default"
        if name not in self._buckets:
            self._buckets[name] = await open_kv(self._js, name, await self._replicas())
        return self._buckets[name]

    async def get(self, bucket: str, key: str) -> bytes | None:
        try:
            entry = await (await self._kv(bucket)).get(key)
        except KeyNotFoundError:
            return None
        return entry.value

    async def set(self, bucket: str, key: str, value: bytes) -> None:
        await (await self._kv(bucket)).put(key, value)

    async def delete(self, bucket: str, key: str) -> None:
        await (await self._kv(bucket)).delete(key)

    async def exists(self, bucket: str, key: str) -> bool:
        return await self.get(bucket, key) is not None

    async def list_keys(self, bucket: str, cursor: int | None) -> tuple[list[str], int | None]:
        # Not KeyValue.keys(): it returns no keys about one call in a thousand (see kv_keys).
        # kv_keys also lists deleted keys, so each key of the page is read and the deleted
        # ones left out; the cursor counts listed subjects, so pages stay stable.
        kv = await self._kv(bucket)
        page, next_cursor = _page(await kv_keys(kv), cursor)
        live = await asyncio.gather(*(self.get(bucket, key) for key in page))
        return [
            key for key, value in zip(page, live, strict=True) if value is not None
        ], next_cursor

    async def increment(self, bucket: str, key: str, delta: int) -> int:
        kv = await self._kv(bucket)
        for _ in range(100):  # optimistic concurrency: retry when another writer won
            try:
                entry = await kv.get(key)
                value = _as_int(entry.value, key) + delta
                await kv.update(key, str(value).encode(), last=entry.revision)
                return value
            except KeyNotFoundError:
                try:
                    await kv.create(key, str(delta).encode())
                    return delta
                except KeyWrongLastSequenceError:
                    continue
            except KeyWrongLastSequenceError:
                await asyncio.sleep(0)
        raise KeyValueError("other", f"increment of {key!r} kept conflicting; try again")

    async def close(self) -> None:
        return None
