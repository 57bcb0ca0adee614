"""C_q(u) of every cap vector of a cap grid at once (METHOD §5.3–5.5), without a curve per cascade.

Cap vectors that differ only in their last cap share one curve up to that cap: call it the head's
open curve (the last stage never stops). Past its last cap a cascade buys nothing more: its solve
rate jumps to its final value and its spend stays at E(e − 1), e the first grid point past the cap.
So C_q(u) is the open curve's C(u) wherever the crossing of u lies before e − 1 (u below the open
curve's monotone P at e − 1), E(e − 1) from there up to the final solve rate, and ∞ above: the same
numbers as reading each cascade's own curve, computed on one curve per head instead of per cascade.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from modelarb.core.grid import cost_for_solve_rate, read_stage_rows, spend_steps, stage_tables, stages_done

Array = NDArray[np.float64]
TINY_SPEND = 1e-300  # what log E reads for a spend of 0, as in `cost_for_solve_rate`
ABOVE = 1e-12  # a level counts as reached up to this far above a curve's top, as in `level_positions`


def cap_grid_costs(curves: Array, budgets: Array, caps: Array, levels: Array) -> Array:
    """C_q(u) (K, U) of the cascades with caps `caps` (K, M) over per-instance pass curves (I, M, G).

    Equal to `cost_for_solve_rate` of each cascade's `cascade_curves` and `cascade_spend`.
    """
    n_budgets = len(budgets)
    tables = stage_tables(curves, budgets, caps)
    _, first = np.unique(tables.head, return_index=True)
    # each head's open curve: the stages before the last end where its caps say, the last never does
    stage = stages_done(tables.ends[first, :-1], n_budgets)
    solve = 1.0 - read_stage_rows(tables.rows, tables.row_of[first], stage)
    spend = np.cumsum(spend_steps(solve, budgets), axis=1)
    open_cost = cost_for_solve_rate(solve, spend, levels)  # (heads, U)
    reached = np.maximum.accumulate(solve, axis=1)

    end = tables.ends[:, -1]
    last = np.maximum(end - 1, 0)
    reached_last = np.where(end > 0, reached[tables.head, last], -np.inf)
    follows = np.where(end >= n_budgets, np.inf, reached_last)  # the open curve's cost holds for u below this
    spent = np.where(end > 0, spend[tables.head, last], 0.0)
    capped = np.exp(np.log(np.maximum(spent, TINY_SPEND)))
    top = np.maximum(1.0 - tables.beyond, reached_last) + ABOVE
    u = levels[None, :]
    return np.where(u < follows[:, None], open_cost[tables.head], np.where(u <= top[:, None], capped[:, None], np.inf))
