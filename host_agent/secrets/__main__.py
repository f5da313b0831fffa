"""``python -m host_agent.secrets``: the NATS KV secrets backend, and a ``put`` for tools.

``serve`` runs the backend (upstream's ``secrets-nats-kv run``): keys from the
environment only, never argv (a command line is readable by every user):
``ENCRYPTION_XKEY_SEED`` (required; the values' key at rest, the same for the life of the
bucket) and ``TRANSIT_XKEY_SEED`` (optional; give every instance of a queue group the
same one, else each makes its own and only one instance may run).
``put KEY`` stores the value read from stdin; ``delete KEY`` removes it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence

from host_agent.cli.env import add_tls_options, client_tls
from host_agent.cli.logs import configure_logging
from host_agent.lattice.connection import (
    ConnectionRefused,
    NatsAddress,
    NatsCredentials,
    connect_nats,
)
from host_agent.lattice.subjects import SECRETS_SUBJECT_PREFIX
from host_agent.secrets.backend import (
    DEFAULT_BUCKET,
    DEFAULT_HISTORY,
    BackendSettings,
    NatsKvBackend,
)
from host_agent.secrets.client import SecretsClient, SecretsError
from host_agent.secrets.protocol import DEFAULT_BACKEND
from host_agent.secrets.xkeys import XKey, XKeyError

PROG = "python -m host_agent.secrets"


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument(
        "--nats-server",
        default=env.get("WASMCLOUD_SECRETS_NATS_SERVER", "127.0.0.1:4222"),
        help="NATS host:port or URL (env WASMCLOUD_SECRETS_NATS_SERVER; default 127.0.0.1:4222)",
    )
    p.add_argument(
        "--nats-creds",
        default=env.get("NATS_CREDSFILE"),
        help="NATS credentials file (env NATS_CREDSFILE, as upstream's backend)",
    )
    add_tls_options(p, env)
    p.add_argument("--name", default=DEFAULT_BACKEND, help="backend name (default nats-kv)")
    p.add_argument("--subject-prefix", default=SECRETS_SUBJECT_PREFIX)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    commands = p.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the backend")
    serve.add_argument("--bucket", default=DEFAULT_BUCKET)
    serve.add_argument("--history", type=int, default=DEFAULT_HISTORY)
    serve.add_argument("--replicas", type=int, default=1)
    serve.add_argument("--js-domain", default=env.get("WADM_JETSTREAM_DOMAIN"))
    put = commands.add_parser("put", help="store the value read from stdin under KEY")
    put.add_argument("key")
    delete = commands.add_parser("delete", help="remove KEY and its history")
    delete.add_argument("key")
    return p


def backend_keys(env: Mapping[str, str]) -> tuple[XKey, XKey]:
    """(encryption, transit) xkeys from the environment; errors name the variable only."""
    seed = env.get("ENCRYPTION_XKEY_SEED")
    if not seed:
        raise XKeyError(
            "ENCRYPTION_XKEY_SEED is not set: give the backend its curve key seed (SX...) "
            "in the environment; the same seed must be used for the life of the bucket"
        )
    encryption = XKey.from_seed(seed, "ENCRYPTION_XKEY_SEED")
    transit_seed = env.get("TRANSIT_XKEY_SEED")
    transit = XKey.from_seed(transit_seed, "TRANSIT_XKEY_SEED") if transit_seed else XKey.generate()
    return encryption, transit


async def _run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    server = args.nats_server if "://" in args.nats_server else f"nats://{args.nats_server}"
    credentials = None
    if args.nats_creds:
        with open(args.nats_creds) as handle:
            credentials = NatsCredentials.from_creds(handle.read(), "--nats-creds")
    nc = await connect_nats(
        NatsAddress.parse(server),
        credentials,
        who="secrets backend",
        fix="check --nats-creds / NATS_CREDSFILE",
        tls=client_tls(args, env),
        max_reconnect_attempts=-1,
    )
    try:
        if args.command == "serve":
            encryption, transit = backend_keys(env)
            backend = NatsKvBackend(
                nc,
                BackendSettings(
                    encryption_xkey=encryption,
                    transit_xkey=transit,
                    name=args.name,
                    bucket=args.bucket,
                    subject_prefix=args.subject_prefix,
                    history=args.history,
                    replicas=args.replicas,
                ),
                js_domain=args.js_domain,
            )
            await backend.start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            print(f"secrets backend {args.name} ready", file=sys.stderr, flush=True)
            await stop.wait()
            await backend.stop()
        else:
            client = SecretsClient(nc, args.name, args.subject_prefix)
            if args.command == "put":
                value = sys.stdin.buffer.read()
                try:
                    revision = await client.put(args.key, value.decode())
                except UnicodeDecodeError:
                    revision = await client.put(args.key, value)
                print(f"secret {args.key} stored (revision {revision})")
            else:
                await client.delete(args.key)
                print(f"secret {args.key} deleted")
    finally:
        await nc.close()
    return 0


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = build_parser(env).parse_args(argv)
    configure_logging(args.log_level)
    try:
        return asyncio.run(_run(args, env))
    except (XKeyError, SecretsError, ConnectionRefused, ValueError, OSError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
