"""``wasmcloud-controller``: the lattice controller (wadm-compatible), as its own process.

It answers the wadm API on ``wadm.api.<lattice>.model.*`` (so ``wash app ...`` works) and
reconciles deployed applications against the hosts. Run several for availability: all
answer the API; one at a time (the lease holder) reconciles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import nats.errors

from host_agent.cli.env import (
    CA_PATH_ENV,
    add_tls_options,
    client_tls,
    env_number,
    env_optional_number,
    finite_float,
)
from host_agent.cli.logs import configure_logging
from host_agent.controller.service import Controller, ControllerConfig
from host_agent.lattice import event_loop
from host_agent.lattice.connection import ConnectionRefused
from host_agent.security.authority import UserIssuer
from host_agent.telemetry import controller as telemetry
from host_agent.telemetry.config import from_env as telemetry_from_env


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wasmcloud-controller",
        description="Run the lattice controller: the wadm 0.20 API over NATS and "
        "reconciliation of deployed applications (placement, providers, links, config), "
        "with state in JetStream so it survives restarts.",
    )
    p.add_argument(
        "--nats-server",
        default=env.get("WADM_NATS_SERVER", "127.0.0.1:4222"),
        help="NATS server host:port (env WADM_NATS_SERVER; default 127.0.0.1:4222)",
    )
    p.add_argument(
        "--nats-creds",
        default=env.get("WADM_NATS_CREDS_FILE"),
        help="NATS credentials file (env WADM_NATS_CREDS_FILE)",
    )
    add_tls_options(p, env, ("--nats-tls-ca-file", "--tls-ca-path"), CONTROLLER_CA_ENV)
    p.add_argument(
        "--grant-issuer-file",
        default=env.get("WASMCLOUD_GRANT_ISSUER_FILE"),
        help="a 0600 JSON file with the lattice's user issuer (the Lattice's userIssuer "
        "output): this controller then signs the link grants hosts ask for, the only "
        "way their components and providers may make wRPC calls on a secured lattice "
        "(env WASMCLOUD_GRANT_ISSUER_FILE)",
    )
    p.add_argument(
        "-x",
        "--lattice",
        default=env.get("WASMCLOUD_LATTICE", "default"),
        help="lattice to manage (env WASMCLOUD_LATTICE; default 'default')",
    )
    p.add_argument(
        "--js-domain",
        default=env.get("WADM_JETSTREAM_DOMAIN"),
        help="JetStream domain (env WADM_JETSTREAM_DOMAIN)",
    )
    p.add_argument(
        "--heartbeat-interval",
        type=finite_float,
        default=env_number(env, "WASMCLOUD_HEARTBEAT_INTERVAL", "30", float),
        help="hosts' heartbeat interval in seconds, assumed until a host has sent two "
        "heartbeats (then its measured interval is used; default 30)",
    )
    p.add_argument(
        "--host-timeout",
        type=finite_float,
        default=env_optional_number(env, "WADM_HOST_TIMEOUT", float),
        help="drop a host after this many seconds without a heartbeat and re-place its "
        "work (env WADM_HOST_TIMEOUT; default: three of the host's heartbeat intervals)",
    )
    p.add_argument(
        "--resync-interval",
        type=finite_float,
        default=10.0,
        help="reconcile at least this often, in seconds, even without events (default 10)",
    )
    p.add_argument(
        "--lease-ttl",
        type=finite_float,
        default=10.0,
        help="leadership lease in seconds: how fast a standby takes over from a dead "
        "leader (default 10)",
    )
    p.add_argument(
        "--stream-replicas",
        type=_replicas,
        default=_env_replicas(env),
        help="copies of the controller's buckets and stream on a JetStream cluster, 1 to 5; "
        "existing ones with fewer are raised (env WADM_STREAM_REPLICAS; default 1). Not a "
        "wadm 0.20 option: wadm makes one copy and keeps the settings of streams made "
        "before it starts",
    )
    p.add_argument(
        "--log-level",
        default=env.get("WADM_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log level (env WADM_LOG_LEVEL; default info)",
    )
    return p


MAX_REPLICAS = 5  # JetStream's limit


def _replicas(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_REPLICAS:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and {MAX_REPLICAS}")
    return value


def _env_replicas(env: Mapping[str, str]) -> int:
    value = env_number(env, "WADM_STREAM_REPLICAS", "1", int)
    if not 1 <= value <= MAX_REPLICAS:
        raise ValueError(f"WADM_STREAM_REPLICAS={value}: expected 1 to {MAX_REPLICAS}")
    return value


async def _serve(controller: Controller) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, controller.request_stop)
    await controller.run()


def read_grant_issuer(path: str) -> UserIssuer:
    """The user issuer in ``path`` (JSON: accountPublicKey, signingSeed); errors name the
    file and the field, never the seed."""
    what = "WASMCLOUD_GRANT_ISSUER_FILE"
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"{what} {path}: cannot be read ({exc.strerror})") from None
    try:
        state = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"{what} {path}: not JSON (expected the userIssuer object)") from None
    return UserIssuer.from_state(state, f"{what} {path}")


# wadm 0.20's name first, then the host's.
CONTROLLER_CA_ENV = ("WADM_NATS_TLS_CA_FILE", CA_PATH_ENV)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    try:
        parser = build_parser(env)  # reads option defaults from the environment
    except ValueError as exc:
        print(f"wasmcloud-controller: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    server = args.nats_server if "://" in args.nats_server else f"nats://{args.nats_server}"
    try:
        issuer = read_grant_issuer(args.grant_issuer_file) if args.grant_issuer_file else None
        tls = client_tls(args, env, CONTROLLER_CA_ENV)
        # OpenTelemetry as a host reads it (WASMCLOUD_OBSERVABILITY_ENABLED, OTEL_*).
        observability = telemetry_from_env(env)
    except ValueError as exc:
        print(f"wasmcloud-controller: error: {exc}", file=sys.stderr)
        return 2
    controller = Controller(
        ControllerConfig(
            nats_url=server,
            lattice=args.lattice,
            heartbeat_interval=args.heartbeat_interval,
            host_timeout=args.host_timeout,
            resync_interval=args.resync_interval,
            lease_ttl=args.lease_ttl,
            js_domain=args.js_domain,
            credentials=args.nats_creds,
            stream_replicas=args.stream_replicas,
            grant_issuer=issuer,
            tls=tls,
        )
    )
    telemetry.configure(observability, args.lattice, controller.id)
    try:
        event_loop.run(_serve(controller))
    except ConnectionRefused as exc:
        print(f"wasmcloud-controller: {exc}", file=sys.stderr)
        return 1
    except (OSError, nats.errors.NoServersError) as exc:
        print(
            f"wasmcloud-controller: cannot reach NATS at {server}: {exc}; start nats-server "
            "with -js or pass --nats-server host:port",
            file=sys.stderr,
        )
        return 1
    finally:
        telemetry.shutdown()  # what is still buffered goes out (a stop's last metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
