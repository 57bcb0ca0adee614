"""The paper's numerical scheme (METHOD §5): pass curves on a log-spaced budget grid.

Every function works on averaged or per-instance pass curves sampled at `budgets`,
so the same code serves recorded attempts and the sampled curves of robust fitting.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelarb.core.passk import attempts_within, pass_at_k
from modelarb.data.outcomes import Outcomes

Array = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class BudgetGrid:
    """Budgets (per instance) log-spaced between `low` and `high`."""

    low: float = 1e-4
    high: float = 1.0
    points: int = 250

    @property
    def budgets(self) -> Array:
        return np.logspace(np.log10(self.low), np.log10(self.high), self.points)


_computed: weakref.WeakKeyDictionary[Outcomes, dict[bytes, Array]] = weakref.WeakKeyDictionary()
KEPT_GRIDS = 4  # pass curves remembered per market (one search reads the same grid several times)


def pass_curves(outcomes: Outcomes, budgets: Array) -> Array:
    """Per-instance pass curves, shape (instances, providers, budgets): pass@floor(b / c).

    Computed once per market and grid (read-only; the market's arrays are immutable too).
    """
    budgets = np.asarray(budgets, dtype=float)
    known = _computed.setdefault(outcomes, {})
    key = budgets.tobytes()
    if key not in known:
        k = attempts_within(budgets[None, None, :], outcomes.cost[:, :, None])
        curves = pass_at_k(outcomes.n[:, :, None], outcomes.s[:, :, None], k)
        curves.flags.writeable = False
        if len(known) >= KEPT_GRIDS:
            known.pop(next(iter(known)))
        known[key] = curves
    return known[key]


def interpolate_log(curves: Array, budgets: Array, x: Array, below: float = 0.0) -> Array:
    """Curves (..., G) read at budgets `x` (Q,), linear in log b: shape (..., Q).

    Below the first grid budget a curve reads `below`; above the last, its last value.
    """
    j, t = log_position(budgets, x)
    value = curves[..., j] + t * (curves[..., j + 1] - curves[..., j])
    return np.where(x < budgets[0], below, value)


def log_position(budgets: Array, x: Array) -> tuple[NDArray[np.int64], Array]:
    """Grid segment j and fraction t of each budget x, in log b."""
    log_b = np.log(budgets)
    with np.errstate(divide="ignore"):
        log_x = np.log(np.maximum(x, budgets[0]))
    j = np.clip(np.searchsorted(log_b, log_x, side="right") - 1, 0, len(budgets) - 2)
    t = np.clip((log_x - log_b[j]) / (log_b[j + 1] - log_b[j]), 0.0, 1.0)
    return j, t


def expected_spend(solve: Array, budgets: Array) -> Array:
    """E(b) = ∫_0^b (1 - P(x)) dx for averaged curves (..., G), P linear in log x per segment.

    The first segment runs from (0, P = 0) to the first grid budget, linear in x.
    """
    return np.cumsum(spend_steps(solve, budgets), axis=-1)


def spend_steps(solve: Array, budgets: Array) -> Array:
    """∫(1 − P) over each grid segment (..., G): [0, b_0], then [b_{g−1}, b_g]; E(b) is their running sum.

    With P linear in log x on [b0, b1], ∫(1 − P) = (w − a)(1 − p0) + a(1 − p1), where
    w = b1 − b0 and a = b1 − w / ln(b1 / b0).
    """
    early, late = segment_weights(budgets)
    q = 1.0 - solve
    first = budgets[0] * (1.0 - 0.5 * solve[..., :1])
    return np.concatenate([first, early * q[..., :-1] + late * q[..., 1:]], axis=-1)


def segment_weights(budgets: Array) -> tuple[Array, Array]:
    """(w − a, a) of each grid segment [b_{g−1}, b_g] (G − 1,): ∫(1 − P) over it is (w − a)(1 − p0) + a(1 − p1)."""
    b0, b1 = budgets[:-1], budgets[1:]
    width = b1 - b0
    a = b1 - width / np.log(b1 / b0)
    return width - a, a


def level_positions(
    solve: Array, levels: Array, lengths: NDArray[np.int64] | None = None
) -> tuple[NDArray[np.int64], Array, NDArray[np.bool_]]:
    """Where each level u falls on each curve (K, G): segment j, fraction t, and u > max P.

    Curves are made monotone first. Each curve value is ranked among the sorted levels
    once; the number of values ≤ u on a curve is then a running count of those ranks.
    `lengths` (K,): each curve's own length, padded beyond it with its last value.
    """
    p = np.maximum.accumulate(solve, axis=1)
    n_curves, g = p.shape
    order = np.argsort(levels, kind="stable")
    rank = np.searchsorted(levels[order], p, side="left")  # p[k, g] ≤ u_(r) exactly when rank ≤ r
    width = len(levels) + 1
    counts = np.bincount((rank + width * np.arange(n_curves)[:, None]).ravel(), minlength=n_curves * width)
    at_most = np.cumsum(counts.reshape(n_curves, width), axis=1)[:, :-1]
    idx = np.empty((n_curves, len(levels)), dtype=np.int64)
    idx[:, order] = at_most - 1  # last grid point with P ≤ u
    j = np.clip(idx, 0, g - 2)
    if lengths is not None:
        j = np.minimum(j, lengths[:, None] - 2)
    p_lo, p_hi = _segment_ends(p, j)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(p_hi > p_lo, (levels[None, :] - p_lo) / (p_hi - p_lo), 0.0)
    t = np.where(idx < 0, 0.0, np.clip(t, 0.0, 1.0))
    return j, t, levels[None, :] > p[:, -1:] + 1e-12


def cost_for_solve_rate(solve: Array, spend: Array, levels: Array, lengths: NDArray[np.int64] | None = None) -> Array:
    """C(u) for each curve (..., G) at each level u: log E interpolated against P; ∞ above max P.

    `lengths`: as in `level_positions`, for curves (K, G).
    """
    lead = solve.shape[:-1]
    p = solve.reshape(-1, solve.shape[-1])
    e = spend.reshape(p.shape)
    j, t, above = level_positions(p, levels, lengths)
    e_lo, e_hi = _segment_ends(np.log(np.maximum(e, 1e-300)), j)  # log E once per grid point, not per level
    cost = np.where(above, np.inf, np.exp(e_lo + t * (e_hi - e_lo)))
    return cost.reshape(*lead, len(levels))


def cascade_spend(solve: Array, budgets: Array, stage_at: NDArray[np.int64]) -> Array:
    """Expected spend (K, G) of cascade curves: ∫(1 − P), but nothing is bought beyond the last cap."""
    return np.cumsum(np.where(stage_at >= 0, spend_steps(solve, budgets), 0.0), axis=-1)


def stage_spend(solve: Array, budgets: Array, stage_at: NDArray[np.int64], n_stages: int) -> Array:
    """Cumulative expected spend per stage (K, M, G) of cascade curves from `cascade_curves`.

    Each grid segment's ∫(1 − P) goes to the stage buying at its end; beyond the last
    cap nothing is bought, so the spend stops growing there.
    """
    step = spend_steps(solve, budgets)
    return np.cumsum(np.stack([np.where(stage_at == m, step, 0.0) for m in range(n_stages)], axis=1), axis=-1)


@dataclass(frozen=True)
class StageTables:
    """Many cascades' failure curves by stage, shared by cascades with the same caps before a stage (METHOD §5.3).

    `rows` (R, G): per stage and prefix of caps before it, the stage's failure curve given the prefix (the
    chance each instance is still unsolved, times the stage's own failure curve, averaged), read at b − o_m;
    `row_of` (K, M): each cascade's row per stage; `beyond` (K,): its mean failure once every cap is spent;
    `ends` (K, M): per stage, the first grid point past the caps so far; `head` (K,): its prefix of all caps
    but the last, `parent` (K,) of all but the last two (numbered 0, 1, … in the order of the sorted prefixes).
    The last stage given each head, on the grid before it is read at b − o: `last_mean` (B, G) for the heads
    some cascade buys from it with (`last_row` (H,), -1 for the others), `last_offset` and `last_unsolved` (H,).
    """

    rows: Array
    row_of: NDArray[np.int64]
    beyond: Array
    ends: NDArray[np.int64]
    head: NDArray[np.int64]
    parent: NDArray[np.int64]
    last_mean: Array
    last_row: NDArray[np.int64]
    last_offset: Array
    last_unsolved: Array


def stage_tables(curves: Array, budgets: Array, caps: Array, last_table: bool = True) -> StageTables:
    """`StageTables` of cap vectors `caps` (K, M) over per-instance pass curves (I, M, G) of the stages' providers.

    A stage's failure curve given a prefix is one matrix product per stage, read off at b − o_m once per prefix,
    and only for prefixes some cascade extends with a positive cap (no cascade reads the others: they stay flat).
    `last_table=False` leaves the last stage's rows out of `rows` (read them from `last_mean`).
    """
    n_inst, n_stage, n_budgets = curves.shape
    fail = 1.0 - curves
    tables: list[Array] = []
    row_of = np.empty(caps.shape, dtype=np.int64)
    weights = np.ones((1, n_inst))  # per prefix: chance each instance is still unsolved
    offset = np.zeros(1)  # per prefix: the budget its caps use up
    prefix_of = parent_of = np.zeros(len(caps), dtype=np.int64)
    for m in range(n_stage):
        row_of[:, m] = sum(len(table) for table in tables) + prefix_of
        unsolved = weights.mean(axis=1)
        bought = np.zeros(len(weights), dtype=bool)
        bought[prefix_of[caps[:, m] > 0]] = True
        stage_mean = weights[bought] @ fail[:, m, :] / n_inst  # (prefixes buying here, G)
        if m < n_stage - 1 or last_table:
            table = np.repeat(unsolved[:, None], n_budgets, axis=1)
            table[bought] = _read_rows(stage_mean, budgets, budgets[None, :] - offset[bought, None], unsolved[bought])
            tables.append(table)
        if m == n_stage - 1:  # the curve is linear in each instance's: read the averaged one at each last cap
            last_row = np.where(bought, np.cumsum(bought) - 1, -1)
            beyond = unsolved[prefix_of]
            on_grid = caps[:, m] >= budgets[0]
            j, t = log_position(budgets, caps[on_grid, m])
            row = last_row[prefix_of[on_grid]]
            lo, hi = stage_mean[row, j], stage_mean[row, j + 1]
            beyond[on_grid] = lo + t * (hi - lo)
            break
        cap_values, cap_index = np.unique(caps[:, m], return_inverse=True)
        at_cap = np.where(cap_values > 0, interpolate_log(fail[:, m, :], budgets, cap_values, below=1.0), 1.0)
        # extend each prefix by this stage's cap
        parent_of = prefix_of
        keys, prefix_of = np.unique(prefix_of * len(cap_values) + cap_index, return_inverse=True)
        parent, value = np.divmod(keys, len(cap_values))
        weights = weights[parent] * at_cap[:, value].T
        offset = offset[parent] + cap_values[value]
    ends = np.searchsorted(budgets, np.cumsum(caps, axis=1), side="right")
    rows = np.concatenate(tables) if tables else np.empty((0, n_budgets))
    return StageTables(rows, row_of, beyond, ends, prefix_of, parent_of, stage_mean, last_row, offset, unsolved)


def cascade_curves(curves: Array, budgets: Array, caps: Array) -> tuple[Array, NDArray[np.int64]]:
    """Averaged pass curves of many cascades over a global budget (METHOD §5.3).

    `curves` (I, M, G) are the per-instance pass curves of the cascade's providers in
    order; `caps` (K, M) one cap vector per cascade. Stage m gets min(τ_m, max(b − o_m, 0))
    with o_m the caps before it. Returns the averaged solve curves (K, G) and, per grid
    point, the stage spending there (K, G; -1 beyond the last cap).

    Cascades sharing a prefix of caps share work (`stage_tables`); each cascade then takes,
    at each budget, the row of the stage spending there.
    """
    n_stage, n_budgets = curves.shape[1], curves.shape[2]
    tables = stage_tables(curves, budgets, caps)
    stage = stages_done(tables.ends, n_budgets)
    inside = stage < n_stage
    failure = np.where(inside, read_stage_rows(tables.rows, tables.row_of, stage), tables.beyond[:, None])
    return 1.0 - failure, np.where(inside, stage, -1)


def read_stage_rows(rows: Array, row_of: NDArray[np.int64], stage: NDArray[np.int64]) -> Array:
    """Curves (K, G) from the stacked `rows`: at each grid point the row `row_of` gives its stage (or the last)."""
    n_stage, n_budgets = row_of.shape[1], rows.shape[1]
    at = np.take(row_of, np.minimum(stage, n_stage - 1) + n_stage * np.arange(len(row_of))[:, None])
    return np.take(rows, at * n_budgets + np.arange(n_budgets))


def stages_done(ends: NDArray[np.int64], n_budgets: int) -> NDArray[np.int64]:
    """Per cascade and grid point (K, G), how many stages end at or before it; `ends` (K, M) are grid indices."""
    width = n_budgets + 1
    marks = np.bincount((ends + width * np.arange(len(ends))[:, None]).ravel(), minlength=len(ends) * width)
    return np.cumsum(marks.reshape(len(ends), width)[:, :n_budgets], axis=1)


def read_at(table: Array, rows: NDArray[np.int64], budgets: Array, x: Array, below: Array) -> Array:
    """table[rows] read at budgets x (rows, x and `below` of one shape), linear in log b; below the grid: `below`."""
    out = np.array(below, dtype=float)
    on_grid = x >= budgets[0]
    j, t = log_position(budgets, x[on_grid])
    flat = rows[on_grid] * table.shape[1] + j
    lo, hi = np.take(table, flat), np.take(table, flat + 1)
    out[on_grid] = lo + t * (hi - lo)
    return out


def _read_rows(table: Array, budgets: Array, x: Array, below: Array) -> Array:
    """Each row of `table` (R, G) read at its budgets x (R, Q), linear in log b; below the grid: `below` (R,).

    Only budgets on the grid are located (a later stage's x = b − o_m is mostly below it).
    """
    out = np.repeat(below[:, None], x.shape[1], axis=1)
    on_grid = x >= budgets[0]
    rows, _ = np.nonzero(on_grid)
    j, t = log_position(budgets, x[on_grid])
    flat = rows * table.shape[1] + j
    lo, hi = np.take(table, flat), np.take(table, flat + 1)
    out[on_grid] = lo + t * (hi - lo)
    return out


def _segment_ends(rows: Array, j: NDArray[np.int64]) -> tuple[Array, Array]:
    """rows[r, j[r, q]] and rows[r, j[r, q] + 1] for rows (R, G) and segments j (R, Q)."""
    flat = j + rows.shape[1] * np.arange(len(rows))[:, None]
    return np.take(rows, flat), np.take(rows, flat + 1)
