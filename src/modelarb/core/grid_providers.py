"""Which providers the paper scheme searches when a market has more than its cap grids can hold.

The paper's per-stage cap grid grows as 21^M with M providers; beyond a few it cannot be
searched. A provider that is nowhere the cheapest single provider leaves the market price
unchanged, so the grid keeps those that are cheapest over the most levels (exact curves),
at most `limit`, ordered cheapest attempt first (the order the cascade buys in).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from modelarb.core.exact_curves import provider_cost_curves
from modelarb.data.outcomes import Outcomes

GRID_PROVIDERS = 4  # the paper's larger markets have 3 to 4 providers


def cheapest_counts(outcomes: Outcomes, levels: NDArray[np.float64]) -> NDArray[np.int64]:
    """Per provider, at how many of `levels` it is the cheapest single provider (exact curves; levels no
    provider reaches count for nobody)."""
    costs = provider_cost_curves(outcomes, levels)
    served = np.isfinite(costs.min(axis=0))
    return np.bincount(costs.argmin(axis=0)[served], minlength=outcomes.n_providers).astype(np.int64)


def cascade_order(outcomes: Outcomes, indices: list[int]) -> list[int]:
    """Provider indices in the order a cascade buys: lowest mean cost per attempt first; at equal cost (a market
    priced in attempts) the higher mean pass@1 first."""
    mean_cost, pass_at_1 = outcomes.cost.mean(axis=0), outcomes.pass_at_1.mean(axis=0)
    return sorted(indices, key=lambda p: (mean_cost[p], -pass_at_1[p], p))


def cheapest_somewhere(outcomes: Outcomes, levels: NDArray[np.float64], limit: int = GRID_PROVIDERS) -> list[str]:
    """At most `limit` providers that are the cheapest single provider at some level, most levels first, then
    ordered by mean cost per attempt (cheapest first)."""
    counts = cheapest_counts(outcomes, levels)
    ranked = [int(p) for p in np.argsort(-counts, kind="stable") if counts[p] > 0][:limit]
    return [outcomes.providers[p] for p in cascade_order(outcomes, ranked)]
