"""``wasmcloud:index:Host`` with a ``machine``: a host agent installed and run as a service
on that machine over SSH (``provision.agent``), joined to the lattice.

Every step is the same three: connect (the host-key rule of ``machine_inputs``), gather
the agent's facts on the machine, plan the changes still needed. ``diff`` plans and logs
each change's sentence (``host agent 0.1.0: install on edge-1``), so a preview says what
will happen on the machine; ``create``/``update`` apply the plan (progress per change,
``edge-1: N commands`` at the end; a converged machine runs none) and wait until the
provider sees the host's inventory at the lattice's ``natsUrl``; ``read`` reports drift
(the service not running: ``running``; the machine not as planned, e.g. its config
changed: ``converged``); ``delete`` refuses to strand an application, else removes the
host (and the agent install once no service of ours uses it). A create that fails after
changing the machine (a command failing, the host not joining: the end of its log is in
the error) removes what it installed, since no state holds it. A preview of a new host
in a lattice made by the same ``up`` plans with stand-ins for the values not known yet.

The host reaches NATS at ``hostNatsUrl`` (its nearest node: a leaf node at the edge),
in the lattice's JetStream domain (``jsDomain``). Its seed is made once at create and
kept secret in state, so upgrades and config changes keep its id. The environment comes
from ``host_resource.host_environment``, as for a local host, with nothing of the
provider's own environment.

In a secured lattice on machines (the lattice's ``userIssuer`` and ``tlsIssuer`` given)
the host is its own NATS user, minted from the issuer at create and kept secret
(``hostCredentials``), with its own client certificate from the lattice's CA
(``hostTls``; reissued by the ``up`` that finds it within 30 days of expiry, which
restarts the host). Its user reaches the host in its environment file and its TLS pair
and the CA in files beside it, all 0600, written over SSH's stdin; the provider talks to
the lattice as the tooling user (``credentials``) over mutual TLS (``clientTls``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from host_agent.host.identity import HostIdentity
from host_agent.security.jwt import JwtError, decode_claims
from host_agent.security.permissions import Role
from pulumi_wasmcloud.provider.engine_log import EngineLog, current_urn
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
from pulumi_wasmcloud.provider.host_resource import (
    _check_labels,
    await_join,
    credentials_of,
    host_environment,
    on_machine,
    refuse_stranding,
)
from pulumi_wasmcloud.provider.live import Lattice
from pulumi_wasmcloud.provider.live import connect as connect_lattice
from pulumi_wasmcloud.provider.machine_inputs import (
    MachineSpec,
    connect,
    describe,
    parse_host_keys,
    parse_machine,
    recorded_keys,
    secret_private_keys,
)
from pulumi_wasmcloud.provider.values import UNKNOWN, has_unknowns, to_property
from pulumi_wasmcloud.provision.changes import Change, apply
from pulumi_wasmcloud.provision.connector import (
    AuthenticationFailed,
    ConnectionLost,
    HostKeyRefused,
    SshConnection,
    Unreachable,
)
from pulumi_wasmcloud.provision.operations import Unsupported
from pulumi_wasmcloud.provision.secret_files import (
    CA_SUFFIX,
    CERT_SUFFIX,
    KEY_SUFFIX,
    agent_file,
)
from pulumi_wasmcloud.provision.service import log_path, unit_name

# NATS (with the connection's types), the lattice's authority and certificates
# (cryptography's x509), the agent's code and wheelhouse are imported where a host's
# secrets are made, its machine is surveyed or changed, or its lattice is read: a preview
# of a new stack (machine and lattice not known yet) does none of it, and every preview's
# plugin process would pay for them (tests/unit/test_provider_startup.py keeps it so).
if TYPE_CHECKING:
    from host_agent.security.authority import UserIssuer
    from host_agent.security.tls import CertificateAuthority
    from pulumi_wasmcloud.provision.wheelhouse import Wheelhouse

REPLACE_ON = ("lattice", "name")
# Applied in place: the host's config is rewritten and its service restarted (same id).
UPDATE_ON = (
    "natsUrl",
    "hostNatsUrl",
    "heartbeatSeconds",
    "registryUrl",
    "labels",
    "jsDomain",
    "machine",
    "userIssuer",
    "tlsIssuer",
    "otlpEndpoint",
)
# What the provider itself connects with: recorded, nothing changes on the machine.
RECORDED = ("credentials", "clientTls")
# The lattice's secret outputs a host on a machine takes, and its own secret outputs.
LATTICE_SECRETS = ("credentials", "userIssuer", "clientTls", "tlsIssuer")
OWN_SECRETS = ("seed", "hostCredentials", "hostTls")
# A machine with another name or address is another machine: the host moves (replace).
MACHINE_IDENTITY = ("name", "host")
# Failures before anything changed on the machine: nothing to undo.
NOTHING_CHANGED = (Unreachable, HostKeyRefused, AuthenticationFailed, Unsupported)
# A host's service is `host-<name>` (service.py's names: lowercase, digits, '-').
_HOST_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,57}")

T = TypeVar("T")


def known_machine_host(state: dict[str, Any] | None) -> KnownHost | None:
    """The host a machine Host's state describes (applications on its lattice wait for it
    to rejoin): running as the last read or apply saw it."""
    if not state or not all(
        isinstance(state.get(k), str) and state[k] for k in ("hostId", "name", "natsUrl", "lattice")
    ):
        return None
    running = state.get("running") is True
    return KnownHost(state["hostId"], state["name"], lambda: running)


def machine_environment(state: dict[str, Any], settings: ProviderSettings) -> dict[str, str]:
    """The host's ``WASMCLOUD_*`` variables: as a local host's (where NATS is as the host
    reaches it, credentials, seed, lattice, labels, the lattice's registry allowed over
    plain HTTP), plus the lattice's JetStream domain; nothing of the provider's own
    environment (it is another machine's). Secured: its own user, and where its TLS
    files are (the files themselves: ``machine_files``)."""
    from host_agent.lattice.connection import NatsCredentials  # see the note on imports above
    from pulumi_wasmcloud.provision.agent import host_service

    own = state.get("hostCredentials")
    credentials = (
        NatsCredentials.from_creds(own, "hostCredentials") if own else credentials_of(settings)
    )
    env = host_environment({**state, "natsUrl": state["hostNatsUrl"]}, credentials, {})
    if state.get("jsDomain"):
        env["WASMCLOUD_JS_DOMAIN"] = str(state["jsDomain"])
    if state.get("hostTls"):
        service = host_service(str(state["name"]))
        env |= {
            "WASMCLOUD_TLS_CA_PATH": agent_file(service, CA_SUFFIX),
            "WASMCLOUD_NATS_TLS_CERT": agent_file(service, CERT_SUFFIX),
            "WASMCLOUD_NATS_TLS_KEY": agent_file(service, KEY_SUFFIX),
        }
    if state.get("userIssuer"):
        # Its own user invokes nothing over wRPC; its components' and providers' calls
        # go out as the link grants the lattice's controller signs.
        env["WASMCLOUD_LINK_GRANTS"] = "true"
    return env


def machine_files(state: dict[str, Any]) -> dict[str, bytes]:
    """The host's secret files by suffix: the lattice's CA and its TLS pair."""
    tls = state.get("hostTls")
    if not tls:
        return {}
    return {
        CA_SUFFIX: str(tls["caPem"]).encode(),
        CERT_SUFFIX: str(tls["certPem"]).encode(),
        KEY_SUFFIX: str(tls["keyPem"]).encode(),
    }


def _issuer(state: dict[str, Any]) -> UserIssuer | None:
    from host_agent.security.authority import UserIssuer  # see the note on imports above

    given = state.get("userIssuer")
    if not given:
        return None
    try:
        return UserIssuer.from_state(given, "userIssuer")
    except JwtError as e:
        raise InputError("userIssuer", f"{e}; pass the lattice's (lattice.user_issuer)") from None


def _ca(state: dict[str, Any]) -> CertificateAuthority | None:
    from host_agent.security.tls import (  # see the note on imports above
        CertificateAuthority,
        TlsError,
    )

    given = state.get("tlsIssuer")
    if not given:
        return None
    try:
        return CertificateAuthority.from_state(given, "tlsIssuer")
    except TlsError as e:
        raise InputError("tlsIssuer", f"{e}; pass the lattice's (lattice.tls_issuer)") from None


def own_user(state: dict[str, Any], kept: object) -> str | None:
    """The host's own user (.creds text): ``kept`` while the lattice's issuer signed it,
    else a new one from the issuer; None in a lattice without one."""
    from host_agent.lattice.connection import (  # see the note on imports above
        CredentialsError,
        NatsCredentials,
    )
    from pulumi_wasmcloud.provision.security import role_in_domain

    issuer = _issuer(state)
    if issuer is None:
        return None
    if isinstance(kept, str) and kept:
        try:
            claims = decode_claims(NatsCredentials.from_creds(kept, "hostCredentials").jwt, "jwt")
            if claims.get("iss") == issuer.signing_key and (
                claims.get("nats", {}).get("issuer_account") == issuer.account_public_key
            ):
                return kept
        except (CredentialsError, JwtError):
            pass  # unreadable: a new user, which the lattice accepts
    domain = str(state["jsDomain"]) if state.get("jsDomain") else None
    permissions = role_in_domain(Role.HOST, str(state["lattice"]), domain)
    return issuer.issue_with(permissions, f"host-{state['name']}").creds()


def own_tls(state: dict[str, Any], kept: object) -> dict[str, str] | None:
    """The host's client certificate and the CA (``hostTls``): ``kept`` while the
    lattice's CA signed it and it is not within 30 days of expiry, else a new one."""
    from host_agent.security.tls import (  # see the note on imports above
        KeyPairPem,
        TlsError,
        check_pair,
        due_for_rotation,
    )
    from pulumi_wasmcloud.provision.security import CLIENT_CERT_DAYS, ROTATION_WINDOW

    ca = _ca(state)
    if ca is None:
        return None
    now = datetime.now(UTC)
    if isinstance(kept, dict) and kept.get("caPem") == ca.cert_pem:
        try:
            pair = KeyPairPem(str(kept["certPem"]), str(kept["keyPem"]))
            check_pair(pair, ca.cert_pem, "hostTls", now)
            if not due_for_rotation(pair.cert_pem, now, ROTATION_WINDOW):
                return dict(kept)
        except (TlsError, KeyError):
            pass  # a new pair below
    pair = ca.issue_client(f"host-{state['name']}", now=now, days=CLIENT_CERT_DAYS)
    return {"caPem": ca.cert_pem, "certPem": pair.cert_pem, "keyPem": pair.key_pem}


def with_own_secrets(state: dict[str, Any], kept: dict[str, Any]) -> dict[str, Any]:
    """``state`` with the host's own user and TLS pair: those ``kept`` (the old state)
    while still good, else new ones."""
    return {
        **state,
        "hostCredentials": own_user(state, kept.get("hostCredentials")),
        "hostTls": own_tls(state, kept.get("hostTls")),
    }


def secret_outputs(values: dict[str, Any]) -> dict[str, Any]:
    """Private keys, the lattice's secrets and the host's own: secret in state."""
    marked = secret_private_keys(values)
    for key in (*LATTICE_SECRETS, *OWN_SECRETS):
        if marked.get(key) not in (None, UNKNOWN):
            marked[key] = to_property(marked[key], secret=True)
    return marked


@contextlib.asynccontextmanager
async def lattice_for(state: dict[str, Any], settings: ProviderSettings) -> AsyncIterator[Lattice]:
    """The lattice at ``natsUrl`` as the provider talks to it: over mutual TLS as the
    tooling user when the lattice gave ``clientTls``, else as live.connect does."""
    tls = state.get("clientTls")
    if not tls:
        async with connect_lattice(
            str(state["natsUrl"]),
            str(state["lattice"]),
            state.get("credentials") or settings.credentials,
        ) as lattice:
            yield lattice
        return
    import nats  # see the note on imports above
    from nats.aio.client import RawCredentials

    from pulumi_wasmcloud.provider.machine_lattice import tls_context

    creds = state.get("credentials") or settings.credentials
    nc = await nats.connect(
        str(state["natsUrl"]),
        connect_timeout=3,
        max_reconnect_attempts=1,
        allow_reconnect=False,
        tls=tls_context(str(tls["caPem"]), str(tls["certPem"]), str(tls["keyPem"])),
        user_credentials=RawCredentials(creds) if creds else None,
    )
    try:
        yield Lattice(nc, str(state["lattice"]), str(state["natsUrl"]))
    finally:
        await nc.close()


@dataclass(frozen=True)
class Visit:
    """What one connection to the machine found and did."""

    host_keys: dict[str, str]
    plan: list[Change]
    running: bool
    commands: int


class MachineHost:
    secrets: frozenset[str] = frozenset(OWN_SECRETS)

    def __init__(self, settings: ProviderSettings, log: EngineLog) -> None:
        self.settings = settings
        self.log = log
        self._wheels: Wheelhouse | None = None
        self._wheelhouse_lock = asyncio.Lock()

    # --- check / diff ------------------------------------------------------------------

    async def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Checked:
        def given(key: str, default: Any) -> Any:
            return default if news.get(key) is None else news[key]

        inputs = {
            "name": news.get("name"),
            "natsUrl": news.get("natsUrl"),
            "hostNatsUrl": given("hostNatsUrl", news.get("natsUrl")),
            "lattice": given("lattice", "default"),
            "labels": given("labels", {}),
            "heartbeatSeconds": given("heartbeatSeconds", 30),
            "registryUrl": news.get("registryUrl"),
            "jsDomain": given("jsDomain", ""),
            "machine": news.get("machine"),
            # The lattice's OTLP/HTTP collector, as the machine reaches it ("": none).
            "otlpEndpoint": given("otlpEndpoint", ""),
            # A secured lattice's (secret outputs of it); None: a lattice without them.
            **{key: news.get(key) for key in LATTICE_SECRETS},
            # Desired; read reports the truth, so a stopped or changed host is drift.
            "running": True,
            "converged": True,
        }
        failures = _check_labels(inputs["labels"])
        name = inputs["name"]
        if name is not UNKNOWN and not (isinstance(name, str) and _HOST_NAME.fullmatch(name)):
            failures.append(
                InputError(
                    "name",
                    "a host on a machine is named with lowercase letters, digits and '-' "
                    f"(at most 58; its service is host-<name>), got {describe(name)}",
                )
            )
        for key in ("natsUrl", "hostNatsUrl"):
            url = inputs[key]
            if url in (None, ""):
                if key == "natsUrl":
                    failures.append(nats_url_required())
            elif url is not UNKNOWN:
                from host_agent.lattice.connection import AddressError, NatsAddress  # (note above)

                try:
                    NatsAddress.parse(url)
                except AddressError as exc:
                    failures.append(InputError(key, str(exc)))
        if not (inputs["lattice"] is UNKNOWN or isinstance(inputs["lattice"], str)) or (
            inputs["lattice"] == ""
        ):
            failures.append(InputError("lattice", "must be a non-empty string"))
        heartbeat = inputs["heartbeatSeconds"]
        if heartbeat is not UNKNOWN and (
            not isinstance(heartbeat, int) or isinstance(heartbeat, bool) or heartbeat < 1
        ):
            failures.append(
                InputError("heartbeatSeconds", "must be a whole number of seconds, at least 1")
            )
        for key in ("jsDomain", "registryUrl"):
            value = inputs[key]
            if value not in (None, UNKNOWN) and not isinstance(value, str):
                failures.append(InputError(key, f"expected a string, got {describe(value)}"))
        parsed = parse_machine(inputs["machine"], "machine")
        if isinstance(parsed, list):
            failures += parsed
        from pulumi_wasmcloud.provider.lattice_resource import (
            otlp_endpoint_problem,
        )  # as host_resource

        if problem := otlp_endpoint_problem(inputs["otlpEndpoint"]):
            failures.append(InputError("otlpEndpoint", f"{problem}; pass lattice's otlp_endpoint"))
        for key in ("userIssuer", "tlsIssuer"):
            if not has_unknowns(inputs[key]):
                try:
                    (_issuer if key == "userIssuer" else _ca)(inputs)
                except InputError as failure:
                    failures.append(failure)
        return Checked(secret_outputs(inputs), failures)

    async def diff(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> Diff:
        if not on_machine(olds) or not on_machine(news):
            # From this machine to another target or back: a new host, the old one goes.
            return Diff({"machine": (olds.get("machine"), news.get("machine"))}, ["machine"])
        changed = changed_keys(olds, news, (*REPLACE_ON, *UPDATE_ON, *RECORDED))
        if "otlpEndpoint" in changed and not any(changed["otlpEndpoint"]):
            del changed["otlpEndpoint"]  # none now, none before (a state from before it)
        replaces = [k for k in REPLACE_ON if k in changed]
        old_machine, new_machine = olds["machine"], news["machine"]
        if (
            isinstance(old_machine, dict)
            and isinstance(new_machine, dict)
            and any(old_machine.get(k) != new_machine.get(k) for k in MACHINE_IDENTITY)
        ):
            replaces.append("machine")
        if replaces or has_unknowns(news):
            return Diff(changed, replaces)
        # What the machine needs for the host these inputs describe (same id and seed,
        # its user and TLS pair while still good).
        state = with_own_secrets({**news, "hostId": id, "seed": olds["seed"]}, olds)
        visit = await self._visit(_spec(news), state, _host_keys(olds), apply_plan=False)
        for change in visit.plan:
            await self.log.note(change.description)
        if not visit.running:
            changed["running"] = (False, True)
        elif visit.plan and not changed:
            # Nothing the program says changed, yet the machine differs (its config
            # edited there, a new agent to install): drift that the update repairs.
            changed["converged"] = (False, True)
        return Diff(changed, [])

    # --- create / update -----------------------------------------------------------------

    async def create(self, inputs: dict[str, Any], preview: bool) -> Created:
        if preview:
            planned = _as_far_as_known(inputs)
            if planned is not None:
                # What the machine needs for a new host (whose seed is made at create).
                identity = HostIdentity.generate(str(inputs["name"]))
                state = {**planned, "hostId": identity.public_key, "seed": identity.seed}
                visit = await self._visit(
                    _spec(state), with_own_secrets(state, {}), {}, apply_plan=False
                )
                for change in visit.plan:
                    await self.log.note(change.description)
            unknown = dict.fromkeys(("hostId", "hostKeys", *OWN_SECRETS), UNKNOWN)
            return Created("", secret_outputs({**inputs, **unknown}))
        identity = HostIdentity.generate(str(inputs["name"]))
        state = {**inputs, "hostId": identity.public_key, "seed": identity.seed}
        outputs = await self._provision(with_own_secrets(state, {}), {}, new=True)
        return Created(identity.public_key, secret_outputs(outputs))

    async def update(
        self, id: str, olds: dict[str, Any], news: dict[str, Any], preview: bool
    ) -> dict[str, Any]:
        state = {**news, "hostId": id, "seed": olds["seed"]}
        if preview:
            kept = {key: olds.get(key) for key in ("hostCredentials", "hostTls")}
            return secret_outputs({**state, **kept, "hostKeys": _host_keys(olds)})
        state = with_own_secrets(state, olds)
        return secret_outputs(await self._provision(state, _host_keys(olds), new=False))

    async def _provision(
        self, state: dict[str, Any], host_keys: dict[str, str], new: bool
    ) -> dict[str, Any]:
        spec = _spec(state)
        # The lattice must answer first: an unreachable NATS or refused credentials fail
        # here, naming the fix, before anything changes on the machine.
        async with lattice_for(state, self.settings) as lattice:
            try:
                visit = await self._visit(spec, state, host_keys, apply_plan=True)
                await self.log.note(f"{spec.name}: {visit.commands} commands")
                try:
                    await await_join(lattice, state, lambda: False, lambda: "")
                except RuntimeError as failed:
                    tail = await asyncio.to_thread(self._log_tail, spec, visit.host_keys, state)
                    raise RuntimeError(f"{failed}; on {spec.name}: {tail}") from None
            except NOTHING_CHANGED:
                raise
            except Exception:
                if new:
                    # Leave nothing half made: a host that is in no state would hold its
                    # name and files on the machine, and nothing would remove them.
                    await self._undo(spec, host_keys, str(state["name"]))
                raise
        return {**state, "hostKeys": visit.host_keys, "running": True, "converged": True}

    async def _undo(self, spec: MachineSpec, host_keys: dict[str, str], name: str) -> None:
        try:
            await self._remove(spec, host_keys, name)
        except Exception as failed:  # the failure that made us undo is the one to report
            await self.log.warn(
                f"{spec.name}: what this create installed for host {name} could not be "
                f"removed ({failed}); the next `up` takes it over or `destroy` removes it"
            )

    # --- read / delete -------------------------------------------------------------------

    async def read(self, id: str, state: dict[str, Any]) -> dict[str, Any] | None:
        spec = _spec(state)
        try:
            visit = await self._visit(spec, state, _host_keys(state), apply_plan=False)
        except (Unreachable, ConnectionLost) as lost:
            # Not drift: nothing could be checked. Reporting the host stopped would send a
            # drift check (and `up`) after a host that may run fine behind a broken network.
            raise RuntimeError(
                f"cannot tell whether host {state['name']} runs on {spec.name}: {lost}; "
                "nothing was changed. Reading it needs SSH to the machine: check the "
                "machine is up and reachable from here, then run the command again"
            ) from None
        return secret_outputs({**state, "running": visit.running, "converged": not visit.plan})

    async def delete(self, id: str, state: dict[str, Any]) -> None:
        await refuse_stranding(self.settings, id, state)
        spec = _spec(state)
        host_keys = _host_keys(state)
        try:
            await self._remove(spec, host_keys, str(state["name"]))
        except Unreachable as unreachable:
            # The way out when the machine is gone for good, said where it is needed.
            raise Unreachable(
                f"{unreachable} If {spec.name} is gone for good, forget this host without "
                f"cleaning it: `pulumi state delete '{current_urn.get()}'`"
            ) from None

    async def _remove(self, spec: MachineSpec, host_keys: dict[str, str], name: str) -> None:
        from pulumi_wasmcloud.provision.agent import (  # see the note on imports above
            gather_agent_facts,
            host_service,
            plan_remove_host_agent,
        )

        report = self._progress_of_changes()

        def remove(connection: SshConnection) -> int:
            facts = gather_agent_facts(connection, [host_service(name)])
            plan = plan_remove_host_agent(spec.name, facts, name)
            return apply(connection, plan, report)

        ran = await self._on_machine(spec, host_keys, remove)
        await self.log.note(f"{spec.name}: {ran} commands")

    # --- the machine -----------------------------------------------------------------------

    async def _visit(
        self,
        spec: MachineSpec,
        state: dict[str, Any],
        host_keys: dict[str, str],
        apply_plan: bool,
    ) -> Visit:
        """Connect, gather the agent's facts, plan the host ``state`` describes; with
        ``apply_plan``, apply it. Blocking SSH work runs in a thread."""
        from pulumi_wasmcloud.provision.agent import (  # see the note on imports above
            HostAgentConfig,
            gather_agent_facts,
            host_service,
            plan_host_agent,
        )

        name = str(state["name"])
        config = HostAgentConfig(
            name, machine_environment(state, self.settings), machine_files(state)
        )
        wheelhouse = await self._wheelhouse()
        report = self._progress_of_changes() if apply_plan else None

        def work(connection: SshConnection) -> Visit:
            keys = recorded_keys(spec, connection, host_keys)
            facts = gather_agent_facts(connection, [host_service(name)])
            plan = plan_host_agent(spec.name, facts, wheelhouse, config)
            running = facts.services[host_service(name)].running
            ran = apply(connection, plan, report) if apply_plan else 0
            return Visit(keys, plan, running or apply_plan, ran)

        return await self._on_machine(spec, host_keys, work)

    async def _wheelhouse(self) -> Wheelhouse:
        """The host agent this provider ships: built (or taken from the cache) at first
        use, then the same for the provider's life, so every resource of one run plans
        with the same wheels even if the source tree changes meanwhile."""
        from pulumi_wasmcloud.provision.agent import (
            host_wheelhouse,  # see the note on imports above
        )

        async with self._wheelhouse_lock:
            if self._wheels is None:
                self._wheels = await asyncio.to_thread(host_wheelhouse, self._progress())
            return self._wheels

    async def _on_machine(
        self,
        spec: MachineSpec,
        host_keys: dict[str, str],
        work: Callable[[SshConnection], T],
    ) -> T:
        def run() -> T:
            with connect(spec, host_keys) as connection:
                return work(connection)

        return await asyncio.to_thread(run)

    def _progress(self) -> Callable[[str], None]:
        """A callback for threads: each message to the engine log, under this resource."""
        loop = asyncio.get_running_loop()
        urn = current_urn.get()

        def say(message: str) -> None:
            asyncio.run_coroutine_threadsafe(self.log.info(message, urn), loop)

        return say

    def _progress_of_changes(self) -> Callable[[Change], None]:
        say = self._progress()
        return lambda change: say(change.description)

    def _log_tail(self, spec: MachineSpec, host_keys: dict[str, str], state: dict[str, Any]) -> str:
        """The end of the host's log on the machine, for the error of a host that did
        not join (the supervisor's log file, or systemd's journal)."""
        from pulumi_wasmcloud.provision.agent import host_service  # see the note on imports above

        service = host_service(str(state["name"]))
        command = (
            f"tail -n 15 {log_path(service)} 2>/dev/null || "
            f"journalctl -u {unit_name(service)} -n 15 --no-pager 2>/dev/null"
        )
        try:
            with connect(spec, host_keys) as connection:
                said = connection.run(command, timeout=30).stdout.strip()
        except Exception as failed:  # the error being reported matters more than this one
            return f"(its log could not be read: {failed})"
        return f"the end of its log:\n{said}" if said else "its log is empty"


def _as_far_as_known(inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The inputs with stand-ins for values not known yet (a lattice made in the same
    `up`), enough to plan a new host's changes for preview: their sentences do not depend
    on those values. None while the machine itself is not known."""
    if not isinstance(parse_machine(inputs.get("machine"), "machine"), MachineSpec):
        return None
    stand_ins: dict[str, Any] = {
        "natsUrl": "nats://127.0.0.1:4222",
        "lattice": "default",
        "heartbeatSeconds": 30,
        "registryUrl": "",
        "jsDomain": "",
        "labels": {},
    }
    known = {k: stand_ins.get(k, "") if v is UNKNOWN else v for k, v in inputs.items()}
    for key in LATTICE_SECRETS:
        if has_unknowns(inputs.get(key)):
            # A lattice made by the same `up`: a stand-in of the same shape, so the plan
            # says the host's user and TLS files will be written.
            known[key] = _stand_in(key)
    if known.get("hostNatsUrl") in (None, "", UNKNOWN) or inputs.get("hostNatsUrl") is UNKNOWN:
        known["hostNatsUrl"] = known["natsUrl"]
    if isinstance(known["labels"], dict):
        known["labels"] = {k: "" if v is UNKNOWN else v for k, v in known["labels"].items()}
    return known


def _spec(state: dict[str, Any]) -> MachineSpec:
    parsed = parse_machine(state.get("machine"), "machine")
    if isinstance(parsed, list):
        # check refused these already; a state from elsewhere (an import) may hold them.
        raise RuntimeError("; ".join(str(f) for f in parsed) or "machine: not known yet")
    return parsed


def _host_keys(state: dict[str, Any]) -> dict[str, str]:
    keys = parse_host_keys(state.get("hostKeys"))
    if isinstance(keys, list):
        raise RuntimeError("; ".join(str(f) for f in keys))
    return keys


def _stand_in(key: str) -> Any:
    """A throwaway value of a lattice secret's shape, for a preview's plan."""
    from pulumi_wasmcloud.provision.security import LatticeSecurity

    security = LatticeSecurity.create("preview", None, datetime.now(UTC))
    return {
        "credentials": security.tooling.creds(),
        "userIssuer": security.user_issuer().to_state(),
        "clientTls": security.client_tls_state(),
        "tlsIssuer": security.ca.to_state(),
    }[key]
