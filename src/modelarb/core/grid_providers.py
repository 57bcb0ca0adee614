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


def cheapest_somewhere(outcomes: Outcomes, levels: NDArray[np.float64], limit: int = GRID_PROVIDERS) -> list[str]:
    """At most `limit` providers that are the cheapest single provider at some level, most levels first, then
    ordered by mean cost per attempt (cheapest first)."""
    costs = provider_cost_curves(outcomes, levels)
    served = np.isfinite(costs.min(axis=0))
    counts = np.bincount(costs.argmin(axis=0)[served], minlength=outcomes.n_providers)
    ranked = [int(p) for p in np.argsort(-counts, kind="stable") if counts[p] > 0][:limit]
    mean_cost = outcomes.cost.mean(axis=0)
    return [outcomes.providers[p] for p in sorted(ranked, key=lambda p: (mean_cost[p], p))]
