"""The controller's view of the lattice, kept from host events (pure; no I/O).

Heartbeats and ``host.get`` inventories replace a host's record wholesale; the other
events patch it in between. A host is dropped on ``host_stopped`` or when it misses
heartbeats for its timeout: by default three of its own heartbeat intervals, measured
as the median of the gaps between its last heartbeats (``default_interval`` until it has
sent two).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from host_agent.lattice.protocol import InventoryReport
from host_agent.model.manifest import Manifest
from host_agent.placement.inventory import HostInventory
from host_agent.placement.lattice_view import inventory, inventory_for

MISSED_HEARTBEATS = 3
# A host's interval is the median of its last MEASURED_GAPS gaps, and gaps shorter than
# BURST_GAP are no interval at all: after an outage a host sends the heartbeats it held
# back all at once, plus one on reconnecting. Measured from the last gap alone, such a
# burst made a host's timeout milliseconds long, and the controller dropped every host
# right after NATS came back (tests/e2e/test_crash_recovery.py failed on it in CI).
MEASURED_GAPS = 5
BURST_GAP = 0.2
# How long a sent scale command may take before it is sent again. A host acknowledges a
# scale at once and reports the outcome as an event; the first compile of a large
# component (componentize-py's are ~40 MB) takes tens of seconds on a small machine.
SCALE_TIMEOUT = 120.0


@dataclass
class ComponentSeen:
    image_ref: str
    count: int
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class ProviderSeen:
    image_ref: str
    annotations: dict[str, str] = field(default_factory=dict)
    # False from provider_started until health_check_passed (wadm's Pending -> Running).
    healthy: bool = True


@dataclass
class HostRecord:
    id: str
    labels: dict[str, str] = field(default_factory=dict)
    components: dict[str, ComponentSeen] = field(default_factory=dict)
    providers: dict[str, ProviderSeen] = field(default_factory=dict)
    last_seen: float = 0.0
    last_heartbeat: float | None = None
    gaps: tuple[float, ...] = ()  # the last MEASURED_GAPS gaps between heartbeats

    @property
    def interval(self) -> float | None:
        """The measured heartbeat interval: the median of ``gaps`` (None before two)."""
        return statistics.median(self.gaps) if self.gaps else None

    def runs(self, workload_id: str) -> int:
        """Instances of a component (its count) or provider (1) with this id."""
        if workload_id in self.components:
            return self.components[workload_id].count
        return 1 if workload_id in self.providers else 0

    def workload_ids(self) -> list[str]:
        return [*self.components, *self.providers]


@dataclass(frozen=True)
class PendingScale:
    """A scale command sent to a host whose component_scaled (or _failed) event has not
    arrived yet: not sent again, and not counted as running, until then."""

    image_ref: str
    count: int
    deadline: float


@dataclass(frozen=True)
class StartFailure:
    """A provider that failed to start on a host: retried with exponential backoff."""

    error: str
    attempts: int
    at: float

    def retry_at(self, max_backoff: float) -> float:
        return self.at + min(max_backoff, 2.0 ** (self.attempts - 1))


@dataclass
class LatticeView:
    default_interval: float = 30.0
    host_timeout: float | None = None  # fixed timeout; None = MISSED_HEARTBEATS intervals
    hosts: dict[str, HostRecord] = field(default_factory=dict)
    start_failures: dict[tuple[str, str], StartFailure] = field(default_factory=dict)
    scale_failures: dict[tuple[str, str], str] = field(default_factory=dict)
    pending_scales: dict[tuple[str, str], PendingScale] = field(default_factory=dict)
    # Link puts a host refused (source, namespace, package, name) -> its reason, e.g. a
    # secret the link names that the backend does not have.
    link_failures: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
    # The controller lost NATS: no host can be heard, so no host may time out (cut_off
    # until rejoined). Kept here, not by the caller's timing: nats-py reports the
    # connection usable (and answers requests held back during the outage) before it
    # calls the reconnected callback, so a round in between would drop every host.
    cut_off: bool = False

    def lost_the_lattice(self) -> None:
        self.cut_off = True

    def rejoined(self, now: float) -> None:
        """Heartbeats missed while the controller itself was cut off say nothing about
        the hosts: their deadlines start again now."""
        self.cut_off = False
        for host in self.hosts.values():
            host.last_seen = max(host.last_seen, now)

    def expect_scale(
        self, host_id: str, component_id: str, image_ref: str, count: int, now: float
    ) -> None:
        self.pending_scales[(host_id, component_id)] = PendingScale(
            image_ref, count, now + SCALE_TIMEOUT
        )

    def awaiting_scale(
        self, host_id: str, component_id: str, image_ref: str, count: int, now: float
    ) -> bool:
        """Whether this very scale was sent and its outcome is still to come."""
        pending = self.pending_scales.get((host_id, component_id))
        return (
            pending is not None
            and (pending.image_ref, pending.count) == (image_ref, count)
            and now < pending.deadline
        )

    # ---------------------------------------------------------------------------------
    def apply_inventory(
        self, inventory: Mapping[str, Any], now: float, heartbeat: bool = False
    ) -> None:
        """A heartbeat or ``host.get`` reply: the host's complete state. A malformed one
        raises ``BadRequest`` naming the field and leaves the view as it was."""
        report = InventoryReport.parse(inventory, "heartbeat" if heartbeat else "host inventory")
        host_id = report.host_id
        previous = self.hosts.get(host_id)
        gaps = previous.gaps if previous else ()
        last_heartbeat = previous.last_heartbeat if previous else None
        if heartbeat:  # only heartbeat-to-heartbeat gaps count
            if last_heartbeat is not None and now - last_heartbeat >= BURST_GAP:
                gaps = (*gaps, now - last_heartbeat)[-MEASURED_GAPS:]
            last_heartbeat = now
        self.hosts[host_id] = HostRecord(
            id=host_id,
            labels=report.labels,
            components={
                c.id: ComponentSeen(c.ref, c.max_instances, c.annotation_map)
                for c in report.components
            },
            providers={
                p.id: ProviderSeen(p.ref, p.annotation_map, _was_healthy(previous, p.id))
                for p in report.providers
            },
            last_seen=now,
            last_heartbeat=last_heartbeat,
            gaps=gaps,
        )

    def apply_event(self, event: str, source: str, data: Mapping[str, Any], now: float) -> None:
        """Patch the view from one CloudEvent (``source`` is the host id)."""
        if event == "host_heartbeat":
            inventory = {**data, "host_id": data.get("host_id") or source}
            self.apply_inventory(inventory, now, heartbeat=True)
            return
        if event == "host_stopped":
            self.drop(source)
            return
        host = self.hosts.get(source)
        if event == "host_started":
            # A (re)started host runs nothing yet and forgot what it was asked to do: a
            # host killed and started again with its id must not keep its old inventory
            # until its first heartbeat (one interval later), or nothing is restarted.
            # Nor its measured interval: it may have restarted with another (a Host's
            # heartbeatSeconds changed), and three old short ones would drop it before
            # its first new heartbeat. The default serves until two heartbeats measure it.
            self.pending_scales = {k: v for k, v in self.pending_scales.items() if k[0] != source}
            self.hosts[source] = HostRecord(source, dict(data.get("labels") or {}), last_seen=now)
            return
        if host is None:
            return  # an unknown host's heartbeat or inventory will bring its full state
        host.last_seen = max(host.last_seen, now)
        if event == "labels_changed":
            host.labels = dict(data.get("labels") or {})
        elif event == "component_scaled":
            self._component_scaled(host, data)
        elif event == "component_scale_failed":
            component_id = str(data.get("component_id"))
            self.pending_scales.pop((source, component_id), None)
            self.scale_failures[(source, component_id)] = str(data.get("error"))
            host.components.pop(component_id, None)
        elif event == "provider_started":
            provider_id = str(data.get("provider_id"))
            host.providers[provider_id] = ProviderSeen(
                str(data.get("image_ref", "")), dict(data.get("annotations") or {}), False
            )
            self.start_failures.pop((source, provider_id), None)
        elif event in ("health_check_passed", "health_check_failed"):
            provider = host.providers.get(str(data.get("provider_id")))
            if provider is not None:
                provider.healthy = event == "health_check_passed"
        elif event == "provider_start_failed":
            host.providers.pop(str(data.get("provider_id")), None)
            self.record_start_failure(source, str(data.get("provider_id")), data, now)
        elif event == "provider_stopped":
            provider_id = str(data.get("provider_id"))
            host.providers.pop(provider_id, None)
            reason = str(data.get("reason") or "")
            if reason.startswith("exited"):  # it crashed; a requested stop says "stop"
                self.record_start_failure(source, provider_id, {"error": reason}, now)

    def _component_scaled(self, host: HostRecord, data: Mapping[str, Any]) -> None:
        component_id = str(data.get("component_id") or data.get("public_key") or "")
        count = int(data.get("max_instances", 0))
        self.scale_failures.pop((host.id, component_id), None)
        self.pending_scales.pop((host.id, component_id), None)
        if count == 0:
            host.components.pop(component_id, None)
        else:
            host.components[component_id] = ComponentSeen(
                str(data.get("image_ref", "")), count, dict(data.get("annotations") or {})
            )

    def record_start_failure(
        self, host_id: str, provider_id: str, data: Mapping[str, Any], now: float
    ) -> None:
        earlier = self.start_failures.get((host_id, provider_id))
        attempts = earlier.attempts + 1 if earlier else 1
        error = str(data.get("error") or "provider failed to start")
        self.start_failures[(host_id, provider_id)] = StartFailure(error, attempts, now)

    def drop(self, host_id: str) -> bool:
        self.start_failures = {k: v for k, v in self.start_failures.items() if k[0] != host_id}
        self.scale_failures = {k: v for k, v in self.scale_failures.items() if k[0] != host_id}
        self.pending_scales = {k: v for k, v in self.pending_scales.items() if k[0] != host_id}
        return self.hosts.pop(host_id, None) is not None

    def timeout_of(self, host: HostRecord) -> float:
        if self.host_timeout is not None:
            return self.host_timeout
        return MISSED_HEARTBEATS * (host.interval or self.default_interval)

    def expire(self, now: float) -> list[str]:
        """Drop hosts that missed their heartbeats; return their ids."""
        if self.cut_off:
            return []
        gone = [h.id for h in self.hosts.values() if now - h.last_seen > self.timeout_of(h)]
        for host_id in gone:
            self.drop(host_id)
        return gone

    def next_expiry(self) -> float | None:
        """When the next host would time out (so the controller wakes up right then)."""
        if self.cut_off:
            return None
        deadlines = [h.last_seen + self.timeout_of(h) for h in self.hosts.values()]
        return min(deadlines, default=None)

    def inventory_for(self, manifest: Manifest) -> list[HostInventory]:
        """Hosts as the planner sees them for ``manifest`` (the one rule preview and the
        controller share: host_agent.placement.lattice_view)."""
        return inventory_for(manifest, self.hosts.values())

    def inventory(self, ids: Mapping[str, str]) -> list[HostInventory]:
        """Hosts as the planner sees them; ``ids`` maps manifest component name -> lattice id."""
        return inventory(ids, self.hosts.values())


def _was_healthy(previous: HostRecord | None, provider_id: str) -> bool:
    """Inventories carry no health: keep what events said; a provider first seen in an
    inventory (say, after a controller restart) is taken as healthy."""
    seen = previous.providers.get(provider_id) if previous else None
    return seen.healthy if seen else True
