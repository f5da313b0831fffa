"""A host's log records on the lattice, for ``wasmcloud logs HOST``, never slowing the host.

``HostLogStream`` is a logging handler on the host process's root logger: each record
becomes a ``HostLogRecord`` (``host_agent.lattice.host_logs``), redacted, and goes on a
bounded queue; one task publishes the queue on ``host_log_subject(lattice, host_id)``.
Logging never waits for NATS: when the queue is full, or NATS is away (a reconnecting
client would hold the lines in the buffer its heartbeats and replies need), the record is
dropped and counted, and the next published record says how many were (``dropped``).

Redaction (pure, ``redact``): a record may quote a library's error, and a library may
quote the URL it was given, password and all, so every string of a record (message,
fields, exception text) goes through ``host_agent.redaction.redact_url`` for each URL in
it; nkey seeds and PEM private keys are masked wherever they appear, and so is each
secret the host was configured with (its seed, its NATS user's seed, its TLS key).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NatsClient

from host_agent.redaction import MASK, redact_url

# Records waiting for the publisher; beyond this they are dropped, never waited for.
MAX_QUEUED = 1000
# Characters of one string in a record (a message, a field, a traceback): NATS refuses
# payloads over max_payload (1 MiB by default) and a log line is not a transfer channel.
MAX_TEXT = 8192
MAX_DEPTH = 4  # nesting of field values kept (deeper: their text)

URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
# An nkey seed as text: 'S', its kind (operator, account, user, server, cluster, curve
# key...), then base32; and any PEM private key block.
NKEY_SEED = re.compile(r"S[OAUNCPX][A-Z2-7]{50,}")
PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL
)

# What a LogRecord carries by itself; anything else is an ``extra=`` field.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` as it may leave the host: the given secrets, URL passwords and secret
    query values, nkey seeds and private keys masked; cut at ``MAX_TEXT`` characters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = URL.sub(lambda found: redact_url(found.group(0)), text)
    text = NKEY_SEED.sub(MASK, text)
    text = PEM_PRIVATE_KEY.sub(MASK, text)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + f"... ({len(text) - MAX_TEXT} more characters)"
    return text


def _clean(value: Any, secrets: tuple[str, ...], depth: int = 0) -> Any:
    """A field value as JSON, every string in it redacted."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if depth < MAX_DEPTH and isinstance(value, Mapping):
        return {str(k): _clean(v, secrets, depth + 1) for k, v in value.items()}
    if depth < MAX_DEPTH and isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, secrets, depth + 1) for v in value]
    return redact(str(value), secrets)


def log_entry(
    record: logging.LogRecord, host_id: str, sequence: int, secrets: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``record`` as a ``HostLogRecord`` (without ``dropped``, known only when it is
    queued and published), every string redacted."""
    fields = {k: _clean(v, secrets) for k, v in record.__dict__.items() if k not in _STANDARD}
    if record.exc_info:
        fields["error"] = redact(logging.Formatter().formatException(record.exc_info), secrets)
    try:
        message = record.getMessage()
    except Exception:  # a bad %-format must not lose the record (logging prints it too)
        message = f"{record.msg!r} {record.args!r}"
    stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
    return {
        "time": stamp.replace("+00:00", "Z"),
        "host_id": host_id,
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": redact(message, secrets),
        "fields": fields,
        "sequence": sequence,
    }


class HostLogStream(logging.Handler):
    """Publishes the process's log records on ``subject`` (see the module's docstring).
    ``start()`` on the host's event loop, once connected; ``stop()`` before the connection
    drains."""

    def __init__(
        self,
        nc: NatsClient,
        subject: str,
        host_id: str,
        secrets: Iterable[str] = (),
        max_queued: int = MAX_QUEUED,
    ) -> None:
        super().__init__()
        self.nc = nc
        self.subject = subject
        self.host_id = host_id
        # Longest first: a secret that contains another is masked whole.
        self._secrets = tuple(sorted((s for s in secrets if s), key=len, reverse=True))
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(max_queued)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.sequence = 0  # records made (under the handler's lock: emit runs under it)
        self.published = 0
        self.dropped = 0  # in all
        # Not yet reported (loop thread only): dropped because the queue was full since the
        # last record queued, and dropped at publishing since the last record published.
        # The queue is FIFO, so either way they come just before the next record sent.
        self._gap = 0
        self._lost = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._publish())
        logging.getLogger().addHandler(self)

    async def stop(self, publish_queued: bool = True) -> None:
        """Stop taking records; publish what is queued while NATS is there (no waiting),
        unless ``publish_queued`` is false (the server refuses them anyway)."""
        logging.getLogger().removeHandler(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while publish_queued and not self._queue.empty():
            await self._publish_one(self._queue.get_nowait())

    def refused(self, error: BaseException) -> bool:
        """Whether ``error`` (from the connection's error callback) is the server refusing
        this stream's publishes: a host user issued before host logs existed."""
        text = str(error).lower()
        return "permissions violation" in text and self.subject.lower() in text

    def emit(self, record: logging.LogRecord) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self.sequence += 1
        try:
            entry = log_entry(record, self.host_id, self.sequence, self._secrets)
        except Exception:
            self.handleError(record)
            return
        if _on_loop(loop):
            self._offer(entry)
        else:  # a worker thread's record: the queue belongs to the loop
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._offer, entry)

    def _offer(self, entry: dict[str, Any]) -> None:
        entry["dropped"] = self._gap
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self._gap += 1
            self.dropped += 1
            return
        self._gap = 0

    async def _publish(self) -> None:
        while True:
            await self._publish_one(await self._queue.get())

    async def _publish_one(self, entry: dict[str, Any]) -> None:
        # Never log here: a record about this stream would come back through it.
        if not self.nc.is_connected:
            self._lost += 1 + entry["dropped"]
            self.dropped += 1
            return
        entry["dropped"] += self._lost
        try:
            await self.nc.publish(self.subject, json.dumps(entry, default=str).encode())
        except Exception:
            self._lost = entry["dropped"] + 1
            self.dropped += 1
            return
        self._lost = 0
        self.published += 1


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
