"""``wasmcloud:index:Host``: a host agent on a target (``local`` here) with labels.

The host's identity (a server nkey seed, kept secret in state) is made once at create,
so a host restarted by a later ``up`` keeps its id. Labels change in place through the
control interface; a dead host process is drift that ``read`` reports and ``up`` repairs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

import nats.errors

from host_agent.host.identity import HostIdentity
from host_agent.lattice.client import CtlError
from host_agent.local.lattice import tool
from host_agent.local.supervisor import ManagedProcess
from host_agent.model.naming import is_valid_label_key
from pulumi_wasmcloud.provider.handlers import (
    Checked,
    Created,
    Diff,
    InputError,
    changed_keys,
    nats_url_required,
)
from pulumi_wasmcloud.provider.live import LatticeUnreachable, connect
from pulumi_wasmcloud.provider.values import UNKNOWN

REPLACE_ON = ("natsUrl", "lattice", "name", "stateDir", "target")
READY_TIMEOUT = 60.0


def _process(state: dict[str, Any]) -> ManagedProcess:
    return ManagedProcess(f"host-{state['name']}", Path(str(state["stateDir"])).resolve())


class HostResource:
    secrets: frozenset[str] = frozenset({"seed"})

    async def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Checked:
        failures = []
        labels = news.get("labels") or {}
        for key, value in labels.items() if isinstance(labels, dict) else []:
            if not is_valid_label_key(key):
                reason = "not a valid label key; use letters, digits, '-', '_' or '.' (max 63)"
                failures.append(InputError(f"labels.{key}", reason))
            if not isinstance(value, str) and value is not UNKNOWN:
                failures.append(InputError(f"labels.{key}", 'must be a string; quote it, e.g. "1"'))
        target = news.get("target") or "local"
        if target != "local":
            failures.append(
                InputError("target", f"unknown target {target!r}; this version supports 'local'")
            )
        if not news.get("natsUrl"):
            failures.append(nats_url_required())
        inputs = {
            "name": news.get("name"),
            "natsUrl": news.get("natsUrl"),
            "lattice": news.get("lattice") or "default",
            "labels": labels,
            "stateDir": news.get("stateDir") or ".state/lattice",
            "target": target,
            "heartbeatSeconds": news.get("heartbeatSeconds") or 30,
            "running": True,  # desired; read reports the truth, so a dead host is drift
        }
        return Checked(inputs, failures)

    async def diff(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> Diff:
        changed = changed_keys(olds, news, (*REPLACE_ON, "labels", "heartbeatSeconds"))
        if not olds.get("running", True) or not _process(olds).running():
            changed["running"] = (False, True)
        return Diff(changed, [k for k in REPLACE_ON if k in changed])

    async def create(self, inputs: dict[str, Any], preview: bool) -> Created:
        if preview:
            return Created("", {**inputs, "hostId": UNKNOWN, "seed": UNKNOWN})
        identity = HostIdentity.generate(inputs["name"])
        outputs = await self._start(
            {**inputs, "hostId": identity.public_key, "seed": identity.seed}
        )
        return Created(identity.public_key, outputs)

    async def _start(self, state: dict[str, Any]) -> dict[str, Any]:
        url = str(state["natsUrl"])
        port = url.rsplit(":", 1)[-1]
        labels = [a for k, v in sorted(state["labels"].items()) for a in ("--label", f"{k}={v}")]
        process = _process(state)
        process.start(
            [tool("wasmcloud-host"), "--nats-port", port, "--lattice", str(state["lattice"]),
             "--friendly-name", str(state["name"]), "--allow-file-load",
             "--heartbeat-interval-seconds", str(state["heartbeatSeconds"]), *labels],
            env={**os.environ, "WASMCLOUD_HOST_SEED": str(state["seed"])},
            cwd=Path.cwd(),  # file:// images in manifests are relative to the project
        )  # fmt: skip
        async with connect(url, str(state["lattice"])) as lattice:
            deadline = time.monotonic() + READY_TIMEOUT
            while True:
                try:
                    inventory = await lattice.ctl.get_inventory(str(state["hostId"]))
                    break
                except (CtlError, nats.errors.Error, TimeoutError):
                    if process.exited_early() or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"host {state['name']} did not join lattice {state['lattice']} at "
                            f"{url}; see {process.logfile}"
                        ) from None
                    await asyncio.sleep(0.2)
            await self._set_labels(lattice.ctl, state, inventory.get("labels") or {})
        return {**state, "running": True}

    async def _set_labels(self, ctl: Any, state: dict[str, Any], current: dict[str, str]) -> None:
        wanted: dict[str, str] = state["labels"]
        for key, value in wanted.items():
            if current.get(key) != value:
                await ctl.put_label(state["hostId"], key, value)

    async def read(self, id: str, state: dict[str, Any]) -> dict[str, Any] | None:
        if not _process(state).running():
            return {**state, "running": False}
        try:
            async with connect(str(state["natsUrl"]), str(state["lattice"])) as lattice:
                inventory = await lattice.ctl.get_inventory(id)
        except Exception:
            return {**state, "running": False}
        labels = inventory.get("labels") or {}
        # Only labels this resource manages are compared; hosts add their own (hostcore.*).
        managed = {k: labels[k] for k in state.get("labels", {}) if k in labels}
        return {**state, "labels": managed, "running": True}

    async def update(
        self, id: str, olds: dict[str, Any], news: dict[str, Any], preview: bool
    ) -> dict[str, Any]:
        state = {**news, "hostId": id, "seed": olds["seed"]}
        if preview:
            return {**state, "running": True}
        if not _process(olds).running():
            return await self._start(state)
        async with connect(str(news["natsUrl"]), str(news["lattice"])) as lattice:
            removed = set(olds.get("labels", {})) - set(news["labels"])
            for key in sorted(removed):
                await lattice.ctl.delete_label(id, key)
            await self._set_labels(lattice.ctl, state, dict(olds.get("labels", {})))
        return {**state, "running": True}

    async def delete(self, id: str, state: dict[str, Any]) -> None:
        """Stop the host, unless a deployed application would be left with instances no
        other host can run: then refuse, naming them, and leave the host running."""
        process = _process(state)
        if process.running():
            stranded: list[str] = []
            with contextlib.suppress(LatticeUnreachable, nats.errors.Error, TimeoutError):
                async with connect(str(state["natsUrl"]), str(state["lattice"])) as lattice:
                    stranded = await lattice.stranded_by(id)
            if stranded:
                raise RuntimeError(
                    f"host {state['name']} cannot go: no other host could run "
                    f"{', '.join(stranded)}. Add a host whose labels match those spreads, "
                    "change the spreads (or set allowUnplaced), or remove the application "
                    "first; the host keeps running"
                )
        await process.stop_async()  # never block the event loop every resource shares
