"""Apportioning a scaler's instances across its spreads, exactly as wadm 0.20 does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from host_agent.model.manifest import Spread

DEFAULT_SPREAD = Spread(name="default", requirements={})


@dataclass(frozen=True)
class SpreadTarget:
    spread: Spread
    count: int


def apportion(instances: int, spreads: Sequence[Spread]) -> list[SpreadTarget]:
    """Split ``instances`` over ``spreads`` by weight.

    Sort by weight, heaviest first (stable, so ties keep manifest order); each spread gets
    ``floor(instances * weight / total)``; the remainder goes one each from the top.
    No spreads means one implicit spread that matches every host.
    """
    if not spreads:
        return [SpreadTarget(DEFAULT_SPREAD, instances)]
    ordered = sorted(spreads, key=lambda s: -s.effective_weight)
    total = sum(s.effective_weight for s in ordered)
    if total == 0:
        # The model refuses all-zero weights; stay total here rather than divide by zero.
        return [SpreadTarget(s, 0) for s in ordered]
    counts = [instances * s.effective_weight // total for s in ordered]
    remainder = instances - sum(counts)
    for index in range(remainder):
        counts[index] += 1
    return [SpreadTarget(s, n) for s, n in zip(ordered, counts, strict=True)]
