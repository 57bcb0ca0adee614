"""Robust arbitrage's exact evaluation (robust/exact.py) against direct exact evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelarb.core.exact_curves import evaluate_cascades, provider_curves
from modelarb.core.hull import hull_cost, lower_hull
from modelarb.data.outcomes import Outcomes
from modelarb.errors import AnalysisError
from modelarb.robust import RobustScheme, run
from modelarb.robust.exact import best_capped_solve_rate, capped_provider_costs, pair_cascade_costs
from modelarb.robust.fit import exact_evaluation_margins


@st.composite
def pair_markets(draw: st.DrawFn) -> Outcomes:
    """Two providers on 2–5 instances, 1–6 recorded attempts per cell, costs in [0.02, 0.4]."""
    n_i = draw(st.integers(2, 5))
    n = np.array(draw(st.lists(st.integers(1, 6), min_size=2 * n_i, max_size=2 * n_i))).reshape(n_i, 2)
    share = np.array(draw(st.lists(st.floats(0, 1), min_size=2 * n_i, max_size=2 * n_i))).reshape(n_i, 2)
    cost = np.array(draw(st.lists(st.floats(0.02, 0.4), min_size=2 * n_i, max_size=2 * n_i))).reshape(n_i, 2)
    return Outcomes(
        instances=np.array([f"i{k}" for k in range(n_i)]),
        providers=("a", "b"),
        n=n,
        s=np.floor(share * n).astype(np.int64),
        cost=cost,
    )


def global_budgets(outcomes: Outcomes, cap1: float, cap2: float) -> np.ndarray:
    """Every global budget at which some attempt count changes: k·c_i1 up to cap1, cap1 + k·c_i2 up to cap2."""
    k = np.arange(0, 60)[:, None]
    first = (k * outcomes.cost[None, :, 0]).ravel()
    second = cap1 + (k * outcomes.cost[None, :, 1]).ravel()
    return np.unique(np.concatenate([first[first <= cap1], [cap1], second[second <= cap1 + cap2]]))


@settings(max_examples=60, deadline=None)
@given(pair_markets(), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_pair_cascade_costs_equal_the_hull_over_global_budgets(outcomes: Outcomes, cap1: float, cap2: float) -> None:
    b = global_budgets(outcomes, cap1, cap2)
    stage_caps = np.stack([np.minimum(b, cap1), np.clip(b - cap1, 0.0, cap2)], axis=1)
    values = evaluate_cascades(outcomes, ("a", "b"), stage_caps)
    solve, spend = np.append(0.0, values.solve), np.append(0.0, values.spend)
    vertices = lower_hull(solve, spend)
    levels = np.linspace(0.05, float(solve.max()), 17)
    expected = hull_cost(solve[vertices], spend[vertices], levels)
    got = pair_cascade_costs(outcomes, np.array([[cap1, cap2]]), levels)[0]
    assert np.allclose(got, expected, rtol=1e-9, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(pair_markets(), st.floats(0.05, 1.0))
def test_a_zero_first_cap_is_the_second_provider_capped(outcomes: Outcomes, total: float) -> None:
    levels = np.linspace(0.01, 1.0, 23)
    alone = capped_provider_costs(outcomes, levels, total)[1]
    cascade = pair_cascade_costs(outcomes, np.array([[0.0, total]]), levels)[0]
    assert np.allclose(np.nan_to_num(cascade, posinf=-1.0), np.nan_to_num(alone, posinf=-1.0), rtol=1e-9)


@settings(max_examples=40, deadline=None)
@given(pair_markets(), st.floats(0.05, 1.0))
def test_the_best_capped_solve_rate_is_where_the_capped_curves_end(outcomes: Outcomes, total: float) -> None:
    best = best_capped_solve_rate(outcomes, total)
    solve, _ = provider_curves(outcomes, [total])
    assert best == float(solve.max())
    levels = np.array([best, best + 1e-6])
    price = capped_provider_costs(outcomes, levels, total).min(axis=0)
    assert np.isfinite(price[0]) and np.isinf(price[1])


def test_run_scores_fitted_caps_with_the_exact_evaluation_when_asked() -> None:
    rng = np.random.default_rng(3)
    n = np.full((40, 2), 8)
    market = Outcomes(
        instances=np.array([f"i{k}" for k in range(40)]),
        providers=("cheap", "strong"),
        n=n,
        s=rng.binomial(8, np.stack([rng.uniform(0, 0.6, 40), rng.uniform(0.2, 0.9, 40)], axis=1)),
        cost=np.stack([rng.uniform(0.004, 0.012, 40), rng.uniform(0.03, 0.06, 40)], axis=1),
    )
    options = {"fit_budgets": (0.5, 4.0), "bootstraps": 6, "seed": 1, "executor": "serial", "scheme": RobustScheme()}
    paper, exact = run(market, **options), run(market, **options, evaluation="exact")
    assert exact.to_dict()["evaluation"] == "exact"
    assert np.array_equal(paper.first_caps, exact.first_caps, equal_nan=True)  # the same fits
    scheme = RobustScheme()
    scores = exact_evaluation_margins(market, scheme, scheme.caps())
    fitted = ~np.isnan(exact.first_caps)
    index = np.searchsorted(scheme.caps()[:, 0], exact.first_caps[fitted])
    assert np.allclose(exact.margins[fitted], scores[index])
    assert np.all((exact.margins >= 0) & (exact.margins < 1))
    with pytest.raises(AnalysisError, match="unknown evaluation scheme"):
        run(market, **options, evaluation="grid")  # type: ignore[arg-type]
