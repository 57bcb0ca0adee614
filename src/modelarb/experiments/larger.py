"""The six-model SWE-bench market: who is ever cheapest, revenue shares, the margin against the pair's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelarb.core.result import ArbitrageResult
from modelarb.core.search import best_solve_rate
from modelarb.data.outcomes import Outcomes
from modelarb.economics import RevenueResult, market_arbitrage, revenue, segmentation
from modelarb.experiments.paper_data import PAIR
from modelarb.experiments.settings import Settings

Array = NDArray[np.float64]
LOWEST_LEVEL = 0.40
SHARES_AT = 0.75


@dataclass(frozen=True, eq=False)
class LargerMarket:
    """The arbitrageur of the whole market (priced against every provider), its revenue, and the pair's."""

    cascade: ArbitrageResult
    revenue: RevenueResult
    pair: ArbitrageResult

    @property
    def never_cheapest(self) -> tuple[str, ...]:
        return segmentation(self.cascade).never_cheapest

    @property
    def shares_at(self) -> Array:
        """Revenue shares with the arbitrageur at u ≈ 0.75 (providers, then the arbitrageur)."""
        return self.revenue.shares_with[self.revenue.index_of(SHARES_AT)]

    def metrics(self) -> dict[str, float]:
        names = (*self.cascade.providers, "arbitrageur")
        shares = dict(zip(names, self.shares_at.tolist(), strict=True))
        out = {
            "six.never_cheapest": float(len(self.never_cheapest)),
            "six.max_margin": self.cascade.max_margin,
            "six.pair_max_margin": self.pair.max_margin,
            **{f"six.share_{name}": share for name, share in shares.items()},
        }
        cascade = self.cascade.cascade_for(self.revenue.index_of(SHARES_AT))
        if cascade is not None and len(cascade.providers) > 1:
            # the split between the first and the last stage is ill-conditioned at near ties; their sum is not
            first, last = cascade.providers[0], cascade.providers[-1]
            out[f"six.share_{first}+{last}"] = shares[first] + shares[last]
        return out


def larger_market(outcomes: Outcomes, settings: Settings, pair: tuple[str, str] = PAIR) -> LargerMarket:
    """Cheapest cascade at each u ∈ linspace(0.40, best) over the providers ever cheapest (METHOD §5.7);
    the pair's arbitrageur on the same per-stage grid, in its own market, up to the pair's best solve rate."""
    levels = np.linspace(LOWEST_LEVEL, best_solve_rate(outcomes, settings.scheme), settings.market_levels)
    cascade = market_arbitrage(outcomes, levels, settings.scheme)
    pair_outcomes = outcomes.select(list(pair))
    pair_levels = levels[levels <= best_solve_rate(pair_outcomes, settings.scheme) + 1e-12]
    pair_market = market_arbitrage(pair_outcomes, pair_levels, settings.scheme, same_grid=True)
    return LargerMarket(cascade, revenue(cascade), pair_market)
