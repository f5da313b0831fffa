"""An Application's health check: the ``healthUrl`` and ``healthTimeoutSeconds`` inputs,
parsed strictly, and the probe that GETs the URL until it answers 2xx.

A rollout is region by region when each region's Application ``depends_on`` the previous
one: an update that deploys a version whose health URL never answers 2xx rolls back and
fails, and the engine then changes nothing that depends on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from pulumi_wasmcloud.provider.handlers import InputError
from pulumi_wasmcloud.provider.values import UNKNOWN

DEFAULT_TIMEOUT_SECONDS = 60
MAX_TIMEOUT_SECONDS = 3600
# One GET may take this long (or what is left of the whole timeout, if less): a version
# that hangs must not use the whole budget in one attempt.
ATTEMPT_TIMEOUT = 5.0
# Between attempts: short at first (a version that just started often answers within a
# second), doubling to at most MAX_BACKOFF so a slow start costs few requests.
FIRST_BACKOFF = 0.2
MAX_BACKOFF = 2.0
SHOWN_BODY = 120  # characters of a failing answer's body quoted in messages


def check_health_inputs(inputs: dict[str, Any], news: dict[str, Any]) -> list[InputError]:
    """Copy ``healthUrl`` / ``healthTimeoutSeconds`` from ``news`` into ``inputs`` (the
    timeout defaults to 60) and refuse wrongly typed values by name. Unknown values (another
    resource's output in preview) pass; they are checked again once known."""
    failures = []
    url = news.get("healthUrl")
    if url is not None:
        inputs["healthUrl"] = url
        if url is not UNKNOWN:
            reason = url_problem(url)
            if reason:
                failures.append(InputError("healthUrl", reason))
    timeout = news.get("healthTimeoutSeconds")
    inputs["healthTimeoutSeconds"] = DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout
    if timeout is not None and timeout is not UNKNOWN:
        # bool is an int in Python, and 30.5 or "30" are not whole seconds: refused, as
        # serde refuses them for a u64.
        if isinstance(timeout, bool) or not isinstance(timeout, int):
            failures.append(
                InputError("healthTimeoutSeconds", "must be a whole number of seconds, e.g. 60")
            )
        elif not 1 <= timeout <= MAX_TIMEOUT_SECONDS:
            failures.append(
                InputError(
                    "healthTimeoutSeconds",
                    f"must be between 1 and {MAX_TIMEOUT_SECONDS} seconds, not {timeout}",
                )
            )
    return failures


def url_problem(url: object) -> str | None:
    """Why ``url`` is not an http(s) URL a GET can be sent to, or None."""
    if not isinstance(url, str):
        return "must be a string: an http:// or https:// URL"
    fix = "give an http:// or https:// URL, e.g. http://10.0.0.5:8080/health"
    if url != url.strip() or any(c.isspace() for c in url):
        return f"must not contain spaces: {url!r}; {fix}"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in 0..65535
    except ValueError as exc:
        return f"{url!r} is not a valid URL ({exc}); {fix}"
    if parts.scheme not in ("http", "https"):
        return f"{url!r} is not an http:// or https:// URL; {fix}"
    if not parts.hostname:
        return f"{url!r} names no host; {fix}"
    if port == 0:
        return f"{url!r} has port 0; {fix}"
    return None


@dataclass(frozen=True)
class HealthCheck:
    url: str
    timeout: float

    @classmethod
    def of(cls, inputs: dict[str, Any]) -> HealthCheck | None:
        """The check checked inputs ask for, or None (no ``healthUrl``)."""
        url = inputs.get("healthUrl")
        if not isinstance(url, str):
            return None
        timeout = inputs.get("healthTimeoutSeconds")
        return cls(url, float(timeout if isinstance(timeout, int) else DEFAULT_TIMEOUT_SECONDS))


@dataclass(frozen=True)
class Answer:
    """What one GET got: an HTTP status (and the start of the body), or why there was
    none (``status`` None)."""

    status: int | None
    detail: str

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def __str__(self) -> str:
        if self.status is None:
            return self.detail
        return f"HTTP {self.status}" + (f' "{self.detail}"' if self.detail else "")


async def get_once(session: aiohttp.ClientSession, url: str, timeout: float) -> Answer:
    """One GET, never raising: a refused connection or a timeout is an answer too."""
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
        ) as response:
            if 300 <= response.status < 400:
                # Not followed: the health URL is the thing to check, and a redirect
                # (to https, to a login page) says the URL should be another one.
                where = response.headers.get("Location", "")
                return Answer(response.status, f"redirect to {where}" if where else "")
            body = await response.content.read(SHOWN_BODY * 2)
            text = " ".join(body.decode("utf-8", "replace").split())
            if len(text) > SHOWN_BODY:
                text = text[:SHOWN_BODY] + "..."
            return Answer(response.status, text)
    except TimeoutError:
        return Answer(None, f"no answer within {timeout:.0f} s")
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or str(exc.os_error) or "refused"
        return Answer(None, f"cannot connect: {reason}")
    except aiohttp.ClientError as exc:
        return Answer(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


async def probe(
    check: HealthCheck, progress: Callable[[Answer, float], Awaitable[None]]
) -> tuple[Answer, float]:
    """GET ``check.url`` until it answers 2xx or ``check.timeout`` seconds passed; the
    last answer and the seconds it took. ``progress`` hears every answer that is not 2xx."""
    started = time.monotonic()
    deadline = started + check.timeout
    backoff = FIRST_BACKOFF
    # trust_env off: the URL is reached directly, never through a proxy from the environment.
    async with aiohttp.ClientSession(trust_env=False) as session:
        while True:
            left = deadline - time.monotonic()
            answer = await get_once(session, check.url, max(0.5, min(ATTEMPT_TIMEOUT, left)))
            waited = time.monotonic() - started
            if answer.ok:
                return answer, waited
            await progress(answer, waited)
            if time.monotonic() + backoff > deadline:
                return answer, waited
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
