"""The theorem-proving market (Kimina provers on miniF2F, costs in compute units)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelarb.core.result import ArbitrageResult
from modelarb.data.outcomes import Outcomes
from modelarb.economics import RevenueResult, market_arbitrage, revenue
from modelarb.experiments.settings import Settings

LEVELS = (0.6, 0.9)


@dataclass(frozen=True, eq=False)
class LeanMarket:
    """The cheapest cascade over the Kimina provers at each u ∈ linspace(0.6, 0.9), and who earns what."""

    result: ArbitrageResult
    revenue: RevenueResult

    def metrics(self) -> dict[str, float]:
        return {
            "lean.max_margin": self.result.max_margin,
            "lean.max_margin_at": self.result.max_margin_at,
            "lean.revenue_change_min": float(np.nanmin(self.revenue.revenue_change)),
        }


def lean_market(outcomes: Outcomes, settings: Settings) -> LeanMarket:
    """Cheapest cascade over the paper's compute-unit stage grid at each level (METHOD §5.7)."""
    result = market_arbitrage(outcomes, np.linspace(*LEVELS, settings.market_levels), settings.scheme)
    return LeanMarket(result, revenue(result))
