"""Which provider each other host of the lattice runs, from its events. Pure data.

A link's target may be a provider on another host; to judge the link's WIT versions
(runtime/provider_versions.py) this host must know what that provider serves, which its
reference tells (builtin.py). Hosts say what they run in events every member may follow:
``provider_started`` / ``provider_stopped`` at once, and their whole inventory in each
``host_heartbeat``, so a host that joins late learns within one heartbeat interval. A host
that stops (``host_stopped``) runs nothing any more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from host_agent.lattice.subjects import PROVIDER_EVENTS
from host_agent.providers.builtin import BuiltinProvider, UnknownProvider, resolve_provider

__all__ = ["PROVIDER_EVENTS", "LatticeProviders"]


class LatticeProviders:
    def __init__(self, own_host_id: str) -> None:
        self.own_host_id = own_host_id  # its own providers are in the host's state
        # host id -> provider id -> image reference
        self.hosts: dict[str, dict[str, str]] = {}

    def apply(self, event: str, source: str, data: Mapping[str, Any]) -> None:
        """One event, as hosts publish it (``source`` is the publishing host's id).
        Malformed data changes nothing: another host's bug must not stop this one."""
        host_id = data.get("host_id", source) if event.startswith("provider_") else source
        if not isinstance(host_id, str) or host_id == self.own_host_id:
            return
        if event == "host_stopped":
            self.hosts.pop(host_id, None)
        elif event == "host_heartbeat":
            providers = data.get("providers")
            if isinstance(providers, list):
                self.hosts[host_id] = {
                    entry["id"]: entry.get("image_ref") or ""
                    for entry in providers
                    if isinstance(entry, dict) and isinstance(entry.get("id"), str)
                }
        elif event in ("provider_started", "provider_stopped"):
            provider_id, ref = data.get("provider_id"), data.get("image_ref")
            if not isinstance(provider_id, str):
                return
            running = self.hosts.setdefault(host_id, {})
            if event == "provider_stopped":
                running.pop(provider_id, None)
            else:
                running[provider_id] = ref if isinstance(ref, str) else ""

    def provider(self, provider_id: str) -> BuiltinProvider | None:
        """The built-in ``provider_id`` runs on other hosts; None if no other host runs it,
        or if what it serves cannot be told (a reference that is not a built-in, or hosts
        running it from references of different built-ins)."""
        refs = {running[provider_id] for running in self.hosts.values() if provider_id in running}
        found = set()
        for ref in refs:
            try:
                found.add(resolve_provider(ref))
            except UnknownProvider:
                return None
        return found.pop() if len(found) == 1 else None
