"""``wasmcloud:index:Secret``: a value in a lattice's secrets backend (NATS KV, v1alpha1).

The value travels sealed (xkey) to the backend, which keeps it sealed at rest; in the
Pulumi state it is a secret (encrypted), never plain text, and no message names it.
Manifests refer to it by ``key`` through a secret policy whose ``backend`` is this
resource's ``backend``. The backend never reveals values to tooling, so ``read`` cannot
see drift of the value itself; a changed value in the program is written again.
"""

from __future__ import annotations

import re
from contextlib import AbstractAsyncContextManager
from typing import Any

from host_agent.secrets.client import SecretsClient, SecretsError
from host_agent.secrets.protocol import DEFAULT_BACKEND
from pulumi_wasmcloud.provider.engine_log import EngineLog
from pulumi_wasmcloud.provider.handlers import (
    Checked,
    Created,
    Diff,
    InputError,
    ProviderSettings,
    changed_keys,
    nats_url_required,
)
from pulumi_wasmcloud.provider.live import Lattice, connect, lattice_credentials, lattice_tls
from pulumi_wasmcloud.provider.values import UNKNOWN

# NATS KV's key alphabet (a key is one or more tokens of these, '.'-separated).
KEY_PATTERN = re.compile(r"^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$")
BACKEND_PATTERN = re.compile(r"^[-_a-zA-Z0-9]+$")
REPLACE_ON = ("natsUrl", "lattice", "backend", "key")


def _string(news: dict[str, Any], name: str, failures: list[InputError], *, required: bool) -> None:
    value = news.get(name)
    if value is UNKNOWN or (value is None and not required):
        return
    if not isinstance(value, str) or (required and not value):
        failures.append(InputError(name, "expected a non-empty string"))


class SecretResource:
    secrets: frozenset[str] = frozenset({"value", "credentials", "clientTls"})

    def __init__(self, log: EngineLog, settings: ProviderSettings) -> None:
        self.log = log
        self.settings = settings

    def _connect(self, state: dict[str, Any]) -> AbstractAsyncContextManager[Lattice]:
        return connect(
            str(state["natsUrl"]),
            str(state["lattice"]),
            lattice_credentials(state, self.settings),
            lattice_tls(state),
        )

    async def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Checked:
        inputs = {
            "natsUrl": news.get("natsUrl"),
            "lattice": news.get("lattice") or "default",
            "credentials": news.get("credentials"),
            "caCert": news.get("caCert"),  # the CA of its NATS's certificate, with TLS
            "clientTls": news.get("clientTls"),  # a lattice on machines' tooling pair + CA
            "backend": news.get("backend") or DEFAULT_BACKEND,
            "key": news.get("key"),
            "value": news.get("value"),
        }
        failures: list[InputError] = []
        if inputs["natsUrl"] in (None, ""):
            failures.append(nats_url_required())
        for name in ("key", "value"):
            _string(inputs, name, failures, required=True)
        _string(inputs, "backend", failures, required=True)
        _string(inputs, "credentials", failures, required=False)
        _string(inputs, "caCert", failures, required=False)
        if inputs["clientTls"] not in (None, UNKNOWN) and not isinstance(inputs["clientTls"], dict):
            failures.append(InputError("clientTls", "expected the lattice's clientTls object"))
        key, backend = inputs["key"], inputs["backend"]
        if isinstance(key, str) and key and not KEY_PATTERN.match(key):
            failures.append(
                InputError(
                    "key",
                    f"{key!r} is not a NATS KV key: use letters, digits and - / _ = "
                    "in dot-separated tokens",
                )
            )
        if isinstance(backend, str) and backend and not BACKEND_PATTERN.match(backend):
            failures.append(InputError("backend", f"{backend!r}: use letters, digits, - and _"))
        return Checked(inputs, failures)

    async def diff(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> Diff:
        keys = (*REPLACE_ON, "value", "credentials", "caCert", "clientTls")
        changed = changed_keys(olds, news, keys)
        return Diff(changed, [k for k in REPLACE_ON if k in changed])

    async def _put(self, inputs: dict[str, Any]) -> int:
        async with self._connect(inputs) as lattice:
            client = SecretsClient(lattice.nc, str(inputs["backend"]))
            try:
                return await client.put(str(inputs["key"]), str(inputs["value"]))
            except SecretsError as error:
                raise RuntimeError(str(error)) from None

    async def create(self, inputs: dict[str, Any], preview: bool) -> Created:
        id = f"{inputs['backend']}/{inputs['key']}"
        if preview:
            return Created(id, {**inputs, "revision": UNKNOWN})
        revision = await self._put(inputs)
        await self.log.info(f"secret {inputs['key']} stored in {inputs['backend']}")
        return Created(id, {**inputs, "revision": revision})

    async def read(self, id: str, state: dict[str, Any]) -> dict[str, Any] | None:
        # The backend gives values to hosts only; the state is what we know.
        return state

    async def update(
        self, id: str, olds: dict[str, Any], news: dict[str, Any], preview: bool
    ) -> dict[str, Any]:
        if preview:
            return {**news, "revision": UNKNOWN}
        if news.get("value") == olds.get("value"):
            return {**news, "revision": olds.get("revision")}
        return {**news, "revision": await self._put(news)}

    async def delete(self, id: str, state: dict[str, Any]) -> None:
        async with self._connect(state) as lattice:
            client = SecretsClient(lattice.nc, str(state["backend"]))
            try:
                await client.delete(str(state["key"]))
            except SecretsError as error:
                raise RuntimeError(str(error)) from None
