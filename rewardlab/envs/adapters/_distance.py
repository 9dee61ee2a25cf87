"""What goal-reaching adapters share: the largest progress short of success, and the distance
progress of Fetch's and Meta-World's tasks."""

from __future__ import annotations

import math

BELOW_ONE = math.nextafter(1.0, 0.0)
"""The largest progress short of success: 1 is for success states alone."""


def distance_progress(
    start: tuple[float, float],
    d: float,
    h: float,
    radius: float,
    reach_weight: float | None,
) -> float:
    """Progress of a goal-reaching state short of success, in ``[0, 1)``.

    ``place = clip((d0 - d) / (d0 - radius), 0, 1)``: the goal distance ``d`` from its start
    ``d0`` down to the success radius. With an object to move (``reach_weight`` not None), the
    hand's approach ``reach = clip(1 - h / h0, 0, 1)`` counts for ``reach_weight`` of it.

    Args:
        start: ``(d0, h0)``, the goal and hand-to-object distances at the episode's start.
        d: Goal distance now.
        h: Hand-to-object distance now.
        radius: The success radius of ``d``.
        reach_weight: Share of the hand's approach, or None without an object.
    """
    d0, h0 = start
    place = min(1.0, max(0.0, (d0 - d) / (d0 - radius))) if d0 > radius else 0.0
    value = place
    if reach_weight is not None:
        reach = min(1.0, max(0.0, 1.0 - h / h0)) if h0 > 0.0 else 0.0
        value = reach_weight * reach + (1.0 - reach_weight) * place
    return min(value, BELOW_ONE)
