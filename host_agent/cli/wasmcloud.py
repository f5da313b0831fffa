"""``wasmcloud``: the project's command line for working with wadm manifests and lattices.

wasmcloud validate FILE                       check a manifest as wadm would
wasmcloud plan FILE --hosts HOSTS.yaml        show where every instance would land
wasmcloud up [--manifest FILE]                a local lattice with the app deployed
wasmcloud down                                stop everything `up` started
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from host_agent.local.lattice import LocalLattice, http_addresses
from host_agent.local.supervisor import StartError
from host_agent.model import ManifestError, load_manifest
from host_agent.placement import (
    HostsFileError,
    diff_placement,
    load_hosts,
    plan_placement,
    render_plan_table,
    running_placements,
)

EXIT_OK = 0
EXIT_INVALID = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wasmcloud",
        description="Validate wadm application manifests and preview their placement "
        "on a wasmCloud 1.x lattice.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="check a wadm manifest (YAML or JSON) the way wadm 0.20 does",
        description="Check a wadm manifest the way wadm 0.20's `model.put` does, plus the "
        "stricter checks listed in docs/manifest.md. Prints a one-line summary and exits 0 "
        "when valid; prints one line per error (path: problem (fix: ...)) and exits 1 "
        "otherwise. Warnings go to stderr and do not fail.",
    )
    validate.add_argument("file", help="path to the manifest, e.g. examples/counter/wadm.yaml")

    plan = commands.add_parser(
        "plan",
        help="show where every component and provider instance would be placed",
        description="Plan the manifest on the hosts described in HOSTS.yaml with wadm's "
        "spreadscaler/daemonscaler rules and this project's deterministic tie-breaks "
        "(docs/placement.md). HOSTS.yaml is a list of hosts: `- id: <string>`, "
        "`labels: {key: value}`, and optionally `running: {<component name>: <count>}` "
        "for what is already there (CHANGE shows the difference).",
    )
    plan.add_argument("file", help="path to the manifest")
    plan.add_argument(
        "--hosts",
        required=True,
        metavar="HOSTS.yaml",
        help="the lattice's hosts, their labels and what they run",
    )
    plan.add_argument(
        "--json",
        action="store_true",
        help='print {"placements", "unplaced", "moves"} as JSON instead of a table',
    )

    up = commands.add_parser(
        "up",
        help="start a local lattice and deploy an application (like `wash up` + `wash app deploy`)",
        description="Start nats-server (JetStream on disk), redis-server and a host with "
        "the controller in-process, each detached with a pidfile and log in the state "
        "folder, then put and deploy the manifest and wait until it is deployed. "
        "Re-running reuses what already runs; `wasmcloud down` stops it all.",
    )
    up.add_argument("--manifest", default="examples/counter/wadm.yaml", help="wadm manifest")
    _local_options(up)
    down = commands.add_parser(
        "down",
        help="stop every process `wasmcloud up` started",
        description="Stop the host, redis-server and nats-server that `wasmcloud up` "
        "started (found by their pidfiles in the state folder). Data stays on disk.",
    )
    _local_options(down)
    return parser


def _local_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", default=".state/local", help="pidfiles, logs and data (default .state/local)"
    )
    parser.add_argument("--nats-port", type=int, default=4222, help="NATS port (default 4222)")
    parser.add_argument("--redis-port", type=int, default=6379, help="Redis port (default 6379)")


def _local(args: argparse.Namespace) -> LocalLattice:
    return LocalLattice(
        Path(args.state_dir).resolve(), nats_port=args.nats_port, redis_port=args.redis_port
    )


def cmd_up(args: argparse.Namespace) -> int:
    manifest = Path(args.manifest)
    try:
        load_manifest(manifest)
        _local(args).up(manifest)
    except ManifestError as exc:
        return _fail(exc.issues)
    except StartError as exc:
        return _fail([exc])
    for url in http_addresses(manifest):
        print(f"\ntry it:  curl {url}/hello")
    print("stop it: wasmcloud down   (logs: " + str(Path(args.state_dir)) + "/*.log)")
    return EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    if not _local(args).down():
        print("nothing was running")
    return EXIT_OK


def _fail(lines: Sequence[object]) -> int:
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    return EXIT_INVALID


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        parsed = load_manifest(args.file)
    except ManifestError as exc:
        return _fail(exc.issues)
    for warning in parsed.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    manifest = parsed.manifest
    links = sum(len(c.link_traits) for c in manifest.spec.components)
    print(
        f"{args.file}: valid: {manifest.name} {manifest.version or '(no version)'}, "
        f"{len(manifest.spec.components)} components, {links} links, "
        f"{len(parsed.warnings)} warnings"
    )
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    try:
        parsed = load_manifest(args.file)
        hosts = load_hosts(args.hosts)
    except (ManifestError, HostsFileError) as exc:
        source = getattr(exc, "source", "") or args.hosts
        return _fail([f"{source}: {issue}" for issue in exc.issues])
    plan = plan_placement(parsed.manifest, hosts)
    before = running_placements({h.id: h.running for h in hosts})
    before = {name: before.get(name, {}) for name in plan.placements()}
    moves = diff_placement(before, plan.placements())
    if args.json:
        document = {"placements": plan.placements(), "unplaced": plan.unplaced(), "moves": moves}
        print(json.dumps(document, indent=2))
    else:
        print(render_plan_table(plan, hosts, moves))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"validate": cmd_validate, "plan": cmd_plan, "up": cmd_up, "down": cmd_down}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
