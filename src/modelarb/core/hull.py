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

    The front rises in both coordinates; scaled to the unit square with the corner (0, 1)
    added, its convex hull is the lower chain plus two edges through that corner.
    """
    from scipy.spatial import ConvexHull  # scipy takes ~0.3 s to load: only when a hull is built

    front = pareto_front(solve, spend)
    if len(front) <= 2:
        return front
    x, y = solve[front], spend[front]
    points = np.column_stack([np.append((x - x[0]) / (x[-1] - x[0]), 0.0), np.append((y - y[0]) / (y[-1] - y[0]), 1.0)])
    vertices = ConvexHull(points).vertices
    return front[np.sort(vertices[vertices < len(front)])]


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
