"""``wasmcloud:index:Host``: a host agent on a target (``local`` here) with labels.

The host's identity (a server nkey seed, kept secret in state) is made once at create,
so a host restarted by a later ``up`` keeps its id. The host connects to the whole
``natsUrl`` (``nats://`` or ``tls://``, any address) as its own NATS user when the lattice
is secured (``userIssuer``: minted once, kept as the secret ``hostCredentials``, minted
again when the lattice's issuer changes), else as the user of the provider's
``wasmcloud:credentials``; its providers connect as the same user. The provider itself
talks to the lattice as ``credentials`` (the lattice's tooling user), else as
``wasmcloud:credentials``. Secrets reach the
host process in its environment (readable by its own user only), never on its command
line (readable by every user through ``ps``), and credentials are never kept in state.

Every property takes effect: ``labels`` change in place through the control interface;
``natsUrl`` and ``heartbeatSeconds`` restart the host with the same identity;
``lattice``, ``name``, ``stateDir`` and ``target`` replace it. A dead host process is
drift that ``read`` reports and ``up`` repairs.

A Host with a ``machine`` runs there, installed over SSH: ``machine_host.MachineHost``
serves it, sharing this module's environment, join wait and stranding check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from host_agent.host.identity import HostIdentity
from host_agent.local.supervisor import ManagedProcess
from host_agent.model.naming import is_valid_label_key
from host_agent.security.jwt import JwtError
from host_agent.security.permissions import Role
from pulumi_wasmcloud.provider.engine_log import EngineLog
from pulumi_wasmcloud.provider.handlers import (
    Checked,
    Created,
    Diff,
    InputError,
    KnownHost,
    ProviderSettings,
    changed_keys,
    nats_url_required,
)
from pulumi_wasmcloud.provider.live import (
    CredentialsRefused,
    Lattice,
    LatticeUnreachable,
    connect,
    lattice_credentials,
    lattice_tls,
)
from pulumi_wasmcloud.provider.local_security import issued_by, issuer_of, write_private
from pulumi_wasmcloud.provider.values import UNKNOWN, has_unknowns

# NATS (with the connection's types), the control client, the authority and the local
# lattice's tools are imported where a host is checked, started or read on this machine:
# a Host on a machine (machine_host.py builds on this module) does none of it in a
# preview, and every preview's plugin process would pay for them
# (tests/unit/test_provider_startup.py keeps it so).
if TYPE_CHECKING:
    from host_agent.lattice.connection import NatsCredentials
    from host_agent.security.authority import UserIssuer

REPLACE_ON = ("lattice", "name", "stateDir", "target")
# Properties an update applies by restarting the host process with the same seed.
RESTART_ON = (
    "natsUrl",
    "heartbeatSeconds",
    "registryUrl",
    "userIssuer",
    "caCert",
    "otlpEndpoint",
)
# Properties an update only records (what the provider itself connects as).
RECORDED = ("credentials", "clientTls")
# What a secured lattice gives its hosts; a plain one gives "" or {} (older states: none).
SECURITY_INPUTS = ("credentials", "userIssuer", "caCert", "clientTls")
READY_TIMEOUT = 60.0
# The host's connection, identity and labels come from this resource only: variables
# with these names in the provider's own environment must not reach the host.
HOST_SETTINGS = (
    "WASMCLOUD_NATS_",
    "WASMCLOUD_CTL_",
    "WASMCLOUD_RPC_",
    "WASMCLOUD_LABEL_",
    "WASMCLOUD_HOST_SEED",
    "WASMCLOUD_LATTICE",
    "WASMCLOUD_HEARTBEAT_INTERVAL",
    "WASMCLOUD_JS_DOMAIN",
    "WASMCLOUD_LINK_GRANTS",
    "WASMCLOUD_TLS_CA_PATH",
)


def _process(state: dict[str, Any]) -> ManagedProcess:
    return ManagedProcess(f"host-{state['name']}", Path(str(state["stateDir"])).resolve())


def _ca_file(state: Mapping[str, Any]) -> Path:
    """The host's copy of its lattice's CA certificate (``caCert``), which it trusts."""
    return Path(str(state["stateDir"])).resolve() / f"host-{state['name']}-ca.pem"


def on_machine(state: Mapping[str, Any] | None) -> bool:
    """Whether a Host's inputs or state put it on a machine (``machine`` given)."""
    return state is not None and state.get("machine") is not None


def known_host(state: dict[str, Any] | None) -> KnownHost | None:
    """The host a Host resource's state describes, with a way to tell whether its
    process runs; None while that state is incomplete (the preview of a new host)."""
    if on_machine(state):
        from pulumi_wasmcloud.provider.machine_host import known_machine_host

        return known_machine_host(state)
    if not state or not all(
        isinstance(state.get(k), str) and state[k]
        for k in ("hostId", "name", "natsUrl", "lattice", "stateDir")
    ):
        return None
    return KnownHost(state["hostId"], state["name"], _process(state).running)


def host_command(state: Mapping[str, Any]) -> list[str]:
    """The host's command line: nothing secret (every user can read it)."""
    from host_agent.local.lattice import tool  # see the note on imports above

    return [
        tool("wasmcloud-host"),
        "--friendly-name",
        str(state["name"]),
        "--allow-file-load",
    ]


def host_environment(
    state: Mapping[str, Any],
    credentials: NatsCredentials | None,
    inherited: Mapping[str, str],
    ca_file: Path | None = None,
) -> dict[str, str]:
    """The environment the host starts with: where NATS is, who to connect as (and the
    CA its server's certificate must chain to), its identity, lattice and labels, in the
    host's ``WASMCLOUD_*`` variables."""
    from host_agent.lattice.connection import NatsAddress  # see the note on imports above

    address = NatsAddress.parse(state["natsUrl"])
    env = {k: v for k, v in inherited.items() if not k.startswith(HOST_SETTINGS)}
    env |= {
        "WASMCLOUD_HOST_SEED": str(state["seed"]),
        "WASMCLOUD_NATS_HOST": address.host,
        "WASMCLOUD_NATS_PORT": str(address.port),
        "WASMCLOUD_LATTICE": str(state["lattice"]),
        "WASMCLOUD_HEARTBEAT_INTERVAL": str(state["heartbeatSeconds"]),
    }
    if address.tls:
        env["WASMCLOUD_CTL_TLS"] = env["WASMCLOUD_RPC_TLS"] = "true"
    if credentials is not None:
        env["WASMCLOUD_NATS_JWT"] = credentials.jwt
        env["WASMCLOUD_NATS_SEED"] = credentials.seed
    if state.get("userIssuer"):
        # A secured lattice: the host's own user invokes nothing; its components' and
        # providers' calls go out as the link grants the lattice's controller signs.
        env["WASMCLOUD_LINK_GRANTS"] = "true"
    if ca_file is not None:
        env["WASMCLOUD_TLS_CA_PATH"] = str(ca_file)  # TLS towards NATS, this CA trusted
    env |= {f"WASMCLOUD_LABEL_{k}": str(v) for k, v in sorted(state["labels"].items())}
    otlp = state.get("otlpEndpoint")
    if isinstance(otlp, str) and otlp:
        # The lattice's collector: traces and metrics on, exported there (the host hands
        # the same to the providers it starts).
        env["WASMCLOUD_OBSERVABILITY_ENABLED"] = "true"
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp
    registry = state.get("registryUrl")
    if isinstance(registry, str) and registry.startswith("http://"):
        # The lattice's own registry speaks plain HTTP on loopback: the host may pull from
        # it without TLS, besides any registries the environment already allows.
        allowed = [r for r in env.get("WASMCLOUD_OCI_ALLOWED_INSECURE", "").split(",") if r]
        env["WASMCLOUD_OCI_ALLOWED_INSECURE"] = ",".join(
            [*allowed, registry.removeprefix("http://")]
        )
    return env


def given(value: Any) -> bool:
    """Whether an optional input holds something (a plain lattice's "" and {} do not)."""
    return value not in (None, "", {})


def own_user(state: dict[str, Any], issuer: UserIssuer) -> NatsCredentials:
    """The host's own NATS user: the one in state if ``issuer`` signed it, else a new one."""
    from host_agent.lattice.connection import (  # see the note on imports above
        CredentialsError,
        NatsCredentials,
    )

    kept = state.get("hostCredentials")
    if isinstance(kept, str) and kept:
        try:
            user = NatsCredentials.from_creds(kept, "hostCredentials")
            if issued_by(user, issuer):
                return user
        except (CredentialsError, JwtError):
            pass  # unreadable: the host gets a new user, which the lattice accepts
    return issuer.issue(Role.HOST, f"host-{state['name']}", str(state["lattice"]))


def credentials_of(settings: ProviderSettings) -> NatsCredentials | None:
    """The NATS user hosts connect as (the provider's ``wasmcloud:credentials``)."""
    from host_agent.lattice.connection import (  # see the note on imports above
        CredentialsError,
        NatsCredentials,
    )

    if not settings.credentials:
        return None
    try:
        return NatsCredentials.from_creds(settings.credentials, "wasmcloud:credentials")
    except CredentialsError as exc:
        raise RuntimeError(f"{exc}; nothing was changed") from None


def _is_known_string(value: Any) -> bool:
    return value is UNKNOWN or (isinstance(value, str) and value != "")


def _check_labels(labels: Any) -> list[InputError]:
    if labels is UNKNOWN:
        return []
    if not isinstance(labels, dict):
        return [InputError("labels", 'must be a map of strings, e.g. {"tier": "edge"}')]
    failures = []
    for key, value in labels.items():
        if not is_valid_label_key(key):
            reason = "not a valid label key; use letters, digits, '-', '_' or '.' (max 63)"
            failures.append(InputError(f"labels.{key}", reason))
        if not isinstance(value, str) and value is not UNKNOWN:
            failures.append(InputError(f"labels.{key}", 'must be a string; quote it, e.g. "1"'))
    return failures


class HostResource:
    secrets: frozenset[str] = frozenset(
        {
            "seed",
            "credentials",
            "userIssuer",
            "hostCredentials",
            "clientTls",
            "tlsIssuer",
            "hostTls",
        }
    )

    def __init__(
        self, settings: ProviderSettings | None = None, log: EngineLog | None = None
    ) -> None:
        from pulumi_wasmcloud.provider.machine_host import MachineHost  # it builds on this module

        self.settings = settings or ProviderSettings()
        # A Host with a machine runs there, over SSH: that handler serves it.
        self.machines = MachineHost(self.settings, log or EngineLog(None))

    async def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Checked:
        if on_machine(news):
            return await self.machines.check(olds, news)
        from host_agent.lattice.connection import (  # see the note on imports above
            AddressError,
            ClientTls,
            CredentialsError,
            NatsAddress,
            NatsCredentials,
            TlsConfigError,
        )

        def given(key: str, default: Any) -> Any:
            return default if news.get(key) is None else news[key]

        inputs = {
            "name": news.get("name"),
            "natsUrl": news.get("natsUrl"),
            "lattice": given("lattice", "default"),
            "labels": given("labels", {}),
            "stateDir": given("stateDir", ".state/lattice"),
            "target": given("target", "local"),
            "heartbeatSeconds": given("heartbeatSeconds", 30),
            "registryUrl": news.get("registryUrl"),  # the lattice's registry, if it runs one
            # A secured lattice's tooling user and user issuer (secret outputs of it),
            # and the CA its NATS server's certificate chains to.
            "credentials": news.get("credentials"),
            "userIssuer": news.get("userIssuer"),
            "caCert": news.get("caCert"),
            "clientTls": news.get("clientTls"),  # a lattice on machines' tooling pair
            "otlpEndpoint": news.get("otlpEndpoint"),  # the lattice's OTLP/HTTP collector
            "running": True,  # desired; read reports the truth, so a dead host is drift
        }
        failures = _check_labels(inputs["labels"])
        credentials = inputs["credentials"]
        if credentials not in (None, "", UNKNOWN):
            if not isinstance(credentials, str):
                failures.append(InputError("credentials", "must be the text of a .creds file"))
            else:
                try:
                    NatsCredentials.from_creds(credentials, "credentials")
                except CredentialsError as exc:
                    failures.append(InputError("credentials", str(exc)))
        if not has_unknowns(inputs["userIssuer"]):
            try:
                issuer_of(inputs)
            except JwtError as exc:
                failures.append(InputError("userIssuer", f"{exc}; pass lattice.user_issuer"))
        if inputs["target"] != "local":
            failures.append(
                InputError(
                    "target", f"unknown target {inputs['target']!r}; this version supports 'local'"
                )
            )
        url = inputs["natsUrl"]
        if url in (None, ""):
            failures.append(nats_url_required())
        elif url is not UNKNOWN:
            try:
                NatsAddress.parse(url)
            except AddressError as exc:
                failures.append(InputError("natsUrl", str(exc)))
        for field in ("name", "lattice", "stateDir"):
            if not _is_known_string(inputs[field]):
                failures.append(InputError(field, "must be a non-empty string"))
        ca = inputs["caCert"]
        if ca not in (None, "", UNKNOWN):
            try:
                ClientTls(ca)
            except (TlsConfigError, ValueError) as exc:
                failures.append(InputError("caCert", str(exc)))
        heartbeat = inputs["heartbeatSeconds"]
        if heartbeat is not UNKNOWN and (
            not isinstance(heartbeat, int) or isinstance(heartbeat, bool) or heartbeat < 1
        ):
            failures.append(
                InputError("heartbeatSeconds", "must be a whole number of seconds, at least 1")
            )
        from pulumi_wasmcloud.provider.lattice_resource import otlp_endpoint_problem

        if inputs["otlpEndpoint"] is not None and (
            problem := otlp_endpoint_problem(inputs["otlpEndpoint"])
        ):
            failures.append(InputError("otlpEndpoint", f"{problem}; pass lattice's otlp_endpoint"))
        return Checked(inputs, failures)

    async def diff(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> Diff:
        if on_machine(olds) or on_machine(news):
            return await self.machines.diff(id, olds, news)
        changed = changed_keys(olds, news, (*REPLACE_ON, *RESTART_ON, *RECORDED, "labels"))
        for key in (*SECURITY_INPUTS, "otlpEndpoint"):
            if key in changed and not (given(olds.get(key)) or given(news.get(key))):
                del changed[key]  # none before, none now (a plain lattice's "" or {})
        if not olds.get("running", True) or not _process(olds).running():
            changed["running"] = (False, True)
        return Diff(changed, [k for k in REPLACE_ON if k in changed])

    @contextlib.asynccontextmanager
    async def _lattice(self, state: dict[str, Any]) -> AsyncIterator[Lattice]:
        async with connect(
            str(state["natsUrl"]),
            str(state["lattice"]),
            lattice_credentials(state, self.settings),
            lattice_tls(state),
        ) as lattice:
            yield lattice

    async def create(self, inputs: dict[str, Any], preview: bool) -> Created:
        if on_machine(inputs):
            return await self.machines.create(inputs, preview)
        if preview:
            return Created(
                "", {**inputs, "hostId": UNKNOWN, "seed": UNKNOWN, "hostCredentials": UNKNOWN}
            )
        identity = HostIdentity.generate(inputs["name"])
        outputs = await self._start(
            {**inputs, "hostId": identity.public_key, "seed": identity.seed}
        )
        return Created(identity.public_key, outputs)

    async def _start(self, state: dict[str, Any]) -> dict[str, Any]:
        issuer = issuer_of(state)
        credentials: NatsCredentials | None
        if issuer is not None:
            credentials = own_user(state, issuer)
            state = {**state, "hostCredentials": credentials.creds()}
        else:
            credentials = credentials_of(self.settings)
            state = {k: v for k, v in state.items() if k != "hostCredentials"}
        # Connect first: an unreachable NATS or refused credentials fail here, naming
        # the fix, before any process starts.
        async with self._lattice(state) as lattice:
            process = _process(state)
            ca_file = None
            if state.get("caCert"):
                ca_file = _ca_file(state)
                write_private(ca_file, str(state["caCert"]))
            pid, started = process.start(
                host_command(state),
                env=host_environment(state, credentials, os.environ, ca_file),
                cwd=Path.cwd(),  # file:// images in manifests are relative to the project
            )
            if not started:
                # Not this resource's host (update starts only a stopped one): a leftover
                # with another identity would never answer as this one.
                raise InputError(
                    "name",
                    f"a host process named {state['name']} already runs from "
                    f"{process.pidfile} (pid {pid}) and is not this resource's: stop it "
                    "(kill it, or destroy the stack that made it) or choose another name "
                    "or stateDir; nothing was changed",
                )
            try:
                inventory = await self._await_join(lattice, process, state)
                await self._set_labels(lattice, state, inventory.get("labels") or {})
            except BaseException:
                # Leave nothing half made: a host left running here is in no state, and
                # would hold the name against the next `up`.
                await process.stop_async()
                raise
        return {**state, "running": True}

    async def _await_join(
        self, lattice: Lattice, process: ManagedProcess, state: dict[str, Any]
    ) -> dict[str, Any]:
        return await await_join(
            lattice,
            state,
            process.exited_early,
            lambda: f"{_last_words(process)}; see {process.logfile}",
        )

    async def _set_labels(
        self, lattice: Lattice, state: dict[str, Any], current: dict[str, str]
    ) -> None:
        wanted: dict[str, str] = state["labels"]
        for key, value in wanted.items():
            if current.get(key) != value:
                await lattice.ctl.put_label(state["hostId"], key, value)

    async def read(self, id: str, state: dict[str, Any]) -> dict[str, Any] | None:
        import nats.errors  # see the note on imports above

        from host_agent.lattice.client import CtlError

        if on_machine(state):
            return await self.machines.read(id, state)
        if not _process(state).running():
            return {**state, "running": False}
        try:
            async with self._lattice(state) as lattice:
                inventory = await lattice.ctl.get_inventory(id)
        except LatticeUnreachable as unreachable:  # CredentialsRefused too
            # Not drift: nothing could be checked. Reporting the host stopped would send a
            # drift check (and `up`) after a host that may run fine.
            raise RuntimeError(
                f"cannot tell whether host {state['name']} runs: {unreachable}"
            ) from None
        except (CtlError, nats.errors.Error, TimeoutError):
            return {**state, "running": False}  # the lattice answers, the host does not
        labels = inventory.get("labels") or {}
        # Only labels this resource manages are compared; hosts add their own (hostcore.*).
        managed = {k: labels[k] for k in state.get("labels", {}) if k in labels}
        return {**state, "labels": managed, "running": True}

    async def update(
        self, id: str, olds: dict[str, Any], news: dict[str, Any], preview: bool
    ) -> dict[str, Any]:
        if on_machine(news):
            return await self.machines.update(id, olds, news, preview)
        state = {**news, "hostId": id, "seed": olds["seed"]}
        if olds.get("hostCredentials"):
            state["hostCredentials"] = olds["hostCredentials"]
        if preview:
            return {**state, "running": True}
        process = _process(olds)
        if process.running() and any(olds.get(k) != news.get(k) for k in RESTART_ON):
            # Check the new address (and credentials) answer before the old host stops.
            async with self._lattice(state):
                pass
            await process.stop_async()
        if not process.running():
            return await self._start(state)
        async with self._lattice(state) as lattice:
            removed = set(olds.get("labels", {})) - set(news["labels"])
            for key in sorted(removed):
                await lattice.ctl.delete_label(id, key)
            await self._set_labels(lattice, state, dict(olds.get("labels", {})))
        return {**state, "running": True}

    async def delete(self, id: str, state: dict[str, Any]) -> None:
        """Stop the host, unless a deployed application would be left with instances no
        other host can run: then refuse, naming them, and leave the host running."""
        if on_machine(state):
            return await self.machines.delete(id, state)
        process = _process(state)
        if process.running():
            await refuse_stranding(self.settings, id, state)
        await process.stop_async()
        _ca_file(state).unlink(missing_ok=True)


async def await_join(
    lattice: Lattice,
    state: dict[str, Any],
    gave_up: Callable[[], bool],
    why: Callable[[], str],
) -> dict[str, Any]:
    """The inventory of the host ``state`` describes, once it answers on ``lattice``;
    raises naming the host when ``gave_up()`` (its process ended) or READY_TIMEOUT passed,
    ``why()`` saying where to look (``: <last log line>; see <log>``)."""
    import nats.errors  # see the note on imports above

    from host_agent.lattice.client import CtlError

    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            return await lattice.ctl.get_inventory(str(state["hostId"]))
        except (CtlError, nats.errors.Error, TimeoutError):
            if gave_up() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"host {state['name']} did not join lattice {state['lattice']} at "
                    f"{lattice.url}{why()}"
                ) from None
            await asyncio.sleep(0.2)  # no event tells of a host that has not joined


async def refuse_stranding(settings: ProviderSettings, id: str, state: dict[str, Any]) -> None:
    """Refuse to remove a host when a deployed application would be left with instances
    no other host can run, naming them; a lattice that cannot be reached strands nothing."""
    import nats.errors  # see the note on imports above

    stranded: list[str] = []
    try:
        async with connect(
            str(state["natsUrl"]),
            str(state["lattice"]),
            lattice_credentials(state, settings),
            lattice_tls(state),
        ) as lattice:
            stranded = await lattice.stranded_by(id)
    except CredentialsRefused:
        raise  # the check cannot be skipped for want of credentials the user can give
    except (LatticeUnreachable, nats.errors.Error, TimeoutError):
        pass  # no lattice to strand anything on
    if stranded:
        raise RuntimeError(
            f"host {state['name']} cannot go: no other host could run "
            f"{', '.join(stranded)}. Add a host whose labels match those spreads, "
            "change the spreads (or set allowUnplaced), or remove the application "
            "first; the host keeps running"
        )


def _last_words(process: ManagedProcess) -> str:
    """``: <the last line of the log>`` of a host that exited, to say why in the error."""
    if process.running():
        return ""
    try:
        lines = process.logfile.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f": {lines[-1].strip()}" if lines else ""
