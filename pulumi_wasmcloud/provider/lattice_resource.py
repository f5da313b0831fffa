"""``wasmcloud:index:Lattice``: NATS with JetStream on disk plus the controller.

Local target: both run as detached, supervised processes (pidfiles and logs in the
stack's state folder) that outlive ``pulumi up``. A dead one is drift: ``read`` reports
``running: false`` and the next ``up`` restarts it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from host_agent.local.lattice import tool
from host_agent.local.supervisor import ManagedProcess, StartError, start_server
from pulumi_wasmcloud.provider.handlers import Checked, Created, Diff, InputError, changed_keys

REPLACE_ON = ("lattice", "natsPort", "stateDir")


def _processes(state: dict[str, Any]) -> dict[str, ManagedProcess]:
    """The processes this lattice runs (redis-server only when redisPort is set)."""
    state_dir = Path(str(state["stateDir"])).resolve()
    names = ["nats-server", "controller"] + (["redis-server"] if state.get("redisPort") else [])
    return {name: ManagedProcess(name, state_dir) for name in names}


class LatticeResource:
    secrets: frozenset[str] = frozenset()

    async def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Checked:
        inputs = {
            "lattice": news.get("lattice") or "default",
            "natsPort": news.get("natsPort") or 4222,
            "stateDir": news.get("stateDir") or ".state/lattice",
            "heartbeatSeconds": news.get("heartbeatSeconds") or 30,
            "redisPort": news.get("redisPort"),
            "running": True,  # desired; read reports the truth, so a dead process is drift
        }
        failures = []
        for field in ("natsPort", "redisPort"):
            port = inputs[field]
            if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
                failures.append(InputError(field, "must be a TCP port between 1 and 65535"))
        return Checked(inputs, failures)

    async def diff(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> Diff:
        changed = changed_keys(olds, news, (*REPLACE_ON, "heartbeatSeconds", "redisPort"))
        if not self._alive(olds):
            changed["running"] = (olds.get("running", False), True)
        return Diff(changed, [k for k in REPLACE_ON if k in changed])

    def _alive(self, state: dict[str, Any]) -> bool:
        if not state.get("stateDir"):
            return False
        return all(p.running() for p in _processes(state).values())

    def _outputs(self, inputs: dict[str, Any], preview: bool = False) -> dict[str, Any]:
        return {
            **inputs,
            "natsUrl": f"nats://127.0.0.1:{inputs['natsPort']}",
            "running": True if preview else self._alive(inputs),
        }

    async def create(self, inputs: dict[str, Any], preview: bool) -> Created:
        if not preview:
            self._start(inputs)
        outputs = self._outputs(inputs, preview)
        return Created(f"{inputs['lattice']}@{outputs['natsUrl']}", outputs)

    def _start(self, inputs: dict[str, Any]) -> None:
        procs = _processes(inputs)
        state_dir = Path(str(inputs["stateDir"])).resolve()
        port = int(inputs["natsPort"])
        try:
            start_server(
                procs["nats-server"],
                [tool("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js",
                 "-sd", str(state_dir / "jetstream")],
                port,
                "choose another natsPort",
            )  # fmt: skip
            if "redis-server" in procs:
                redis_port = int(inputs["redisPort"])
                start_server(
                    procs["redis-server"],
                    [tool("redis-server"), "--bind", "127.0.0.1", "--port", str(redis_port),
                     "--dir", str(state_dir), "--save", "60", "1"],
                    redis_port,
                    "choose another redisPort",
                )  # fmt: skip
        except StartError as exc:
            raise InputError("natsPort" if "nats" in str(exc) else "redisPort", str(exc)) from None
        procs["controller"].start(
            [tool("wasmcloud-controller"), "--nats-server", f"127.0.0.1:{port}",
             "--lattice", str(inputs["lattice"]),
             "--heartbeat-interval", str(inputs["heartbeatSeconds"])]
        )  # fmt: skip

    async def read(self, id: str, state: dict[str, Any]) -> dict[str, Any] | None:
        return {**state, "running": self._alive(state)}

    async def update(
        self, id: str, olds: dict[str, Any], news: dict[str, Any], preview: bool
    ) -> dict[str, Any]:
        if not preview:
            if olds.get("redisPort") and olds.get("redisPort") != news.get("redisPort"):
                _processes(olds)["redis-server"].stop()
            self._start(news)
        return self._outputs(news, preview)

    async def delete(self, id: str, state: dict[str, Any]) -> None:
        """Stop every process, then delete the lattice's data (JetStream store, Redis
        dump) so a new lattice in the same folder starts empty; logs stay for reading."""
        for proc in reversed(list(_processes(state).values())):
            proc.stop()
        state_dir = Path(str(state["stateDir"])).resolve()
        shutil.rmtree(state_dir / "jetstream", ignore_errors=True)
        (state_dir / "dump.rdb").unlink(missing_ok=True)
