"""``pulumi-language-python``: the Python language host the Pulumi CLI runs programs with.

Why our own: the upstream host is a Go program (module
``github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3``) that the Go module
proxy refuses to serve (403 for every version), so it cannot be built here. This is the
part of its gRPC ``LanguageRuntime`` service the CLI needs to run a Python program:
``Handshake``, ``GetPluginInfo``, ``GetRequiredPlugins``/``Packages`` (none: plugins
are found on PATH), ``InstallDependencies`` (nothing to do: the bootstrap's venv has
them), ``About`` and ``Run``. ``Run`` starts the SDK's own runner script,
``pulumi-language-python-exec`` (shipped next to the CLI), with this interpreter, exactly
as the Go host does; everything else about running the program is the real SDK's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

from pulumi_wasmcloud import __version__

EXEC_SCRIPT = "pulumi-language-python-exec"
# The runner exits with this code after it has shown the user an actionable error;
# the engine then must not print a second, generic one ("bail").
USER_ERROR_SHOWN = 32


def find_exec_script() -> str:
    """The SDK's runner: $PULUMI_LANGUAGE_PYTHON_EXEC, next to `pulumi`, or on PATH."""
    explicit = os.environ.get("PULUMI_LANGUAGE_PYTHON_EXEC")
    if explicit:
        return explicit
    pulumi = shutil.which("pulumi")
    if pulumi and (beside := Path(pulumi).resolve().parent / EXEC_SCRIPT).exists():
        return str(beside)
    found = shutil.which(EXEC_SCRIPT)
    if not found:
        raise FileNotFoundError(
            f"{EXEC_SCRIPT} not found next to the pulumi CLI or on PATH; run "
            "`bash scripts/bootstrap.sh` (it installs the CLI with it)"
        )
    return found


def exec_arguments(request: language_pb2.RunRequest, engine: str) -> list[str]:
    """The runner's command line for one RunRequest (pure, so it is testable)."""
    info = request.info
    program = request.program or "."
    if info.program_directory:
        program = str(Path(info.program_directory) / (info.entry_point or "."))
    args = [
        "--monitor", request.monitor_address,
        "--engine", engine,
        "--project", request.project,
        "--stack", request.stack,
        "--pwd", request.pwd or info.program_directory or ".",
        "--dry_run", "true" if request.dryRun else "false",
        "--parallel", str(request.parallel),
    ]  # fmt: skip
    if request.organization:
        args += ["--organization", request.organization]
    if info.root_directory:
        args += ["--root_directory", info.root_directory]
    return [*args, program, *request.args]


def exec_environment(request: language_pb2.RunRequest) -> dict[str, str]:
    return {
        **os.environ,
        "PULUMI_CONFIG": json.dumps(dict(request.config)),
        "PULUMI_CONFIG_SECRET_KEYS": json.dumps(list(request.configSecretKeys)),
    }


class LanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    def __init__(self, engine_address: str) -> None:
        self.engine_address = engine_address

    async def Handshake(
        self, request: language_pb2.LanguageHandshakeRequest, context: object
    ) -> language_pb2.LanguageHandshakeResponse:
        if request.engine_address:
            self.engine_address = request.engine_address
        return language_pb2.LanguageHandshakeResponse()

    async def GetPluginInfo(
        self, request: empty_pb2.Empty, context: object
    ) -> plugin_pb2.PluginInfo:
        return plugin_pb2.PluginInfo(version=__version__)

    async def GetRequiredPlugins(
        self, request: language_pb2.GetRequiredPluginsRequest, context: object
    ) -> language_pb2.GetRequiredPluginsResponse:
        return language_pb2.GetRequiredPluginsResponse()

    async def GetRequiredPackages(
        self, request: language_pb2.GetRequiredPackagesRequest, context: object
    ) -> language_pb2.GetRequiredPackagesResponse:
        return language_pb2.GetRequiredPackagesResponse()

    async def GetProgramDependencies(
        self, request: language_pb2.GetProgramDependenciesRequest, context: object
    ) -> language_pb2.GetProgramDependenciesResponse:
        return language_pb2.GetProgramDependenciesResponse()

    async def InstallDependencies(
        self, request: language_pb2.InstallDependenciesRequest, context: object
    ) -> AsyncIterator[language_pb2.InstallDependenciesResponse]:
        message = "dependencies come from scripts/bootstrap.sh's venv; nothing to install\n"
        yield language_pb2.InstallDependenciesResponse(stdout=message.encode())

    async def About(
        self, request: language_pb2.AboutRequest, context: object
    ) -> language_pb2.AboutResponse:
        version = ".".join(str(part) for part in sys.version_info[:3])
        return language_pb2.AboutResponse(executable=sys.executable, version=version)

    async def Run(
        self, request: language_pb2.RunRequest, context: object
    ) -> language_pb2.RunResponse:
        try:
            script = find_exec_script()
        except FileNotFoundError as exc:
            return language_pb2.RunResponse(error=str(exc))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-u",
            script,
            *exec_arguments(request, self.engine_address),
            env=exec_environment(request),
        )
        code = await process.wait()
        if code == 0:
            return language_pb2.RunResponse()
        if code == USER_ERROR_SHOWN:
            return language_pb2.RunResponse(bail=True)
        return language_pb2.RunResponse(error=f"Program exited with non-zero exit code: {code}")


async def serve(engine_address: str) -> None:
    server = grpc.aio.server()
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageHost(engine_address), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)  # the CLI reads the port from our first line of output
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # the CLI stops plugins with a signal
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="pulumi-language-python",
        description="Pulumi language host for Python programs (started by the Pulumi CLI).",
    )
    parser.add_argument("engine", nargs="?", default="", help="the engine's gRPC address")
    # The CLI passes flags meant for the Go host (-root, -tracing, -virtualenv ...).
    args, _ = parser.parse_known_args(argv)
    asyncio.run(serve(args.engine))


if __name__ == "__main__":
    main()
