"""The lower convex hull of (solve, spend) points against Qhull and against its definition."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from modelarb.core import hull
from modelarb.core.hull import lower_hull, pareto_front


def _qhull(solve: np.ndarray, spend: np.ndarray) -> np.ndarray:
    """The lower chain of the Pareto front by Qhull: the front in the unit square, closed by the corner (0, 1)."""
    front = pareto_front(solve, spend)
    if len(front) <= 2:
        return front
    x, y = solve[front], spend[front]
    corner = np.column_stack([np.append((x - x[0]) / (x[-1] - x[0]), 0.0), np.append((y - y[0]) / (y[-1] - y[0]), 1.0)])
    vertices = ConvexHull(corner).vertices
    return front[np.sort(vertices[vertices < len(front)])]


def _markets(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random point sets: uniform, rounded to a grid (many exactly collinear points), and cost curves that rise
    in runs of equal slope."""
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(300):
        n = int(rng.integers(3, 300))
        sets.append((rng.random(n), rng.random(n) ** rng.choice([0.5, 1.0, 3.0])))
        sets.append((np.round(rng.random(n), 2), np.round(rng.random(n), 2)))
        slope = np.repeat(rng.random(n // 4 + 1), 4)[:n]
        sets.append((np.sort(rng.random(n)), np.cumsum(rng.random(n) * slope)))
    return sets


@pytest.mark.parametrize("seed", [0, 1])
def test_lower_hull_matches_qhull(seed: int) -> None:
    for solve, spend in _markets(seed):
        assert np.array_equal(lower_hull(solve, spend), _qhull(solve, spend))


def test_lower_hull_is_convex_and_below_every_point() -> None:
    for solve, spend in _markets(2)[:300]:
        vertices = lower_hull(solve, spend)
        x, y = solve[vertices], spend[vertices]
        assert np.all(np.diff(x) > 0)
        slopes = np.diff(y) / np.diff(x)
        assert np.all(np.diff(slopes) > 0)
        inside = (solve >= x[0]) & (solve <= x[-1])
        assert np.all(spend[inside] >= np.interp(solve[inside], x, y) - 1e-12)


def test_the_point_by_point_finish_gives_the_same_hull(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the vectorised passes run out, the rest is built one point at a time, to the same hull."""
    sets = _markets(3)[:150]
    expected = [lower_hull(solve, spend) for solve, spend in sets]
    monkeypatch.setattr(hull, "HULL_PASSES", 1)
    for (solve, spend), vertices in zip(sets, expected, strict=True):
        assert np.array_equal(lower_hull(solve, spend), vertices)
