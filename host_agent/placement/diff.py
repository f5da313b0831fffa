"""Per-host differences between two placements (what preview shows as +/-)."""

from __future__ import annotations

from collections.abc import Mapping

Placements = Mapping[str, Mapping[str, int]]


def diff_placement(old: Placements, new: Placements) -> dict[str, dict[str, int]]:
    """``{component: {host: delta}}`` for every host whose count changes; no zero entries."""
    moves: dict[str, dict[str, int]] = {}
    for name in [*old, *(n for n in new if n not in old)]:
        before, after = old.get(name, {}), new.get(name, {})
        deltas = {
            host: after.get(host, 0) - before.get(host, 0)
            for host in sorted({*before, *after})
            if after.get(host, 0) != before.get(host, 0)
        }
        if deltas:
            moves[name] = deltas
    return moves


def running_placements(running: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """Invert ``{host: {component: count}}`` into ``{component: {host: count}}``."""
    out: dict[str, dict[str, int]] = {}
    for host, counts in running.items():
        for name, count in counts.items():
            if count > 0:
                out.setdefault(name, {})[host] = count
    return out
