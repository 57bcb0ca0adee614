"""Straightforward per-cascade implementations the suite compares the engine with (same data, same run).

Each evaluates one cascade at a time, vectorised over instances only, sharing nothing between cascades,
straight from METHOD §4 (exact) and §5.3–5.5 (paper grid). They time an evenly spaced or random sample of
cascades and extrapolate to all of them; the engine's values for the sample are checked against theirs.
"""

from __future__ import annotations

import time
from math import factorial
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln

from bench_search import max_rel_diff, naive_cost
from modelarb.core.capgrid import cap_grid_costs
from modelarb.core.exact_curves import Breakpoints, evaluate_cascades
from modelarb.core.grid import BudgetGrid, pass_curves
from modelarb.data.outcomes import Outcomes

Array = NDArray[np.float64]


def paper_per_cascade(
    outcomes: Outcomes, levels: Array, caps: Array, grid: BudgetGrid, sample: int | None
) -> dict[str, Any]:
    """C_q(u) of each cap vector on the budget grid, one cascade at a time (METHOD §5.3–5.5)."""
    budgets = grid.budgets
    curves = np.array(pass_curves(outcomes, budgets))
    rows = np.arange(len(caps)) if sample is None else np.unique(np.linspace(0, len(caps) - 1, sample).astype(int))
    start = time.perf_counter()
    naive = np.stack([naive_cost(curves, budgets, caps[k], levels) for k in rows])
    timed = time.perf_counter() - start
    engine = cap_grid_costs(curves[:, : caps.shape[1], :], budgets, caps, levels).costs()[rows]
    return {
        "baseline_seconds": timed * len(caps) / len(rows),
        "baseline_extrapolated": len(rows) < len(caps),
        "baseline_diff": max_rel_diff(naive, engine),
    }


def one_cascade(outcomes: Outcomes, order: list[int], caps: list[float]) -> tuple[float, float]:
    """Mean solve and spend of one cascade: F and Σ_{j<k} F(j) per instance from log-gamma, stage by stage."""
    unsolved, spend = np.ones(outcomes.n_instances), np.zeros(outcomes.n_instances)
    for p, cap in zip(order, caps, strict=True):
        n, s, c = outcomes.n[:, p].astype(float), outcomes.s[:, p].astype(float), outcomes.cost[:, p]
        k = np.where(c > 0, np.floor(cap / np.where(c > 0, c, 1.0) * (1 + 1e-12)), np.inf)
        kk = np.minimum(k, n - s)
        log_f = gammaln(n - s + 1) - gammaln(n - s - kk + 1) - gammaln(n + 1) + gammaln(n - kk + 1)
        fail = np.where(k > n - s, np.where(s > 0, 0.0, 1.0), np.exp(log_f))
        left = np.where(fail > 0, fail * (n + 1 - np.minimum(k, n + 1)), 0.0)
        attempts = np.where(s > 0, (n + 1 - left) / (s + 1), np.minimum(k, 1e300))
        spend += unsolved * np.where(c > 0, c * attempts, 0.0)
        unsolved *= fail
    return float(1.0 - unsolved.mean()), float(spend.mean())


def exact_per_cascade(outcomes: Outcomes, depth: int, sample: int, total: float | None = None) -> dict[str, Any]:
    """Every cascade of at most `depth` stages evaluated one by one (timed on `sample` random ones)."""
    rng = np.random.default_rng(0)
    caps = [Breakpoints.of(outcomes, p).caps for p in range(outcomes.n_providers)]
    if total is None:  # ordered sequences of m distinct providers times their caps, m = 1 … depth
        sizes = np.array([len(c) for c in caps], dtype=float)
        elementary = np.zeros(depth + 1)
        elementary[0] = 1.0
        for g in sizes:
            elementary[1:] = elementary[1:] + g * elementary[:-1]
        total = float(sum(elementary[m] * factorial(m) for m in range(1, depth + 1)))
    drawn = []
    for _ in range(sample):
        order = [int(p) for p in rng.choice(outcomes.n_providers, size=depth, replace=False)]
        drawn.append((order, [float(rng.choice(caps[p])) if len(caps[p]) else 1.0 for p in order]))
    start = time.perf_counter()
    values = [one_cascade(outcomes, order, cap) for order, cap in drawn]
    timed = time.perf_counter() - start
    worst = 0.0
    for (order, cap), (solve, spend) in zip(drawn, values, strict=True):
        engine = evaluate_cascades(outcomes, [outcomes.providers[p] for p in order], np.array([cap]))
        worst = max(worst, abs(engine.solve[0] - solve), abs(engine.spend[0] - spend) / max(spend, 1e-300))
    return {"baseline_seconds": timed * total / sample, "baseline_extrapolated": True, "baseline_diff": worst}
