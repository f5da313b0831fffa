"""``wasmcloud``: the project's command line for working with wadm manifests and lattices.

wasmcloud validate FILE                       check a manifest as wadm would
wasmcloud plan FILE --hosts HOSTS.yaml        show where every instance would land
wasmcloud up [--manifest FILE]                a local lattice with the app deployed
wasmcloud down                                stop everything `up` started
wasmcloud env [--state-dir DIR]               exports pointing wash at a local lattice's creds
wasmcloud push FILE REF                       publish a component to an OCI registry
wasmcloud pull REF [-o FILE]                  fetch a component from an OCI registry
wasmcloud inventory [--json]                  hosts, labels and what runs on each
wasmcloud apps [NAME] [--json]                applications and their status
wasmcloud logs HOST [--json]                  follow a host's log lines
wasmcloud placement FILE [--json]             the planner on the live lattice
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from host_agent.cli import ops
from host_agent.host.artifacts import ArtifactError, check_component
from host_agent.local.credentials import STATE_DIR_VARIABLE, find_local_credentials, state_dir
from host_agent.local.lattice import LocalLattice, http_addresses
from host_agent.local.supervisor import StartError
from host_agent.model import ManifestError, load_manifest
from host_agent.oci import (
    Credentials,
    InvalidReference,
    RegistryError,
    fetch_component,
    parse_reference,
    push_component,
)
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


def build_parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wasmcloud",
        description="Validate wadm application manifests and preview their placement "
        "on a wasmCloud 1.x lattice; run a local one; read a running one (inventory, apps, "
        "logs, placement: docs/operations.md).",
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

    env_command = commands.add_parser(
        "env",
        help="print shell exports that point wash and the nats CLI at a local lattice's creds",
        description="A secured local lattice (`make up`, `wasmcloud up`) leaves its tooling "
        "user's credentials as nats.creds in its state folder (0600). Print the variables "
        "wash (WASH_CTL_CREDS), the nats CLI (NATS_CREDS) and this project's commands read, "
        'so `eval "$(wasmcloud env)"` makes them connect as that user. The folder is '
        f"--state-dir, else ${STATE_DIR_VARIABLE}, else .state/local. Prints paths, never "
        "the credentials themselves.",
    )
    env_command.add_argument(
        "--state-dir",
        help=f"the lattice's state folder (default ${STATE_DIR_VARIABLE} or .state/local)",
    )

    push = commands.add_parser(
        "push",
        help="publish a component to an OCI registry (like `wash push`)",
        description="Push a WebAssembly component as an OCI artifact in the layout wasmCloud "
        "uses (an OCI image manifest, an application/vnd.wasm.config.v0+json config and one "
        "application/wasm layer), so any wasmCloud 1.x host can run it by reference. Prints "
        "the manifest digest and the reference pinned to it (REF@sha256:...), which is what "
        "to deploy for a reproducible lattice.",
    )
    push.add_argument("file", help="the component (.wasm), e.g. build/counter.wasm")
    push.add_argument(
        "ref", help="where to push it: registry/repository:tag, e.g. 127.0.0.1:5000/counter:0.1.0"
    )
    _registry_options(push)
    pull = commands.add_parser(
        "pull",
        help="fetch a component from an OCI registry (like `wash pull`)",
        description="Pull a component by tag or digest, verifying the manifest digest and "
        "the layer's digest and size, and write it to a file. Prints the manifest digest.",
    )
    pull.add_argument("ref", help="registry/repository:tag or registry/repository@sha256:<digest>")
    pull.add_argument(
        "-o", "--output", help="file to write (default: the repository's last part + .wasm)"
    )
    _registry_options(pull)
    ops.add_commands(commands, os.environ if env is None else env)  # day-2 views
    return parser


def _registry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="talk to the registry over plain http (a registry on loopback or a lab network)",
    )
    parser.add_argument(
        "--user",
        help="registry user name (default: WASMCLOUD_OCI_REGISTRY_USER); anonymous when unset",
    )
    parser.add_argument(
        "--password",
        help="registry password or token; prefer WASMCLOUD_OCI_REGISTRY_PASSWORD, since "
        "other users of this machine can read command lines",
    )


def _credentials(args: argparse.Namespace, env: Mapping[str, str]) -> Credentials | None:
    user = args.user or env.get("WASMCLOUD_OCI_REGISTRY_USER") or None
    password = args.password or env.get("WASMCLOUD_OCI_REGISTRY_PASSWORD") or None
    if (user is None) != (password is None):
        raise ValueError(
            "a registry user needs a password and a password needs a user: give --user and "
            "--password (or WASMCLOUD_OCI_REGISTRY_USER and WASMCLOUD_OCI_REGISTRY_PASSWORD)"
        )
    return Credentials(user, password) if user is not None and password is not None else None


def _progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


class _ByteProgress:
    """Prints a download's progress every 10% (to stderr), not for every chunk."""

    def __init__(self) -> None:
        self.shown = -1

    def __call__(self, line: str) -> None:
        done, _, total = line.partition(" ")[0].partition("/")
        if done.isdigit() and total.isdigit() and int(total):
            tenth = int(done) * 10 // int(total)
            if tenth == self.shown:
                return
            self.shown = tenth
        _progress(line)


def cmd_push(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        credentials = _credentials(args, env)
        ref = parse_reference(args.ref)
        print(f"pushing {args.file} to {ref}", file=sys.stderr)
        digest = asyncio.run(
            push_component(
                Path(args.file),
                ref,
                insecure=args.insecure,
                credentials=credentials,
                progress=_progress,
            )
        )
    except (ValueError, RegistryError, OSError) as exc:
        return _fail([exc])
    print(digest)
    print(f"deploy it as: {ref.with_digest(digest)}", file=sys.stderr)
    return EXIT_OK


def cmd_pull(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        credentials = _credentials(args, env)
        ref = parse_reference(args.ref)
        output = Path(args.output or ref.repository.rsplit("/", 1)[-1] + ".wasm")
        print(f"pulling {ref}", file=sys.stderr)
        pulled = asyncio.run(
            fetch_component(
                ref, insecure=args.insecure, credentials=credentials, progress=_ByteProgress()
            )
        )
        check_component(pulled.data, str(ref))
        output.write_bytes(pulled.data)
    except (InvalidReference, ArtifactError, ValueError, RegistryError, OSError) as exc:
        return _fail([exc])
    print(pulled.digest)
    print(f"wrote {output} ({len(pulled.data)} bytes)", file=sys.stderr)
    return EXIT_OK


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


def cmd_env(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    folder = state_dir(args.state_dir, env)
    found = find_local_credentials(folder)
    if found is None:
        return _fail(
            [
                f"no nats.creds in {folder}: the lattice there is not secured or not up; run "
                "`make up` (or `wasmcloud up`), or give --state-dir of the lattice's state folder"
            ]
        )
    print(found.shell_exports(), end="")
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


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = build_parser(env).parse_args(argv)
    if args.command in ops.COMMANDS:
        return ops.run(args, env)
    if args.command == "push":
        return cmd_push(args, env)
    if args.command == "pull":
        return cmd_pull(args, env)
    if args.command == "env":
        return cmd_env(args, env)
    handlers = {"validate": cmd_validate, "plan": cmd_plan, "up": cmd_up, "down": cmd_down}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
