"""The paper scheme's fast grid search (core/capgrid.py, paper.stage_caps) against one-cascade-at-a-time readings."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from modelarb.core import paper
from modelarb.core.capgrid import cap_grid_costs
from modelarb.core.grid import BudgetGrid, cascade_curves, cascade_spend, pass_curves
from modelarb.data import Outcomes
from test_engine_paper import markets, naive_cascade, naive_cost

Array = NDArray[np.float64]


@st.composite
def cap_grids(draw: st.DrawFn, stages: int) -> Array:
    """Cap vectors sharing heads (all caps but the last), with zeros, caps below and beyond the budget grid."""
    value = st.one_of(st.just(0.0), st.sampled_from([1e-4, 2e-3, 0.01, 0.05, 0.3, 2.0]), st.floats(1e-4, 1.0))
    heads = draw(st.lists(st.lists(value, min_size=stages - 1, max_size=stages - 1), min_size=1, max_size=4))
    lasts = draw(st.lists(value, min_size=1, max_size=5))
    caps = np.array([[*head, last] for head in heads for last in lasts], dtype=float)
    return caps[draw(st.permutations(range(len(caps))))]


def per_cascade_costs(curves: Array, budgets: Array, caps: Array, levels: Array) -> Array:
    """C_q(u) from each cascade's own curve, built one cascade at a time (METHOD §5.3–5.5)."""
    solve, stage_at = naive_cascade(curves, budgets, caps)
    return naive_cost(solve, cascade_spend(solve, budgets, stage_at), levels)


@settings(max_examples=60, deadline=None)
@given(market=markets(), data=st.data())
def test_cap_grid_costs_equal_each_cascades_own_curve(market: Outcomes, data: st.DataObject) -> None:
    budgets = BudgetGrid(1e-3, 1.0, 40).budgets
    curves = pass_curves(market, budgets)
    caps = data.draw(cap_grids(market.n_providers))
    levels = np.array(data.draw(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=10)))
    costs = cap_grid_costs(curves, budgets, caps, levels).costs()
    solve, stage_at = cascade_curves(curves, budgets, caps)
    shared = naive_cost(solve, cascade_spend(solve, budgets, stage_at), levels)
    np.testing.assert_array_equal(costs, shared)  # the same numbers, not only close ones
    np.testing.assert_allclose(costs, per_cascade_costs(curves, budgets, caps, levels), rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(market=markets(), data=st.data())
def test_cheapest_is_the_first_minimum_of_the_full_table(market: Outcomes, data: st.DataObject) -> None:
    budgets = BudgetGrid(1e-3, 1.0, 40).budgets
    caps = data.draw(cap_grids(market.n_providers))
    best = float(pass_curves(market, budgets).mean(axis=0).max())
    level = st.sampled_from([0.0, best / 3, best / 2, best, 1.0]) | st.floats(0, 1)
    levels = np.array(data.draw(st.lists(level, min_size=1, max_size=12)))
    grid = cap_grid_costs(pass_curves(market, budgets), budgets, caps, levels)
    table = grid.costs()
    cost, index = grid.cheapest()
    np.testing.assert_array_equal(cost, table.min(axis=0))
    np.testing.assert_array_equal(index, np.where(np.isfinite(cost), table.argmin(axis=0), -1))


def stage_caps_one_by_one(stages: int, low: float, high: float, points: int, total: float) -> Array:
    """METHOD §5.7 one vector at a time: trim from the last stage back, keep non-decreasing vectors (zeros ignored)."""
    values = [0.0, *np.logspace(np.log10(low), np.log10(high), points).tolist()]
    kept = set()
    for flat in range(len(values) ** stages):
        caps = [values[(flat // len(values) ** (stages - 1 - m)) % len(values)] for m in range(stages)]
        for m in range(stages - 1, -1, -1):
            caps[m] = max(caps[m] - max(sum(caps) - total, 0.0), 0.0)
        running = [max(caps[: m + 1]) for m in range(stages)]
        if sum(caps) > 0 and all(c == 0 or c >= r * (1 - 1e-12) for c, r in zip(caps[1:], running, strict=False)):
            kept.add(tuple(caps))
    return np.array(sorted(kept))


@settings(max_examples=30, deadline=None)
@given(
    stages=st.integers(1, 4),
    low=st.floats(1e-4, 0.1),
    span=st.floats(1.0, 1e4),
    points=st.integers(1, 7),
    total=st.floats(0.05, 3.0),
)
def test_stage_caps_follow_the_rule_vector_by_vector(
    stages: int, low: float, span: float, points: int, total: float
) -> None:
    want = stage_caps_one_by_one(stages, low, low * span, points, total)
    np.testing.assert_array_equal(paper.stage_caps(stages, low, low * span, points, total), want)


def test_paper_grids_are_unchanged() -> None:
    """The paper's own 4- and 3-stage grids (SWE-bench dollars, Lean compute) vector by vector."""
    for unit, stages in (("USD", 4), ("USD", 3), ("compute", 3)):
        settings_ = paper.PaperSettings.for_unit(unit)
        want = stage_caps_one_by_one(stages, *settings_.stages, total=settings_.total)
        np.testing.assert_array_equal(settings_.stage_caps(stages), want)


@settings(max_examples=30, deadline=None)
@given(market=markets(), data=st.data())
def test_levels_read_in_blocks_choose_as_all_at_once(market: Outcomes, data: st.DataObject) -> None:
    budgets = BudgetGrid(1e-3, 1.0, 40).budgets
    curves = pass_curves(market, budgets)
    caps = data.draw(cap_grids(market.n_providers))
    levels = np.array(data.draw(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12)))
    whole = cap_grid_costs(curves, budgets, caps, levels).cheapest()
    blocks = paper._cheapest(curves, budgets, caps, levels, cells=data.draw(st.integers(1, 8)))
    np.testing.assert_array_equal(blocks[0], whole[0])
    np.testing.assert_array_equal(blocks[1], whole[1])
