"""Fit a pair cascade's caps on a fit sample and score candidate caps on full data (METHOD §6)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from modelarb.core.grid import cascade_curves, cost_for_solve_rate, expected_spend, pass_curves
from modelarb.data.outcomes import Outcomes
from modelarb.robust.cascades import SampleCascades
from modelarb.robust.exact import best_capped_solve_rate, capped_provider_costs, pair_cascade_costs
from modelarb.robust.scheme import RobustScheme

Array = NDArray[np.float64]
TIE = 1e-9


def mean_margins(cascade_solve: Array, single_solve: Array, budgets: Array, levels: Array) -> Array:
    """Mean net margin over `levels` of each cascade (K, G) against the market of single providers (P, G)."""
    solve = np.concatenate([cascade_solve, single_solve])
    price = cost_for_solve_rate(solve, expected_spend(solve, budgets), levels)
    return _mean_margin(price[: len(cascade_solve)], price[len(cascade_solve) :].min(axis=0))


def _mean_margin(cascade_cost: Array, market: Array) -> Array:
    """Mean of max(C_P − C_q, 0) / C_P over levels (K, U); a NaN or infinite margin counts as 0, and so
    does one below TIE (rounding where a cascade reduces to the single provider it undercuts)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        margin = np.maximum(market - cascade_cost, 0.0) / market
    return np.where(np.isfinite(margin) & (margin > TIE), margin, 0.0).mean(axis=1)


def fit_caps(costs: Array, scheme: RobustScheme, cascades: SampleCascades) -> int:
    """Index of the caps row with the best mean margin on the fit sample `costs` (draws, 2)."""
    single, cascade = cascades.curves(costs)
    return int(np.argmax(mean_margins(cascade, single, scheme.budgets, scheme.fit_levels(float(single.max())))))


def evaluation_margins(outcomes: Outcomes, scheme: RobustScheme, caps: Array) -> Array:
    """Mean margin of every candidate caps row on the full data of an evaluation domain, shape (K,)."""
    budgets = scheme.budgets
    curves = pass_curves(outcomes, budgets)
    single = curves.mean(axis=0)
    cascade, _ = cascade_curves(curves, budgets, caps)
    return mean_margins(cascade, single, budgets, scheme.eval_levels(float(single.max())))


def exact_evaluation_margins(outcomes: Outcomes, scheme: RobustScheme, caps: Array) -> Array:
    """`evaluation_margins` with exact curves (robust/exact.py) instead of the budget grid, shape (K,)."""
    levels = scheme.eval_levels(best_capped_solve_rate(outcomes, scheme.total_cap))
    market = capped_provider_costs(outcomes, levels, scheme.total_cap).min(axis=0)
    return _mean_margin(pair_cascade_costs(outcomes, caps, levels), market)
