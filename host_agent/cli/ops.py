"""``wasmcloud inventory | apps | logs | placement``: day-2 views of a running lattice.

Each reads the lattice through NATS as its tooling user: the control interface (hosts,
inventories), the wadm API (applications) and the hosts' log subject. Where to connect:

- ``--nats-url`` (env ``WASMCLOUD_NATS_URL``; default ``nats://127.0.0.1:4222``, the
  local default's);
- ``--creds`` / ``--tls-ca`` / ``--tls-cert`` + ``--tls-key``, or the variables
  ``wasmcloud env`` prints (``WASH_CTL_CREDS`` or ``NATS_CREDS``, ``WASH_CTL_TLS_CA_FILE``
  or ``NATS_CA``) and the host's ``WASMCLOUD_NATS_TLS_CERT``/``_KEY``;
- none of those given: the local lattice's own files, ``nats.creds`` and ``ca.pem`` in
  its state folder (``--state-dir``, else ``$WASMCLOUD_STATE_DIR``, else ``.state/local``),
  as ``wasmcloud env`` finds them; none there either: no user, no TLS (a plain lattice).

Exit codes: 0 done (``logs``: stopped by Ctrl-C); 1 what was asked for is not there or
not valid (no such host or application, an invalid manifest); 2 bad options (argparse's,
an unreadable creds or CA file); 3 the lattice could not be read (NATS unreachable, the
user or certificate refused, no controller answering).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from rich.console import Console, RenderableType

from host_agent.cli.env import finite_float
from host_agent.lattice.client import CtlClient, HostReading
from host_agent.lattice.connection import (
    AddressError,
    ClientTls,
    ConnectionRefused,
    CredentialsError,
    NatsAddress,
    NatsCredentials,
    TlsConfigError,
    connect_nats,
    settle,
)
from host_agent.lattice.host_logs import parse_host_log_record
from host_agent.lattice.strict import BadRequest
from host_agent.lattice.subjects import DEFAULT_LATTICE, host_log_subject, wadm_api_subject
from host_agent.lattice.wadm import WadmClient, WadmError
from host_agent.local.credentials import STATE_DIR_VARIABLE, find_local_credentials, state_dir
from host_agent.model import ManifestError, load_manifest
from host_agent.ops.apps import apps_document, render_apps, render_status, status_document
from host_agent.ops.inventory import display_names, inventory_document, render_inventory
from host_agent.ops.logs import format_log_record
from host_agent.ops.placement import placement_document, plan_live, render_live_plan
from host_agent.ops.tables import to_text
from host_agent.placement.lattice_view import HostSnapshot, LatticeSnapshot

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

COMMANDS = ("inventory", "apps", "logs", "placement")
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
NATS_URL_ENV = "WASMCLOUD_NATS_URL"
CREDS_ENV = ("WASH_CTL_CREDS", "NATS_CREDS")  # what `wasmcloud env` exports
CA_ENV = ("WASH_CTL_TLS_CA_FILE", "NATS_CA")
CERT_ENV, KEY_ENV = "WASMCLOUD_NATS_TLS_CERT", "WASMCLOUD_NATS_TLS_KEY"
START_HINT = (
    "start the local lattice with `make up` (or `wasmcloud up`), or point at yours with "
    "--nats-url (and --creds, --tls-ca)"
)

EXIT_CODES = (
    "exit codes: 0 done; 1 not found or not valid (no such host or application, an invalid "
    "manifest); 2 bad options; 3 the lattice could not be read (NATS unreachable, the user "
    "or certificate refused, no controller answering)"
)


class LatticeUnreadable(RuntimeError):
    """Exit 3: the message says what failed and what to do."""


class NotFound(LookupError):
    """Exit 1: the message names what is missing and what exists."""


def _first(env: Mapping[str, str], names: Sequence[str]) -> str | None:
    return next((env[n] for n in names if env.get(n)), None)


def add_commands(commands: Any, env: Mapping[str, str]) -> None:
    """Register the subcommands on ``wasmcloud``'s subparsers."""
    inventory = commands.add_parser(
        "inventory",
        help="hosts, their labels, and what runs on each (like `wash get inventory`)",
        description="Ping every host of the lattice and ask each for its inventory "
        "(host.get on the control interface): a table of hosts (id, friendly name, labels, "
        "version, uptime) and a table of what runs on each (components with their instance "
        "counts, providers, the application that placed them).",
        epilog=EXIT_CODES,
    )
    _json_option(inventory, "print the hosts as JSON (shape: docs/operations.md)")
    _wait_option(inventory)
    _connection_options(inventory, env)

    apps = commands.add_parser(
        "apps",
        help="applications and their status (like `wash app list` / `wash app status`)",
        description="Without NAME: every application the controller stores, with its "
        "deployed and latest version and status (the wadm API's model.get). With NAME: that "
        "application's status and each scaler's (model.status), e.g. why it is not "
        "deployed yet.",
        epilog=EXIT_CODES,
    )
    apps.add_argument("name", nargs="?", help="an application's name, e.g. counter")
    _json_option(apps, "print the list or the status as JSON (shape: docs/operations.md)")
    _connection_options(apps, env)

    logs = commands.add_parser(
        "logs",
        help="follow a host's log lines as it writes them",
        description="Follow the log records HOST publishes on wasmbus.log.<lattice>.<host "
        "id> from now on (what its log file gets; secrets redacted by the host), until "
        "Ctrl-C. HOST is a host id or a friendly name (`wasmcloud inventory` lists both). "
        "Only records written while following are shown; a gap the host could not publish "
        "(its queue full, NATS away) is shown as a note.",
        epilog=EXIT_CODES,
    )
    logs.add_argument("host", help="host id (N...) or friendly name, e.g. local-core")
    _json_option(logs, "print each record as the host sent it (one JSON object per line)")
    _wait_option(logs)
    _connection_options(logs, env)

    placement = commands.add_parser(
        "placement",
        help="where a manifest's instances would go on the live lattice (what preview shows)",
        description="Plan the manifest on the lattice's hosts as they are now (their labels "
        "and what they run, from host.get), with the planner `pulumi preview`, `wasmcloud "
        "plan` and the controller share: one row per component and host, CHANGE against "
        "what runs now. Changes nothing.",
        epilog=EXIT_CODES,
    )
    placement.add_argument(
        "manifest", help="path to a wadm manifest, e.g. examples/counter/wadm.yaml"
    )
    _json_option(placement, "print the plan as JSON (shape: docs/operations.md)")
    _wait_option(placement)
    _connection_options(placement, env)


def _json_option(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--json", action="store_true", help=text)


def _wait_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        type=finite_float,
        default=1.0,
        metavar="SECONDS",
        help="how long to gather host.ping replies (default 1; more for a large lattice)",
    )


def _connection_options(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    group = parser.add_argument_group(
        "connecting",
        "Without --creds/--tls-ca/--tls-cert (and their variables), the local lattice's "
        "nats.creds and ca.pem in --state-dir are used, as `wasmcloud env` finds them.",
    )
    group.add_argument(
        "--nats-url",
        default=env.get(NATS_URL_ENV) or DEFAULT_NATS_URL,
        help=f"the lattice's NATS (env {NATS_URL_ENV}; default {DEFAULT_NATS_URL})",
    )
    group.add_argument(
        "--creds",
        metavar="FILE",
        help="the NATS user's .creds file (env WASH_CTL_CREDS or NATS_CREDS)",
    )
    group.add_argument(
        "--tls-ca",
        metavar="FILE",
        help="the CA certificate NATS's certificate chains to (env WASH_CTL_TLS_CA_FILE "
        "or NATS_CA)",
    )
    group.add_argument(
        "--tls-cert",
        metavar="FILE",
        help=f"client certificate for mutual TLS, a machine lattice's (env {CERT_ENV})",
    )
    group.add_argument(
        "--tls-key", metavar="FILE", help=f"the client certificate's key (env {KEY_ENV})"
    )
    group.add_argument(
        "-x",
        "--lattice",
        default=env.get("WASMCLOUD_LATTICE") or DEFAULT_LATTICE,
        help=f"lattice name (env WASMCLOUD_LATTICE; default {DEFAULT_LATTICE!r})",
    )
    group.add_argument(
        "--state-dir",
        help=f"the local lattice's state folder (default ${STATE_DIR_VARIABLE} or .state/local)",
    )


@dataclass(frozen=True)
class Connection:
    """Where and as whom the command connects (resolved from options and environment)."""

    address: NatsAddress
    credentials: NatsCredentials | None
    tls: ClientTls | None
    lattice: str
    source: str  # where the user came from, for error messages

    @classmethod
    def from_options(cls, args: argparse.Namespace, env: Mapping[str, str]) -> Connection:
        """Raises ``AddressError``, ``CredentialsError`` or ``TlsConfigError`` naming the
        option to fix."""
        creds_file = args.creds or _first(env, CREDS_ENV)
        ca_file = args.tls_ca or _first(env, CA_ENV)
        cert = args.tls_cert or env.get(CERT_ENV) or None
        key = args.tls_key or env.get(KEY_ENV) or None
        source = "--creds / --tls-ca"
        if not (creds_file or ca_file or cert or key):
            folder = state_dir(args.state_dir, env)
            local = find_local_credentials(folder)
            source = f"the local lattice's files in {folder}"
            if local is not None:
                creds_file = str(local.creds_file)
                ca_file = str(local.ca_file) if local.ca_file is not None else None
            else:
                source = f"no user (no nats.creds in {folder})"
        credentials = None
        if creds_file:
            try:
                text = Path(creds_file).read_text()
            except OSError as exc:
                raise CredentialsError(
                    f"cannot read the NATS creds file {creds_file}: {exc.strerror}; give "
                    "--creds the tooling user's .creds (`wasmcloud env` shows the local one)"
                ) from None
            credentials = NatsCredentials.from_creds(text, f"NATS creds file {creds_file}")
        tls = None
        if ca_file or cert or key:
            if not ca_file:
                raise TlsConfigError(
                    "a TLS client certificate needs the CA that signed NATS's certificate "
                    "too: give --tls-ca"
                )
            tls = ClientTls.from_files([ca_file], cert, key)
        return cls(NatsAddress.parse(args.nats_url), credentials, tls, args.lattice, source)

    async def connect(
        self, follow: bool = False, on_error: Callable[[Exception], bool] | None = None
    ) -> NatsClient:
        """One attempt (a follower: reconnecting for as long as it runs); raises
        ``LatticeUnreadable`` saying what to do. ``on_error`` sees the connection's
        errors first (True: handled)."""
        last: list[BaseException] = []
        connected = False

        async def errors(error: Exception) -> None:
            last.append(error)
            if on_error is not None and on_error(error):
                return
            if connected and follow:
                print(f"wasmcloud: NATS: {error}", file=sys.stderr)

        async def disconnected() -> None:
            print("wasmcloud: disconnected from NATS; reconnecting", file=sys.stderr)

        async def reconnected() -> None:
            print("wasmcloud: reconnected to NATS", file=sys.stderr)

        options: dict[str, Any] = {
            "name": "wasmcloud-cli",
            "connect_timeout": 3,
            "error_cb": errors,
            "allow_reconnect": follow,
            "max_reconnect_attempts": -1 if follow else 1,
            "reconnect_time_wait": 1.0 if follow else 0.1,
        }
        if follow:
            options |= {"disconnected_cb": disconnected, "reconnected_cb": reconnected}
        try:
            nc = await connect_nats(
                self.address,
                self.credentials,
                who="wasmcloud CLI",
                fix=f"connected as {self.source}; give --creds the .creds of a user of this "
                "lattice's account (`wasmcloud env` shows the local one)",
                tls=self.tls,
                tls_fix="give --tls-ca the lattice's CA (and --tls-cert/--tls-key where NATS "
                "asks for a client certificate)",
                **options,
            )
        except ConnectionRefused as exc:
            raise LatticeUnreadable(str(exc)) from None
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            reason = last[-1] if last else exc
            raise LatticeUnreadable(
                f"cannot reach NATS at {self.address} ({_reason(reason)}): no lattice there? "
                + START_HINT
            ) from None
        connected = True
        return nc


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.removeprefix("nats: ")


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run one of ``COMMANDS``; returns the exit code (module docstring)."""
    # asyncio warns when a TLS connection closes ("returning true from eof_received() has
    # no effect when using ssl"): noise about its internals on every command's stderr.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    try:
        connection = Connection.from_options(args, env)
    except (AddressError, CredentialsError, TlsConfigError) as exc:
        return _fail(exc, EXIT_USAGE)
    handlers: dict[str, Callable[[argparse.Namespace, Connection], Coroutine[Any, Any, int]]] = {
        "inventory": cmd_inventory,
        "apps": cmd_apps,
        "logs": cmd_logs,
        "placement": cmd_placement,
    }
    try:
        return asyncio.run(handlers[args.command](args, connection))
    except LatticeUnreadable as exc:
        return _fail(exc, EXIT_UNREACHABLE)
    except NotFound as exc:
        return _fail(exc.args[0], EXIT_NOT_FOUND)
    except KeyboardInterrupt:
        return EXIT_OK


def _fail(message: object, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _print(renderable: RenderableType) -> None:
    # On a terminal rich fits its width; in a pipe or a file every row stays one line,
    # without the padding rich adds to fill it.
    if sys.stdout.isatty():
        Console(highlight=False).print(renderable)
    else:
        print(to_text(renderable))


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2))


async def _read_hosts(connection: Connection, nc: NatsClient, wait: float) -> list[HostReading]:
    try:
        return await CtlClient(nc, connection.lattice).read_hosts(wait=wait)
    except (nats.errors.Error, TimeoutError) as exc:
        raise LatticeUnreadable(
            f"reading the hosts of lattice {connection.lattice!r} failed ({_reason(exc)})"
        ) from None


async def cmd_inventory(args: argparse.Namespace, connection: Connection) -> int:
    nc = await connection.connect()
    try:
        readings = await _read_hosts(connection, nc, args.wait)
    finally:
        await nc.close()
    document = inventory_document(connection.lattice, readings)
    if args.json:
        _print_json(document)
    else:
        _print(render_inventory(document))
    return EXIT_OK


async def cmd_apps(args: argparse.Namespace, connection: Connection) -> int:
    nc = await connection.connect()
    wadm = WadmClient(nc, connection.lattice)
    try:
        if args.name:
            reply = await wadm.status(args.name)
            if reply.result == "notfound" or reply.status is None:
                raise NotFound(
                    f"no application named {args.name!r} in lattice {connection.lattice!r}; "
                    "`wasmcloud apps` lists them"
                )
            document = status_document(connection.lattice, args.name, reply.status)
            shown = render_status(document)
        else:
            listed = await wadm.list()
            document = apps_document(connection.lattice, listed)
            shown = render_apps(document)
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError):
        raise LatticeUnreadable(
            f"no controller answered on {wadm_api_subject(connection.lattice, 'get')}: is "
            f"wasmcloud-controller (or wadm) running for lattice {connection.lattice!r}? "
            + START_HINT
        ) from None
    except WadmError as exc:
        raise LatticeUnreadable(f"the controller answered with an error: {exc}") from None
    finally:
        await nc.close()
    if args.json:
        _print_json(document)
    else:
        _print(shown)
    return EXIT_OK


async def cmd_placement(args: argparse.Namespace, connection: Connection) -> int:
    try:
        manifest = load_manifest(args.manifest).manifest
    except ManifestError as exc:
        raise NotFound(
            "\n".join(f"{args.manifest}: {issue}" for issue in exc.issues)
            + "\n(`wasmcloud validate` explains each)"
        ) from None
    nc = await connection.connect()
    try:
        readings = await _read_hosts(connection, nc, args.wait)
    finally:
        await nc.close()
    snapshot = live_snapshot(readings)
    live = plan_live(manifest, snapshot)
    if args.json:
        _print_json(placement_document(connection.lattice, live))
        return EXIT_OK
    if not snapshot.hosts:
        print(
            f"warning: no hosts answered in lattice {connection.lattice!r}: nothing can be placed",
            file=sys.stderr,
        )
    print(render_live_plan(live))
    return EXIT_OK


def live_snapshot(readings: Sequence[HostReading]) -> LatticeSnapshot:
    """The hosts as the Pulumi provider's preview reads them (``live.Lattice._read_view``):
    a host whose inventory is missing or malformed is not planned on (and said so)."""
    hosts: dict[str, HostSnapshot] = {}
    for reading in readings:
        if reading.inventory is None:
            print(f"warning: host {reading.host_id} left out: {reading.error}", file=sys.stderr)
            continue
        name = str(reading.ping.get("friendly_name") or "")
        try:
            snapshot = HostSnapshot.from_inventory(reading.inventory, name)
        except BadRequest as exc:
            print(f"warning: host {reading.host_id} left out: {exc}", file=sys.stderr)
            continue
        hosts[snapshot.id] = snapshot
    return LatticeSnapshot(hosts)


def resolve_host(wanted: str, hosts: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(host id, display name) of the host ``wanted`` names, by id or friendly name;
    ``NotFound`` lists the hosts there are."""
    for host in hosts:
        if host["id"] == wanted:
            return host["id"], host["friendly_name"] or host["id"]
    named = [h for h in hosts if h["friendly_name"] == wanted]
    if len(named) == 1:
        return named[0]["id"], wanted
    names = display_names(hosts)
    known = ", ".join(f"{names[h['id']]} ({h['id']})" for h in hosts) or "none answered"
    if named:
        raise NotFound(
            f"{len(named)} hosts are named {wanted!r}; give the host id instead: {known}"
        )
    raise NotFound(f"no host {wanted!r} answered in this lattice; the hosts are: {known}")


async def cmd_logs(args: argparse.Namespace, connection: Connection) -> int:
    stop = asyncio.Event()
    refused: list[str] = []
    following: list[str] = []  # the subject, once known

    def on_error(error: Exception) -> bool:
        # NATS refuses a subscription with an error on the connection, not on the call
        # (and nats-py passes its text on in lower case).
        text = str(error).lower()
        if following and "permissions violation" in text and following[0].lower() in text:
            refused.append(str(error))
            stop.set()
            return True
        return False

    nc = await connection.connect(follow=True, on_error=on_error)
    try:
        readings = await _read_hosts(connection, nc, args.wait)
        document = inventory_document(connection.lattice, readings)
        host_id, name = resolve_host(args.host, document["hosts"])
        subject = host_log_subject(connection.lattice, host_id)
        following.append(subject)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        async def on_record(msg: Msg) -> None:
            if args.json:
                print(msg.data.decode(errors="replace"), flush=True)
                return
            try:
                record = parse_host_log_record(msg.data)
            except BadRequest as exc:
                print(f"wasmcloud: ignoring a record: {exc}", file=sys.stderr, flush=True)
                return
            print("\n".join(format_log_record(record)), flush=True)

        sub = await nc.subscribe(subject, cb=on_record)
        await settle(nc)  # the server has the subscription (or refused it) now
        if not refused:
            print(
                f"following the logs of {name} ({host_id}) in lattice "
                f"{connection.lattice!r}; Ctrl-C to stop",
                file=sys.stderr,
                flush=True,
            )
            await stop.wait()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if refused:
            raise LatticeUnreadable(
                f"NATS does not let this user follow {subject} ({refused[0]}): connected "
                f"as {connection.source}; the lattice's tooling user may, when it was issued "
                "since host logs exist (a Lattice made before: `pulumi up --replace` it)"
            )
        await sub.unsubscribe()
    finally:
        await nc.close()
    return EXIT_OK
