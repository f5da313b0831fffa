"""Where an http-server link listens: its source_config ``address`` as the provider reads
it. One rule for the provider (http_server.py) and for ``up``'s wait for its listener
(pulumi_wasmcloud/provider/http_listeners.py); a module of its own, with no imports, so
the Pulumi plugin can use it without the provider's HTTP server."""

from __future__ import annotations

DEFAULT_ADDRESS = "127.0.0.1:8000"


def split_address(address: str) -> tuple[str, int] | None:
    """``host:port`` (``[::1]:8080``) as (host, port), or None when it is not that."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        return None
    # No host (":8080") means loopback: listening on every interface is a choice the
    # address must spell out (upstream's default is 0.0.0.0).
    return host.strip("[]") or "127.0.0.1", int(port)
