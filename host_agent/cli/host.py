"""``wasmcloud-host``: run a wasmCloud 1.x compatible host (also ``python -m host_agent``).

Options follow the real ``wasmcloud`` host: every flag has a ``WASMCLOUD_*`` environment
variable, and labels come from ``--label k=v`` and ``WASMCLOUD_LABEL_<key>=<value>``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import nats.errors
from nats.aio.client import RawCredentials

from host_agent.cli.env import add_tls_options, client_tls, env_flag, env_number, finite_float
from host_agent.cli.logs import configure_logging
from host_agent.controller.service import Controller, ControllerConfig
from host_agent.host.artifacts import OciOptions, max_component_size_from_env
from host_agent.host.identity import IdentityError
from host_agent.host.process import Host, HostConfig
from host_agent.lattice import event_loop
from host_agent.lattice.connection import (
    AddressError,
    ConnectionRefused,
    CredentialsError,
    NatsAddress,
    NatsCredentials,
)
from host_agent.telemetry import cli as telemetry_cli
from host_agent.telemetry import otel as telemetry

LABEL_ENV_PREFIX = "WASMCLOUD_LABEL_"
# Secrets given as flags are readable by every user of the machine (ps, /proc/*/cmdline).
SECRET_FLAGS = {"--host-seed": "WASMCLOUD_HOST_SEED", "--nats-seed": "WASMCLOUD_NATS_SEED"}


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wasmcloud-host",
        description="Run a wasmCloud 1.x compatible host: joins a lattice over NATS, "
        "announces itself with heartbeats and answers the control interface "
        "(wasmbus.ctl.v1.<lattice>.*), so wash and wadm can use it.",
    )
    p.add_argument(
        "--nats-host",
        default=env.get("WASMCLOUD_NATS_HOST", "127.0.0.1"),
        help="NATS server host (env WASMCLOUD_NATS_HOST; default 127.0.0.1)",
    )
    p.add_argument(
        "--nats-port",
        type=int,
        default=None,
        help="NATS server port (env WASMCLOUD_NATS_PORT; default 4222)",
    )
    p.add_argument(
        "--ctl-tls",
        "--rpc-tls",
        dest="nats_tls",
        action="store_true",
        default=env_flag(env, "WASMCLOUD_CTL_TLS") or env_flag(env, "WASMCLOUD_RPC_TLS"),
        help="require TLS on the NATS connection (env WASMCLOUD_CTL_TLS or "
        "WASMCLOUD_RPC_TLS; this host uses one connection for control and RPC)",
    )
    add_tls_options(p, env)  # providers started here get the same TLS settings
    p.add_argument(
        "--nats-creds",
        default=env.get("WASMCLOUD_NATS_CREDS"),
        help="NATS credentials file: the user JWT and seed, as nsc writes them "
        "(env WASMCLOUD_NATS_CREDS); providers started here connect as the same user",
    )
    p.add_argument(
        "--link-grants",
        action="store_true",
        default=env_flag(env, "WASMCLOUD_LINK_GRANTS"),
        help="make this host's (and its providers') outgoing wRPC calls as the link grants "
        "a controller signs, for a lattice whose host users may not invoke anything "
        "themselves (env WASMCLOUD_LINK_GRANTS)",
    )
    p.add_argument(
        "--nats-jwt",
        default=env.get("WASMCLOUD_NATS_JWT"),
        help="NATS user JWT, with --nats-seed (env WASMCLOUD_NATS_JWT)",
    )
    p.add_argument(
        "--nats-seed",
        default=None,
        help="NATS user nkey seed (SU...), with --nats-jwt; prefer the environment "
        "variable WASMCLOUD_NATS_SEED: a flag shows in every user's `ps`",
    )
    p.add_argument(
        "-x",
        "--lattice",
        default=env.get("WASMCLOUD_LATTICE", "default"),
        help="lattice name (env WASMCLOUD_LATTICE; default 'default')",
    )
    p.add_argument(
        "-l",
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a host label, repeatable; also WASMCLOUD_LABEL_<key>=<value> (flags win on conflict)",
    )
    p.add_argument(
        "--host-seed",
        default=None,
        help="server nkey seed (SN...) for a stable host id; prefer the environment "
        "variable WASMCLOUD_HOST_SEED: a flag shows in every user's `ps` (generated "
        "when absent)",
    )
    p.add_argument("--friendly-name", default=None, help="human-readable host name")
    p.add_argument(
        "--heartbeat-interval-seconds",
        type=finite_float,
        default=None,
        help="seconds between heartbeats (env WASMCLOUD_HEARTBEAT_INTERVAL; default 30)",
    )
    p.add_argument(
        "--ctl-topic-prefix",
        default=env.get("WASMCLOUD_CTL_TOPIC_PREFIX", "wasmbus.ctl"),
        help="control interface subject prefix (default wasmbus.ctl)",
    )
    p.add_argument(
        "--js-domain",
        default=env.get("WASMCLOUD_JS_DOMAIN"),
        help="JetStream domain for the lattice's KV buckets",
    )
    p.add_argument(
        "--allow-file-load",
        action="store_true",
        default=env_flag(env, "WASMCLOUD_ALLOW_FILE_LOAD"),
        help="allow file:// component references (env WASMCLOUD_ALLOW_FILE_LOAD)",
    )
    p.add_argument(
        "--with-controller",
        action="store_true",
        default=env_flag(env, "WASMCLOUD_WITH_CONTROLLER"),
        help="also run the lattice controller (wadm API and reconciliation) in this "
        "process: the one-machine setup (env WASMCLOUD_WITH_CONTROLLER)",
    )
    p.add_argument(
        "--log-level",
        default=env.get("WASMCLOUD_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log level (env WASMCLOUD_LOG_LEVEL; default info)",
    )
    telemetry_cli.add_options(p)
    return p


def parse_labels(env: Mapping[str, str], flags: Sequence[str]) -> dict[str, str]:
    labels = {
        k[len(LABEL_ENV_PREFIX) :]: v
        for k, v in env.items()
        if k.startswith(LABEL_ENV_PREFIX) and len(k) > len(LABEL_ENV_PREFIX)
    }
    for flag in flags:
        key, sep, value = flag.partition("=")
        if not sep or not key or "=" in value:
            raise ValueError(
                f"--label {flag!r}: expected exactly one '=' as in KEY=VALUE, "
                "e.g. --label zone=us-east-1"
            )
        labels[key] = value
    return labels


async def _serve(host: Host, controller: Controller | None) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        host.request_stop()
        if controller is not None:
            controller.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    if controller is None:
        await host.run()
        return
    await asyncio.gather(host.run(), controller.run())


def nats_address(
    args: argparse.Namespace, env: Mapping[str, str], tls: bool = False
) -> NatsAddress:
    port = args.nats_port
    if port is None:
        port = env_number(env, "WASMCLOUD_NATS_PORT", "4222", int)
    if not 0 < port < 65536:
        raise ValueError(f"NATS port {port} is out of range; give 1-65535")
    return NatsAddress(args.nats_host, port, args.nats_tls or tls)


def nats_credentials(
    args: argparse.Namespace, env: Mapping[str, str]
) -> tuple[NatsCredentials | None, str | None]:
    """The NATS user to connect as (None: no credentials), and the creds file it came
    from, if any. Like the real host: a JWT needs its seed, and a creds file excludes
    both."""
    seed = args.nats_seed or env.get("WASMCLOUD_NATS_SEED")
    if args.nats_creds and (args.nats_jwt or seed):
        raise CredentialsError(
            "give the NATS user either as a creds file (--nats-creds / WASMCLOUD_NATS_CREDS) "
            "or as --nats-jwt and WASMCLOUD_NATS_SEED, not both"
        )
    if args.nats_creds:
        path = Path(args.nats_creds)
        try:
            text = path.read_text()
        except OSError as exc:
            raise CredentialsError(f"cannot read NATS creds file {path}: {exc.strerror}") from None
        return NatsCredentials.from_creds(text, f"NATS creds file {path}"), str(path)
    if bool(args.nats_jwt) != bool(seed):
        raise CredentialsError(
            "a NATS user needs both its JWT (--nats-jwt / WASMCLOUD_NATS_JWT) and its seed "
            "(WASMCLOUD_NATS_SEED); only one was given"
        )
    if args.nats_jwt and seed:
        return NatsCredentials(args.nats_jwt.strip(), seed.strip()), None
    return None, None


def warn_secret_flags(argv: Sequence[str]) -> None:
    for flag, variable in SECRET_FLAGS.items():
        if any(a == flag or a.startswith(f"{flag}=") for a in argv):
            print(
                f"wasmcloud-host: warning: {flag} puts a secret on the command line, where "
                f"every user of this machine can read it (ps); set {variable} instead",
                file=sys.stderr,
            )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser(env)  # reads the switches' defaults from the environment
    except ValueError as exc:
        print(f"wasmcloud-host: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    warn_secret_flags(argv)
    try:
        labels = parse_labels(env, args.label)
        tls = client_tls(args, env)
        address = nats_address(args, env, tls is not None)
        credentials, creds_file = nats_credentials(args, env)
        heartbeat = args.heartbeat_interval_seconds
        if heartbeat is None:
            heartbeat = env_number(env, "WASMCLOUD_HEARTBEAT_INTERVAL", "30", float)
        if not heartbeat > 0:
            raise ValueError(f"heartbeat interval {heartbeat} must be more than 0 seconds")
        OciOptions.from_env(env)  # refuses a bad WASMCLOUD_OCI_* now, not at the first pull
        max_component_size_from_env(env)
        observability = telemetry_cli.config_from(args, env)
        host = Host(
            HostConfig(
                nats_url=address.url,
                lattice=args.lattice,
                labels=labels,
                seed=args.host_seed or env.get("WASMCLOUD_HOST_SEED"),
                friendly_name=args.friendly_name,
                heartbeat_interval=heartbeat,
                allow_file_load=args.allow_file_load,
                ctl_prefix=args.ctl_topic_prefix,
                js_domain=args.js_domain,
                credentials=credentials,
                link_grants=args.link_grants,
                tls=tls,
                telemetry=observability,
                publish_logs=True,  # `wasmcloud logs` follows them
            )
        )
    except (ValueError, IdentityError, AddressError, CredentialsError) as exc:
        print(f"wasmcloud-host: error: {exc}", file=sys.stderr)
        return 2
    controller = None
    if args.with_controller:
        controller = Controller(
            ControllerConfig(
                nats_url=address.url,
                lattice=args.lattice,
                heartbeat_interval=heartbeat,
                js_domain=args.js_domain,
                credentials=(
                    creds_file or (RawCredentials(credentials.creds()) if credentials else None)
                ),
                tls=tls,
            )
        )
    telemetry.configure(
        observability,
        "wasmcloud-host",
        {
            "service.instance.id": host.host_id,
            "wasmcloud.host.id": host.host_id,
            "wasmcloud.lattice": args.lattice,
        },
    )
    try:
        event_loop.run(_serve(host, controller))
    except ConnectionRefused as exc:
        print(f"wasmcloud-host: {exc}", file=sys.stderr)
        return 1
    except (OSError, nats.errors.NoServersError) as exc:
        print(
            f"wasmcloud-host: cannot reach NATS at {address.url}: {exc}; start nats-server "
            "with -js or set WASMCLOUD_NATS_HOST/PORT",
            file=sys.stderr,
        )
        return 1
    finally:
        telemetry.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
