"""The lower convex hull of (solve rate, spend) points, and C(u) read off it (METHOD §3–4).

Mixing two cap choices (randomising per customer) reaches any point on the segment
between them, so the least expected spend for a solve rate of at least u is the lower
convex hull of the achievable points, read at u, and +∞ above the highest solve rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
Index = NDArray[np.int64]

REACH_TOLERANCE = 1e-9  # a solve rate this close above the top of a hull still counts as reached
SAME_SOLVE = 1e-12  # solve rates this close are the same up to rounding
TURN_TOLERANCE = 1e-12  # relative: a point this close to its neighbours' chord is on it (rounding)
HULL_PASSES = 64  # vectorised passes of `lower_hull` before it finishes one point at a time


def pareto_front(solve: Array, spend: Array) -> Index:
    """Indices of the points that no other point beats (solve ≥ and spend ≤), by increasing solve.

    A point barely above a cheaper one (by rounding, `SAME_SOLVE`) is beaten by it.
    """
    order = np.lexsort((spend, -solve))  # highest solve first, cheapest first among equals
    ordered = spend[order]
    cheapest_above = np.minimum.accumulate(np.concatenate(([np.inf], ordered[:-1])))
    front = order[ordered < cheapest_above][::-1]
    return front[np.diff(solve[front], prepend=-np.inf) > SAME_SOLVE]


def lower_hull(solve: Array, spend: Array) -> Index:
    """Vertices of the lower convex hull of the Pareto front, by increasing solve rate.

    The front rises in both coordinates. Scaled to the unit square, a point on or above the chord
    between its neighbours is no vertex; dropping all such points at once and repeating leaves the
    chain of strict turns: the lower hull (points on an edge, up to rounding, are dropped).
    """
    front = pareto_front(solve, spend)
    if len(front) <= 2:
        return front
    x = (solve[front] - solve[front[0]]) / (solve[front[-1]] - solve[front[0]])
    y = (spend[front] - spend[front[0]]) / (spend[front[-1]] - spend[front[0]])
    keep = np.arange(len(front))
    for _ in range(HULL_PASSES):
        turn = _turns(x[keep], y[keep])
        if turn.all():
            return front[keep]
        keep = keep[np.r_[True, turn, True]]
    return front[_monotone_chain(x[keep], y[keep], keep)]


def _turns(x: Array, y: Array) -> NDArray[np.bool_]:
    """Whether each interior point lies below the chord between its neighbours by more than rounding."""
    rise, run = (x[1:-1] - x[:-2]) * (y[2:] - y[:-2]), (y[1:-1] - y[:-2]) * (x[2:] - x[:-2])
    return rise - run > TURN_TOLERANCE * (np.abs(rise) + np.abs(run))


def _monotone_chain(x: Array, y: Array, index: Index) -> Index:
    """The lower hull of points sorted by x, one point at a time (`lower_hull` once its passes stop shrinking)."""
    chain: list[int] = []
    for k in range(len(x)):
        while len(chain) >= 2 and not _turns(x[[chain[-2], chain[-1], k]], y[[chain[-2], chain[-1], k]])[0]:
            chain.pop()
        chain.append(k)
    return index[chain]


def hull_cost(hull_solve: Array, hull_spend: Array, solve: Array) -> Array:
    """The hull (vertices by increasing solve) at each solve rate: flat below it, +∞ above it."""
    top = hull_solve[-1] + REACH_TOLERANCE
    cost = np.interp(np.minimum(solve, hull_solve[-1]), hull_solve, hull_spend)
    return np.where(solve > top, np.inf, cost)


@dataclass(frozen=True, eq=False)
class HullReading:
    """C(u) on a hull at each level u, as a mix of two vertices: `weight` of the customers go to `right`."""

    left: Index
    right: Index
    weight: Array
    cost: Array
    reached: NDArray[np.bool_]


def read_hull(hull_solve: Array, hull_spend: Array, levels: Array) -> HullReading:
    """Which hull vertices serve each level u and in what proportion; cost +∞ where u is out of reach."""
    last = len(hull_solve) - 1
    reached = levels <= hull_solve[-1] + REACH_TOLERANCE
    right = np.minimum(np.searchsorted(hull_solve, levels, side="left"), last)
    left = np.maximum(right - 1, 0)
    span = hull_solve[right] - hull_solve[left]
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.clip(np.where(span > 0, (levels - hull_solve[left]) / span, 1.0), 0.0, 1.0)
    cost = hull_spend[left] + weight * (hull_spend[right] - hull_spend[left])
    return HullReading(left, right, weight, np.where(reached, cost, np.inf), reached)
