"""Robust arbitrage's evaluation in the exact scheme (METHOD §3–4 applied to §6).

A fitted pair cascade (τ1, τ2) runs over a global budget b: stage 1 gets min(τ1, b), stage
2 gets min(τ2, max(b − τ1, 0)). Evaluated exactly, each b buys whole attempts, and the
cascade's cost C_q(u) is the lower convex hull of its (solve, spend) points over b. The
single providers are priced the same way with caps up to τ1 + τ2, so both sides of the
margin see the same budget range as the paper's grid.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from modelarb.core.exact_curves import Breakpoints, attempt_spend, failure_and_attempts
from modelarb.core.hull import hull_cost, lower_hull
from modelarb.core.passk import attempts_within
from modelarb.data.outcomes import Outcomes

Array = NDArray[np.float64]


def _hull_at(solve: Array, spend: Array, levels: Array) -> Array:
    vertices = lower_hull(solve, spend)
    return hull_cost(solve[vertices], spend[vertices], levels)


def capped_provider_costs(outcomes: Outcomes, levels: Array, total_cap: float) -> Array:
    """C_p(u) of each provider alone (P, U) over caps up to `total_cap`, exactly."""
    rows = []
    for p in range(outcomes.n_providers):
        steps = Breakpoints.of(outcomes, p)
        solve, spend = steps.sweep(np.ones((1, outcomes.n_instances)))
        keep = steps.caps <= total_cap
        rows.append(_hull_at(np.append(0.0, solve[0, keep]), np.append(0.0, spend[0, keep]), levels))
    return np.array(rows).reshape(outcomes.n_providers, len(levels))


def best_capped_solve_rate(outcomes: Outcomes, total_cap: float) -> float:
    """The highest solve rate a single provider reaches with a cap of `total_cap`."""
    k = attempts_within(total_cap, outcomes.cost)
    fail, _ = failure_and_attempts(outcomes.n, outcomes.s, k)
    return float((1.0 - fail).mean(axis=0).max())


def pair_cascade_costs(outcomes: Outcomes, caps: Array, levels: Array) -> Array:
    """C_q(u) (K, U) of each fixed pair cascade (caps (K, 2)) over its global budget, exactly."""
    first, second = Breakpoints.of(outcomes, 0), Breakpoints.of(outcomes, 1)
    solve1, spend1 = first.sweep(np.ones((1, outcomes.n_instances)))
    k1 = attempts_within(caps[:, :1], outcomes.cost[None, :, 0])  # (K, I)
    fail1, attempts1 = failure_and_attempts(outcomes.n[None, :, 0], outcomes.s[None, :, 0], k1)
    base_solve = (1.0 - fail1).mean(axis=1)
    base_spend = attempt_spend(outcomes.cost[None, :, 0], attempts1).mean(axis=1)
    solve2, spend2 = second.sweep(fail1)  # stage 2's gains after each stage 1 spent its cap
    rows = []
    for k, (cap1, cap2) in enumerate(caps):
        use1, use2 = first.caps <= cap1, second.caps <= cap2
        solve = np.concatenate([[0.0], solve1[0, use1], [base_solve[k]], base_solve[k] + solve2[k, use2]])
        spend = np.concatenate([[0.0], spend1[0, use1], [base_spend[k]], base_spend[k] + spend2[k, use2]])
        rows.append(_hull_at(solve, spend, levels))
    return np.array(rows).reshape(len(caps), len(levels))
