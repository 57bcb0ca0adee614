"""The paper's numerical scheme (METHOD §5): pass curves on a log-spaced budget grid.

Every function works on averaged or per-instance pass curves sampled at `budgets`,
so the same code serves recorded attempts and the sampled curves of robust fitting.
"""

from __future__ import annotations

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


def pass_curves(outcomes: Outcomes, budgets: Array) -> Array:
    """Per-instance pass curves, shape (instances, providers, budgets): pass@floor(b / c)."""
    k = attempts_within(budgets[None, None, :], outcomes.cost[:, :, None])
    return pass_at_k(outcomes.n[:, :, None], outcomes.s[:, :, None], k)


def interpolate_log(curves: Array, budgets: Array, x: Array, below: float = 0.0) -> Array:
    """Curves (..., G) read at budgets `x` (Q,), linear in log b: shape (..., Q).

    Below the first grid budget a curve reads `below`; above the last, its last value.
    """
    j, t = _log_position(budgets, x)
    value = curves[..., j] + t * (curves[..., j + 1] - curves[..., j])
    return np.where(x < budgets[0], below, value)


def _log_position(budgets: Array, x: Array) -> tuple[NDArray[np.int64], Array]:
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
    b0, b1 = budgets[:-1], budgets[1:]
    p0, p1 = solve[..., :-1], solve[..., 1:]
    width = b1 - b0
    # ∫ P over [b0, b1] with P = p0 + (p1 - p0) (ln x - ln b0) / (ln b1 - ln b0)
    integral_p = p0 * width + (p1 - p0) * (b1 - width / np.log(b1 / b0))
    first = budgets[0] * (1.0 - 0.5 * solve[..., :1])
    return np.concatenate([first, first + np.cumsum(width - integral_p, axis=-1)], axis=-1)


def level_positions(solve: Array, levels: Array) -> tuple[NDArray[np.int64], Array, NDArray[np.bool_]]:
    """Where each level u falls on each curve (K, G): segment j, fraction t, and u > max P.

    Curves are made monotone first; one sorted search serves all rows (each row is
    offset by 2, as P lies in [0, 1]).
    """
    p = np.maximum.accumulate(solve, axis=1)
    rows = np.arange(p.shape[0])[:, None]
    g = p.shape[1]
    idx = np.searchsorted((p + 2.0 * rows).ravel(), levels[None, :] + 2.0 * rows, side="right") - 1 - rows * g
    j = np.clip(idx, 0, g - 2)
    p_lo, p_hi = np.take_along_axis(p, j, 1), np.take_along_axis(p, j + 1, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(p_hi > p_lo, (levels[None, :] - p_lo) / (p_hi - p_lo), 0.0)
    t = np.where(idx < 0, 0.0, np.clip(t, 0.0, 1.0))
    return j, t, levels[None, :] > p[:, -1:] + 1e-12


def cost_for_solve_rate(solve: Array, spend: Array, levels: Array) -> Array:
    """C(u) for each curve (..., G) at each level u: log E interpolated against P; ∞ above max P."""
    lead = solve.shape[:-1]
    p = solve.reshape(-1, solve.shape[-1])
    log_e = np.log(np.maximum(spend.reshape(p.shape), 1e-300))
    j, t, above = level_positions(p, levels)
    e_lo, e_hi = np.take_along_axis(log_e, j, 1), np.take_along_axis(log_e, j + 1, 1)
    cost = np.where(above, np.inf, np.exp(e_lo + t * (e_hi - e_lo)))
    return cost.reshape(*lead, len(levels))


def cascade_spend(solve: Array, budgets: Array, stage_at: NDArray[np.int64]) -> Array:
    """Expected spend (K, G) of cascade curves: ∫(1 − P), but nothing is bought beyond the last cap."""
    step = np.diff(expected_spend(solve, budgets), axis=-1, prepend=0.0)
    return np.cumsum(np.where(stage_at >= 0, step, 0.0), axis=-1)


def stage_spend(solve: Array, budgets: Array, stage_at: NDArray[np.int64], n_stages: int) -> Array:
    """Cumulative expected spend per stage (K, M, G) of cascade curves from `cascade_curves`.

    Each grid segment's ∫(1 − P) goes to the stage buying at its end; beyond the last
    cap nothing is bought, so the spend stops growing there.
    """
    step = np.diff(expected_spend(solve, budgets), axis=-1, prepend=0.0)
    return np.cumsum(np.stack([np.where(stage_at == m, step, 0.0) for m in range(n_stages)], axis=1), axis=-1)


def cascade_curves(curves: Array, budgets: Array, caps: Array) -> tuple[Array, NDArray[np.int64]]:
    """Averaged pass curves of many cascades over a global budget (METHOD §5.3).

    `curves` (I, M, G) are the per-instance pass curves of the cascade's providers in
    order; `caps` (K, M) one cap vector per cascade. Stage m gets min(τ_m, max(b − o_m, 0))
    with o_m the caps before it. Returns the averaged solve curves (K, G) and, per grid
    point, the stage spending there (K, G; -1 beyond the last cap).

    Cascades sharing a prefix of caps share work: the weighted failure curve of a stage
    given its prefix is one matrix product, read off at b − o_m afterwards.
    """
    n_inst, n_stage, _ = curves.shape
    k = caps.shape[0]
    fail = 1.0 - curves
    failure = np.empty((k, len(budgets)))
    stage_at = np.full((k, len(budgets)), -1, dtype=np.int64)
    weights = np.ones((1, n_inst))  # per prefix: chance each instance is still unsolved
    prefix_of = np.zeros(k, dtype=np.int64)
    offset = np.zeros(k)
    for m in range(n_stage):
        stage_mean = weights @ fail[:, m, :] / n_inst  # (prefixes, G)
        cap = caps[:, m]
        rows, cols = np.nonzero((budgets[None, :] > offset[:, None]) & (budgets[None, :] <= (offset + cap)[:, None]))
        x = budgets[cols] - offset[rows]
        failure[rows, cols] = _read_rows(stage_mean, prefix_of[rows], budgets, x, weights.mean(axis=1))
        stage_at[rows, cols] = m
        # extend prefixes by this stage's cap
        cap_values, cap_index = np.unique(cap, return_inverse=True)
        unique_keys, new_prefix = np.unique(np.stack([prefix_of, cap_index], axis=1), axis=0, return_inverse=True)
        new_caps = cap_values[unique_keys[:, 1]]
        at_cap = interpolate_log(fail[:, m, :], budgets, new_caps, below=1.0)  # (I, new prefixes)
        weights = weights[unique_keys[:, 0]] * np.where(new_caps > 0, at_cap, 1.0).T
        prefix_of = new_prefix.ravel()
        offset = offset + cap
    beyond = budgets[None, :] > offset[:, None]
    final = (weights.mean(axis=1))[prefix_of]
    failure = np.where(beyond, final[:, None], failure)
    return 1.0 - failure, stage_at


def _read_rows(table: Array, row: NDArray[np.int64], budgets: Array, x: Array, below: Array) -> Array:
    """table[row] read at budgets x (linear in log b); below the grid: `below[row]`."""
    j, t = _log_position(budgets, x)
    value = table[row, j] + t * (table[row, j + 1] - table[row, j])
    return np.where(x < budgets[0], below[row], value)
