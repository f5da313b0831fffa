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

import nats.errors

from host_agent.cli.logs import configure_logging
from host_agent.controller.service import Controller, ControllerConfig
from host_agent.host.identity import IdentityError
from host_agent.host.process import Host, HostConfig

LABEL_ENV_PREFIX = "WASMCLOUD_LABEL_"


def _env_flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


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
        default=int(env.get("WASMCLOUD_NATS_PORT", "4222")),
        help="NATS server port (env WASMCLOUD_NATS_PORT; default 4222)",
    )
    p.add_argument(
        "--nats-creds",
        default=env.get("WASMCLOUD_NATS_CREDS"),
        help="NATS credentials file (env WASMCLOUD_NATS_CREDS)",
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
        default=env.get("WASMCLOUD_HOST_SEED"),
        help="server nkey seed (SN...) for a stable host id (env "
        "WASMCLOUD_HOST_SEED; generated when absent)",
    )
    p.add_argument("--friendly-name", default=None, help="human-readable host name")
    p.add_argument(
        "--heartbeat-interval-seconds",
        type=float,
        default=float(env.get("WASMCLOUD_HEARTBEAT_INTERVAL", "30")),
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
        default=_env_flag(env, "WASMCLOUD_ALLOW_FILE_LOAD"),
        help="allow file:// component references (env WASMCLOUD_ALLOW_FILE_LOAD)",
    )
    p.add_argument(
        "--with-controller",
        action="store_true",
        default=_env_flag(env, "WASMCLOUD_WITH_CONTROLLER"),
        help="also run the lattice controller (wadm API and reconciliation) in this "
        "process: the one-machine setup (env WASMCLOUD_WITH_CONTROLLER)",
    )
    p.add_argument(
        "--log-level",
        default=env.get("WASMCLOUD_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log level (env WASMCLOUD_LOG_LEVEL; default info)",
    )
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


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = build_parser(env).parse_args(argv)
    configure_logging(args.log_level)
    try:
        labels = parse_labels(env, args.label)
        host = Host(
            HostConfig(
                nats_url=f"nats://{args.nats_host}:{args.nats_port}",
                lattice=args.lattice,
                labels=labels,
                seed=args.host_seed,
                friendly_name=args.friendly_name,
                heartbeat_interval=args.heartbeat_interval_seconds,
                allow_file_load=args.allow_file_load,
                ctl_prefix=args.ctl_topic_prefix,
                js_domain=args.js_domain,
                credentials=args.nats_creds,
            )
        )
    except (ValueError, IdentityError) as exc:
        print(f"wasmcloud-host: error: {exc}", file=sys.stderr)
        return 2
    controller = None
    if args.with_controller:
        controller = Controller(
            ControllerConfig(
                nats_url=host.config.nats_url,
                lattice=args.lattice,
                heartbeat_interval=args.heartbeat_interval_seconds,
                js_domain=args.js_domain,
                credentials=args.nats_creds,
            )
        )
    try:
        asyncio.run(_serve(host, controller))
    except (OSError, nats.errors.NoServersError) as exc:
        print(
            f"wasmcloud-host: cannot reach NATS at nats://{args.nats_host}:{args.nats_port}: "
            f"{exc}; start nats-server with -js or set WASMCLOUD_NATS_HOST/PORT",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
