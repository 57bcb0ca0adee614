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

from modelarb.core.grid import (
    StageTables,
    cost_for_solve_rate,
    read_at,
    read_stage_rows,
    segment_weights,
    spend_steps,
    stage_tables,
    stages_done,
)

Array = NDArray[np.float64]
TINY_SPEND = 1e-300  # what log E reads for a spend of 0, as in `cost_for_solve_rate`
ABOVE = 1e-12  # a level counts as reached up to this far above a curve's top, as in `level_positions`
TAIL_CHUNK = 256  # heads whose tails are read together (sorted by length: little padding)


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

    Equal to `cost_for_solve_rate` of each cascade's `cascade_curves` and `cascade_spend`. A head's open
    curve is its parent's (the stage before the last open) until the stage before the last ends at s: the
    parents' curves are read on the whole grid, each head's only from s − 1 on (its tail).
    """
    n_budgets = len(budgets)
    tables = stage_tables(curves, budgets, caps, last_table=False)
    parent = _parent_curves(tables, budgets, levels)
    _, first = np.unique(tables.head, return_index=True)
    start = tables.ends[first, -2] if caps.shape[1] > 1 else np.zeros(len(first), dtype=np.int64)
    head_parent = tables.parent[first]
    open_cost = parent.cost[head_parent]  # a head without a tail is its parent's curve wherever it is read
    end = tables.ends[:, -1]
    before = np.maximum(end - 1, 0)
    at_parent = (head_parent[tables.head], before)
    reached_last, spent = parent.reached[at_parent], parent.spend[at_parent]
    tailed = np.flatnonzero((tables.last_row >= 0) & (start < n_budgets))
    from_ = np.maximum(start[tailed] - 1, 0)
    by_length = np.argsort(from_)[::-1]
    for at in range(0, len(tailed), TAIL_CHUNK):
        chunk = by_length[at : at + TAIL_CHUNK]
        heads, begin = tailed[chunk], from_[chunk]
        tail = _tails(tables, parent, budgets, heads, begin, start[heads], head_parent[heads])
        lengths = n_budgets - begin
        cost = cost_for_solve_rate(tail.reached, tail.spend, levels, lengths)
        inherited = (start[heads, None] > 0) & (levels[None, :] < tail.reached[:, :1])  # crossed before s − 1
        open_cost[heads] = np.where(inherited, open_cost[heads], cost)
        row = np.full(len(start), -1)
        row[heads] = np.arange(len(heads))
        mine = np.flatnonzero(row[tables.head] >= 0)
        at_tail = (row[tables.head[mine]], before[mine] - begin[row[tables.head[mine]]])
        reached_last[mine], spent[mine] = tail.reached[at_tail], tail.spend[at_tail]
    reached_last = np.where(end > 0, reached_last, -np.inf)
    return CapGridCosts(
        levels=levels,
        open_cost=open_cost,
        head=tables.head,
        follows=np.where(end >= n_budgets, np.inf, reached_last),
        capped=np.exp(np.log(np.maximum(np.where(end > 0, spent, 0.0), TINY_SPEND))),
        top=np.maximum(1.0 - tables.beyond, reached_last) + ABOVE,
    )


@dataclass(frozen=True)
class _Curves:
    """Solve rate, expected spend E, monotone P and C(u) of some curves (rows)."""

    solve: Array
    spend: Array
    reached: Array
    cost: Array


def _parent_curves(tables: StageTables, budgets: Array, levels: Array) -> _Curves:
    """Each parent's open curve on the whole grid (the stage before the last never stops)."""
    n_stage = tables.row_of.shape[1]
    if n_stage == 1:  # one stage: no parent; every head reads its own curve from the first budget
        zeros = np.zeros((1, len(budgets)))
        return _Curves(zeros, zeros, zeros, np.full((1, len(levels)), np.inf))
    _, first = np.unique(tables.parent, return_index=True)
    stage = stages_done(tables.ends[first, :-2], len(budgets))
    solve = 1.0 - read_stage_rows(tables.rows, tables.row_of[first, :-1], stage)
    spend = np.cumsum(spend_steps(solve, budgets), axis=1)
    return _Curves(solve, spend, np.maximum.accumulate(solve, axis=1), cost_for_solve_rate(solve, spend, levels))


def _tails(
    tables: StageTables,
    parent: _Curves,
    budgets: Array,
    heads: NDArray[np.int64],
    begin: NDArray[np.int64],
    start: NDArray[np.int64],
    parents: NDArray[np.int64],
) -> _Curves:
    """Heads' open curves from grid point `begin` = max(s − 1, 0) on, padded with their last value.

    At s − 1 (the first point, when s > 0) a head is still its parent's curve (solve, E and monotone P
    carry on from there); from s on it reads the last stage, at b − o. Each step adds to E as in `spend_steps`.
    """
    n_budgets = len(budgets)
    g = np.minimum(begin[:, None] + np.arange(n_budgets - begin.min())[None, :], n_budgets - 1)
    offset, unsolved = tables.last_offset[heads, None], tables.last_unsolved[heads, None]
    last = 1.0 - read_at(
        tables.last_mean,
        np.broadcast_to(tables.last_row[heads, None], g.shape),
        budgets,
        budgets[g] - offset,
        np.broadcast_to(unsolved, g.shape),
    )
    solve = last
    solve[:, 0] = np.where(start > 0, parent.solve[parents, begin], last[:, 0])  # s − 1: still the parent's curve
    early, late = segment_weights(budgets)
    q = 1.0 - solve
    steps = early[g[:, 1:] - 1] * q[:, :-1] + late[g[:, 1:] - 1] * q[:, 1:]
    opened = np.where(start > 0, parent.spend[parents, begin], budgets[0] * (1.0 - 0.5 * solve[:, 0]))
    spend = np.cumsum(np.concatenate([opened[:, None], steps], axis=1), axis=1)
    reached_from = np.where(start > 0, parent.reached[parents, begin], solve[:, 0])
    reached = np.maximum.accumulate(np.concatenate([reached_from[:, None], solve[:, 1:]], axis=1), axis=1)
    return _Curves(solve, spend, reached, np.empty((len(heads), 0)))
