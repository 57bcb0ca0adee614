"""C_q(u) of every cap vector of a cap grid at once (METHOD §5.3–5.5), without a curve per cascade.

Cap vectors that differ only in their last cap share one curve up to that cap: call it their head's
open curve (the last stage never stops). Past its last cap a cascade buys nothing more: its solve
rate jumps to its final value and its spend stays at E(e − 1), e the first grid point past the cap.
So C_q(u) is the open curve's C(u) wherever the crossing of u lies before e − 1 (u below the open
curve's monotone P at e − 1), E(e − 1) from there up to the final solve rate, and ∞ above: the same
numbers as reading each cascade's own curve, computed on one curve per head instead of per cascade.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelarb.core.grid import cost_for_solve_rate, read_stage_rows, spend_steps, stage_tables, stages_done

Array = NDArray[np.float64]
TINY_SPEND = 1e-300  # what log E reads for a spend of 0, as in `cost_for_solve_rate`
ABOVE = 1e-12  # a level counts as reached up to this far above a curve's top, as in `level_positions`


@dataclass(frozen=True)
class CapGridCosts:
    """C_q(u) of K cap vectors at U levels, held as one cost row per head and three numbers per cascade.

    Cascade k costs `open_cost[head[k]]` at levels u < `follows[k]`, `capped[k]` at levels up to `top[k]`,
    and ∞ above.
    """

    levels: Array
    open_cost: Array
    head: NDArray[np.int64]
    follows: Array
    capped: Array
    top: Array

    def costs(self) -> Array:
        """C_q(u) of every cascade (K, U)."""
        u = self.levels[None, :]
        capped = np.where(u <= self.top[:, None], self.capped[:, None], np.inf)
        return np.where(u < self.follows[:, None], self.open_cost[self.head], capped)

    def cheapest(self) -> tuple[Array, NDArray[np.int64]]:
        """Per level, the least C_q(u) and the first cascade (lowest index) that costs it; -1 where none reaches u.

        The same as `costs()` read by its first minimum per level, without its K × U table: heads compete
        through the first of their cascades still on the open curve at u, and each cascade's capped cost
        holds over a run of (sorted) levels.
        """
        n_cascades, n_levels = len(self.head), len(self.levels)
        order = np.argsort(self.levels, kind="stable")
        ordered = self.levels[order]
        open_until = np.searchsorted(ordered, self.follows, side="left")  # sorted levels below `follows`
        capped_until = np.searchsorted(ordered, self.top, side="right")
        # per head and sorted level: the first of its cascades whose open stretch reaches past that level
        first = np.full((len(self.open_cost), n_levels + 1), n_cascades)
        np.minimum.at(first, (self.head, open_until), np.arange(n_cascades))
        first = np.minimum.accumulate(first[:, ::-1], axis=1)[:, -2::-1]  # index r: open at sorted level r
        open_cost = np.where(first < n_cascades, self.open_cost[:, order], np.inf)
        best_open = open_cost.min(axis=0)
        open_index = np.where(open_cost == best_open, first, n_cascades).min(axis=0)
        # capped stretches: (cascade, sorted level) pairs
        runs = np.maximum(capped_until - open_until, 0)
        who = np.repeat(np.arange(n_cascades), runs)
        at = np.arange(len(who)) - np.repeat(np.cumsum(runs) - runs, runs) + open_until[who]
        best_capped = np.full(n_levels, np.inf)
        np.minimum.at(best_capped, at, self.capped[who])
        capped_index = np.full(n_levels, n_cascades)
        tied = self.capped[who] == best_capped[at]
        np.minimum.at(capped_index, at[tied], who[tied])
        best = np.minimum(best_open, best_capped)
        index = np.minimum(
            np.where(best_open == best, open_index, n_cascades), np.where(best_capped == best, capped_index, n_cascades)
        )
        cost, chosen = np.empty(n_levels), np.empty(n_levels, dtype=np.int64)
        cost[order] = best
        chosen[order] = np.where(np.isfinite(best), index, -1)
        return cost, chosen


def cap_grid_costs(curves: Array, budgets: Array, caps: Array, levels: Array) -> CapGridCosts:
    """C_q(u) of the cascades with caps `caps` (K, M) over per-instance pass curves (I, M, G).

    Equal to `cost_for_solve_rate` of each cascade's `cascade_curves` and `cascade_spend`.
    """
    n_budgets = len(budgets)
    tables = stage_tables(curves, budgets, caps)
    _, first = np.unique(tables.head, return_index=True)
    # each head's open curve: the stages before the last end where its caps say, the last never does
    stage = stages_done(tables.ends[first, :-1], n_budgets)
    solve = 1.0 - read_stage_rows(tables.rows, tables.row_of[first], stage)
    spend = np.cumsum(spend_steps(solve, budgets), axis=1)
    reached = np.maximum.accumulate(solve, axis=1)

    end = tables.ends[:, -1]
    last = np.maximum(end - 1, 0)
    reached_last = np.where(end > 0, reached[tables.head, last], -np.inf)
    spent = np.where(end > 0, spend[tables.head, last], 0.0)
    return CapGridCosts(
        levels=levels,
        open_cost=cost_for_solve_rate(solve, spend, levels),
        head=tables.head,
        follows=np.where(end >= n_budgets, np.inf, reached_last),
        capped=np.exp(np.log(np.maximum(spent, TINY_SPEND))),
        top=np.maximum(1.0 - tables.beyond, reached_last) + ABOVE,
    )
