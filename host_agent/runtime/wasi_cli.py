"""wasi:cli, wasi:clocks and wasi:random: what a component's language runtime imports.

componentize-py's CPython asks for its environment, arguments, random bytes and stdio at
start-up and on `print`; guest stdout/stderr lines go to the host log, tagged with the
component id, as wasmCloud does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from wasmtime.component import Record, Variant

from host_agent.runtime.interface import GuestExit, HostInterface
from host_agent.runtime.resources import ResourceTable
from host_agent.runtime.wasi_io import InputStream, OutputStream


class TerminalHandle:
    """Never handed out: components run without a terminal."""


def _datetime(seconds: int, nanoseconds: int) -> Record:
    value = Record()
    setattr(value, "seconds", seconds)  # noqa: B010 - Record is a bare attribute bag
    setattr(value, "nanoseconds", nanoseconds)  # noqa: B010
    return value


def cli_interfaces(
    table: ResourceTable,
    stdout: Callable[[bytes], None],
    stderr: Callable[[bytes], None],
    environment: dict[str, str],
) -> list[HostInterface]:
    def exit_(store: Any, status: Any) -> None:
        ok = isinstance(status, Variant) and status.tag == "ok"
        raise GuestExit(f"component called wasi:cli/exit with {'success' if ok else 'failure'}")

    def no_terminal(store: Any) -> None:
        return None

    def wall_now(store: Any) -> Record:
        now = time.time_ns()
        return _datetime(now // 1_000_000_000, now % 1_000_000_000)

    def pollable_after(store: Any, when: int) -> Any:
        from host_agent.runtime.wasi_io import Pollable

        return table.own(Pollable())

    cli = [
        HostInterface(
            "wasi:cli/environment",
            "0.2.",
            functions={
                "get-environment": lambda store: list(environment.items()),
                "get-arguments": lambda store: [],
                "initial-cwd": lambda store: None,
            },
        ),
        HostInterface("wasi:cli/exit", "0.2.", functions={"exit": exit_}),
        HostInterface(
            "wasi:cli/stdin",
            "0.2.",
            functions={"get-stdin": lambda store: table.own(InputStream())},
        ),
        HostInterface(
            "wasi:cli/stdout",
            "0.2.",
            functions={"get-stdout": lambda store: table.own(OutputStream(sink=stdout))},
        ),
        HostInterface(
            "wasi:cli/stderr",
            "0.2.",
            functions={"get-stderr": lambda store: table.own(OutputStream(sink=stderr))},
        ),
        HostInterface(
            "wasi:cli/terminal-input", "0.2.", resources={"terminal-input": TerminalHandle}
        ),
        HostInterface(
            "wasi:cli/terminal-output", "0.2.", resources={"terminal-output": TerminalHandle}
        ),
    ]
    for stream in ("stdin", "stdout", "stderr"):
        cli.append(
            HostInterface(
                f"wasi:cli/terminal-{stream}",
                "0.2.",
                functions={f"get-terminal-{stream}": no_terminal},
            )
        )
    clocks = [
        HostInterface(
            "wasi:clocks/wall-clock",
            "0.2.",
            functions={"now": wall_now, "resolution": lambda store: _datetime(0, 1)},
        ),
        HostInterface(
            "wasi:clocks/monotonic-clock",
            "0.2.",
            functions={
                "now": lambda store: time.monotonic_ns(),
                "resolution": lambda store: 1,
                "subscribe-instant": pollable_after,
                "subscribe-duration": pollable_after,
            },
        ),
    ]
    random = [
        HostInterface(
            "wasi:random/random",
            "0.2.",
            functions={
                "get-random-bytes": lambda store, n: os.urandom(n),
                "get-random-u64": lambda store: int.from_bytes(os.urandom(8), "little"),
            },
        ),
        HostInterface(
            "wasi:random/insecure",
            "0.2.",
            functions={
                "get-insecure-random-bytes": lambda store, n: os.urandom(n),
                "get-insecure-random-u64": lambda store: int.from_bytes(os.urandom(8), "little"),
            },
        ),
        HostInterface(
            "wasi:random/insecure-seed",
            "0.2.",
            functions={
                "insecure-seed": lambda store: (
                    int.from_bytes(os.urandom(8), "little"),
                    int.from_bytes(os.urandom(8), "little"),
                )
            },
        ),
    ]
    return cli + clocks + random
