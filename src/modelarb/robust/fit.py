"""Fit a pair cascade's caps on a fit sample and evaluate caps on full data (METHOD §6, paper scheme)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from modelarb.core.grid import BudgetGrid, cascade_curves, cost_for_solve_rate, expected_spend, pass_curves
from modelarb.core.paper import pair_caps
from modelarb.data.outcomes import Outcomes

Array = NDArray[np.float64]
TIE = 1e-9


@dataclass(frozen=True)
class RobustScheme:
    """The numbers of METHOD §6: budget grid, cap grid, censoring cap, fit and evaluation levels.

    `shared_uniform`: one uniform per draw serves every provider's inverse-CDF sample, as in
    the paper (its published margins need it); False samples providers independently.
    """

    grid: BudgetGrid = field(default_factory=BudgetGrid)
    total_cap: float = 1.0
    cap_low: float = 1e-4
    cap_high: float = 0.5
    cap_points: int = 100
    censor_at: float = 0.5
    shared_uniform: bool = True
    fit_level_low: float = 0.1
    fit_level_points: int = 100
    eval_window: float = 0.05
    eval_level_points: int = 20

    @property
    def budgets(self) -> Array:
        return self.grid.budgets

    def caps(self) -> Array:
        """Candidate caps (K, 2): τ_1 ∈ {0} ∪ log-spaced [cap_low, cap_high] ∪ {total}, τ_2 = total − τ_1."""
        return pair_caps(self.cap_low, self.cap_high, self.cap_points, self.total_cap)

    def fit_levels(self, single_solve: Array) -> Array:
        """Solve rates the fit averages over: fit_level_low to the best single provider's rate in the sample."""
        return np.linspace(self.fit_level_low, float(single_solve.max()), self.fit_level_points)

    def eval_levels(self, single_solve: Array) -> Array:
        """Solve rates the evaluation averages over: the top `eval_window` below the best single provider."""
        best = float(single_solve.max())
        return np.linspace(best - self.eval_window, best, self.eval_level_points)


def mean_margins(cascade_solve: Array, single_solve: Array, budgets: Array, levels: Array) -> Array:
    """Mean net margin over `levels` of each cascade (K, G) against the market of single providers (P, G).

    Margin max(C_P − C_q, 0) / C_P at each level; a NaN or infinite margin counts as 0, and so
    does one below TIE (rounding where a cascade reduces to the single provider it undercuts).
    """
    solve = np.concatenate([cascade_solve, single_solve])
    price = cost_for_solve_rate(solve, expected_spend(solve, budgets), levels)
    cascade_cost, market = price[: len(cascade_solve)], price[len(cascade_solve) :].min(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        margin = np.maximum(market - cascade_cost, 0.0) / market
    return np.where(np.isfinite(margin) & (margin > TIE), margin, 0.0).mean(axis=1)


def sample_cascade_curves(costs: Array, budgets: Array, caps: Array) -> tuple[Array, Array]:
    """Solve curves of the two providers (2, G) and of pair cascades (K, G) on a fit sample (draws, 2).

    The same numbers as `cascade_curves` on the per-draw pass curves 1[cost <= b], computed
    from the joint distribution of how many grid budgets lie below each draw's two costs
    (its "counts"): a draw fails at exactly the grid points below its cost. O(draws + K·G),
    no matrix products.
    """
    width = len(budgets) + 1
    counts = np.searchsorted(budgets, costs, side="left")
    cells = np.bincount(counts[:, 0] * width + counts[:, 1], minlength=width * width)
    joint = cells.reshape(width, width) / len(costs)
    single_fail = _fail_curves(np.stack([joint.sum(axis=1), joint.sum(axis=0)]))
    first, second = caps[:, 0], caps[:, 1]
    # unsolved after stage 1, by stage-2 count: rows of `joint` weighted by stage 1's failure at its cap
    j, t, whole = _cap_position(budgets, first)
    tail = np.vstack([np.cumsum(joint[::-1], axis=0)[::-1], np.zeros((1, width))])  # tail[c]: mass of counts >= c
    carried = np.where(whole[:, None], tail[0], tail[j + 2] + (1.0 - t)[:, None] * joint[j + 1])
    j2, t2, whole2 = _cap_position(budgets, second)
    rows = np.arange(len(caps))
    left = carried.sum(axis=1)
    final = np.where(whole2, left, _fail_curves(carried)[rows, j2 + 1] + (1.0 - t2) * carried[rows, j2 + 1])
    x = budgets[None, :] - first[:, None]
    in_first = budgets[None, :] <= first[:, None]
    in_second = ~in_first & (budgets[None, :] <= (first + second)[:, None])
    stage2 = _read_rows(_fail_curves(carried), budgets, x, left)
    failure = np.where(in_first, single_fail[0], np.where(in_second, stage2, final[:, None]))
    return 1.0 - single_fail, 1.0 - failure


def _fail_curves(mass: Array) -> Array:
    """Failure curves (..., G) from mass (..., G + 1) by count: at grid point g, the mass of counts > g."""
    return np.cumsum(mass[..., ::-1], axis=-1)[..., ::-1][..., 1:]


def _cap_position(budgets: Array, caps: Array) -> tuple[NDArray[np.int64], Array, NDArray[np.bool_]]:
    """Where caps fall on the grid (segment j, fraction t in log b), and caps that buy nothing (0 or below the grid).

    A draw with count c then fails at the cap with weight 1 if c >= j + 2, 1 − t if c = j + 1, else 0.
    """
    j, t = _log_position(budgets, caps)
    return j, t, (caps <= 0) | (caps < budgets[0])


def _log_position(budgets: Array, x: Array) -> tuple[NDArray[np.int64], Array]:
    """Grid segment j and fraction t of each budget x, linear in log b (as `core.grid` reads curves)."""
    log_b = np.log(budgets)
    with np.errstate(divide="ignore"):
        log_x = np.log(np.maximum(x, budgets[0]))
    j = np.clip(np.searchsorted(log_b, log_x, side="right") - 1, 0, len(budgets) - 2)
    return j, np.clip((log_x - log_b[j]) / (log_b[j + 1] - log_b[j]), 0.0, 1.0)


def _read_rows(table: Array, budgets: Array, x: Array, below: Array) -> Array:
    """Row k of `table` (K, G) read at budgets x[k] (linear in log b); below the grid: below[k]."""
    j, t = _log_position(budgets, x)
    lo, hi = np.take_along_axis(table, j, axis=1), np.take_along_axis(table, j + 1, axis=1)
    return np.where(x < budgets[0], below[:, None], lo + t * (hi - lo))


def fit_caps(costs: Array, scheme: RobustScheme, caps: Array) -> int:
    """Index of the caps (rows of `caps`) with the best mean margin on the fit sample `costs` (draws, 2)."""
    single, cascade = sample_cascade_curves(costs, scheme.budgets, caps)
    return int(np.argmax(mean_margins(cascade, single, scheme.budgets, scheme.fit_levels(single))))


def evaluation_margins(outcomes: Outcomes, scheme: RobustScheme, caps: Array) -> Array:
    """Mean margin of every candidate caps row on the full data of an evaluation domain, shape (K,)."""
    budgets = scheme.budgets
    curves = pass_curves(outcomes, budgets)
    single = curves.mean(axis=0)
    cascade, _ = cascade_curves(curves, budgets, caps)
    return mean_margins(cascade, single, budgets, scheme.eval_levels(single))
