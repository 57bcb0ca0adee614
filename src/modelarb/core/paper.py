"""Cascade search in the paper's scheme (METHOD §5.6–5.7, §5.10): cap grids over a budget grid."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from modelarb.core.capgrid import cap_grid_costs
from modelarb.core.cascade import Cascade
from modelarb.core.grid import (
    BudgetGrid,
    cascade_curves,
    cost_for_solve_rate,
    expected_spend,
    level_positions,
    pass_curves,
    stage_spend,
)
from modelarb.core.result import ArbitrageResult
from modelarb.data.outcomes import USD, Outcomes

Array = NDArray[np.float64]
Selection = Literal["per_level", "mean_margin"]
LEVEL_CELLS = 8_000_000  # (heads of caps × levels) cells of one block of levels: ~64 MB per array


@dataclass(frozen=True)
class PaperSettings:
    """The paper's grids for one kind of market (METHOD §5).

    `grid` prices cascades, `market_grid` single providers; `pair`, `stages` and
    `distill_pair` are the (low, high, points) of the log-spaced caps of the pair market,
    of each stage of larger markets and of the distillation pairs; `total` is the sum the
    caps are trimmed to; `distill_levels` fixes the distillation margin's levels (None:
    the top 0.1 below the best solve rate).
    """

    grid: BudgetGrid
    market_grid: BudgetGrid
    pair: tuple[float, float, int]
    stages: tuple[float, float, int]
    total: float
    distill_grid: BudgetGrid
    distill_pair: tuple[float, float, int]
    distill_levels: tuple[float, float] | None

    @classmethod
    def for_unit(cls, unit: str) -> PaperSettings:
        """Dollar markets use the SWE-bench grids; compute-unit markets the Lean ones."""
        if unit == USD:
            usd = BudgetGrid(1e-4, 1.0)
            return cls(
                grid=usd,
                market_grid=usd,
                pair=(0.01, 0.5, 100),
                stages=(1e-3, 1.0, 20),
                total=1.0,
                distill_grid=usd,
                distill_pair=(1e-3, 0.15, 100),
                distill_levels=None,
            )
        lean = BudgetGrid(2e3, 1e9)
        return cls(
            grid=lean,
            market_grid=BudgetGrid(2e3, 3e8),
            pair=(2e3, 1e9, 100),
            stages=(1e4, 1e9, 20),
            total=1e9,
            distill_grid=lean,
            distill_pair=(2e3, 1e9, 100),
            distill_levels=(0.7, 0.9),
        )

    def pair_caps(self) -> Array:
        return pair_caps(*self.pair, total=self.total)

    def stage_caps(self, stages: int) -> Array:
        return stage_caps(stages, *self.stages, total=self.total)

    def distill_caps(self) -> Array:
        """(student, teacher) caps of the distillation pairs (METHOD §5.10)."""
        return pair_caps(*self.distill_pair, total=self.total)

    def distill_solve_rates(self, best: float, points: int = 100) -> Array:
        """Levels of the distillation margin: fixed (Lean), else linspace(best − 0.1, best)."""
        low, high = self.distill_levels or (best - 0.1, best)
        return np.linspace(low, high, points)


def pair_caps(low: float, high: float, points: int = 100, total: float = 1.0) -> Array:
    """Two-stage caps: τ1 ∈ {0} ∪ log-spaced [low, high] ∪ {total}, τ2 = total − τ1 (METHOD §5.6)."""
    first = np.unique(np.concatenate([[0.0], np.logspace(np.log10(low), np.log10(high), points), [total]]))
    return np.stack([first, total - first], axis=1)


@lru_cache(maxsize=8)
def stage_caps(stages: int, low: float, high: float, points: int = 20, total: float = 1.0) -> Array:
    """Caps per stage from {0} ∪ log-spaced [low, high]; sums trimmed to `total` from the last
    stage back; only cap vectors that do not decrease along the cascade (zeros ignored) (METHOD §5.7).

    Sorted lexicographically, each vector once; read-only, made once per process and grid. One column
    per stage while filtering (the grid has (points + 1)^stages vectors before it).
    """
    values = np.concatenate([[0.0], np.logspace(np.log10(low), np.log10(high), points)])
    columns = [grid.ravel() for grid in np.meshgrid(*([values] * stages), indexing="ij")]
    for m in range(stages - 1, -1, -1):
        excess = sum(columns[1:], start=columns[0]) - total
        columns[m] = np.maximum(columns[m] - np.maximum(excess, 0.0), 0.0)
    ok, running = np.ones(len(columns[0]), dtype=bool), columns[0]
    for column in columns[1:]:
        ok &= (column == 0) | (column >= running * (1 - 1e-12))
        running = np.maximum(running, column)
    caps = np.stack([column[ok & (running > 0)] for column in columns], axis=1)
    caps = caps[np.lexsort(caps.T[::-1])]
    caps = caps[np.concatenate([[True], np.any(caps[1:] != caps[:-1], axis=1)])]
    caps.flags.writeable = False
    return caps


def provider_cost_curves(outcomes: Outcomes, levels: Array, grid: BudgetGrid) -> Array:
    """C_p(u) of each provider alone (P, U), on the grid."""
    return _single_costs(pass_curves(outcomes, grid.budgets), grid.budgets, levels)


def _single_costs(curves: Array, budgets: Array, levels: Array) -> Array:
    """C_p(u) (P, U) from per-instance pass curves (I, P, G) on `budgets`."""
    solve = curves.mean(axis=0)
    return cost_for_solve_rate(solve, expected_spend(solve, budgets), levels)


def best_solve_rate(outcomes: Outcomes, grid: BudgetGrid) -> float:
    """The highest solve rate any single provider reaches on the grid."""
    return float(pass_curves(outcomes, grid.budgets).mean(axis=0).max())


def _cheapest(
    curves: Array, budgets: Array, caps: Array, levels: Array, cells: int = LEVEL_CELLS
) -> tuple[Array, NDArray[np.int64]]:
    """`cap_grid_costs(...).cheapest()` a block of levels at a time, so its (heads × levels) arrays stay within
    `cells` cells; each level's choice is its own, so blocks change nothing."""
    heads = len(np.unique(caps[:, :-1], axis=0)) if caps.shape[1] > 1 else 1
    block = max(1, cells // heads)
    found = [cap_grid_costs(curves, budgets, caps, levels[at : at + block]).cheapest()
             for at in range(0, len(levels), block)]  # fmt: skip
    return np.concatenate([cost for cost, _ in found]), np.concatenate([index for _, index in found])


def grid_search(
    outcomes: Outcomes,
    levels: Array,
    caps: Array,
    select: Selection = "per_level",
    grid: BudgetGrid | None = None,
    order: tuple[str, ...] | None = None,
    market_grid: BudgetGrid | None = None,
) -> ArbitrageResult:
    """Cheapest cascade over a cap grid, in the paper's scheme.

    `caps` (K, M) are cap vectors for the providers in `order` (default: the market's).
    `select="per_level"` takes the cheapest cascade at each u; `"mean_margin"` picks the
    one cap vector with the largest mean margin over all u (the paper's pair market).
    Single providers are priced on `market_grid` (default: `grid`).
    """
    grid = grid or BudgetGrid()
    budgets = grid.budgets
    order = order or outcomes.providers
    curves = pass_curves(outcomes, budgets)
    market_grid = market_grid or grid
    if np.array_equal(market_grid.budgets, budgets):
        provider_costs = _single_costs(curves, budgets, levels)
    else:
        provider_costs = provider_cost_curves(outcomes, levels, market_grid)
    market = provider_costs.min(axis=0)
    stage_curves = curves[:, outcomes.provider_index(order), :]

    if select == "per_level":
        best_cost, best_index = _cheapest(stage_curves, budgets, caps, levels)
    else:
        cost = cap_grid_costs(stage_curves, budgets, caps, levels).costs()
        with np.errstate(invalid="ignore"):
            score = (np.maximum(market - cost, 0.0) / market).mean(axis=1)
        best_row = int(np.argmax(score))
        chosen_any = not np.isnan(score[best_row])  # nan: some level no provider reaches, no margin to compare
        best_cost = cost[best_row] if chosen_any else np.full(len(levels), np.inf)
        best_index = np.where(np.isfinite(best_cost), best_row, -1)

    used, cascade_at = np.unique(best_index, return_inverse=True)
    keep = used >= 0
    cascade_at = np.where(best_index >= 0, cascade_at - (~keep).sum(), -1)
    chosen = caps[used[keep]]
    spend_by_provider = _spend_by_provider(stage_curves, budgets, chosen, cascade_at, levels, best_cost)
    columns = outcomes.provider_index(order)
    spend_full = np.zeros((len(levels), outcomes.n_providers))
    spend_full[:, columns] = spend_by_provider
    method = f"paper grid: {len(caps)} cap vectors over {', '.join(order)}, " + (
        "cheapest cascade at each u" if select == "per_level" else "one cap vector maximising the mean margin"
    )
    return ArbitrageResult(
        providers=outcomes.providers,
        cost_unit=outcomes.unit,
        scheme="paper",
        method=method,
        levels=levels,
        provider_costs=provider_costs,
        arbitrage_cost=best_cost,
        cascades=tuple(Cascade(order, tuple(row)) for row in chosen),
        cascade_at=cascade_at,
        spend=spend_full,
    )


def _spend_by_provider(
    stage_curves: Array, budgets: Array, chosen: Array, cascade_at: NDArray[np.int64], levels: Array, cost: Array
) -> Array:
    """The arbitrageur's expected spend on each stage's provider at each u (U, M), summing to C_q(u)."""
    out = np.zeros((len(levels), stage_curves.shape[1]))
    if len(chosen) == 0:
        return out
    solve_q, stage_at = cascade_curves(stage_curves, budgets, chosen)
    per_stage = stage_spend(solve_q, budgets, stage_at, stage_curves.shape[1])  # (C, M, G)
    j, t, _ = level_positions(solve_q, levels)  # (C, U)
    rows = np.arange(len(chosen))[:, None, None]
    stages = np.arange(stage_curves.shape[1])[None, :, None]
    at = (
        per_stage[rows, stages, j[:, None, :]] * (1 - t[:, None, :])
        + per_stage[rows, stages, j[:, None, :] + 1] * t[:, None, :]
    )
    share = at / np.maximum(at.sum(axis=1, keepdims=True), 1e-300)  # (C, M, U)
    valid = cascade_at >= 0
    out[valid] = share[cascade_at[valid], :, np.flatnonzero(valid)] * cost[valid, None]
    return out
