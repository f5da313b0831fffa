"""``wasmcloud:index:Lattice``: NATS with JetStream on disk plus the controller.

Local target: both run as detached, supervised processes (pidfiles and logs in the
stack's state folder) that outlive ``pulumi up``. A dead one is drift: ``read`` reports
``running: false`` and the next ``up`` restarts it, then waits until the controller
answers, so what comes next in the same ``up`` finds a working lattice.

Every property takes effect: ``lattice``, ``natsPort`` and ``stateDir`` replace the
lattice; ``heartbeatSeconds`` restarts the controller with the new value; ``redisPort``
moves (or starts, or stops) redis-server; ``registryPort`` moves (or starts, or stops) the
OCI registry beside the lattice: Debian's ``docker-registry`` (the distribution registry)
on loopback, storing blobs under ``stateDir/registry``, output as ``registryUrl``. Hosts of
the lattice are given its address as allowed-insecure (plain HTTP on loopback).

Secured by default (``secure``, see local_security.py): nats-server runs in operator mode
with the lattice's own authority, made at create and kept as secret outputs with the
users it issued (``credentials`` for tooling, the controller's own); Hosts mint their users
from ``userIssuer``. A lattice from before (plain) is switched on its next ``up``: NATS
and the controller restart secured (JetStream then starts empty in the lattice's account;
Applications are put and deployed again by the same ``up``), and every Host restarts
with its own user.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from host_agent.local.credentials import CA_FILE
from host_agent.local.supervisor import ManagedProcess, PortTaken, start_server
from pulumi_wasmcloud.provider.engine_log import EngineLog
from pulumi_wasmcloud.provider.handlers import Checked, Created, Diff, InputError, changed_keys
from pulumi_wasmcloud.provider.live import LatticeUnreachable, connect
from pulumi_wasmcloud.provider.local_security import (
    CONFIG_FILE,
    CONTROLLER_CREDS_FILE,
    GRANT_ISSUER_FILE,
    SECRET_OUTPUTS,
    SECRETS_CREDS_FILE,
    LocalSecurity,
    remove_files,
    write_files,
)
from pulumi_wasmcloud.provider.machine_lattice import MachineLattice
from pulumi_wasmcloud.provider.values import UNKNOWN

# NATS, the wadm client and the local lattice's tools (host_agent.local.lattice) are
# imported where a local lattice starts: a preview never starts one, and every preview's
# plugin process would pay for them (tests/unit/test_provider_startup.py keeps it so).
# A secured lattice runs the NATS KV secrets backend (application secrets, issue 16).
SECRETS_BACKEND = "secrets-backend"
SECRETS_SETTINGS = ("ENCRYPTION_XKEY_SEED", "TRANSIT_XKEY_SEED", "NATS_CREDSFILE")
REPLACE_ON = ("lattice", "natsPort", "stateDir")
# Properties an update applies by restarting the processes that read them.
RESTARTS = {
    "heartbeatSeconds": ("controller",),
    "redisPort": ("redis-server",),
    "registryPort": ("registry",),
    "secure": ("controller", SECRETS_BACKEND, "nats-server"),
    # Read by the controller and by the lattice's Hosts (they restart with it). A lattice
    # from before it has no such output: its first `up` records "" (restarting nothing,
    # see _restarts), since a missing output reads as unknown in a preview and every Host
    # would show a change.
    "otlpEndpoint": ("controller",),
}
CONTROLLER_TIMEOUT = 30.0
# A plain lattice's security outputs: known and empty. In a preview the SDK reads an
# output that is missing (or null) as unknown, and every Host and Application would show
# a change.
PLAIN_OUTPUTS: dict[str, Any] = {
    "authority": {},
    "userIssuer": {},
    "credentials": "",
    "controllerCredentials": "",
    "tls": {},
    "caCert": "",
    "clientTls": {},
    "tlsIssuer": {},
    "security": {},
}
# What the controller of a secured lattice is given; never from the provider's environment.
CONTROLLER_FILES = (
    "WADM_NATS_CREDS_FILE",
    "WASMCLOUD_GRANT_ISSUER_FILE",
    "WADM_NATS_TLS_CA_FILE",
    "WASMCLOUD_NATS_TLS_CERT",
    "WASMCLOUD_NATS_TLS_KEY",
)


def _processes(state: dict[str, Any]) -> dict[str, ManagedProcess]:
    """The processes this lattice runs (redis-server only when redisPort is set)."""
    state_dir = Path(str(state["stateDir"])).resolve()
    names = ["nats-server", "controller"] + (["redis-server"] if state.get("redisPort") else [])
    if state.get("registryPort"):
        names.append("registry")
    if state.get("secure") is True:
        names.append(SECRETS_BACKEND)
    return {name: ManagedProcess(name, state_dir) for name in names}


def otlp_endpoint_problem(value: Any) -> str | None:
    """Why ``otlpEndpoint`` cannot be used (None: it can; "" is off, unknown is checked
    once known)."""
    from host_agent.telemetry.config import TelemetryConfigError, parse_endpoint

    if value is UNKNOWN or value == "":
        return None
    fix = (
        "must be the http:// or https:// URL of an OTLP/HTTP collector, e.g. http://localhost:4318"
    )
    if not isinstance(value, str):
        return f"{fix}, not {type(value).__name__}"
    try:
        parse_endpoint(value, "otlpEndpoint")
    except TelemetryConfigError:
        return f"{value!r} {fix}"
    return None


def registry_url(port: Any) -> Any:
    """``http://127.0.0.1:<port>``: the registry's API; its ``127.0.0.1:<port>`` part is the
    registry in component references (``127.0.0.1:<port>/counter:0.1.0``); "" without one (a
    null output reads as unknown in preview, and every Host would show a change)."""
    if port is UNKNOWN:
        return UNKNOWN
    return f"http://127.0.0.1:{port}" if port else ""


def registry_config(state_dir: Path, port: int) -> dict[str, Any]:
    """docker-registry's configuration: filesystem storage in the state folder, loopback
    only, deletes allowed (so an image can be replaced and garbage collected)."""
    return {
        "version": "0.1",
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(state_dir / "registry")},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}"},
    }


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_port(value: Any) -> bool:
    return value is None or value is UNKNOWN or (_positive_int(value) and value < 65536)


def _setting(state: dict[str, Any], field: str) -> Any:
    """A restarting property's value; a lattice from before ``secure`` was plain."""
    return bool(state.get(field)) if field == "secure" else state.get(field)


def _restarts(olds: dict[str, Any], news: dict[str, Any], field: str) -> bool:
    """Whether an update of ``field`` restarts what reads it: a missing otlpEndpoint (a
    lattice from before it) is "" (off), as the processes read it."""
    if field == "otlpEndpoint":
        return (olds.get(field) or "") != (news.get(field) or "")
    return bool(_setting(olds, field) != _setting(news, field))


def _now() -> datetime:
    return datetime.now(UTC)


def _security(state: dict[str, Any]) -> LocalSecurity | None:
    """The security an earlier ``up`` made for this lattice, if it is secured and has it."""
    return LocalSecurity.from_state(state, _now()) if state.get("authority") else None


class LatticeResource:
    # The local lattice's secret outputs and a lattice on machines' (machine_lattice.py).
    secrets: frozenset[str] = SECRET_OUTPUTS | {"security", "clientTls", "tlsIssuer"}

    def __init__(self, log: EngineLog | None = None) -> None:
        self.log = log or EngineLog(None)
        self.machines = MachineLattice(self.log)  # a lattice with `cluster` lives there

    async def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Checked:
        if news.get("cluster") is not None:
            return await self.machines.check(olds, news)

        def given(key: str, default: Any) -> Any:
            return default if news.get(key) is None else news[key]

        inputs = {
            "lattice": given("lattice", "default"),
            "natsPort": given("natsPort", 4222),
            "stateDir": given("stateDir", ".state/lattice"),
            "heartbeatSeconds": given("heartbeatSeconds", 30),
            "redisPort": news.get("redisPort"),
            "registryPort": news.get("registryPort"),
            "secure": given("secure", True),
            # OpenTelemetry: the OTLP/HTTP collector the lattice's Hosts (and the providers
            # they start) export traces and metrics to; "" is off.
            "otlpEndpoint": given("otlpEndpoint", ""),
            "running": True,  # desired; read reports the truth, so a dead process is drift
        }
        failures = []
        # An unknown value (an output of a resource still to be created) is checked again
        # once it is known.
        for field in ("natsPort", "redisPort", "registryPort"):
            if not _is_port(inputs[field]):
                failures.append(InputError(field, "must be a TCP port between 1 and 65535"))
        heartbeat = inputs["heartbeatSeconds"]
        if heartbeat is not UNKNOWN and not _positive_int(heartbeat):
            failures.append(
                InputError("heartbeatSeconds", "must be a whole number of seconds, at least 1")
            )
        for field in ("lattice", "stateDir"):
            value = inputs[field]
            if value is not UNKNOWN and (not isinstance(value, str) or not value):
                failures.append(InputError(field, "must be a non-empty string"))
        if inputs["secure"] is not UNKNOWN and not isinstance(inputs["secure"], bool):
            failures.append(InputError("secure", "must be true or false"))
        endpoint_problem = otlp_endpoint_problem(inputs["otlpEndpoint"])
        if endpoint_problem:
            failures.append(InputError("otlpEndpoint", endpoint_problem))
        return Checked(inputs, failures)

    async def diff(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> Diff:
        if olds.get("cluster") is not None or news.get("cluster") is not None:
            return await self.machines.diff(id, olds, news)
        changed = changed_keys(olds, news, REPLACE_ON)
        changed |= {
            field: (olds.get(field), news.get(field))
            for field in RESTARTS
            if _setting(olds, field) != _setting(news, field)
        }
        if not self._alive(olds):
            changed["running"] = (olds.get("running", False), True)
        security = _security(olds) if news.get("secure") else None
        if security is not None and (not olds.get("tls") or security.tls.due(_now())):
            # A certificate expires within 30 days (or there is no TLS yet): up renews it.
            changed["tls"] = ("renew", "renewed")
        return Diff(changed, [k for k in REPLACE_ON if k in changed])

    def _alive(self, state: dict[str, Any]) -> bool:
        if not state.get("stateDir"):
            return False
        return all(p.running() for p in _processes(state).values())

    def _outputs(
        self,
        inputs: dict[str, Any],
        security: LocalSecurity | None,
        preview: bool = False,
    ) -> dict[str, Any]:
        port = inputs["natsPort"]
        outputs = {
            **inputs,
            "natsUrl": UNKNOWN if port is UNKNOWN else f"nats://127.0.0.1:{port}",
            "registryUrl": registry_url(inputs.get("registryPort")),
            "running": True if preview else self._alive(inputs),
        }
        if security is not None:
            # A local client needs only the CA (caCert); machines' outputs are empty here.
            outputs |= {**security.outputs(), "clientTls": {}, "tlsIssuer": {}, "security": {}}
        elif inputs.get("secure") is not False:
            # Made by the real `up` (never in a preview): unknown until then.
            outputs |= dict.fromkeys((*SECRET_OUTPUTS, "caCert"), UNKNOWN)
        else:
            outputs |= PLAIN_OUTPUTS
        return outputs

    async def create(self, inputs: dict[str, Any], preview: bool) -> Created:
        if inputs.get("cluster") is not None:
            return await self.machines.create(inputs, preview)
        security = None
        if not preview and inputs["secure"]:
            security = LocalSecurity.create(str(inputs["lattice"]), _now())
        if not preview:
            await self._start(inputs, security)
        outputs = self._outputs(inputs, security, preview)
        return Created(f"{inputs['lattice']}@{outputs['natsUrl']}", outputs)

    async def _start(self, inputs: dict[str, Any], security: LocalSecurity | None) -> None:
        """Start whatever of this lattice does not run (what runs is kept), then wait
        until the controller answers. A secured lattice's files are written first."""
        from host_agent.local.lattice import tool  # see the note on imports above

        procs = _processes(inputs)
        state_dir = Path(str(inputs["stateDir"])).resolve()
        port = int(inputs["natsPort"])
        server_changed = False
        if security is not None:
            server_changed = write_files(security, state_dir, port, str(inputs["lattice"]))
            nats_argv = [tool("nats-server"), "-c", str(state_dir / CONFIG_FILE)]
        else:
            remove_files(state_dir)
            nats_argv = [tool("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js",
                         "-sd", str(state_dir / "jetstream")]  # fmt: skip
        try:
            _, nats_started = await start_server(
                procs["nats-server"], nats_argv, port, "choose another natsPort"
            )
        except PortTaken as exc:  # the user's choice of port; anything else says itself
            raise InputError("natsPort", str(exc)) from None
        running = procs["nats-server"].pid()
        if server_changed and not nats_started and running is not None:
            # A renewed certificate (or account JWT): nats-server reloads its config on
            # SIGHUP and keeps every connection that is still allowed.
            os.kill(running, signal.SIGHUP)
        restarted = nats_started
        if "redis-server" in procs:
            restarted = (
                await self._start_redis(procs["redis-server"], state_dir, inputs) or restarted
            )
        if "registry" in procs:
            await self._start_registry(procs["registry"], state_dir, int(inputs["registryPort"]))
        # The controller connects as its own user, named by a 0600 file (never argv); a
        # variable of that name in the provider's own environment must not reach it.
        controller_env = {k: v for k, v in os.environ.items() if k not in CONTROLLER_FILES}
        if security is not None:
            controller_env["WADM_NATS_CREDS_FILE"] = str(state_dir / CONTROLLER_CREDS_FILE)
            controller_env["WASMCLOUD_GRANT_ISSUER_FILE"] = str(state_dir / GRANT_ISSUER_FILE)
            controller_env["WADM_NATS_TLS_CA_FILE"] = str(state_dir / CA_FILE)
        otlp = inputs.get("otlpEndpoint")
        if isinstance(otlp, str) and otlp:
            # The lattice's collector, as its Hosts get it: the controller's reconcile
            # passes, commands and wadm API requests are spans there, with its metrics.
            controller_env["WASMCLOUD_OBSERVABILITY_ENABLED"] = "true"
            controller_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp
        _, started = procs["controller"].start(
            [tool("wasmcloud-controller"), "--nats-server", f"127.0.0.1:{port}",
             "--lattice", str(inputs["lattice"]),
             "--heartbeat-interval", str(inputs["heartbeatSeconds"])],
            env=controller_env,
        )  # fmt: skip
        if security is not None and SECRETS_BACKEND in procs:
            self._start_secrets_backend(procs[SECRETS_BACKEND], security, state_dir, port)
        if started or restarted:
            await self._await_controller(inputs, procs["controller"], security)

    def _start_secrets_backend(
        self, process: ManagedProcess, security: LocalSecurity, state_dir: Path, port: int
    ) -> None:
        """Start the secrets backend unless it runs: its sealing key in its environment,
        its user and the CA as 0600 files (nothing secret in argv)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in (*SECRETS_SETTINGS, *CONTROLLER_FILES, "WASMCLOUD_TLS_CA_PATH")
        }
        env |= {
            "ENCRYPTION_XKEY_SEED": security.secrets_key,
            "NATS_CREDSFILE": str(state_dir / SECRETS_CREDS_FILE),
            "WASMCLOUD_TLS_CA_PATH": str(state_dir / CA_FILE),
        }
        process.start(
            [sys.executable, "-m", "host_agent.secrets", "--nats-server", f"127.0.0.1:{port}",
             "serve"],
            env=env,
        )  # fmt: skip

    async def _start_redis(
        self, process: ManagedProcess, state_dir: Path, inputs: dict[str, Any]
    ) -> bool:
        """Start redis-server unless it runs; True if it was started. It keeps an
        append-only file: every write reaches the file before its reply, so a killed
        redis-server (kill -9) comes back with every count it acknowledged."""
        from host_agent.local.lattice import tool  # see the note on imports above

        port = int(inputs["redisPort"])
        # Redis ignores a dump.rdb once appendonly is on at start: a data folder from
        # before append-only starts without it, then switches at run time (Redis then
        # writes the append-only file from what it loaded).
        migrate = (state_dir / "dump.rdb").exists() and not (state_dir / "appendonlydir").exists()
        try:
            _, started = await start_server(
                process,
                [tool("redis-server"), "--bind", "127.0.0.1", "--port", str(port),
                 "--dir", str(state_dir), "--save", "60", "1",
                 "--appendonly", "no" if migrate else "yes"],
                port,
                "choose another redisPort",
            )  # fmt: skip
        except PortTaken as exc:  # the user's choice of port; anything else says itself
            raise InputError("redisPort", str(exc)) from None
        if started and migrate:
            # Imported here, not at the top: redis-py (and the OpenTelemetry it loads) costs
            # ~0.2 s in every provider process, and only this migration talks to Redis.
            import redis.asyncio

            client = redis.asyncio.Redis(host="127.0.0.1", port=port)
            try:
                await client.config_set("appendonly", "yes")
            finally:
                await client.aclose()
        return started

    async def _start_registry(self, process: ManagedProcess, state_dir: Path, port: int) -> None:
        """Start docker-registry unless it runs; it answers GET /v2/ once it listens."""
        from host_agent.local.lattice import tool  # see the note on imports above

        config = state_dir / "registry.yml"
        if not process.running():
            state_dir.mkdir(parents=True, exist_ok=True)
            config.write_text(yaml.safe_dump(registry_config(state_dir, port)))
        try:
            await start_server(
                process,
                [tool("docker-registry"), "serve", str(config)],
                port,
                "choose another registryPort",
            )
        except PortTaken as exc:  # the user's choice of port; anything else says itself
            raise InputError("registryPort", str(exc)) from None

    async def _await_controller(
        self,
        inputs: dict[str, Any],
        controller: ManagedProcess,
        security: LocalSecurity | None,
    ) -> None:
        """Wait until a controller answers the wadm API: applications deployed next in
        the same ``up`` need it."""
        import nats.errors  # see the note on imports above

        from host_agent.lattice.wadm import WadmClient

        url, lattice = f"nats://127.0.0.1:{inputs['natsPort']}", str(inputs["lattice"])
        credentials = security.tooling.creds() if security is not None else None
        tls = security.tls.client() if security is not None else None
        started = time.monotonic()
        shown = -1
        while True:
            waited = time.monotonic() - started
            try:
                async with connect(url, lattice, credentials, tls) as live:
                    await WadmClient(live.nc, lattice, timeout=1.0).list()
                return
            except (LatticeUnreachable, nats.errors.NoRespondersError, nats.errors.TimeoutError):
                pass
            if not controller.running() or waited > CONTROLLER_TIMEOUT:
                raise RuntimeError(
                    f"the controller of lattice {lattice} did not answer within "
                    f"{CONTROLLER_TIMEOUT:.0f} s of its start; see {controller.logfile}, fix "
                    "what it says, then run `pulumi up` again"
                )
            if int(waited) > shown:
                shown = int(waited)
                await self.log.info(f"waiting for the controller to answer: {shown} s")
            await asyncio.sleep(0.1)  # no responders comes back at once: pace the retries

    async def read(self, id: str, state: dict[str, Any]) -> dict[str, Any] | None:
        if state.get("cluster") is not None:
            return await self.machines.read(id, state)
        plain = {} if state.get("authority") else PLAIN_OUTPUTS  # state from before has none
        return {**plain, "otlpEndpoint": "", **state, "running": self._alive(state)}

    async def update(
        self, id: str, olds: dict[str, Any], news: dict[str, Any], preview: bool
    ) -> dict[str, Any]:
        if news.get("cluster") is not None:
            return await self.machines.update(id, olds, news, preview)
        security = _security(olds) if news["secure"] else None
        if not preview:
            if security is not None:
                security = security.rotated(_now())
            elif news["secure"]:
                security = LocalSecurity.create(str(news["lattice"]), _now())  # plain until now
            running = _processes(olds)
            for field, names in RESTARTS.items():
                if _restarts(olds, news, field):
                    for name in names:
                        if name in running:  # _start runs it with the new value
                            await running[name].stop_async()
            await self._start(news, security)
        return self._outputs(news, security, preview)

    async def delete(self, id: str, state: dict[str, Any]) -> None:
        """Stop every process, then delete the lattice's data (JetStream store, Redis
        dump, registry blobs) so a new lattice in the same folder starts empty; logs stay
        for reading."""
        if state.get("cluster") is not None:
            return await self.machines.delete(id, state)
        for proc in reversed(list(_processes(state).values())):
            await proc.stop_async()
        state_dir = Path(str(state["stateDir"])).resolve()
        shutil.rmtree(state_dir / "jetstream", ignore_errors=True)
        (state_dir / "dump.rdb").unlink(missing_ok=True)
        shutil.rmtree(state_dir / "appendonlydir", ignore_errors=True)
        shutil.rmtree(state_dir / "registry", ignore_errors=True)
        (state_dir / "registry.yml").unlink(missing_ok=True)
        remove_files(state_dir)
