"""Components of the wasi:http proxy world, run on the native host instead of answering
their imports in Python.

Why: on a guest that does almost nothing, the crossings between the guest and Python
(about ten a request, each through a ctypes callback and wasmtime-py's conversions) were
most of the host's time per request (docs/performance.md). The native host, the
`wasmcloud_native` extension built from native/ on wasmtime's own wasi-http (what
`wasmtime serve` and upstream wasmCloud's host run), serves the same interfaces in Rust:
a request crosses into the guest once, and its response once back.

Which components: every import among NATIVE_IMPORTS (the wasi:http proxy world's, less
wasi:http/outgoing-handler, whose requests go to a linked provider; plus wasi:filesystem
and wasi:sockets, whose functions trap when called, as on the Python host) and no export
but wasi:http/incoming-handler. Any other component, and every component on a host where
the extension is not installed or WASMCLOUD_NATIVE_HTTP is 0, runs on the Python host:
the same behaviour, slower. A native instance goes through the same pool as a Python one
(workers, inline promotion, the epoch deadline, replacement after a trap).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.runtime.engine import EPOCH_TICK_SECONDS
from host_agent.runtime.image import (
    HTTP_HANDLER,
    check_cache_dir,
    compile_cached,
    default_cache_dir,
)
from host_agent.runtime.inline import RunInWorker
from host_agent.runtime.instance import TRAPPED_PREFIXES, ComponentTrap, trap_message
from host_agent.runtime.wasi_http import MAX_RESPONSE_BODY, METHODS

_NOT_LOADED = ""  # why the extension is not there, when it is not
try:
    import wasmcloud_native
except ImportError as error:  # not built here, or cannot load (an older glibc): every
    wasmcloud_native = None  # type: ignore[assignment]  # component runs on the Python host
    _NOT_LOADED = f"the native wasi:http host cannot be loaded: {error}"

log = logging.getLogger(__name__)

SWITCH = "WASMCLOUD_NATIVE_HTTP"
# The host's log line ("{component}: {RUNS_NATIVELY}") when a component starts there; the
# request-path benchmark reads it back.
RUNS_NATIVELY = "runs on the native wasi:http host"
NATIVE_IMPORTS = (
    "wasi:http/types",
    "wasi:io/",
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:random/",
    *TRAPPED_PREFIXES,
)


def runs_natively(imports: Iterable[str], exports: Iterable[str]) -> bool:
    """Whether a component with these (unversioned) imports and exports can run on the
    native host: it needs nothing from the lattice while it runs."""
    return set(exports) == {HTTP_HANDLER} and all(
        name.startswith(NATIVE_IMPORTS) for name in imports
    )


def native_enabled() -> bool:
    """Whether this host runs such components natively (the extension is installed, and
    WASMCLOUD_NATIVE_HTTP is not 0)."""
    return wasmcloud_native is not None and os.environ.get(SWITCH, "1") != "0"


def load_native(
    wasm: bytes,
    digest: str,
    imports: Iterable[str],
    exports: Iterable[str],
    cache_dir: Path | None = None,
) -> wasmcloud_native.HttpGuest | None:
    """The component compiled for the native host (or loaded from the compiled-component
    cache), or None if it runs on the Python host."""
    if not native_enabled() or not runs_natively(imports, exports):
        if wasmcloud_native is None and runs_natively(imports, exports):
            log.info("component %s runs on the Python host: %s", digest[:12], _NOT_LOADED)
        return None
    native = wasmcloud_native
    cache_dir = check_cache_dir(cache_dir or default_cache_dir())
    cached = cache_dir / f"{digest}-wasmtime{native.WASMTIME_VERSION}-native.cwasm"
    try:
        return compile_cached(
            cached,
            lambda path: native.HttpGuest.load(path, EPOCH_TICK_SECONDS),
            lambda: native.HttpGuest.compile(wasm, EPOCH_TICK_SECONDS),
            lambda guest: guest.serialize(),
            native.LoadError,
        )
    except native.LoadError as error:
        log.warning("component %s runs on the Python host: %s", digest[:12], error)
        return None


class NativeHttpInstance:
    """One instance on the native host, used by the pool as a ComponentInstance is."""

    def __init__(self, guest: wasmcloud_native.HttpGuest, component_id: str) -> None:
        self.component_id = component_id
        try:
            self._instance = guest.instantiate()
        except wasmcloud_native.GuestTrap as trap:
            raise ComponentTrap(trap_message(trap)) from None

    def set_epoch_deadline(self, ticks: int) -> None:
        self._instance.set_epoch_deadline(ticks)

    def handle_http(self, request: HttpRequest) -> HttpResponse:
        """Call wasi:http/incoming-handler.handle; raises ComponentTrap if the guest traps
        (or, inline, reads a body still arriving: the pool runs it again in a worker)."""
        body: Any = request.body if request.pending_body is None else request.pending_body
        try:
            status, headers, content, stdout, stderr, failure = self._instance.handle(
                standard_method(request.method),
                request.scheme,
                request.authority,
                request.path_with_query,
                request.headers,
                body,
                MAX_RESPONSE_BODY,
            )
        except wasmcloud_native.GuestTrap as trap:
            message, stdout, stderr = trap.args
            self._log(stdout, stderr)
            raise ComponentTrap(trap_message(message)) from None
        except wasmcloud_native.BadRequest as error:
            return HttpResponse.text(400, str(error))
        self._log(stdout, stderr)
        if isinstance(failure, RunInWorker):
            raise ComponentTrap(str(failure))
        if failure is not None:  # the caller went away before sending the whole body
            log.warning("the request body did not arrive: %s", failure)
        return HttpResponse(status, headers, content)

    def _log(self, stdout: bytes, stderr: bytes) -> None:
        """The guest's output in this call, as the Python host logs it (one line for the
        call's output rather than one per write)."""
        if stdout:
            log.info("%s stdout: %s", self.component_id, _text(stdout))
        if stderr:
            log.warning("%s stderr: %s", self.component_id, _text(stderr))

    def call_export(self, interface: str, function: str, args: list[Any]) -> Any:
        raise ComponentTrap(f"{self.component_id} does not export {interface}")


def standard_method(method: str) -> str:
    """A standard method in upper case, as the Python host reads it (``get`` is GET);
    any other as it came."""
    upper = method.upper()
    return upper if upper in METHODS else method


def _text(output: bytes) -> str:
    return output.decode(errors="replace").rstrip()
